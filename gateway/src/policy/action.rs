//! Which IAM action and resource an S3 operation is, as AWS documents them for S3.
//!
//! Several operations share an action: HEAD is its GET's (`HeadObject` is `s3:GetObject`,
//! `HeadBucket` is `s3:ListBucket`), every write of object data is `s3:PutObject`
//! (PutObject, CopyObject's target, the multipart calls), and removing a bucket's tags or
//! CORS rules needs the permission to set them. An operation not in the table is
//! `s3:<operation name>`.

use std::borrow::Cow;

/// The ARN prefix of S3 resources.
pub const ARN_PREFIX: &str = "arn:aws:s3:::";

/// The resource of requests that name no bucket (ListBuckets).
pub const ALL_BUCKETS: &str = "arn:aws:s3:::*";

/// Operations whose `s3:prefix` condition key is the request's `prefix` parameter.
pub fn is_listing(operation: &str) -> bool {
    matches!(
        operation,
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions"
    )
}

/// Operations whose requests carry `s3:ExistingObjectTag/...` (the object's stored tags), as
/// AWS offers the key: reading an object and its tags or ACL, and changing its tags or ACL.
/// Not writes or deletes, so that a policy testing tags costs no metadata read on them.
pub fn offers_existing_object_tags(operation: &str) -> bool {
    matches!(
        operation,
        "GetObject"
            | "HeadObject"
            | "GetObjectTagging"
            | "PutObjectTagging"
            | "DeleteObjectTagging"
            | "GetObjectAcl"
            | "PutObjectAcl"
    )
}

/// Operations on a bucket's policy, which only the root may call (the owner in S3).
pub fn is_bucket_policy_operation(operation: &str) -> bool {
    matches!(
        operation,
        "PutBucketPolicy" | "GetBucketPolicy" | "DeleteBucketPolicy" | "GetBucketPolicyStatus"
    )
}

/// The IAM action of S3 operation `operation` (s3s's operation name, e.g. `GetObject`).
pub fn for_operation(operation: &str) -> Cow<'static, str> {
    let action = match operation {
        "ListBuckets" => "s3:ListAllMyBuckets",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListParts" => "s3:ListMultipartUploadParts",
        "GetObject" | "HeadObject" => "s3:GetObject",
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetBucketCors" => "s3:GetBucketCORS",
        "DeleteBucketTagging" => "s3:PutBucketTagging",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        other => return Cow::Owned(format!("s3:{other}")),
    };
    Cow::Borrowed(action)
}

/// The resource ARN of a request on `bucket` and `key` (either may be absent).
pub fn resource(bucket: Option<&str>, key: Option<&str>) -> String {
    match (bucket, key) {
        (Some(b), Some(k)) => format!("{ARN_PREFIX}{b}/{k}"),
        (Some(b), None) => format!("{ARN_PREFIX}{b}"),
        _ => ALL_BUCKETS.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_aws_action_names() {
        for (op, action) in [
            ("GetObject", "s3:GetObject"),
            ("HeadObject", "s3:GetObject"),
            ("PutObject", "s3:PutObject"),
            ("UploadPart", "s3:PutObject"),
            ("CompleteMultipartUpload", "s3:PutObject"),
            ("CopyObject", "s3:PutObject"),
            ("ListObjectsV2", "s3:ListBucket"),
            ("HeadBucket", "s3:ListBucket"),
            ("ListBuckets", "s3:ListAllMyBuckets"),
            ("DeleteObjects", "s3:DeleteObject"),
            ("GetBucketLocation", "s3:GetBucketLocation"),
            ("PutBucketTagging", "s3:PutBucketTagging"),
            ("DeleteBucketTagging", "s3:PutBucketTagging"),
            ("GetObjectTagging", "s3:GetObjectTagging"),
            ("PutBucketPolicy", "s3:PutBucketPolicy"),
            ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
        ] {
            assert_eq!(for_operation(op), action, "{op}");
        }
        assert!(is_listing("ListObjects") && !is_listing("GetObject"));
        assert!(is_bucket_policy_operation("GetBucketPolicyStatus"));
    }

    #[test]
    fn resources() {
        assert_eq!(resource(Some("b"), Some("a/b")), "arn:aws:s3:::b/a/b");
        assert_eq!(resource(Some("b"), None), "arn:aws:s3:::b");
        assert_eq!(resource(None, None), ALL_BUCKETS);
    }
}
