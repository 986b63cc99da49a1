#!/usr/bin/env bash
# The whole test suite: unit tests, openraft's storage suite, end-to-end tests of the real
# binary with aws-sdk-s3, and the client smoke tests (boto3 and awscli from PyPI in a venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo test (workspace)"
cargo build --workspace --bins --tests
cargo test --workspace --no-fail-fast

echo "== client smoke tests (boto3, awscli)"
bash scripts/smoke-clients.sh

echo "== cairn bench against another S3 server (moto)"
bash scripts/bench-other-s3.sh
