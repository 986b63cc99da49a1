//! CopyObject, and the copy source that it and UploadPartCopy read.
//!
//! The bytes go through the GET reader ([`crate::get::open_body`]) into the PUT pipeline
//! ([`crate::put::put_object`]), so a copy holds a few stripes in memory whatever its size.
//! A copy is a new version with shards of its own: nothing is shared with the source, so
//! overwriting or deleting either never touches the other's shards.

use std::sync::Arc;

use cairn_proto::meta::ObjectVersion;

use crate::attrs::ObjectAttrs;
use crate::checksum::BodyChecksums;
use crate::conditions::{self, Conditions, Verdict};
use crate::error::{ApiError, ApiResult};
use crate::put::{self, PutInput};
use crate::{get, Gateway};

/// The object a copy reads: `x-amz-copy-source`, URL-decoded.
pub(crate) struct Source<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// `?versionId=`: that version (`null`: the null version); none: the current one.
    pub version_id: Option<&'a str>,
}

/// The version a copy reads, once its `x-amz-copy-source-if-*` conditions hold, and its
/// `x-amz-copy-source-version-id`. For a copy source every failed condition is 412
/// PreconditionFailed, never 304.
pub(crate) async fn source_version(
    gw: &Gateway,
    source: &Source<'_>,
    conds: &Conditions,
) -> ApiResult<(ObjectVersion, Option<String>)> {
    let (obj, id) =
        crate::versioning::read_with_id(gw, source.bucket, source.key, source.version_id).await?;
    let modified = obj.last_modified_ms.div_euclid(1000);
    if conditions::evaluate(conds, &obj.etag, modified) != Verdict::Proceed {
        return Err(ApiError::PreconditionFailed);
    }
    Ok((obj, id))
}

/// `x-amz-metadata-directive` / `x-amz-tagging-directive`: keep the source's, or take the
/// request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    Copy,
    Replace,
}

impl Directive {
    /// Parses a directive header (absent: COPY).
    pub fn parse(header: &str, value: Option<&str>) -> ApiResult<Self> {
        match value {
            None => Ok(Self::Copy),
            Some(v) if v.eq_ignore_ascii_case("COPY") => Ok(Self::Copy),
            Some(v) if v.eq_ignore_ascii_case("REPLACE") => Ok(Self::Replace),
            Some(v) => Err(ApiError::InvalidArgument(format!(
                "Unknown {header} {v:?}: it must be COPY or REPLACE"
            ))),
        }
    }
}

/// What a CopyObject asks for besides its source.
pub(crate) struct CopyRequest {
    pub bucket: String,
    pub key: String,
    pub metadata: Directive,
    /// Content-Type, user metadata and standard headers for REPLACE (tags ignored).
    pub replacement: ObjectAttrs,
    pub tagging: Directive,
    /// The tags for a REPLACE tagging directive (already checked).
    pub tags: Vec<cairn_proto::meta::ObjectTag>,
    /// The copy's own Object Lock (`x-amz-object-lock-*`; the source's is never copied).
    pub lock: Option<cairn_proto::meta::ObjectLock>,
    /// The destination's `If-None-Match: *` / `If-Match`, checked in the commit's entry.
    pub condition: Option<cairn_proto::meta::WriteCondition>,
    /// The source was named by version id: copying a version onto its own key restores it
    /// (S3's way of bringing back an older version), which is allowed unchanged.
    pub source_version_named: bool,
}

/// A committed copy.
pub(crate) struct Copied {
    /// Hex MD5 of the copied bytes, unquoted.
    pub etag: String,
    pub last_modified_ms: i64,
    /// `x-amz-version-id` of the copy, when it has an id of its own.
    pub version_id: Option<String>,
    /// When the copy expires under the bucket's lifecycle rules.
    pub expiry: Option<cairn_proto::meta::LifecycleExpiry>,
}

const ILLEGAL_SELF_COPY: &str = "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";

/// Copies `source` (the version [`source_version`] returned) to `req.bucket/req.key`.
#[tracing::instrument(name = "copy_object", skip_all, fields(src_bucket = %source.bucket, src_key = %source.key, bucket = %req.bucket, key = %req.key))]
pub(crate) async fn copy_object(
    gw: &Gateway,
    source: &ObjectVersion,
    req: CopyRequest,
) -> ApiResult<Copied> {
    if source.bucket == req.bucket
        && source.key == req.key
        && req.metadata != Directive::Replace
        && !req.source_version_named
    {
        return Err(ApiError::InvalidRequest(ILLEGAL_SELF_COPY.into()));
    }
    let mut attrs = match req.metadata {
        Directive::Copy => ObjectAttrs::of(source),
        Directive::Replace => req.replacement,
    };
    attrs.tags = match req.tagging {
        Directive::Copy => source.tags.clone(),
        Directive::Replace => req.tags,
    };
    attrs.lock = req.lock;
    // A single PUT's ETag is the MD5 of its bytes: checking it end to end costs nothing, as
    // the pipeline computes the MD5 anyway.
    let content_md5 = if source.parts.is_empty() {
        hex::decode(&source.etag)
            .ok()
            .and_then(|raw| <[u8; 16]>::try_from(raw.as_slice()).ok())
    } else {
        None
    };
    let body = get::open_body(Arc::clone(&gw.reads), source, 0..source.size).await?;
    let input = PutInput {
        bucket: req.bucket,
        key: req.key,
        content_length: Some(source.size),
        content_md5,
        attrs,
        // The source's whole-body checksums are checked end to end too, and so kept by the
        // copy (a composite multipart checksum describes the source's parts, not the copy).
        checksums: BodyChecksums::new(crate::checksum::whole_body(source), None),
        condition: req.condition,
    };
    match put::put_object(gw, input, body).await {
        Ok(out) => Ok(Copied {
            etag: out.etag,
            last_modified_ms: out.last_modified_ms,
            version_id: out.version_id,
            expiry: out.expiry,
        }),
        // The "body" is our own read of the source: its failures are the server's.
        Err(ApiError::IncompleteBody(why)) => Err(ApiError::Unavailable(format!(
            "reading the copy source failed: {why}"
        ))),
        Err(ApiError::BadDigest(_)) => Err(ApiError::Internal(format!(
            "the bytes read from {}/{} do not match its ETag",
            source.bucket, source.key
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        assert_eq!(Directive::parse("d", None).unwrap(), Directive::Copy);
        assert_eq!(
            Directive::parse("d", Some("COPY")).unwrap(),
            Directive::Copy
        );
        assert_eq!(
            Directive::parse("d", Some("replace")).unwrap(),
            Directive::Replace
        );
        assert!(matches!(
            Directive::parse("d", Some("MOVE")),
            Err(ApiError::InvalidArgument(_))
        ));
    }
}
