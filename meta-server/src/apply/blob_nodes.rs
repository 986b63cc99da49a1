//! The blob-node registry in the state machine: registration (the heartbeat), the operator's
//! drain, and removal.
//!
//! ```text
//! blob_nodes CF: node id                      -> BlobNode (with its operator state)
//! cluster CF:    "removed-blob/" | node id    -> empty (the node was removed, for good)
//! ```
//!
//! Why a removal leaves a marker: a removed blob server may still be running and keeps
//! sending its heartbeat. Without the marker its next registration would put it back in the
//! registry, and placement would hand it new shards again. With it, the registration is
//! refused (`BLOB_NODE_REMOVED`) on every replica alike.

use cairn_proto::meta::{BlobNode, BlobNodeState, MetaError};
use prost::Message;
use rocksdb::{WriteBatch, DB};

use super::error;
use crate::records;
use crate::store::{cf, StoreError, CF_BLOB_NODES, CF_CLUSTER};
use crate::types::Response;

/// Prefix of the removal markers in the `cluster` column family.
const REMOVED_PREFIX: &[u8] = b"removed-blob/";

fn removed_key(node_id: &str) -> Vec<u8> {
    [REMOVED_PREFIX, node_id.as_bytes()].concat()
}

/// Whether `node_id` was removed from the cluster.
pub(crate) fn is_removed(db: &DB, node_id: &str) -> Result<bool, StoreError> {
    Ok(db
        .get_cf(cf(db, CF_CLUSTER)?, removed_key(node_id))?
        .is_some())
}

/// One registered blob node.
pub(crate) fn read_node(db: &DB, node_id: &str) -> Result<Option<BlobNode>, StoreError> {
    match db.get_cf(cf(db, CF_BLOB_NODES)?, node_id.as_bytes())? {
        Some(raw) => Ok(Some(records::decode(&raw)?)),
        None => Ok(None),
    }
}

fn write_node(db: &DB, batch: &mut WriteBatch, node: &BlobNode) -> Result<(), StoreError> {
    batch.put_cf(
        cf(db, CF_BLOB_NODES)?,
        node.node_id.as_bytes(),
        records::encode(node),
    );
    Ok(())
}

/// Applies `RegisterBlobNode`: stamps the heartbeat, keeps the operator's state of a known
/// node (a heartbeat must not end a drain), refuses a removed node.
pub(super) fn register(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    raw: &[u8],
) -> Result<Response, StoreError> {
    let Ok(mut node) = BlobNode::decode(raw) else {
        return Ok(error(MetaError::InvalidArgument));
    };
    if is_removed(db, &node.node_id)? {
        return Ok(error(MetaError::BlobNodeRemoved));
    }
    node.registered_ms = now;
    node.state = read_node(db, &node.node_id)?.map_or(BlobNodeState::Active as i32, |n| n.state);
    write_node(db, batch, &node)?;
    Ok(Response::Done)
}

/// Applies `SetBlobNodeDraining`.
pub(super) fn set_draining(
    db: &DB,
    batch: &mut WriteBatch,
    node_id: &str,
    draining: bool,
) -> Result<Response, StoreError> {
    let Some(mut node) = read_node(db, node_id)? else {
        return Ok(error(MetaError::NoSuchBlobNode));
    };
    node.state = if draining {
        BlobNodeState::Draining
    } else {
        BlobNodeState::Active
    } as i32;
    write_node(db, batch, &node)?;
    Ok(Response::Done)
}

/// Applies `RemoveBlobNode`. Whether shards still name the node is checked by the proposer
/// (a scan of every version does not belong in the apply loop); what is checked here is what
/// must hold on every replica at this point of the log: the node exists and, unless forced,
/// an operator drained it first.
pub(super) fn remove(
    db: &DB,
    batch: &mut WriteBatch,
    node_id: &str,
    force: bool,
) -> Result<Response, StoreError> {
    let Some(node) = read_node(db, node_id)? else {
        return Ok(error(MetaError::NoSuchBlobNode));
    };
    if !force && node.state != BlobNodeState::Draining as i32 {
        return Ok(error(MetaError::BlobNodeNotDraining));
    }
    batch.delete_cf(cf(db, CF_BLOB_NODES)?, node_id.as_bytes());
    batch.put_cf(cf(db, CF_CLUSTER)?, removed_key(node_id), b"");
    Ok(Response::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Request};

    fn run(db: &DB, index: u64, command: Command) -> Response {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000 * index as i64,
            command,
        };
        let response = super::super::apply(db, &mut batch, index, &request).expect("apply");
        db.write(batch).expect("write");
        response
    }

    fn register_cmd(id: &str) -> Command {
        Command::RegisterBlobNode {
            node: BlobNode {
                node_id: id.into(),
                address: format!("{id}:1"),
                ..Default::default()
            }
            .encode_to_vec(),
        }
    }

    fn refused(r: &Response, code: MetaError) -> bool {
        matches!(r, Response::Error { code: c } if *c == code as i32)
    }

    #[test]
    fn a_drain_survives_heartbeats_and_removal_needs_it_and_is_final() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        assert_eq!(run(&db, 1, register_cmd("a")), Response::Done);
        assert_eq!(run(&db, 2, register_cmd("b")), Response::Done);
        // Unknown nodes can be neither drained nor removed.
        let r = run(
            &db,
            3,
            Command::SetBlobNodeDraining {
                node_id: "zz".into(),
                draining: true,
            },
        );
        assert!(refused(&r, MetaError::NoSuchBlobNode), "{r:?}");
        // An active node is not removed without force.
        let r = run(
            &db,
            4,
            Command::RemoveBlobNode {
                node_id: "a".into(),
                force: false,
            },
        );
        assert!(refused(&r, MetaError::BlobNodeNotDraining), "{r:?}");
        assert!(read_node(&db, "a").expect("read").is_some());

        run(
            &db,
            5,
            Command::SetBlobNodeDraining {
                node_id: "a".into(),
                draining: true,
            },
        );
        // The heartbeat refreshes the record but keeps the drain.
        run(&db, 6, register_cmd("a"));
        let a = read_node(&db, "a").expect("read").expect("a");
        assert_eq!(a.state, BlobNodeState::Draining as i32);
        assert_eq!(a.registered_ms, 6_000);

        assert_eq!(
            run(
                &db,
                7,
                Command::RemoveBlobNode {
                    node_id: "a".into(),
                    force: false
                }
            ),
            Response::Done
        );
        assert!(read_node(&db, "a").expect("read").is_none());
        // Its heartbeat no longer brings it back.
        let r = run(&db, 8, register_cmd("a"));
        assert!(refused(&r, MetaError::BlobNodeRemoved), "{r:?}");
        assert!(read_node(&db, "a").expect("read").is_none());
        assert!(is_removed(&db, "a").expect("removed"));

        // Undrain, and forced removal of an active node.
        run(
            &db,
            9,
            Command::SetBlobNodeDraining {
                node_id: "b".into(),
                draining: true,
            },
        );
        run(
            &db,
            10,
            Command::SetBlobNodeDraining {
                node_id: "b".into(),
                draining: false,
            },
        );
        let b = read_node(&db, "b").expect("read").expect("b");
        assert_eq!(b.state, BlobNodeState::Active as i32);
        assert_eq!(
            run(
                &db,
                11,
                Command::RemoveBlobNode {
                    node_id: "b".into(),
                    force: true
                }
            ),
            Response::Done
        );
        assert!(crate::apply::read_blob_nodes(&db)
            .expect("nodes")
            .is_empty());
    }
}
