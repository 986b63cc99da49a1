//! Authorization: s3s's access hook decides every request before its handler runs.
//!
//! - The root key pair may do everything (a bucket policy cannot deny it, as in MinIO).
//! - Bucket policy operations (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus) are the
//!   root's only: S3 reserves them to the bucket owner, and every bucket here is the root's.
//! - A stored user is allowed when its own policies or the bucket's policy allow the action
//!   on the resource and neither denies it explicitly.
//! - An anonymous (unsigned) request is allowed only when the bucket policy allows
//!   `Principal: "*"` the action, and nothing denies it.
//!
//! Refusals are 403 `AccessDenied`. Besides the generic check, CopyObject and UploadPartCopy
//! need `s3:GetObject` on their source, and DeleteObjects needs `s3:DeleteObject` per key:
//! the keys refused are answered `AccessDenied` one by one ([`DeniedKeys`]), and a request in
//! which no key is allowed is refused whole. `x-amz-bypass-governance-retention` counts only
//! for callers allowed `s3:BypassGovernanceRetention`: for the others the hook turns it off,
//! so a GOVERNANCE retention protects against them as if they had not asked. A write that
//! sets a lock with `x-amz-object-lock-*` headers also needs `s3:PutObjectRetention` (mode
//! and date) or `s3:PutObjectLegalHold` (legal hold), as in S3: `s3:PutObject` alone must not
//! be enough to make a version nobody can remove.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{
    CopyObjectInput, CopySource, CreateMultipartUploadInput, DeleteObjectInput, DeleteObjectsInput,
    ObjectLockLegalHoldStatus, ObjectLockMode, PostObjectInput, PutObjectInput,
    PutObjectRetentionInput, PutObjectTaggingInput, Timestamp, UploadPartCopyInput,
};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result};
use tracing::{debug, warn};

use crate::error::{ApiError, ApiResult};
use crate::iam::{Caller, Users};
use crate::policy::{action, ConditionValues, Decision, Policy, PolicyKind, RequestContext};
use crate::request_values;
use crate::Gateway;

/// The access hook handed to s3s (two `Arc`s: cheap to clone).
#[derive(Clone)]
pub(crate) struct Access {
    users: Arc<Users>,
    gw: Arc<Gateway>,
}

/// The client's address, put in each request's extensions by the listener
/// (`crate::server`): what `aws:SourceIp` conditions test.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub std::net::SocketAddr);

/// What one authorization question is about.
struct Question<'a> {
    operation: &'a str,
    bucket: Option<&'a str>,
    key: Option<&'a str>,
    /// The request's condition-key values (the caller's and the object's tags are added
    /// while deciding).
    values: &'a ConditionValues,
}

impl Access {
    /// Decides with `users` and the buckets' policies read through `gw`.
    pub fn new(users: Arc<Users>, gw: Arc<Gateway>) -> Self {
        Self { users, gw }
    }

    /// The policy of `bucket`, read linearizably: `None` when the bucket has none or does not
    /// exist (yet: CreateBucket). A stored policy that no longer parses denies everything.
    async fn bucket_policy(&self, bucket: &str, operation: &str) -> ApiResult<BucketPolicy> {
        if operation == "CreateBucket" {
            return Ok(BucketPolicy::None);
        }
        let record = match self.gw.meta.get_bucket(bucket).await {
            Ok(record) => record,
            Err(ApiError::NoSuchBucket) => return Ok(BucketPolicy::None),
            Err(e) => return Err(e),
        };
        if record.policy.is_empty() {
            return Ok(BucketPolicy::None);
        }
        match Policy::parse(&record.policy, &PolicyKind::Bucket(bucket.to_string())) {
            Ok(policy) => Ok(BucketPolicy::Some(policy)),
            Err(e) => {
                warn!(%bucket, error = %e, "the stored bucket policy does not parse: denying");
                Ok(BucketPolicy::Broken)
            }
        }
    }

    /// Decides `q` for the signer of `access_key` (`None`: anonymous).
    async fn decide(&self, access_key: Option<&str>, q: Question<'_>) -> ApiResult<()> {
        let operation = q.operation;
        match self.allowed(access_key, q, None).await? {
            Some(verdicts) if verdicts.contains(&false) => Err(denied(operation)),
            _ => Ok(()),
        }
    }

