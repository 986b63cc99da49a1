//! The `s3s::S3` implementation: unpacks s3s inputs, calls the modules that do the work and
//! packs their results. Operations not listed here keep s3s's default (`NotImplemented`).

use std::sync::Arc;

use base64::Engine as _;
use cairn_proto::meta::ObjectVersion;
use http::{HeaderMap, HeaderValue};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::attrs::{self, ObjectAttrs, RequestHeaders};
use crate::blob_pool::{part_shards, spawn_delete_shards};
use crate::body_digest::BodyDigest;
use crate::checksum::{self, Algorithm, BodyChecksums};
use crate::conditions::{self, Conditions, TagCondition, Verdict};
use crate::copy::Directive;
use crate::error::{ApiError, ApiResult};
use crate::multipart::UploadRef;
use crate::put::{BodyChecks, PutInput};
use crate::{
    bucket_policy, bucket_tagging, copy, cors, delete_many, dto, get, lifecycle, list, multipart,
    multipart_checksum, names, object_attributes, object_lock, put, range, tagging, versioning,
    Gateway,
};

/// Content-Type of objects stored without one (what S3 answers too).
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// The S3 front end handed to s3s.
#[derive(Clone)]
pub(crate) struct CairnS3 {
    gw: Arc<Gateway>,
}

impl CairnS3 {
    /// Wraps the shared gateway state.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self { gw }
    }

    /// The version a GET or HEAD reads (after its version and conditional checks), the range
    /// it asked for, if any, the byte span to serve and the `x-amz-version-id` to answer.
    async fn read_target(&self, t: ReadTarget<'_>) -> S3Result<Readable> {
        let versioning::VersionRead {
            object: obj,
            version_id,
            expiry,
            ..
        } = match versioning::read_full(&self.gw, t.bucket, t.key, t.version_id).await {
            Ok(read) => read,
            Err(e) => return Err(crate::access::hide_missing(e, t.extensions).await.into()),
        };
        match conditions::evaluate(&t.conds, &obj.etag, obj.last_modified_ms.div_euclid(1000)) {
            Verdict::Proceed => {}
            Verdict::PreconditionFailed => return Err(ApiError::PreconditionFailed.into()),
            Verdict::NotModified => return Err(not_modified(&obj)),
        }
        let part_sizes: Vec<u64> = obj.parts.iter().map(|p| p.size).collect();
        let partial = range::resolve(t.range, t.part_number, obj.size, &part_sizes)?;
        let span = partial.clone().unwrap_or(0..obj.size);
        Ok(Readable {
            obj,
            partial,
            span,
            version_id,
            expiry,
        })
    }
}

/// What a GET or HEAD serves.
struct Readable {
    obj: ObjectVersion,
    partial: Option<std::ops::Range<u64>>,
    span: std::ops::Range<u64>,
    /// `x-amz-version-id`.
    version_id: Option<String>,
    /// When the version expires under the bucket's lifecycle rules.
    expiry: Option<cairn_proto::meta::LifecycleExpiry>,
}

/// A 304 carrying the validators, as S3 sends it.
fn not_modified(obj: &ObjectVersion) -> S3Error {
    let mut err = S3Error::new(S3ErrorCode::NotModified);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", obj.etag)) {
        headers.insert(http::header::ETAG, v);
    }
    let lm = time::OffsetDateTime::from(dto::timestamp(obj.last_modified_ms));
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    if let Some(v) = lm
        .format(&fmt)
        .ok()
        .and_then(|s| HeaderValue::try_from(s).ok())
    {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    err.set_headers(headers);
    err
}

fn tag_condition(c: Option<&ETagCondition>) -> Option<TagCondition> {
    c.map(|c| match c.as_etag() {
        None => TagCondition::Any,
        Some(e) => TagCondition::Tag(e.value().to_string()),
    })
}

