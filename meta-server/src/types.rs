//! The Raft type configuration and the commands that travel through the log.
//!
//! A [`Request`] is what the leader appends; the state machine turns it into a [`Response`]
//! deterministically. Everything that depends on time or chance (the wall clock, shard keys)
//! is decided by the proposer *before* the entry is appended and travels inside it, so every
//! replica applies the same bytes to the same state and reaches the same result.

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

/// Identifier of a meta node inside its Raft group. Never reused.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Cairn's meta-service Raft types.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = crate::store::SnapshotFile,
);

/// Shorthand for openraft's handle with our types.
pub type Raft = openraft::Raft<TypeConfig>;

/// One log entry's application payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Leader-stamped wall clock (milliseconds since the Unix epoch). `apply` uses this value,
    /// never its own clock.
    pub now_ms: i64,
    /// What to do.
    pub command: Command,
}

/// A state change of the metadata.
///
/// Object and blob-node payloads are the protobuf encodings of `cairn_proto::meta` messages
/// (prost), so the log carries the same versioned message family as the gRPC API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a bucket; its id is the log index of this entry. With `object_lock`, Object
    /// Lock is enabled and versioning Enabled from the start.
    CreateBucket {
        name: String,
        /// Absent in entries written before Object Lock existed.
        #[serde(default)]
        object_lock: bool,
    },
    /// Delete an empty bucket.
    DeleteBucket { name: String },
    /// Make an object version visible; its version id derives from this entry's log index.
    /// With a `condition`, only if it holds for the key's current version.
    CommitObject {
        #[serde(with = "crate::wire_bytes")]
        object: Vec<u8>,
        #[serde(default)]
        condition: Option<WriteCondition>,
    },
    /// Delete an object as S3 does for the bucket's versioning state (remove it, or add a
    /// delete marker), or, with `version_id` (`null` or an id), remove that version for good.
    /// With a `condition`, only if it holds for the key's current version.
    DeleteObject {
        bucket: String,
        key: String,
        #[serde(default)]
        condition: Option<WriteCondition>,
        /// Absent in entries written before versioning existed.
        #[serde(default)]
        version_id: Option<String>,
        /// A GOVERNANCE retention does not protect the version named (the request carried
        /// x-amz-bypass-governance-retention). Absent in entries written before Object Lock.
        #[serde(default)]
        bypass_governance: bool,
    },
    /// Set a bucket's versioning state (a `VersioningStatus`: enabled or suspended).
    SetBucketVersioning { name: String, status: i32 },
    /// Replace the tag set (`(key, value)` pairs, in order) of the current version of an
    /// object; `version_id`, when not empty, must name that version.
    SetObjectTags {
        bucket: String,
        key: String,
        version_id: String,
        tags: Vec<(String, String)>,
    },
    /// Insert or refresh a blob node and its disks (a `BlobNode` message). The operator's
    /// state of a known node (draining) is kept; a removed node is refused.
    RegisterBlobNode { node: Vec<u8> },
    /// Set a registered blob node draining (`true`) or active again (`false`).
    SetBlobNodeDraining { node_id: String, draining: bool },
    /// Drop a blob node from the registry for good. Without `force` only a draining node.
    RemoveBlobNode { node_id: String, force: bool },
    /// Reserve a meta node id: the index of this entry, which no other entry shares, so an
    /// id handed out this way is never handed out again.
    AllocateNodeId,
    /// Set (or, with `None`, clear) the erasure scheme of a bucket's new objects (a
    /// prost-encoded `ErasureScheme`).
    SetBucketScheme {
        name: String,
        scheme: Option<Vec<u8>>,
    },
    /// Replace parts of a bucket's configuration. `tags: Some` replaces the tag set (`(key,
    /// value)` pairs in order; empty removes it); `cors: Some` replaces the CORS
    /// configuration (a prost-encoded `CorsConfiguration`; one without rules removes it).
    /// `None` leaves that part as it is.
    SetBucketConfig {
        name: String,
        tags: Option<Vec<(String, String)>>,
        cors: Option<Vec<u8>>,
        /// `Some` replaces the bucket policy (JSON, validated by the gateway; empty removes
        /// it). Absent in entries written before bucket policies existed.
        #[serde(default)]
        policy: Option<String>,
        /// `Some` enables Object Lock (the bucket's versioning must be Enabled) and replaces
        /// its default retention. Absent in entries written before Object Lock existed.
        #[serde(default)]
        object_lock: Option<ObjectLockConfig>,
        /// `Some` replaces the lifecycle configuration (a prost-encoded
        /// `LifecycleConfiguration`; one without rules removes it).
        #[serde(default)]
        lifecycle: Option<Vec<u8>>,
    },
    /// Set the Object Lock retention and/or legal hold of the current version of an object,
    /// or of the version `version_id` names.
    SetObjectLock {
        bucket: String,
        key: String,
        version_id: String,
        /// Replace the retention (`None` leaves it as it is).
        retention: Option<RetentionChange>,
        /// Replace the legal hold (`None` leaves it as it is).
        legal_hold: Option<bool>,
    },
    /// Carry out lifecycle actions the leader found due. Each is checked again against the
    /// state and rules at this entry (with its clock and the cluster's lifecycle day), so an
    /// action that a write, a tag change or a rule change made stale in between does nothing.
    ApplyLifecycle { actions: Vec<LifecycleAction> },
    /// Fix the length of a lifecycle day for the cluster's life, unless it is fixed already
    /// (the first proposal wins): a real day, or a short one in test clusters.
    SetLifecycleDay { day_ms: i64 },
    /// Set the cluster secret unless one is set already (the first proposal wins).
    SetClusterSecret { secret: String },
    /// Start a multipart upload (a `MultipartUpload` message: bucket, key, content type and
    /// user metadata). Its id is this entry's log index followed by `nonce`, which the
    /// proposer drew at random.
    CreateMultipartUpload { upload: Vec<u8>, nonce: u64 },
    /// Record a durable part (an `ObjectPart` message) in an upload.
    CommitPart {
        bucket: String,
        key: String,
        upload_id: String,
        part: Vec<u8>,
    },
    /// Turn the listed parts (number, unquoted ETag) of an upload into an object version.
    CompleteMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
        parts: Vec<(u32, String)>,
        /// Only if this holds for the key's current version (the upload stays otherwise).
        #[serde(default)]
        condition: Option<WriteCondition>,
        /// The object's checksums (prost-encoded `ObjectChecksum`s), made from the listed
        /// parts'. Absent in entries written before multipart checksums existed.
        #[serde(default)]
        checksums: Vec<Vec<u8>>,
    },
    /// Drop an upload and all of its parts.
    AbortMultipartUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// Queue object versions for healing (prost-encoded `HealItem`s). An item already queued
    /// keeps its place and lease.
    QueueHeal { items: Vec<Vec<u8>> },
    /// Lease up to `max` free heal items to a healer for `lease_ms`.
    ClaimHeal { max: u32, lease_ms: u64 },
    /// Point shards of one segment (0 = a single PUT's body, else a part number) of a version
    /// at their rebuilt copies: `(old shard key, new ShardPlacement)`.
    ReplaceShards {
        bucket: String,
        key: String,
        version_id: String,
        part_number: u32,
        replacements: Vec<(String, Vec<u8>)>,
    },
    /// End a heal item and count it.
    FinishHeal {
        bucket: String,
        key: String,
        version_id: String,
        healed: bool,
        bytes_rebuilt: u64,
        shards_rebuilt: u32,
        /// Nonzero: keep the item, free again after this many ms.
        retry_in_ms: u64,
    },
    /// Decide which of these shard files on one disk no committed metadata refers to, and
    /// tombstone those.
    CollectGarbage {
        node_id: String,
        disk_id: String,
        shard_keys: Vec<String>,
    },
    /// Create an S3 user (a prost-encoded `cairn_proto::admin::IamUser`); refused when the
    /// access key is taken or an attached custom policy does not exist.
    CreateUser { user: Vec<u8> },
    /// Change a user: enable or disable it (`enabled: Some`), attach and detach policies.
    UpdateUser {
        access_key: String,
        enabled: Option<bool>,
        attach: Vec<String>,
        detach: Vec<String>,
    },
    /// Remove a user.
    DeleteUser { access_key: String },
    /// Store or replace a custom policy document (JSON).
    PutPolicy { name: String, document: String },
    /// Remove a custom policy that no user has attached.
    DeletePolicy { name: String },
}

