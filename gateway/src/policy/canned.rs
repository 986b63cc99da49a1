//! The canned policies every user can have attached (names in
//! `cairn_proto::iam::CANNED_POLICIES`), as documents in the same grammar as custom ones.
//!
//! - `readwrite`: every S3 action on every bucket (`s3:*`), as MinIO's.
//! - `readonly`: `s3:Get*` and `s3:List*` on every bucket: read objects, their tags and
//!   attributes, list buckets, objects, versions and uploads. (MinIO's `readonly` cannot
//!   list objects; ours can, as users of a read-only key expect.)
//! - `writeonly`: `s3:PutObject` (PUT, copy target, multipart) and `s3:AbortMultipartUpload`.
//! - `admin`: every S3 action, like `readwrite`. The admin API (users, policies, cluster)
//!   stays with the root key pair, and bucket policies with the root too.

use std::sync::OnceLock;

use super::document::{Policy, PolicyKind};

/// The documents, by name.
pub const DOCUMENTS: [(&str, &str); 4] = [
    (
        "readwrite",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "readonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "writeonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "admin",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
];

/// The canned policy called `name`, parsed once.
pub fn policy(name: &str) -> Option<&'static Policy> {
    static PARSED: OnceLock<Vec<(&'static str, Policy)>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        DOCUMENTS
            .iter()
            .filter_map(|(name, json)| {
                // The documents are constants checked by the tests; one that did not parse
                // would grant nothing rather than panic.
                Policy::parse(json, &PolicyKind::User)
                    .ok()
                    .map(|p| (*name, p))
            })
            .collect()
    });
    parsed.iter().find(|(n, _)| *n == name).map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_canned_name_has_a_document_that_parses() {
        for name in cairn_proto::iam::CANNED_POLICIES {
            assert!(super::policy(name).is_some(), "{name}");
        }
    }
}
