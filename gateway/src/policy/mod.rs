//! IAM-style policies: parse a policy document, map S3 operations to IAM actions and
//! resources, and decide whether a request is allowed.
//!
//! The same grammar serves user policies (attached to a user through the admin API, canned or
//! custom) and bucket policies (PutBucketPolicy, with a `Principal`). Evaluation follows AWS:
//! an explicit `Deny` anywhere wins, else an `Allow` anywhere allows, else the request is
//! implicitly denied. What a policy may say is deliberately small: anything the evaluator
//! would not honour (an unknown condition operator or key, a malformed ARN) is refused when
//! the policy is stored, never ignored at request time.

pub mod action;
pub mod canned;
mod cidr;
pub mod condition;
pub mod document;
pub mod evaluate;
mod pattern;
mod variables;

pub use condition::{ConditionValues, NO_VALUES};
pub use document::{Effect, Policy, PolicyError, PolicyKind};
pub use evaluate::{Decision, RequestContext};
