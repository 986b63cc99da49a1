//! What blob nodes still hold, according to the metadata: the progress figure of a drain and
//! the precondition of a removal.
//!
//! A shard counts when a committed object version (its own body or one of its parts) or a
//! part of a multipart upload in progress places it on the node; that is exactly what garbage
//! collection keeps alive, so a node that holds nothing by this count holds nothing anyone
//! will ever read. The count is a scan of every version and every part in progress: its cost
//! is proportional to the number of objects, paid by `cairn admin status` while a node drains
//! and by `RemoveBlobNode`, never by the data path.

use std::collections::{BTreeMap, BTreeSet};

use cairn_proto::admin::DrainProgress;
use cairn_proto::meta::{ErasureScheme, ShardPlacement};

use crate::store::{MetaReader, StoreError};

/// Versions or parts read per step of the scan.
const SCAN_BATCH: usize = 1000;

/// What the metadata places on each of `nodes` (every node of the set gets an entry, zero if
/// nothing names it). `queued_items` is left for the caller.
pub fn holdings(
    reader: &MetaReader,
    nodes: &BTreeSet<String>,
) -> Result<BTreeMap<String, DrainProgress>, StoreError> {
    let mut out: BTreeMap<String, DrainProgress> = nodes
        .iter()
        .map(|n| {
            (
                n.clone(),
                DrainProgress {
                    node_id: n.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    if nodes.is_empty() {
        return Ok(out);
    }
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (versions, next) = reader.all_versions_page(after.as_deref(), SCAN_BATCH)?;
        for v in &versions {
            let mut segments: Vec<Segment<'_>> = vec![(v.scheme, v.size, &v.shards)];
            segments.extend(v.parts.iter().map(|p| (p.scheme, p.size, &p.shards)));
            count(&mut out, &segments);
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut after: Option<Vec<u8>> = None;
    loop {
        let (parts, next) = reader.all_parts_page(after.as_deref(), SCAN_BATCH)?;
        for p in &parts {
            count(&mut out, &[(p.scheme, p.size, &p.shards)]);
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// One separately coded body: its scheme, size and shards.
type Segment<'a> = (Option<ErasureScheme>, u64, &'a Vec<ShardPlacement>);

/// Adds the shards of one object's (or upload part's) segments to the nodes' figures.
fn count(out: &mut BTreeMap<String, DrainProgress>, segments: &[Segment<'_>]) {
    let mut touched = BTreeSet::new();
    for (scheme, size, shards) in segments {
        let k = u64::from(scheme.map_or(1, |s| s.data_shards).max(1));
        for s in shards.iter() {
            if let Some(p) = out.get_mut(&s.node_id) {
                p.shards += 1;
                p.bytes += size.div_ceil(k);
                touched.insert(s.node_id.as_str());
            }
        }
    }
    for node in touched {
        if let Some(p) = out.get_mut(node) {
            p.objects += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Request};
    use cairn_proto::meta::{ObjectPart, ObjectVersion};
    use prost::Message;
    use rocksdb::WriteBatch;

    fn run(db: &rocksdb::DB, index: u64, command: Command) -> crate::types::Response {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000,
            command,
        };
        let r = crate::apply::apply(db, &mut batch, index, &request).expect("apply");
        db.write(batch).expect("write");
        r
    }

    fn shards(upload: &str, nodes: &[&str]) -> Vec<ShardPlacement> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ShardPlacement {
                index: i as u32,
                node_id: n.to_string(),
                disk_id: format!("{n}-d"),
                shard_key: format!("{upload}.{i}"),
                written: true,
                ..Default::default()
            })
            .collect()
    }

    fn scheme(k: u32, m: u32) -> Option<ErasureScheme> {
        Some(ErasureScheme {
            data_shards: k,
            parity_shards: m,
            block_size: 64,
        })
    }

    #[test]
    fn versions_and_parts_in_progress_count_and_deleted_objects_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        let object = |key: &str, upload: &str, nodes: &[&str]| Command::CommitObject {
            object: ObjectVersion {
                bucket: "b".into(),
                key: key.into(),
                size: 1000,
                scheme: scheme(2, 2),
                shards: shards(upload, nodes),
                upload_id: upload.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            condition: None,
        };
        run(&db, 2, object("one", "u1", &["a", "b", "c", "d"]));
        run(&db, 3, object("two", "u2", &["a", "a", "c", "e"]));
        run(&db, 4, object("gone", "u3", &["a", "b", "c", "d"]));
        run(
            &db,
            5,
            Command::DeleteObject {
                bucket: "b".into(),
                key: "gone".into(),
                condition: None,
                version_id: None,
                bypass_governance: false,
            },
        );
        // A multipart upload in progress with one part on "b".
        let created = run(
            &db,
            6,
            Command::CreateMultipartUpload {
                upload: cairn_proto::meta::MultipartUpload {
                    bucket: "b".into(),
                    key: "mp".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
                nonce: 7,
            },
        );
        let crate::types::Response::Upload { upload } = created else {
            panic!("create: {created:?}");
        };
        let upload = cairn_proto::meta::MultipartUpload::decode(upload.as_slice()).expect("up");
        run(
            &db,
            7,
            Command::CommitPart {
                bucket: "b".into(),
                key: "mp".into(),
                upload_id: upload.upload_id.clone(),
                part: ObjectPart {
                    part_number: 1,
                    size: 300,
                    etag: "e".into(),
                    scheme: scheme(3, 0),
                    shards: shards("p1", &["b", "c", "d"]),
                    attempt_id: "p1".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            },
        );

        let reader = MetaReader::new(db.clone());
        let wanted: BTreeSet<String> = ["a", "b", "z"].iter().map(|s| s.to_string()).collect();
        let got = holdings(&reader, &wanted).expect("holdings");
        let a = &got["a"];
        assert_eq!((a.shards, a.bytes, a.objects), (3, 1500, 2));
        let b = &got["b"];
        assert_eq!((b.shards, b.bytes, b.objects), (2, 600, 2));
        let z = &got["z"];
        assert_eq!((z.shards, z.bytes, z.objects), (0, 0, 0));
    }
}
