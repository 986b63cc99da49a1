//! The gateway's error types: [`GatewayError`] for starting and stopping, [`ApiError`] for
//! one S3 request (mapped to an S3 error code in exactly one place, `From<ApiError>`).

use std::net::SocketAddr;

use http::StatusCode;
use s3s::{S3Error, S3ErrorCode};

/// Why the gateway could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration cannot work (no meta endpoint, bad endpoint URI, empty key, ...).
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The S3 listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The accept loop failed or panicked.
    #[error("gateway server task failed: {0}")]
    Server(String),
}

/// Why one S3 request failed, in the gateway's own terms.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the key does not exist")]
    NoSuchKey,
    #[error("the version does not exist")]
    NoSuchVersion,
    /// The key's current version is a delete marker (404 NoSuchKey with
    /// `x-amz-delete-marker: true`), or the version named is one (405 MethodNotAllowed).
    #[error("{}", if *.by_id { "The specified method is not allowed against this resource." } else { "The specified key does not exist." })]
    DeleteMarker {
        /// The marker's version id as S3 shows it.
        version_id: String,
        /// Whether the request named the marker's version id.
        by_id: bool,
    },
    /// A version id that no version can have.
    #[error("Invalid version id specified")]
    InvalidVersionId,
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    #[error("the bucket already exists and is yours")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    #[error("the key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the Content-MD5 header is not a base64 MD5 digest")]
    InvalidDigest,
    #[error("{0}")]
    BadDigest(String),
    #[error("{0}")]
    IncompleteBody(String),
    /// The client sent nothing for too long in the middle of a body (S3's RequestTimeout).
    #[error("no data from the client for {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("the body does not match x-amz-content-sha256")]
    ContentSha256Mismatch,
    #[error("the request signature does not match")]
    SignatureDoesNotMatch,
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    #[error("the requested part number is not satisfiable")]
    InvalidPartNumber,
    #[error("a precondition does not hold")]
    PreconditionFailed,
    #[error("the multipart upload does not exist; it may have been aborted or completed")]
    NoSuchUpload,
    #[error("a listed part was not uploaded, or its ETag does not match the uploaded part")]
    InvalidPart,
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("a part other than the last is smaller than the 5 MiB minimum")]
    EntityTooSmall,
    #[error("{0}")]
    MalformedXml(String),
    /// A tag set breaks S3's rules (count, lengths, characters, duplicate keys).
    #[error("{0}")]
    InvalidTag(String),
    /// A request S3 refuses as a whole (e.g. copying an object onto itself unchanged).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("not enough healthy disks to place the object")]
    InsufficientCapacity,
    /// The bucket has no tag set (GetBucketTagging).
    #[error("the TagSet does not exist")]
    NoSuchTagSet,
    /// The bucket has no CORS configuration (GetBucketCors).
    #[error("The CORS configuration does not exist")]
    NoSuchCorsConfiguration,
    /// A bucket policy that does not parse or that Cairn would not honour in full.
    #[error("{0}")]
    MalformedPolicy(String),
    /// The bucket has no policy (GetBucketPolicy).
    #[error("The bucket policy does not exist")]
    NoSuchBucketPolicy,
    /// The caller's policies (or the bucket's) do not allow the request.
    #[error("{0}")]
    AccessDenied(String),
    /// The bucket's state forbids the change (suspending versioning of an Object Lock
    /// bucket, enabling Object Lock without versioning).
    #[error("{0}")]
    InvalidBucketState(String),
    /// An Object Lock setting for a bucket without Object Lock.
    #[error("Bucket is missing Object Lock Configuration")]
    NoObjectLock,
    /// The version is protected by a legal hold or a retention, or a retention change would
    /// weaken a lock that forbids it.
    #[error("Access Denied because object protected by object lock.")]
    ObjectLocked,
    /// GetObjectLockConfiguration of a bucket without Object Lock.
    #[error("Object Lock configuration does not exist for this bucket")]
    ObjectLockConfigurationNotFound,
    /// GetObjectRetention / GetObjectLegalHold of a version that has none.
    #[error("The specified object does not have a ObjectLock configuration")]
    NoSuchObjectLockConfiguration,
    /// A default retention of zero or fewer days or years.
    #[error("{0}")]
    InvalidRetentionPeriod(String),
    /// GetBucketLifecycleConfiguration of a bucket without rules.
    #[error("The lifecycle configuration does not exist")]
    NoSuchLifecycleConfiguration,
    /// A storage class Cairn does not have (lifecycle transitions).
    #[error("{0}")]
    InvalidStorageClass(String),
    /// A feature Cairn does not have.
    #[error("{0} is not supported by Cairn")]
    NotImplemented(String),
    /// No meta leader / quorum, or too few blob servers answered: the client should retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ApiError> for S3Error {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            ApiError::NoSuchKey => S3ErrorCode::NoSuchKey,
            ApiError::NoSuchVersion => S3ErrorCode::NoSuchVersion,
            ApiError::DeleteMarker { version_id, by_id } => {
                return delete_marker_error(version_id, *by_id, &e);
            }
            ApiError::InvalidVersionId => S3ErrorCode::InvalidArgument,
            ApiError::MethodNotAllowed => S3ErrorCode::MethodNotAllowed,
            ApiError::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
            ApiError::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            ApiError::InvalidBucketName(_) => S3ErrorCode::InvalidBucketName,
            ApiError::KeyTooLong => S3ErrorCode::KeyTooLongError,
            ApiError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
            ApiError::InvalidDigest => S3ErrorCode::InvalidDigest,
            ApiError::BadDigest(_) => S3ErrorCode::BadDigest,
            ApiError::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
            ApiError::RequestTimeout(_) => S3ErrorCode::RequestTimeout,
            ApiError::ContentSha256Mismatch => {
                return custom("XAmzContentSHA256Mismatch", StatusCode::BAD_REQUEST, &e);
            }
            ApiError::SignatureDoesNotMatch => S3ErrorCode::SignatureDoesNotMatch,
            ApiError::InvalidRange => S3ErrorCode::InvalidRange,
            ApiError::InvalidPartNumber => {
                return custom("InvalidPartNumber", StatusCode::RANGE_NOT_SATISFIABLE, &e);
            }
            ApiError::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            ApiError::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            ApiError::InvalidPart => S3ErrorCode::InvalidPart,
            ApiError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            ApiError::EntityTooSmall => S3ErrorCode::EntityTooSmall,
            ApiError::MalformedXml(_) => S3ErrorCode::MalformedXML,
            ApiError::InvalidTag(_) => S3ErrorCode::InvalidTag,
            ApiError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
            ApiError::NoSuchTagSet => S3ErrorCode::NoSuchTagSet,
            ApiError::NoSuchCorsConfiguration => S3ErrorCode::NoSuchCORSConfiguration,
            ApiError::MalformedPolicy(_) => S3ErrorCode::MalformedPolicy,
            ApiError::NoSuchBucketPolicy => S3ErrorCode::NoSuchBucketPolicy,
            ApiError::AccessDenied(_) => S3ErrorCode::AccessDenied,
            ApiError::NotImplemented(_) => S3ErrorCode::NotImplemented,
            ApiError::InvalidBucketState(_) => S3ErrorCode::InvalidBucketState,
            ApiError::NoObjectLock => S3ErrorCode::InvalidRequest,
            ApiError::ObjectLocked => S3ErrorCode::AccessDenied,
            ApiError::ObjectLockConfigurationNotFound => {
                S3ErrorCode::ObjectLockConfigurationNotFoundError
            }
            ApiError::NoSuchObjectLockConfiguration => S3ErrorCode::NoSuchObjectLockConfiguration,
            // MinIO's and Ceph's code for it (AWS says InvalidArgument); a 400 either way.
            ApiError::InvalidRetentionPeriod(_) => {
                return custom("InvalidRetentionPeriod", StatusCode::BAD_REQUEST, &e);
            }
            ApiError::NoSuchLifecycleConfiguration => S3ErrorCode::NoSuchLifecycleConfiguration,
            ApiError::InvalidStorageClass(_) => S3ErrorCode::InvalidStorageClass,
            ApiError::InsufficientCapacity | ApiError::Unavailable(_) => {
                S3ErrorCode::ServiceUnavailable
            }
            ApiError::Internal(_) => S3ErrorCode::InternalError,
        };
        S3Error::with_message(code, e.to_string())
    }
}

/// The error for a delete marker, with the headers S3 sends: `x-amz-delete-marker: true` and
/// the marker's `x-amz-version-id`.
fn delete_marker_error(version_id: &str, by_id: bool, e: &ApiError) -> S3Error {
    let code = if by_id {
        S3ErrorCode::MethodNotAllowed
    } else {
        S3ErrorCode::NoSuchKey
    };
    let mut err = S3Error::with_message(code, e.to_string());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(version_id) {
        headers.insert("x-amz-version-id", v);
    }
    err.set_headers(headers);
    err
}

/// An S3 error code that s3s does not enumerate, with its status.
fn custom(code: &str, status: StatusCode, e: &ApiError) -> S3Error {
    let code = match code.parse::<S3ErrorCode>() {
        Ok(code) => code,
        Err(never) => match never {},
    };
    let mut err = S3Error::with_message(code, e.to_string());
    err.set_status_code(status);
    err
}

/// Shorthand for results of request handling.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
