//! End-to-end tests: the real `cairn` binary, real sockets on loopback, the real AWS SDK.

mod cluster_harness;
mod harness;

mod bench;
mod blob_faults;
mod buckets;
mod cluster;
mod cluster_script;
mod compose;
mod degraded;
mod drain;
mod durability;
mod gc_race;
mod heal;
mod listing;
mod multipart;
mod objects;
mod roles;
