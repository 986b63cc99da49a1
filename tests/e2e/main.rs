//! End-to-end tests: the real `cairn` binary, real sockets on loopback, the real AWS SDK.

mod harness;

mod bench;
mod buckets;
mod durability;
mod listing;
mod objects;
mod roles;
