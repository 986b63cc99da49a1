//! Bucket policies: PutBucketPolicy / GetBucketPolicy / DeleteBucketPolicy /
//! GetBucketPolicyStatus. The policy is stored as the JSON the client sent, in the bucket's
//! record in the meta service (`Bucket.policy`, replaced by one Raft entry), after it was
//! parsed and checked here ([`crate::policy`]): a policy the evaluator would not honour in
//! full is refused with `MalformedPolicy` rather than stored. Enforcement is in
//! [`crate::access`].

use crate::error::{ApiError, ApiResult};
use crate::policy::{Policy, PolicyKind};
use crate::Gateway;

/// Largest bucket policy accepted (S3's limit is 20 KiB).
const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Checks `json` as the policy of `bucket`.
fn validate(bucket: &str, json: &str) -> ApiResult<Policy> {
    if json.len() > MAX_POLICY_BYTES {
        return Err(ApiError::MalformedPolicy(format!(
            "Policies must be at most {MAX_POLICY_BYTES} bytes"
        )));
    }
    Policy::parse(json, &PolicyKind::Bucket(bucket.to_string()))
        .map_err(|e| ApiError::MalformedPolicy(e.0))
}

/// Replaces the bucket's policy.
pub(crate) async fn put(gw: &Gateway, bucket: &str, json: &str) -> ApiResult<()> {
    validate(bucket, json)?;
    gw.meta.set_bucket_policy(bucket, json).await?;
    Ok(())
}

/// The bucket's policy as it was put; `NoSuchBucketPolicy` when it has none.
pub(crate) async fn get(gw: &Gateway, bucket: &str) -> ApiResult<String> {
    let record = gw.meta.get_bucket(bucket).await?;
    if record.policy.is_empty() {
        return Err(ApiError::NoSuchBucketPolicy);
    }
    Ok(record.policy)
}

/// Removes the bucket's policy (no error when it has none, as in S3).
pub(crate) async fn delete(gw: &Gateway, bucket: &str) -> ApiResult<()> {
    gw.meta.set_bucket_policy(bucket, "").await?;
    Ok(())
}

/// Whether the bucket's policy makes it public: an unconditional Allow for everyone.
pub(crate) async fn is_public(gw: &Gateway, bucket: &str) -> ApiResult<bool> {
    let json = get(gw, bucket).await?;
    Ok(validate(bucket, &json)?.is_public())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_policies_are_malformed() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(validate("b", ok).is_ok());
        assert!(matches!(
            validate("other", ok),
            Err(ApiError::MalformedPolicy(_))
        ));
        assert!(matches!(
            validate("b", "{"),
            Err(ApiError::MalformedPolicy(_))
        ));
        let huge = format!("{{\"Id\":\"{}\"}}", "x".repeat(MAX_POLICY_BYTES));
        assert!(matches!(
            validate("b", &huge),
            Err(ApiError::MalformedPolicy(_))
        ));
    }
}
