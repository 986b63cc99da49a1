//! Deterministic simulation of the meta cluster: the second layer beside the black-box
//! harness (see docs/jepsen.md, "Deterministic simulation").
//!
//! The black-box runs test the real processes, but a run cannot be replayed: the scheduler,
//! the network and the disks decide the interleaving. Here the meta service's own pieces
//! (openraft with Cairn's RocksDB log store and state machine, the apply code and the
//! linearizable read path) run in one process, on one thread, under a clock that only moves
//! when every task waits ([`tokio`]'s paused time). Everything that chooses comes from the
//! seed: message delays and losses ([`net`]), the faults ([`faults`]), the clients' operations
//! ([`client`]) and even each node's election timeout ([`node`]). The same seed therefore
//! produces the same run, event for event; [`run::SimReport::digest`] fingerprints it, and a
//! test runs one seed twice to prove it.
//!
//! A run has two phases: a *safety* phase in which faults come and go (partitions, lossy and
//! slow links, process crashes, power losses that drop what was not fsynced, several nodes at
//! once, voters removed and added back) while clients read and write, then a *liveness*
//! phase with every fault healed, which must make progress. Then every invariant (one per
//! file in [`invariants`]) judges the run.
//!
//! Log compaction is on, at an interval drawn from the seed: nodes build snapshots, purge
//! their logs, and a node that fell behind is caught up by a snapshot sent in chunks and
//! installed. Snapshot I/O runs on the simulation's thread (the store's `inline_io`), not on
//! tokio's blocking pool, whose real threads would make the interleaving depend on the
//! machine.
//!
//! What is *not* simulated: the gRPC layers (the gateway's meta client, forwarding between
//! processes) and the gateway and blob servers.

pub mod client;
pub mod cluster;
pub mod faults;
pub mod invariants;
pub mod net;
pub mod node;
pub mod run;
pub mod trace;

pub use run::{run_many, run_seed, Plant, SimConfig, SimReport};