/// What a GET or HEAD asks to read.
struct ReadTarget<'a> {
    bucket: &'a str,
    key: &'a str,
    version_id: Option<&'a str>,
    conds: Conditions,
    range: Option<&'a s3s::dto::Range>,
    part_number: Option<i32>,
    /// The request's extensions: whether a missing key may be told apart from a forbidden
    /// one (`crate::access::MissingKeyCheck`).
    extensions: &'a http::Extensions,
}

fn conditions_of(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Conditions {
    Conditions {
        if_match: tag_condition(if_match),
        if_none_match: tag_condition(if_none_match),
        if_modified_since: if_modified_since.map(dto::seconds),
        if_unmodified_since: if_unmodified_since.map(dto::seconds),
    }
}

/// `x-amz-mp-parts-count`: a GET or HEAD of one part of a multipart object says how many
/// parts there are.
fn parts_count(obj: &ObjectVersion, part_number: Option<i32>) -> Option<i32> {
    (part_number.is_some() && !obj.parts.is_empty())
        .then(|| i32::try_from(obj.parts.len()).unwrap_or(i32::MAX))
}

fn user_metadata(obj: &ObjectVersion) -> Option<Metadata> {
    (!obj.user_metadata.is_empty()).then(|| obj.user_metadata.clone())
}

fn content_type(obj: &ObjectVersion) -> String {
    if obj.content_type.is_empty() {
        DEFAULT_CONTENT_TYPE.to_string()
    } else {
        obj.content_type.clone()
    }
}

fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn decode_content_md5(v: Option<&str>) -> ApiResult<Option<[u8; 16]>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| ApiError::InvalidDigest)?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| ApiError::InvalidDigest)
}

/// The checksum algorithm an aws-chunked body announces in `x-amz-trailer`, if any.
fn trailer_algorithm(headers: &HeaderMap) -> Option<Algorithm> {
    headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(Algorithm::from_header))
}

/// The `x-amz-checksum-*` headers a request carried, in the order of their arguments
/// (CRC32, CRC32C, CRC64NVME, SHA1, SHA256).
fn header_checksums(values: [Option<String>; 5]) -> Vec<(Algorithm, String)> {
    [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ]
    .into_iter()
    .zip(values)
    .filter_map(|(a, v)| v.map(|v| (a, v)))
    .collect()
}

/// The bytes `x-amz-copy-source-range` asks for: `bytes=first-last`, both inside the source.
fn copy_source_range(header: &str, size: u64) -> ApiResult<std::ops::Range<u64>> {
    let bad = || {
        ApiError::InvalidArgument(format!(
            "Range specified is not valid for source object of size: {size} ({header:?} must be bytes=first-last inside the object)"
        ))
    };
    match s3s::dto::Range::parse(header).map_err(|_| bad())? {
        s3s::dto::Range::Int {
            first,
            last: Some(last),
        } if last < size => Ok(first..last + 1),
        _ => Err(bad()),
    }
}

/// A declared body length as the PUT pipeline takes it.
fn content_length(n: Option<i64>) -> ApiResult<Option<u64>> {
    n.map(|n| {
        u64::try_from(n).map_err(|_| ApiError::InvalidArgument("negative Content-Length".into()))
    })
    .transpose()
}

/// A body stream, empty when the request had none.
fn body_or_empty(body: Option<StreamingBlob>) -> StreamingBlob {
    body.unwrap_or_else(|| {
        StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
    })
}

/// The stored full-object checksums a GET or HEAD answers: only when the client asked for
/// them (`x-amz-checksum-mode: ENABLED`, which current SDKs send by default to validate the
/// body) and reads the whole object, as S3 does.
fn served_checksums(
    obj: &ObjectVersion,
    mode: Option<&ChecksumMode>,
    partial: bool,
    part_number: Option<i32>,
) -> (checksum::ChecksumFields, Option<ChecksumType>) {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    if !enabled {
        return (Default::default(), None);
    }
    let kind = Some(ChecksumType::from_static(checksum::stored_type(obj)));
    // A part of a multipart object read by number: that part's checksum (S3 answers it with
    // the object's checksum type).
    let part = part_number
        .and_then(|n| u32::try_from(n).ok())
        .and_then(|n| obj.parts.iter().find(|p| p.part_number == n));
    if let Some(part) = part {
        let stored = checksum::of_records(&part.checksums);
        if stored.is_empty() || obj.checksums.is_empty() {
            return (Default::default(), None);
        }
        return (checksum::fields(stored), kind);
    }
    let stored = checksum::stored(obj);
    if partial || stored.is_empty() {
        return (Default::default(), None);
    }
    (checksum::fields(stored), kind)
}

