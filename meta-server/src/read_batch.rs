//! One leadership confirmation for many linearizable reads.
//!
//! A linearizable read on the leader needs a read index: the leader's commit index at the
//! time of the read, confirmed by a round of heartbeats that a quorum answers (openraft's
//! `ensure_linearizable`). Done per request, every small GET or HEAD costs a network round
//! to the followers, and under load those rounds (and the Raft core's work for them) are
//! most of what a read costs.
//!
//! The [`ReadBatcher`] runs one round for every read that is waiting when the round starts.
//! That is still linearizable: each read joined the queue before its round began, so the
//! round's read index covers every write committed before the read arrived, and the quorum's
//! answer proves leadership at a moment after that. Reads that arrive while a round is in
//! flight wait for the next one, never for one that started before them. Under light load a
//! read waits at most one round longer; under heavy load, one round serves dozens.

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info_span, Instrument};

use crate::group::{read_index, GroupError};
use crate::types::{NodeId, Raft};

type Waiter = oneshot::Sender<Result<Option<u64>, GroupError>>;

/// Hands out read indices of one local Raft node, one confirmation round per batch of
/// waiting readers. Cheap to clone; its task ends when every clone is dropped.
#[derive(Clone)]
pub struct ReadBatcher {
    queue: mpsc::UnboundedSender<Waiter>,
}

impl ReadBatcher {
    /// Starts the batching task (`read_batcher` span) for node `id`'s `raft`.
    pub fn spawn(id: NodeId, raft: Raft) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx).instrument(info_span!("read_batcher", node = id)));
        Self { queue }
    }

    /// Confirms leadership with a quorum (in a round shared with other waiting readers) and
    /// waits until everything committed before this call is applied; returns that index.
    pub async fn read_index(&self) -> Result<Option<u64>, GroupError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(tx)
            .map_err(|_| GroupError::Raft("the read batcher has stopped".into()))?;
        rx.await
            .map_err(|_| GroupError::Raft("the read batcher has stopped".into()))?
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        // Only readers already queued join this round (see the module comment).
        while let Ok(more) = rx.try_recv() {
            waiters.push(more);
        }
        let result = read_index(&raft).await;
        debug!(
            readers = waiters.len(),
            ok = result.is_ok(),
            "read index round"
        );
        for waiter in waiters {
            // A reader that gave up (its request was cancelled) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
    debug!("read batcher stopped");
}
