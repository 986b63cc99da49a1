//! Whether this process belongs to a cluster yet.
//!
//! A meta node started on a pristine directory without `bootstrap` belongs to no cluster: it
//! serves only the admin API and waits for `Initialize` (it becomes the first voter of a new
//! cluster) or `Join` (the leader of an existing cluster adds it). Until then the `Meta` API
//! answers UNAVAILABLE and Raft messages are refused, since there is no cluster id to check
//! them against. Joining happens once per process; it is never undone.

use std::sync::{Arc, OnceLock};

use crate::group::GroupMap;

/// A process's cluster, once it has one.
#[derive(Clone)]
pub struct Joined {
    /// The cluster every Raft message must name.
    pub cluster_id: Arc<str>,
    /// The Raft groups of this process.
    pub groups: GroupMap,
}

/// Set once, when the process's nodes start as members of a cluster.
#[derive(Clone, Default)]
pub struct JoinState {
    inner: Arc<OnceLock<Joined>>,
}

impl JoinState {
    /// The cluster, if this process has joined one.
    pub fn get(&self) -> Option<&Joined> {
        self.inner.get()
    }

    /// Records the cluster. Returns false (and changes nothing) if one was already set.
    pub fn set(&self, joined: Joined) -> bool {
        self.inner.set(joined).is_ok()
    }
}