    /// Whether the signer of `access_key` may do `q`, for `q.key` or, with `keys`, for each
    /// of them (in order); `None` for the root, who may do everything.
    async fn allowed(
        &self,
        access_key: Option<&str>,
        q: Question<'_>,
        keys: Option<&[&str]>,
    ) -> ApiResult<Option<Vec<bool>>> {
        let caller = self.users.caller(access_key).await?;
        let (principal, user) = match &caller {
            Caller::Root => return Ok(None),
            Caller::Anonymous => (None, None),
            Caller::User(key, user) => (Some(key.as_str()), Some(user)),
        };
        let keys: Vec<Option<&str>> = match keys {
            Some(keys) => keys.iter().map(|k| Some(*k)).collect(),
            None => vec![q.key],
        };
        if action::is_bucket_policy_operation(q.operation) {
            return Ok(Some(vec![false; keys.len()]));
        }
        let bucket_policy = match q.bucket {
            Some(bucket) => self.bucket_policy(bucket, q.operation).await?,
            None => BucketPolicy::None,
        };
        let mut values = q.values.clone();
        request_values::add_caller(&mut values, &caller);
        // Only read the object's tags for the operations that offer them, and when some
        // policy that could apply tests them.
        let tests_tags = action::offers_existing_object_tags(q.operation)
            && (bucket_policy.tests_existing_object_tags()
                || user.is_some_and(|u| u.tests_existing_object_tags()));
        let action = action::for_operation(q.operation);
        let mut verdicts = Vec::with_capacity(keys.len());
        for key in keys {
            let resource = action::resource(q.bucket, key);
            let with_tags;
            let values = match (tests_tags, q.bucket, key) {
                (true, Some(bucket), Some(key)) => {
                    with_tags = self.with_existing_tags(&values, bucket, key).await?;
                    &with_tags
                }
                _ => &values,
            };
            let cx = RequestContext {
                action: &action,
                resource: &resource,
                principal,
                values,
            };
            let decision = user
                .map_or(Decision::NotApplicable, |u| u.decide(&cx))
                .combine(bucket_policy.decide(&cx));
            debug!(operation = q.operation, %action, %resource, principal = principal.unwrap_or("anonymous"), ?decision, "authorization");
            verdicts.push(decision.allowed());
        }
        Ok(Some(verdicts))
    }

    /// `values` with the tags of `bucket/key` as stored (of the version the request names,
    /// else the current one) as `s3:ExistingObjectTag/...`; unchanged when there is no such
    /// object.
    async fn with_existing_tags(
        &self,
        values: &ConditionValues,
        bucket: &str,
        key: &str,
    ) -> ApiResult<ConditionValues> {
        let version = values
            .get("s3:versionid")
            .and_then(|v| v.first())
            .map(String::as_str);
        let mut out = values.clone();
        match crate::tagging::get(&self.gw, bucket, key, version).await {
            Ok((tags, _)) => request_values::add_existing_tags(&mut out, &tags),
            // No such object (or a delete marker, or a version id that cannot exist): it has
            // no tags. The operation itself answers the error, if the caller may ask.
            Err(
                ApiError::NoSuchKey
                | ApiError::NoSuchBucket
                | ApiError::NoSuchVersion
                | ApiError::InvalidVersionId
                | ApiError::DeleteMarker { .. }
                | ApiError::MethodNotAllowed,
            ) => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }
}

/// Put in a GetObject's or HeadObject's extensions for callers other than the root: S3
/// answers a missing key with 404 only to callers who may list the bucket (`s3:ListBucket`
/// with `s3:prefix` = the key), and with 403 `AccessDenied` to the others, so that a caller
/// allowed to read some keys cannot probe which other keys exist. Asked only when the key
/// turns out missing ([`hide_missing`]).
#[derive(Clone)]
pub(crate) struct MissingKeyCheck {
    access: Access,
    access_key: Option<String>,
    bucket: String,
    key: String,
    values: ConditionValues,
}

impl MissingKeyCheck {
    /// Whether the caller may list the bucket at the key's prefix.
    async fn may_list(&self) -> ApiResult<bool> {
        let mut values = self.values.clone();
        values.set("s3:prefix", self.key.as_str());
        let question = Question {
            operation: "ListObjects",
            bucket: Some(&self.bucket),
            key: None,
            values: &values,
        };
        let verdicts = self
            .access
            .allowed(self.access_key.as_deref(), question, None)
            .await?;
        Ok(verdicts.is_none_or(|v| !v.contains(&false)))
    }
}

/// `err`, a GetObject's or HeadObject's error, as the caller may see it: a missing key (or
/// a current delete marker) becomes 403 `AccessDenied` for a caller who may not list it
/// (see [`MissingKeyCheck`]).
pub(crate) async fn hide_missing(err: ApiError, extensions: &http::Extensions) -> ApiError {
    let missing = matches!(
        err,
        ApiError::NoSuchKey | ApiError::DeleteMarker { by_id: false, .. }
    );
    let Some(check) = extensions.get::<MissingKeyCheck>().filter(|_| missing) else {
        return err;
    };
    match check.may_list().await {
        Ok(true) => err,
        Ok(false) => denied("GetObject"),
        Err(e) => e,
    }
}

/// The keys of a DeleteObjects request its caller may not delete, put in the request's
/// extensions by the access hook: the handler answers each with an `AccessDenied` result
/// and deletes the others, as S3 does.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeniedKeys(pub std::collections::HashSet<String>);

/// A bucket's policy as the access check sees it.
enum BucketPolicy {
    None,
    Some(Policy),
    /// Stored but unparseable (written by another release?): denies everything.
    Broken,
}

impl BucketPolicy {
    fn tests_existing_object_tags(&self) -> bool {
        matches!(self, BucketPolicy::Some(p) if p.tests_existing_object_tags())
    }