/// A bucket's Object Lock configuration as `SetBucketConfig` sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    /// The default retention of new versions (a prost-encoded `ObjectLockRule`); `None`:
    /// none.
    pub default_rule: Option<Vec<u8>>,
}

/// A new retention for one object version (`SetObjectLock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionChange {
    /// A `RetentionMode` (NONE with `retain_until_ms` 0 removes the retention).
    pub mode: i32,
    /// Milliseconds since the Unix epoch.
    pub retain_until_ms: i64,
    /// x-amz-bypass-governance-retention: a GOVERNANCE retention in force may be shortened,
    /// removed or changed.
    pub bypass_governance: bool,
}

/// One lifecycle action the leader found due (`ApplyLifecycle`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LifecycleAction {
    /// Expire the current version `version_id` of a key: a delete marker in a versioned
    /// bucket, removal in an unversioned one.
    ExpireCurrent {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// Remove the delete marker `version_id`, the only version left of its key.
    RemoveLoneMarker {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// Remove the noncurrent version `version_id` for good.
    ExpireNoncurrent {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// Abort an incomplete multipart upload.
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
}

/// A condition on the current version of a key that a write checks in its own entry
/// (`If-None-Match: *`, `If-Match`). Entries written before conditions existed have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCondition {
    /// The key must have no current version.
    pub if_none_match_any: bool,
    /// The current version's ETag (unquoted) must be this; `*`: any current version.
    pub if_match: Option<String>,
}

impl WriteCondition {
    /// The condition of a request (`None` when it asks for nothing).
    pub fn from_proto(c: Option<cairn_proto::meta::WriteCondition>) -> Option<Self> {
        let c = c?;
        let if_match = (!c.if_match.is_empty()).then_some(c.if_match);
        (c.if_none_match_any || if_match.is_some()).then_some(Self {
            if_none_match_any: c.if_none_match_any,
            if_match,
        })
    }
}

/// The outcome of applying one entry. Domain failures (no such bucket...) are outcomes, not
/// errors: they are part of the replicated history and every replica computes the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Entries that carry no command (blank, membership) answer this.
    Empty,
    /// A domain error code, `cairn_proto::meta::MetaError` as i32.
    Error { code: i32 },
    /// A bucket (prost-encoded `Bucket`).
    Bucket { bucket: Vec<u8> },
    /// A committed object and the version it replaced (prost-encoded `ObjectVersion`s),
    /// and when it expires under the bucket's lifecycle rules (prost-encoded
    /// `LifecycleExpiry`).
    Committed {
        #[serde(with = "crate::wire_bytes")]
        object: Vec<u8>,
        #[serde(with = "crate::wire_bytes::option", default)]
        replaced: Option<Vec<u8>>,
        #[serde(default)]
        expiry: Option<Vec<u8>>,
    },
    /// A deleted object version, if there was one, and the delete marker the delete created,
    /// if it created one (prost-encoded `ObjectVersion`s).
    Deleted {
        deleted: Option<Vec<u8>>,
        #[serde(default)]
        marker: Option<Vec<u8>>,
    },
    /// The command succeeded and returns nothing.
    Done,
    /// A reserved meta node id.
    NodeId { id: u64 },
    /// The cluster secret in force.
    Secret { secret: String },
    /// A multipart upload was created (prost-encoded `MultipartUpload`).
    Upload { upload: Vec<u8> },
    /// A part was committed, and the part it replaced (prost-encoded `ObjectPart`s).
    PartCommitted {
        part: Vec<u8>,
        replaced: Option<Vec<u8>>,
    },
    /// A multipart upload became an object: the object, the version it replaced and the
    /// uploaded parts left out of it (prost-encoded).
    MultipartCompleted {
        object: Vec<u8>,
        replaced: Option<Vec<u8>>,
        unused_parts: Vec<Vec<u8>>,
        /// When the object expires under the bucket's lifecycle rules.
        #[serde(default)]
        expiry: Option<Vec<u8>>,
    },
    /// Uploads were dropped (an abort, or a bucket deleted with uploads in progress); these
    /// are their parts (prost-encoded `ObjectPart`s), whose shards are garbage now.
    Aborted { parts: Vec<Vec<u8>> },
    /// Heal items handed to a healer (prost-encoded `HealItem`s).
    HealItems { items: Vec<Vec<u8>> },
    /// Whether a `ReplaceShards` changed the placement.
    Replaced { applied: bool },
    /// The shard keys a `CollectGarbage` declared garbage (and tombstoned).
    Garbage { shard_keys: Vec<String> },
    /// The version whose tags a `SetObjectTags` replaced.
    TagsSet { version_id: String },
    /// The version whose Object Lock a `SetObjectLock` changed.
    LockSet { version_id: String },
    /// How many of an `ApplyLifecycle`'s actions were still due and carried out.
    LifecycleApplied { applied: u32 },
    /// The cluster's lifecycle day, in milliseconds.
    LifecycleDay { day_ms: i64 },
    /// An S3 user after the change (prost-encoded `cairn_proto::admin::IamUser`).
    User { user: Vec<u8> },
}