/// The attributes of a new version from a request's fields; `x-amz-tagging` is checked.
fn request_attrs(
    content_type: Option<String>,
    metadata: Option<Metadata>,
    headers: RequestHeaders,
    tagging: Option<&str>,
) -> ApiResult<ObjectAttrs> {
    Ok(ObjectAttrs {
        content_type: content_type.unwrap_or_default(),
        user_metadata: metadata.unwrap_or_default(),
        headers: headers.into_stored(),
        tags: tagging
            .map(tagging::from_header)
            .transpose()?
            .unwrap_or_default(),
        lock: None,
    })
}

/// The version `x-amz-copy-source` names, once the copy conditions hold, and its
/// `x-amz-copy-source-version-id`.
async fn copy_source(
    gw: &Gateway,
    source: &CopySource,
    conds: &Conditions,
) -> S3Result<(ObjectVersion, Option<String>)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(not_implemented("access point and outpost copy sources"));
    };
    let source = copy::Source {
        bucket,
        key,
        version_id: version_id.as_deref(),
    };
    Ok(copy::source_version(gw, &source, conds).await?)
}

fn not_implemented(what: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!("{what} is not supported by Cairn"),
    )
}

#[async_trait::async_trait]
impl S3 for CairnS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let input = req.input;
        names::validate_bucket_name(&input.bucket)?;
        let constraint = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref());
        if let Some(c) = constraint {
            if c.as_str() != self.gw.region {
                let mut err = S3Error::with_message(
                    "IllegalLocationConstraintException"
                        .parse()
                        .unwrap_or(S3ErrorCode::InvalidArgument),
                    format!(
                        "this endpoint serves region {:?}, not {:?}",
                        self.gw.region,
                        c.as_str()
                    ),
                );
                err.set_status_code(http::StatusCode::BAD_REQUEST);
                return Err(err);
            }
        }
        let object_lock = input.object_lock_enabled_for_bucket.unwrap_or(false);
        self.gw
            .meta
            .create_bucket(&input.bucket, object_lock)
            .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        let aborted = self.gw.meta.delete_bucket(&bucket).await?;
        // Uploads still in progress went with the bucket, as in S3.
        spawn_delete_shards(
            Arc::clone(&self.gw.blobs),
            part_shards(aborted),
            &[],
            self.gw.shard_delete_grace,
            "bucket deleted",
            &bucket,
            "",
        );
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.gw.meta.get_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.gw.region.clone()),
            ..Default::default()
        }))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let input = req.input;
        let max = match input.max_buckets {
            None => usize::MAX,
            Some(n) if (1..=10_000).contains(&n) => n as usize,
            Some(_) => {
                return Err(ApiError::InvalidArgument(
                    "max-buckets must be between 1 and 10000".into(),
                )
                .into())
            }
        };
        // The continuation token is the last bucket name of the previous page.
        let after = match input.continuation_token.as_deref() {
            Some(token) => Some(list::decode_token(token)?),
            None => None,
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut buckets = self.gw.meta.list_buckets().await?;
        buckets
            .retain(|b| b.name.starts_with(&prefix) && after.as_ref().is_none_or(|a| b.name > *a));
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        let truncated = buckets.len() > max;
        buckets.truncate(max);
        let next = truncated
            .then(|| buckets.last().map(|b| list::encode_token(&b.name)))
            .flatten();
        let buckets = buckets
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(dto::timestamp(b.created_ms)),
                bucket_region: Some(self.gw.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(dto::owner()),
            continuation_token: next,
            prefix: input.prefix,
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailer_algo = trailer_algorithm(&req.headers);
        let trailers = req.trailing_headers;
        let input = req.input;
        names::validate_key(&input.key)?;
        let condition = conditions::write_condition(
            tag_condition(input.if_match.as_ref()),
            tag_condition(input.if_none_match.as_ref()),
        )?;
        if input.sse_customer_algorithm.is_some() || input.sse_customer_key.is_some() {
            return Err(not_implemented("server-side encryption with customer keys"));
        }
        if input.write_offset_bytes.is_some() {
            return Err(not_implemented("appending writes"));
        }
        let expected = header_checksums([
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        ]);
        let mut attrs = request_attrs(
            input.content_type,
            input.metadata,
            RequestHeaders {
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                expires: input.expires,
            },
            input.tagging.as_deref(),
        )?;
        attrs.lock = object_lock::from_headers(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        let put_input = PutInput {
            bucket: input.bucket,
            key: input.key,
            content_length: content_length(input.content_length)?,
            content_md5: decode_content_md5(input.content_md5.as_deref())?,
            attrs,
            checksums: BodyChecksums::new(expected, trailer_algo.zip(trailers)),
            condition,
        };
        let out = put::put_object(&self.gw, put_input, body_or_empty(input.body)).await?;
        let [crc32, crc32c, crc64nvme, sha1, sha256] = checksum::fields(out.checksums);
        let output = PutObjectOutput {
            e_tag: Some(dto::etag(&out.etag)),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            version_id: out.version_id,
            expiration: lifecycle::expiration_header(out.expiry.as_ref()),
            ..Default::default()
        };
        tracing::debug!("put complete");
        Ok(S3Response::new(output))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let Readable {
            obj,
            partial,
            span,
            version_id,
            expiry,
        } = self
            .read_target(ReadTarget {
                bucket: &input.bucket,
                key: &input.key,
                version_id: input.version_id.as_deref(),
                conds: conditions_of(
                    input.if_match.as_ref(),
                    input.if_none_match.as_ref(),
                    input.if_modified_since.as_ref(),
                    input.if_unmodified_since.as_ref(),
                ),
                range: input.range.as_ref(),
                part_number: input.part_number,
                extensions: &req.extensions,
            })
            .await?;
        let body = get::open_body(Arc::clone(&self.gw.reads), &obj, span.clone()).await?;
        let parts_count = parts_count(&obj, input.part_number);
        let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) =
            object_lock::headers(obj.lock.as_ref());
        let served = attrs::served(&obj);
        let ([crc32, crc32c, crc64nvme, sha1, sha256], checksum_type) = served_checksums(
            &obj,
            input.checksum_mode.as_ref(),
            span.end - span.start != obj.size,
            input.part_number,
        );
        let output = GetObjectOutput {
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_type,
            parts_count,
            cache_control: served.cache_control,
            content_disposition: served.content_disposition,
            content_encoding: served.content_encoding,
            content_language: served.content_language,
            expires: served.expires,
            tag_count: tagging::count(&obj.tags),
            body: Some(StreamingBlob::new(body)),
            content_length: Some(len_i64(span.end - span.start)),
            content_range: partial.map(|r| range::content_range(&r, obj.size)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(content_type(&obj)),
            e_tag: Some(dto::etag(&obj.etag)),
            last_modified: Some(dto::timestamp(obj.last_modified_ms)),
            metadata: user_metadata(&obj),
            version_id,
            expiration: lifecycle::expiration_header(expiry.as_ref()),
            object_lock_mode,
            object_lock_retain_until_date,
            object_lock_legal_hold_status,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let Readable {
            obj,
            partial,
            span,
            version_id,
            expiry,
        } = self
            .read_target(ReadTarget {
                bucket: &input.bucket,
                key: &input.key,
                version_id: input.version_id.as_deref(),
                conds: conditions_of(
                    input.if_match.as_ref(),
                    input.if_none_match.as_ref(),
                    input.if_modified_since.as_ref(),
                    input.if_unmodified_since.as_ref(),
                ),
                range: input.range.as_ref(),
                part_number: input.part_number,
                extensions: &req.extensions,
            })
            .await?;
        let served = attrs::served(&obj);
        let ([crc32, crc32c, crc64nvme, sha1, sha256], checksum_type) = served_checksums(
            &obj,
            input.checksum_mode.as_ref(),
            span.end - span.start != obj.size,
            input.part_number,
        );
        let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) =
            object_lock::headers(obj.lock.as_ref());
        let output = HeadObjectOutput {
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_type,
            parts_count: parts_count(&obj, input.part_number),
            cache_control: served.cache_control,
            content_disposition: served.content_disposition,
            content_encoding: served.content_encoding,
            content_language: served.content_language,
            expires: served.expires,
            content_length: Some(len_i64(span.end - span.start)),
            content_range: partial.map(|r| range::content_range(&r, obj.size)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(content_type(&obj)),
            e_tag: Some(dto::etag(&obj.etag)),
            last_modified: Some(dto::timestamp(obj.last_modified_ms)),
            metadata: user_metadata(&obj),
            version_id,
            expiration: lifecycle::expiration_header(expiry.as_ref()),
            object_lock_mode,
            object_lock_retain_until_date,
            object_lock_legal_hold_status,
            ..Default::default()
        };
        let mut resp = S3Response::new(output);
        // GetObjectOutput has a field for `x-amz-tagging-count`, HeadObjectOutput none.
        if let Some(n) = tagging::count(&obj.tags) {
            resp.headers
                .insert("x-amz-tagging-count", HeaderValue::from(n));
        }
        Ok(resp)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let version_id = versioning::check_id(input.version_id.as_deref())?;
        if input.if_match_size.is_some() || input.if_match_last_modified_time.is_some() {
            return Err(not_implemented(
                "conditional DELETE on size or modification time",
            ));
        }
        if input.mfa.is_some() {
            return Err(not_implemented("MFA delete"));
        }
        // S3 answers 204 for a key that does not exist, If-Match or not.
        let condition = conditions::write_condition(tag_condition(input.if_match.as_ref()), None)?;
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        let outcome = delete_many::delete_key(
            &self.gw,
            (&input.bucket, &input.key, version_id),
            condition,
            bypass,
        )
        .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: outcome.delete_marker.then_some(true),
            version_id: outcome.version_id,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        // s3s has no fields for the destination's If-Match / If-None-Match on CopyObject.
        let condition = conditions::write_condition_from_headers(&req.headers)?;
        let input = req.input;
        names::validate_key(&input.key)?;
        if input.sse_customer_algorithm.is_some()
            || input.sse_customer_key.is_some()
            || input.copy_source_sse_customer_algorithm.is_some()
            || input.copy_source_sse_customer_key.is_some()
        {
            return Err(not_implemented("server-side encryption with customer keys"));
        }
        let metadata = Directive::parse(
            "x-amz-metadata-directive",
            input.metadata_directive.as_ref().map(|d| d.as_str()),
        )?;
        let tag_directive = Directive::parse(
            "x-amz-tagging-directive",
            input.tagging_directive.as_ref().map(|d| d.as_str()),
        )?;
        let tags = match tag_directive {
            Directive::Copy => Vec::new(),
            Directive::Replace => tagging::from_header(input.tagging.as_deref().unwrap_or(""))?,
        };
        let conds = conditions_of(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let (source, source_version_id) = copy_source(&self.gw, &input.copy_source, &conds).await?;
        let source_version_named = matches!(
            &input.copy_source,
            CopySource::Bucket {
                version_id: Some(_),
                ..
            }
        );
        let replacement = request_attrs(
            input.content_type,
            input.metadata,
            RequestHeaders {
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                expires: input.expires,
            },
            None,
        )?;
        let copied = copy::copy_object(
            &self.gw,
            &source,
            copy::CopyRequest {
                bucket: input.bucket,
                key: input.key,
                metadata,
                replacement,
                tagging: tag_directive,
                tags,
                condition,
                source_version_named,
                lock: object_lock::from_headers(
                    input.object_lock_mode.as_ref(),
                    input.object_lock_retain_until_date.as_ref(),
                    input.object_lock_legal_hold_status.as_ref(),
                )?,
            },
        )
        .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(dto::etag(&copied.etag)),
                last_modified: Some(dto::timestamp(copied.last_modified_ms)),
                ..Default::default()
            }),
            copy_source_version_id: source_version_id,
            version_id: copied.version_id,
            expiration: lifecycle::expiration_header(copied.expiry.as_ref()),
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        match req.extensions.get::<BodyDigest>() {
            Some(verdict) => verdict.check()?,
            None => tracing::debug!("DeleteObjects body digests were not checked"),
        }
        let denied = req.extensions.get::<crate::access::DeniedKeys>().cloned();
        let input = req.input;
        if input.mfa.is_some() {
            return Err(not_implemented("MFA delete"));
        }
        let output = delete_many::delete_objects(
            &self.gw,
            &input.bucket,
            input.delete,
            delete_many::Permissions {
                denied: denied.as_ref().map(|d| &d.0),
                bypass_governance: input.bypass_governance_retention.unwrap_or(false),
            },
        )
        .await?;
        Ok(S3Response::new(output))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = tagging::from_tagging(input.tagging)?;
        let version_id = tagging::set(
            &self.gw,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            tags,
        )
        .await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let (tags, version_id) = tagging::get(
            &self.gw,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
        )
        .await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tagging::tag_set(&tags),
            version_id,
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let version_id = tagging::set(
            &self.gw,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            Vec::new(),
        )
        .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let input = req.input;
        let rule = object_lock::parse_configuration(input.object_lock_configuration)?;
        let changed = self
            .gw
            .meta
            .update_bucket(cairn_proto::meta::SetBucketConfigRequest {
                bucket: input.bucket,
                set_object_lock: true,
                object_lock_default: rule,
                ..Default::default()
            })
            .await;
        match changed {
            Err(ApiError::InvalidBucketState(_)) => return Err(ApiError::InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
                    .into(),
            )
            .into()),
            other => {
                other?;
            }
        }
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let bucket = self.gw.meta.get_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(object_lock::configuration(&bucket)?),
        }))
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let input = req.input;
        object_lock::put_retention(
            &self.gw,
            (&input.bucket, &input.key, input.version_id.as_deref()),
            input.retention,
            input.bypass_governance_retention.unwrap_or(false),
        )
        .await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        let retention = object_lock::get_retention(
            &self.gw,
            (&input.bucket, &input.key, input.version_id.as_deref()),
        )
        .await?;
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(retention),
        }))
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        object_lock::put_legal_hold(
            &self.gw,
            (&input.bucket, &input.key, input.version_id.as_deref()),
            input.legal_hold,
        )
        .await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        let legal_hold = object_lock::get_legal_hold(
            &self.gw,
            (&input.bucket, &input.key, input.version_id.as_deref()),
        )
        .await?;
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(legal_hold),
        }))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        let config = lifecycle::parse(input.lifecycle_configuration)?;
        self.gw
            .meta
            .update_bucket(cairn_proto::meta::SetBucketConfigRequest {
                bucket: input.bucket,
                set_lifecycle: true,
                lifecycle: Some(config),
                ..Default::default()
            })
            .await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.gw.meta.get_bucket(&req.input.bucket).await?;
        let Some(config) = bucket.lifecycle.as_ref() else {
            return Err(ApiError::NoSuchLifecycleConfiguration.into());
        };
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(lifecycle::rules(config)),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.gw
            .meta
            .update_bucket(cairn_proto::meta::SetBucketConfigRequest {
                bucket: req.input.bucket,
                set_lifecycle: true,
                lifecycle: None,
                ..Default::default()
            })
            .await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versioning::put(&self.gw, &req.input).await?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        Ok(S3Response::new(
            versioning::get(&self.gw, &req.input.bucket).await?,
        ))
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        bucket_tagging::put(&self.gw, &input.bucket, input.tagging).await?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let tag_set = bucket_tagging::get(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketTaggingOutput { tag_set }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        bucket_tagging::delete(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        bucket_policy::put(&self.gw, &input.bucket, &input.policy).await?;
        // s3s answers 204 No Content, as S3 does.
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let policy = bucket_policy::get(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        bucket_policy::delete(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let public = bucket_policy::is_public(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        cors::put(&self.gw, &input.bucket, input.cors_configuration).await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules = cors::get(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(rules),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        cors::delete(&self.gw, &req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.gw.meta.get_bucket(&req.input.bucket).await?;
        // S3 answers an empty LocationConstraint for us-east-1, the region's name otherwise.
        let location_constraint = (self.gw.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.gw.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        if input.sse_customer_algorithm.is_some() || input.sse_customer_key.is_some() {
            return Err(not_implemented("server-side encryption with customer keys"));
        }
        Ok(S3Response::new(
            object_attributes::get(&self.gw, &input).await?,
        ))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        names::validate_key(&input.key)?;
        if input.sse_customer_algorithm.is_some() || input.sse_customer_key.is_some() {
            return Err(not_implemented("server-side encryption with customer keys"));
        }
        let mut attrs = request_attrs(
            input.content_type,
            input.metadata,
            RequestHeaders {
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                expires: input.expires,
            },
            input.tagging.as_deref(),
        )?;
        attrs.lock = object_lock::from_headers(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        let checksum = multipart_checksum::for_upload(
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
            input.checksum_type.as_ref().map(|t| t.as_str()),
        )?;
        let upload_id =
            multipart::create(&self.gw, (&input.bucket, &input.key), attrs, checksum).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: checksum
                .map(|(a, _)| ChecksumAlgorithm::from(a.name().to_string())),
            checksum_type: checksum.map(|(_, t)| ChecksumType::from(t.name().to_string())),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailer_algo = trailer_algorithm(&req.headers);
        let trailers = req.trailing_headers;
        let input = req.input;
        let number = multipart::part_number(input.part_number)?;
        if input.sse_customer_algorithm.is_some() || input.sse_customer_key.is_some() {
            return Err(not_implemented("server-side encryption with customer keys"));
        }
        let expected = header_checksums([
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        ]);
        let checks = BodyChecks {
            content_length: content_length(input.content_length)?,
            content_md5: decode_content_md5(input.content_md5.as_deref())?,
            checksums: BodyChecksums::new(expected, trailer_algo.zip(trailers)),
        };
        let upload = UploadRef {
            bucket: input.bucket,
            key: input.key,
            upload_id: input.upload_id,
        };
        let body = body_or_empty(input.body);
        let part = multipart::upload_part(&self.gw, &upload, number, checks, body).await?;
        let [crc32, crc32c, crc64nvme, sha1, sha256] = checksum::fields(part.checksums);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(dto::etag(&part.etag)),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let number = multipart::part_number(input.part_number)?;
        if input.sse_customer_algorithm.is_some()
            || input.sse_customer_key.is_some()
            || input.copy_source_sse_customer_algorithm.is_some()
            || input.copy_source_sse_customer_key.is_some()
        {
            return Err(not_implemented("server-side encryption with customer keys"));
        }
        let conds = conditions_of(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let (source, source_version_id) = copy_source(&self.gw, &input.copy_source, &conds).await?;
        let span = match input.copy_source_range.as_deref() {
            None => 0..source.size,
            Some(header) => copy_source_range(header, source.size)?,
        };
        let len = span.end - span.start;
        let body = get::open_body(Arc::clone(&self.gw.reads), &source, span).await?;
        let checks = BodyChecks {
            content_length: Some(len),
            content_md5: None,
            checksums: BodyChecksums::new(Vec::new(), None),
        };
        let upload = UploadRef {
            bucket: input.bucket,
            key: input.key,
            upload_id: input.upload_id,
        };
        let part = multipart::upload_part(&self.gw, &upload, number, checks, body).await?;
        let [crc32, crc32c, crc64nvme, sha1, sha256] = checksum::fields(part.checksums);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(dto::etag(&part.etag)),
                last_modified: Some(dto::timestamp(part.last_modified_ms)),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_crc64nvme: crc64nvme,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
            }),
            copy_source_version_id: source_version_id,
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let condition = conditions::write_condition(
            tag_condition(input.if_match.as_ref()),
            tag_condition(input.if_none_match.as_ref()),
        )?;
        if input.mpu_object_size.is_some() {
            return Err(not_implemented("x-amz-mp-object-size"));
        }
        let mut parts = Vec::new();
        for p in input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
        {
            let checksums = header_checksums([
                p.checksum_crc32,
                p.checksum_crc32c,
                p.checksum_crc64nvme,
                p.checksum_sha1,
                p.checksum_sha256,
            ]);
            let (Some(number), Some(etag)) = (p.part_number, p.e_tag) else {
                return Err(ApiError::MalformedXml(
                    "every part needs a PartNumber and an ETag".into(),
                )
                .into());
            };
            let number = multipart::part_number(number).map_err(|_| ApiError::InvalidPart)?;
            parts.push(multipart::ListedPart {
                number,
                etag: etag.value().to_string(),
                checksums,
            });
        }
        let whole = header_checksums([
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        ]);
        let upload = UploadRef {
            bucket: input.bucket,
            key: input.key,
            upload_id: input.upload_id,
        };
        let multipart::CompletedObject { object, expiry } =
            multipart::complete(&self.gw, &upload, parts, (condition, whole)).await?;
        let [crc32, crc32c, crc64nvme, sha1, sha256] = checksum::fields(checksum::stored(&object));
        let checksum_type = (!object.checksums.is_empty())
            .then(|| ChecksumType::from_static(checksum::stored_type(&object)));
        // A write of a null version (unversioned or suspended bucket) answers no version id,
        // as S3 and MinIO do; reads of it answer `null` once versioning was configured.
        let version_id = versioning::header_id(&object);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(upload.bucket),
            key: Some(upload.key),
            e_tag: Some(dto::etag(&object.etag)),
            version_id,
            expiration: lifecycle::expiration_header(expiry.as_ref()),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            checksum_type,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        if input.if_match_initiated_time.is_some() {
            return Err(not_implemented(
                "conditional abort (x-amz-if-match-initiated-time)",
            ));
        }
        let upload = UploadRef {
            bucket: input.bucket,
            key: input.key,
            upload_id: input.upload_id,
        };
        multipart::abort(&self.gw, &upload).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        Ok(S3Response::new(
            multipart::list_parts(&self.gw, req.input).await?,
        ))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        Ok(S3Response::new(
            multipart::list_uploads(&self.gw, req.input).await?,
        ))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        Ok(S3Response::new(list::list_v1(&self.gw, req.input).await?))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        Ok(S3Response::new(list::list_v2(&self.gw, req.input).await?))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        Ok(S3Response::new(
            list::list_versions(&self.gw, req.input).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_decoding() {
        assert_eq!(decode_content_md5(None).unwrap(), None);
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        let md5 = decode_content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg=="))
            .unwrap()
            .unwrap();
        assert_eq!(hex::encode(md5), "d41d8cd98f00b204e9800998ecf8427e");
        assert!(matches!(
            decode_content_md5(Some("not base64!")),
            Err(ApiError::InvalidDigest)
        ));
        assert!(matches!(
            decode_content_md5(Some("AAAA")),
            Err(ApiError::InvalidDigest)
        ));
    }

    #[test]
    fn not_modified_carries_validators() {
        let obj = ObjectVersion {
            etag: "abc".into(),
            last_modified_ms: 1_700_000_000_000,
            ..Default::default()
        };
        let err = not_modified(&obj);
        assert_eq!(err.code(), &S3ErrorCode::NotModified);
        let headers = err.headers().unwrap();
        assert_eq!(headers.get("etag").unwrap(), "\"abc\"");
        assert_eq!(
            headers.get("last-modified").unwrap(),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }
}
