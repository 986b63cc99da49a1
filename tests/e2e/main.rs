//! End-to-end tests: the real `cairn` binary, real sockets on loopback, the real AWS SDK.

mod balancer;
mod cluster_harness;
mod harness;

mod attributes;
mod bench;
mod blob_faults;
mod bucket_tagging;
mod buckets;
mod cluster;
mod cluster_script;
mod compose;
mod conditional_writes;
mod copy;
mod cors;
mod degraded;
mod delete_objects;
mod drain;
mod durability;
mod failover;
mod gc_race;
mod heal;
mod iam;
mod inline;
mod lifecycle;
mod listing;
mod multipart;
mod multipart_checksums;
mod object_lock;
mod objects;
mod roles;
mod tagging;
mod versioning;