    fn decide(&self, cx: &RequestContext<'_>) -> Decision {
        match self {
            BucketPolicy::None => Decision::NotApplicable,
            BucketPolicy::Some(p) => p.evaluate(cx),
            BucketPolicy::Broken => Decision::Deny,
        }
    }
}

fn denied(operation: &str) -> ApiError {
    ApiError::AccessDenied(format!("Access Denied ({operation})"))
}

/// The condition-key values of a request that reached an operation's own hook.
fn values_of<T>(req: &S3Request<T>, operation: &str) -> ConditionValues {
    let source_ip = req.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    request_values::from_request(operation, &req.uri, &req.headers, source_ip)
}

fn access_key<T>(req: &S3Request<T>) -> Option<&str> {
    req.credentials.as_ref().map(|c| c.access_key.as_str())
}

/// The lock headers a write carries.
struct LockHeaders<'a> {
    mode: Option<&'a ObjectLockMode>,
    retain_until: Option<&'a Timestamp>,
    legal_hold: Option<&'a ObjectLockLegalHoldStatus>,
}

impl Access {
    /// Refuses a write whose lock headers the caller may not set on `bucket/key`.
    async fn check_lock_headers<T>(
        &self,
        req: &S3Request<T>,
        (bucket, key): (&str, &str),
        headers: LockHeaders<'_>,
    ) -> ApiResult<()> {
        let mut operations = Vec::new();
        if headers.mode.is_some() || headers.retain_until.is_some() {
            operations.push("PutObjectRetention");
        }
        if headers.legal_hold.is_some() {
            operations.push("PutObjectLegalHold");
        }
        for operation in operations {
            let values = values_of(req, operation);
            self.decide(
                access_key(req),
                Question {
                    operation,
                    bucket: Some(bucket),
                    key: Some(key),
                    values: &values,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Refuses a copy whose caller may not read its source (`s3:GetObject` on the source
    /// object, as the version it names).
    async fn check_copy_source<T>(&self, req: &S3Request<T>, source: &CopySource) -> S3Result<()> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Ok(());
        };
        let mut values = values_of(req, "GetObject");
        if let Some(version) = version_id {
            values.set("s3:VersionId", &**version);
        }
        let question = Question {
            operation: "GetObject",
            bucket: Some(&**bucket),
            key: Some(&**key),
            values: &values,
        };
        Ok(self.decide(access_key(req), question).await?)
    }

    /// Whether the caller may bypass GOVERNANCE retentions on `key` (or, with `keys`, on
    /// each of those keys) of `bucket`.
    async fn may_bypass<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        keys: &[&str],
    ) -> ApiResult<bool> {
        let verdicts = self
            .allowed(
                access_key(req),
                Question {
                    operation: "BypassGovernanceRetention",
                    bucket: Some(bucket),
                    key: None,
                    values: &values_of(req, "BypassGovernanceRetention"),
                },
                Some(keys),
            )
            .await?;
        Ok(verdicts.is_none_or(|v| !v.contains(&false)))
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let source_ip = cx.extensions_mut().get::<PeerAddr>().map(|p| p.0.ip());
        let operation = cx.s3_op().name();
        // Decided per key in `delete_objects`, once the body is parsed (for anonymous
        // callers too: a bucket policy may let everyone delete under a prefix); in
        // `put_object_tagging`, where the tags it sets (`s3:RequestObjectTag/...`) are known.
        // A browser-form upload (PostObject) is decided in `post_object` as the PutObject of
        // its key, once the form is parsed: its path names only the bucket.
        if matches!(
            operation,
            "DeleteObjects" | "PutObjectTagging" | "PostObject"
        ) {
            return Ok(());
        }
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(&**bucket), None),
            S3Path::Object { bucket, key } => (Some(&**bucket), Some(&**key)),
        };
        let values = request_values::from_request(operation, cx.uri(), cx.headers(), source_ip);
        let access_key = cx.credentials().map(|c| c.access_key.clone());
        let is_root = access_key.as_deref().is_some_and(|k| self.users.is_root(k));
        let missing_key_check = match (is_root, operation, bucket, key) {
            (false, "GetObject" | "HeadObject", Some(bucket), Some(key)) => Some(MissingKeyCheck {
                access: self.clone(),
                access_key: access_key.clone(),
                bucket: bucket.to_string(),
                key: key.to_string(),
                values: values.clone(),
            }),
            _ => None,
        };
        self.decide(
            access_key.as_deref(),
            Question {
                operation,
                bucket,
                key,
                values: &values,
            },
        )
        .await?;
        if let Some(check) = missing_key_check {
            cx.extensions_mut().insert(check);
        }
        Ok(())
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        let input = &req.input;
        let headers = LockHeaders {
            mode: input.object_lock_mode.as_ref(),
            retain_until: input.object_lock_retain_until_date.as_ref(),
            legal_hold: input.object_lock_legal_hold_status.as_ref(),
        };
        Ok(self
            .check_lock_headers(req, (&input.bucket, &input.key), headers)
            .await?)
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        let input = &req.input;
        let headers = LockHeaders {
            mode: input.object_lock_mode.as_ref(),
            retain_until: input.object_lock_retain_until_date.as_ref(),
            legal_hold: input.object_lock_legal_hold_status.as_ref(),
        };
        Ok(self
            .check_lock_headers(req, (&input.bucket, &input.key), headers)
            .await?)
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let input = &req.input;
        let headers = LockHeaders {
            mode: input.object_lock_mode.as_ref(),
            retain_until: input.object_lock_retain_until_date.as_ref(),
            legal_hold: input.object_lock_legal_hold_status.as_ref(),
        };
        self.check_lock_headers(req, (&input.bucket, &input.key), headers)
            .await?;
        self.check_copy_source(req, &req.input.copy_source).await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_copy_source(req, &req.input.copy_source).await
    }

    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        let mut values = values_of(req, "PutObjectTagging");
        let tags = crate::tagging::unchecked(&req.input.tagging);
        request_values::add_request_tags(&mut values, &tags);
        let question = Question {
            operation: "PutObjectTagging",
            bucket: Some(req.input.bucket.as_str()),
            key: Some(req.input.key.as_str()),
            values: &values,
        };
        Ok(self.decide(access_key(req), question).await?)
    }

    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        let input = &req.input;
        let mut values = values_of(req, "PutObject");
        // The form's fields stand for the headers a PUT would carry.
        if let Some(tags) = input
            .tagging
            .as_deref()
            .and_then(|t| crate::tagging::from_header(t).ok())
        {
            request_values::add_request_tags(&mut values, &tags);
        }
        if let Some(acl) = &input.acl {
            values.set("s3:x-amz-acl", acl.as_str());
        }
        if let Some(sse) = &input.server_side_encryption {
            values.set("s3:x-amz-server-side-encryption", sse.as_str());
        }
        let question = Question {
            operation: "PutObject",
            bucket: Some(input.bucket.as_str()),
            key: Some(input.key.as_str()),
            values: &values,
        };
        Ok(self.decide(access_key(req), question).await?)
    }

    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        if req.input.bypass_governance_retention == Some(true) {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            if !self.may_bypass(req, &bucket, &[&key]).await? {
                req.input.bypass_governance_retention = Some(false);
            }
        }
        Ok(())
    }

    async fn put_object_retention(
        &self,
        req: &mut S3Request<PutObjectRetentionInput>,
    ) -> S3Result<()> {
        if req.input.bypass_governance_retention == Some(true) {
            let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
            if !self.may_bypass(req, &bucket, &[&key]).await? {
                req.input.bypass_governance_retention = Some(false);
            }
        }
        Ok(())
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        if req.input.bypass_governance_retention == Some(true) {
            let owned: Vec<String> = req
                .input
                .delete
                .objects
                .iter()
                .map(|o| o.key.clone())
                .collect();
            let keys: Vec<&str> = owned.iter().map(String::as_str).collect();
            let bucket = req.input.bucket.clone();
            if !self.may_bypass(req, &bucket, &keys).await? {
                req.input.bypass_governance_retention = Some(false);
            }
        }
        let keys: Vec<&str> = req
            .input
            .delete
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        let values = values_of(req, "DeleteObjects");
        let verdicts = self
            .allowed(
                access_key(req),
                Question {
                    operation: "DeleteObjects",
                    bucket: Some(req.input.bucket.as_str()),
                    key: None,
                    values: &values,
                },
                Some(&keys),
            )
            .await?;
        let Some(verdicts) = verdicts else {
            return Ok(());
        };
        // Nothing allowed: refused whole (also how an empty list of a caller without
        // rights ends). Some allowed: the others are answered per key.
        if !verdicts.contains(&true) {
            return Err(denied("DeleteObjects").into());
        }
        let refused: std::collections::HashSet<String> = keys
            .iter()
            .zip(&verdicts)
            .filter(|(_, ok)| !**ok)
            .map(|(k, _)| (*k).to_string())
            .collect();
        if !refused.is_empty() {
            req.extensions.insert(DeniedKeys(refused));
        }
        Ok(())
    }
}
