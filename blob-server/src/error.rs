//! The crate's one error type, and how each case maps to a gRPC status.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the blob server, from opening disks to serving a range.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The configuration cannot be used as given.
    #[error("invalid blob server configuration: {0}")]
    InvalidConfig(String),
    /// An I/O operation failed; `context` says which one and on which path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `"fsync /data/0/shards/ab"`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A shard key outside `[A-Za-z0-9._-]{1,128}`, or `.` / `..`.
    #[error(
        "invalid shard key {0:?}: must match [A-Za-z0-9._-]{{1,128}} and not be \".\" or \"..\""
    )]
    InvalidShardKey(String),
    /// No disk of this server has that id.
    #[error("no disk with id {0:?} on this server")]
    UnknownDisk(String),
    /// The disk exists in the configuration but could not be opened at start.
    #[error("disk {0:?} is faulty")]
    FaultyDisk(String),
    /// The shard file does not exist.
    #[error("shard {0:?} not found")]
    ShardNotFound(String),
    /// A shard file whose header or size is not what the format requires.
    #[error("corrupt shard file {path}: {reason}")]
    CorruptShard {
        /// The shard file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A chunk whose bytes do not match the checksum stored after it.
    #[error("checksum mismatch in shard file {path}, chunk {chunk}")]
    ChecksumMismatch {
        /// The shard file.
        path: PathBuf,
        /// Index of the damaged chunk (0-based).
        chunk: u64,
    },
    /// A read that starts beyond the end of the shard.
    #[error("offset {offset} is beyond the end of the shard ({size} bytes)")]
    OutOfRange {
        /// Requested start.
        offset: u64,
        /// Size of the shard.
        size: u64,
    },
    /// The put stream ended without completing (client error, cancellation or disconnect).
    #[error("shard upload was cut off before it completed")]
    PutAborted,
    /// A disk identity file (`cairn-disk.json`) that cannot be used.
    #[error("disk identity file {path}: {reason}")]
    InvalidIdentity {
        /// The identity file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// None of the configured data directories could be opened.
    #[error("none of the {0} configured data directories is usable")]
    NoUsableDisk(usize),
    /// The gRPC listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A background or blocking task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl BlobError {
    /// An [`BlobError::Io`] with a description of the failed operation.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BlobError::Io {
            context: context.into(),
            source,
        }
    }

    /// The disk ran out of space (ENOSPC): the disk works, it is only full.
    pub(crate) fn is_out_of_space(&self) -> bool {
        matches!(self, BlobError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
    }

    /// An I/O failure that may mean the disk itself is failing (anything but a full disk):
    /// worth a probe of the disk.
    pub(crate) fn suggests_disk_fault(&self) -> bool {
        matches!(self, BlobError::Io { .. }) && !self.is_out_of_space()
    }
}

impl From<tokio::task::JoinError> for BlobError {
    fn from(e: tokio::task::JoinError) -> Self {
        BlobError::Task(e.to_string())
    }
}

impl From<BlobError> for tonic::Status {
    fn from(e: BlobError) -> Self {
        let msg = e.to_string();
        match e {
            BlobError::InvalidShardKey(_) | BlobError::InvalidConfig(_) => {
                tonic::Status::invalid_argument(msg)
            }
            BlobError::UnknownDisk(_) | BlobError::ShardNotFound(_) => {
                tonic::Status::not_found(msg)
            }
            BlobError::FaultyDisk(_) => tonic::Status::unavailable(msg),
            BlobError::CorruptShard { .. } | BlobError::ChecksumMismatch { .. } => {
                tonic::Status::data_loss(msg)
            }
            BlobError::OutOfRange { .. } => tonic::Status::out_of_range(msg),
            BlobError::PutAborted => tonic::Status::aborted(msg),
            // A full disk: the caller writes the shard elsewhere (or fails the put cleanly).
            BlobError::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                tonic::Status::resource_exhausted(msg)
            }
            BlobError::Io { .. }
            | BlobError::InvalidIdentity { .. }
            | BlobError::NoUsableDisk(_)
            | BlobError::Bind { .. }
            | BlobError::Transport(_)
            | BlobError::Task(_) => tonic::Status::internal(msg),
        }
    }
}
