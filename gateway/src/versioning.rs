//! S3 bucket versioning in the gateway: PutBucketVersioning / GetBucketVersioning, version
//! ids as S3 clients see them, and reading the version a request names (delete markers turn
//! into S3's 404 / 405 with `x-amz-delete-marker: true`).
//!
//! The meta service keeps the state and decides what a write replaces
//! (`meta-server/src/apply/versions.rs`); a version id is the decimal log index of the entry
//! that committed it (20 digits, so it is URL-safe and a key's newer versions have larger
//! ids), or `null` for a version written while versioning was not enabled.

use cairn_proto::meta::{self as pb, VersioningStatus};
use s3s::dto::{
    BucketVersioningStatus, GetBucketVersioningOutput, MFADelete, PutBucketVersioningInput,
};

use crate::error::{ApiError, ApiResult};
use crate::Gateway;

/// The version id S3 gives versions written while versioning was not enabled.
pub(crate) const NULL_VERSION: &str = "null";

/// Digits of a version id other than `null`.
const ID_DIGITS: usize = 20;

/// The version id S3 clients see for `obj`.
pub(crate) fn s3_id(obj: &pb::ObjectVersion) -> String {
    if obj.versioned {
        obj.version_id.clone()
    } else {
        NULL_VERSION.to_string()
    }
}

/// `x-amz-version-id` for a response about `obj` where the bucket's versioning state is not
/// known: its id when it has one of its own, none for a `null` version.
pub(crate) fn header_id(obj: &pb::ObjectVersion) -> Option<String> {
    obj.versioned.then(|| obj.version_id.clone())
}

/// `x-amz-version-id` for a read of `obj` (GET, HEAD) in a bucket whose versioning state is
/// `state`: its own id; `null` for a null version once versioning was ever configured; none
/// in a never-versioned bucket (as S3 answers). Writes answer [`header_id`].
pub(crate) fn response_id(obj: &pb::ObjectVersion, state: VersioningStatus) -> Option<String> {
    if obj.versioned {
        Some(obj.version_id.clone())
    } else if state == VersioningStatus::Unversioned {
        None
    } else {
        Some(NULL_VERSION.to_string())
    }
}

/// Checks a request's `versionId`: `null` or an id Cairn could have made; anything else is
/// S3's 400 InvalidArgument "Invalid version id specified".
pub(crate) fn check_id(version_id: Option<&str>) -> ApiResult<Option<&str>> {
    match version_id {
        None => Ok(None),
        Some(v) if is_version_id(v) => Ok(Some(v)),
        Some(_) => Err(ApiError::InvalidVersionId),
    }
}

fn is_version_id(v: &str) -> bool {
    v == NULL_VERSION || (v.len() == ID_DIGITS && v.bytes().all(|b| b.is_ascii_digit()))
}

/// The version a read names (none: the current one). A delete marker is not readable: the
/// current one answers 404 NoSuchKey, one named by id 405 MethodNotAllowed, both with
/// `x-amz-delete-marker: true`.
pub(crate) async fn read(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> ApiResult<pb::ObjectVersion> {
    Ok(read_with_id(gw, bucket, key, version_id).await?.0)
}

/// [`read`], and the `x-amz-version-id` to answer about the version (see [`response_id`]).
pub(crate) async fn read_with_id(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> ApiResult<(pb::ObjectVersion, Option<String>)> {
    let read = read_full(gw, bucket, key, version_id).await?;
    Ok((read.object, read.version_id))
}

/// A readable version (never a delete marker) and what its bucket says about it.
pub(crate) struct VersionRead {
    pub object: pb::ObjectVersion,
    /// `x-amz-version-id` to answer about it.
    pub version_id: Option<String>,
    /// When it expires under the bucket's lifecycle rules (reads of the current version).
    pub expiry: Option<pb::LifecycleExpiry>,
    /// Whether the bucket has Object Lock enabled.
    pub bucket_object_lock: bool,
}

/// [`read_with_id`], with the lifecycle expiry and the bucket's Object Lock state.
pub(crate) async fn read_full(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> ApiResult<VersionRead> {
    let version_id = check_id(version_id)?;
    let read = gw
        .meta
        .get_object_and_state(bucket, key, version_id.unwrap_or(""))
        .await?;
    let obj = read.object;
    if obj.delete_marker {
        return Err(ApiError::DeleteMarker {
            version_id: s3_id(&obj),
            by_id: version_id.is_some(),
        });
    }
    let id = response_id(&obj, read.versioning);
    Ok(VersionRead {
        object: obj,
        version_id: id,
        expiry: read.expiry,
        bucket_object_lock: read.bucket_object_lock,
    })
}

/// PutBucketVersioning: Enabled or Suspended. MFA delete is not supported.
pub(crate) async fn put(gw: &Gateway, input: &PutBucketVersioningInput) -> ApiResult<()> {
    let config = &input.versioning_configuration;
    if input.mfa.is_some()
        || config
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(ApiError::NotImplemented("MFA delete".into()));
    }
    let status = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => VersioningStatus::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => VersioningStatus::Suspended,
        _ => {
            return Err(ApiError::MalformedXml(
                "The XML you provided was not well-formed or did not validate against our published schema: Status must be Enabled or Suspended".into(),
            ))
        }
    };
    gw.meta.set_bucket_versioning(&input.bucket, status).await?;
    Ok(())
}

/// GetBucketVersioning: no status at all while versioning was never enabled.
pub(crate) async fn get(gw: &Gateway, bucket: &str) -> ApiResult<GetBucketVersioningOutput> {
    let bucket = gw.meta.get_bucket(bucket).await?;
    let status = match VersioningStatus::try_from(bucket.versioning) {
        Ok(VersioningStatus::Enabled) => Some(BucketVersioningStatus::ENABLED),
        Ok(VersioningStatus::Suspended) => Some(BucketVersioningStatus::SUSPENDED),
        _ => None,
    };
    Ok(GetBucketVersioningOutput {
        mfa_delete: None,
        status: status.map(BucketVersioningStatus::from_static),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_checked() {
        assert!(matches!(check_id(None), Ok(None)));
        assert!(matches!(check_id(Some("null")), Ok(Some("null"))));
        assert!(check_id(Some("00000000000000000042")).is_ok());
        for bad in [
            "",
            "42",
            "0000000000000000004x",
            "NULL",
            "000000000000000000042",
        ] {
            assert!(
                matches!(check_id(Some(bad)), Err(ApiError::InvalidVersionId)),
                "{bad}"
            );
        }
    }

    #[test]
    fn null_versions_show_null() {
        let mut obj = pb::ObjectVersion {
            version_id: "00000000000000000042".into(),
            ..Default::default()
        };
        assert_eq!(s3_id(&obj), "null");
        assert_eq!(header_id(&obj), None);
        assert_eq!(response_id(&obj, VersioningStatus::Unversioned), None);
        assert_eq!(
            response_id(&obj, VersioningStatus::Suspended).as_deref(),
            Some("null")
        );
        obj.versioned = true;
        assert_eq!(
            response_id(&obj, VersioningStatus::Suspended).as_deref(),
            Some("00000000000000000042")
        );
        assert_eq!(s3_id(&obj), "00000000000000000042");
        assert_eq!(header_id(&obj).as_deref(), Some("00000000000000000042"));
    }
}
