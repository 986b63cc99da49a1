//! The heal queue in the state machine: which object versions need their shards checked and
//! rebuilt, who is working on them, and what healing has done so far.
//!
//! The queue is replicated like everything else, so a healer that dies, a gateway that
//! restarts or a meta leader that changes loses no work: an item stays queued until a healer
//! finishes it, and a lease that runs out (the healer died) hands it out again. Items are keyed
//! by version, so reporting the same damage twice queues it once.
//!
//! ```text
//! heal CF: 'i' | bucket | 0x00 | version id | 0x00 | object key -> HealItem
//!          's'                                                -> HealStats
//! ```
//! Bucket names and version ids never contain 0x00 and the object key comes last, so the
//! layout is unambiguous whatever the key holds.

use std::collections::HashSet;

use cairn_proto::meta::{HealItem, HealReason, HealStats, ObjectVersion, ShardPlacement};
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch, DB};

use super::{error, read_bucket};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_HEAL, CF_OBJECTS};
use crate::types::Response;
use cairn_proto::meta::MetaError;

const ITEM_PREFIX: u8 = b'i';
const STATS_KEY: &[u8] = b"s";
/// Length of the window over which the heal rate is measured.
const RATE_WINDOW_MS: i64 = 60_000;

/// The queue key of one object version.
pub(crate) fn item_key(bucket: &str, key: &str, version_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + bucket.len() + version_id.len() + key.len());
    out.push(ITEM_PREFIX);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(version_id.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The version number behind a printable version id (see [`super::version_id`]).
pub(crate) fn parse_version_id(version_id: &str) -> Option<u64> {
    version_id.parse().ok()
}

/// A queue item for `object`, stamped later by [`queue`].
pub(crate) fn item_for(object: &ObjectVersion, reason: HealReason) -> HealItem {
    HealItem {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        version_id: object.version_id.clone(),
        reason: reason as i32,
        size: object.size,
        ..Default::default()
    }
}

/// Whether any shard of `object` (its own or its parts') was not written by its PUT.
pub(crate) fn has_unwritten_shards(object: &ObjectVersion) -> bool {
    all_shards(object).any(|s| !s.written)
}

/// Every shard placement of a version: its own, then its parts'.
pub(crate) fn all_shards(object: &ObjectVersion) -> impl Iterator<Item = &ShardPlacement> {
    object
        .shards
        .iter()
        .chain(object.parts.iter().flat_map(|p| p.shards.iter()))
}

/// Adds `items` to the queue; an item already queued (or repeated here) keeps its place.
pub(crate) fn queue(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    items: impl IntoIterator<Item = HealItem>,
) -> Result<usize, StoreError> {
    let handle = cf(db, CF_HEAL)?;
    let mut seen = HashSet::new();
    let mut added = 0;
    for mut item in items {
        let key = item_key(&item.bucket, &item.key, &item.version_id);
        if !seen.insert(key.clone()) || db.get_cf(handle, &key)?.is_some() {
            continue;
        }
        item.queued_ms = now;
        item.lease_until_ms = 0;
        item.attempts = 0;
        batch.put_cf(handle, key, records::encode(&item));
        added += 1;
    }
    Ok(added)
}

/// Applies `QueueHeal`.
pub(super) fn apply_queue(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    raw_items: &[Vec<u8>],
) -> Result<Response, StoreError> {
    let mut items = Vec::with_capacity(raw_items.len());
    for raw in raw_items {
        match HealItem::decode(raw.as_slice()) {
            Ok(item) => items.push(item),
            Err(_) => return Ok(error(MetaError::InvalidArgument)),
        }
    }
    queue(db, batch, now, items)?;
    Ok(Response::Done)
}

/// Leases up to `max` items whose lease is free or ran out, oldest key first.
pub(super) fn claim(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    max: u32,
    lease_ms: u64,
) -> Result<Response, StoreError> {
    let handle = cf(db, CF_HEAL)?;
    let mut items = Vec::new();
    let lease = i64::try_from(lease_ms).unwrap_or(i64::MAX);
    for entry in db.iterator_cf(
        handle,
        IteratorMode::From(&[ITEM_PREFIX], rocksdb::Direction::Forward),
    ) {
        if items.len() >= max as usize {
            break;
        }
        let (key, raw) = entry?;
        if key.first() != Some(&ITEM_PREFIX) {
            break;
        }
        let mut item: HealItem = records::decode(&raw)?;
        if item.lease_until_ms > now {
            continue;
        }
        item.lease_until_ms = now.saturating_add(lease);
        item.attempts = item.attempts.saturating_add(1);
        batch.put_cf(handle, &key, records::encode(&item));
        items.push(item.encode_to_vec());
    }
    Ok(Response::HealItems { items })
}

/// What a finished heal item did, for the statistics.
pub(super) struct Finished<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: &'a str,
    pub healed: bool,
    pub bytes_rebuilt: u64,
    pub shards_rebuilt: u32,
    /// Nonzero: not finished; free the item again after this many ms.
    pub retry_in_ms: u64,
}

/// Removes a finished item and counts it, or (`retry_in_ms`) reschedules it.
pub(super) fn finish(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    done: Finished<'_>,
) -> Result<Response, StoreError> {
    let handle = cf(db, CF_HEAL)?;
    let key = item_key(done.bucket, done.key, done.version_id);
    if done.retry_in_ms > 0 {
        if let Some(raw) = db.get_cf(handle, &key)? {
            let mut item: HealItem = records::decode(&raw)?;
            let delay = i64::try_from(done.retry_in_ms).unwrap_or(i64::MAX);
            item.lease_until_ms = now.saturating_add(delay);
            batch.put_cf(handle, key, records::encode(&item));
        }
        return Ok(Response::Done);
    }
    batch.delete_cf(handle, key);
    let mut stats = read_stats(db)?;
    if done.healed {
        stats.objects_healed += 1;
    } else {
        stats.objects_failed += 1;
    }
    stats.shards_rebuilt += u64::from(done.shards_rebuilt);
    stats.bytes_rebuilt += done.bytes_rebuilt;
    if now - stats.window_start_ms > RATE_WINDOW_MS {
        stats.window_start_ms = now;
        stats.window_bytes = 0;
        stats.window_objects = 0;
    }
    stats.window_bytes += done.bytes_rebuilt;
    stats.window_objects += 1;
    batch.put_cf(handle, STATS_KEY, records::encode(&stats));
    Ok(Response::Done)
}

/// The heal statistics (zero before anything was healed).
pub(crate) fn read_stats(db: &DB) -> Result<HealStats, StoreError> {
    match db.get_cf(cf(db, CF_HEAL)?, STATS_KEY)? {
        Some(raw) => Ok(records::decode(&raw)?),
        None => Ok(HealStats::default()),
    }
}

/// Whether any queued item is free to claim at `now` (stops at the first one).
pub(crate) fn any_free(db: &DB, now: i64) -> Result<bool, StoreError> {
    let handle = cf(db, CF_HEAL)?;
    for entry in db.iterator_cf(
        handle,
        IteratorMode::From(&[ITEM_PREFIX], rocksdb::Direction::Forward),
    ) {
        let (key, raw) = entry?;
        if key.first() != Some(&ITEM_PREFIX) {
            break;
        }
        if records::decode::<HealItem>(&raw)?.lease_until_ms <= now {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every queued item, in key order.
pub(crate) fn read_items(db: &DB) -> Result<Vec<HealItem>, StoreError> {
    let handle = cf(db, CF_HEAL)?;
    let mut out = Vec::new();
    for entry in db.iterator_cf(
        handle,
        IteratorMode::From(&[ITEM_PREFIX], rocksdb::Direction::Forward),
    ) {
        let (key, raw) = entry?;
        if key.first() != Some(&ITEM_PREFIX) {
            break;
        }
        out.push(records::decode(&raw)?);
    }
    Ok(out)
}

/// One version of an object, by its version id.
pub(crate) fn read_version(
    db: &DB,
    bucket_id: u64,
    key: &str,
    version_id: &str,
) -> Result<Option<ObjectVersion>, StoreError> {
    let Some(version) = parse_version_id(version_id) else {
        return Ok(None);
    };
    match db.get_cf(
        cf(db, CF_OBJECTS)?,
        keys::object_key(bucket_id, key, version),
    )? {
        Some(raw) => Ok(Some(records::decode(&raw)?)),
        None => Ok(None),
    }
}

/// The replacement of shards of one segment of a version, as `ReplaceShards` names it.
pub(super) struct Replacement<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: &'a str,
    /// 0: the version's own shards; otherwise the part with this number.
    pub part_number: u32,
    pub replacements: &'a [(String, Vec<u8>)],
}

/// Points shards at their rebuilt copies if the version and each replaced shard are still
/// what the healer saw; otherwise changes nothing (`applied = false`).
///
/// Why both checks: between the healer's reads and this entry the object may have been
/// overwritten or deleted (then the rebuilt copies are garbage), or another healer may have
/// replaced the same shard already (then ours are). Either way the placement must not point
/// at shards that nothing else protects from garbage collection... and a rebuilt copy that GC
/// already tombstoned (the healer stalled past the grace) must never be recorded.
pub(super) fn replace_shards(
    db: &DB,
    batch: &mut WriteBatch,
    r: Replacement<'_>,
) -> Result<Response, StoreError> {
    let not_applied = Ok(Response::Replaced { applied: false });
    let Some(bucket) = read_bucket(db, r.bucket)? else {
        return not_applied;
    };
    let Some(version_number) = parse_version_id(r.version_id) else {
        return Ok(error(MetaError::InvalidArgument));
    };
    let Some(mut object) = read_version(db, bucket.id, r.key, r.version_id)? else {
        return not_applied;
    };
    let shards = if r.part_number == 0 {
        &mut object.shards
    } else {
        match object
            .parts
            .iter_mut()
            .find(|p| p.part_number == r.part_number)
        {
            Some(part) => &mut part.shards,
            None => return not_applied,
        }
    };
    for (old_key, raw) in r.replacements {
        let Ok(mut new) = ShardPlacement::decode(raw.as_slice()) else {
            return Ok(error(MetaError::InvalidArgument));
        };
        if super::gc::is_tombstoned(db, &new)? {
            return not_applied;
        }
        let Some(slot) = shards.iter_mut().find(|s| s.index == new.index) else {
            return not_applied;
        };
        if slot.shard_key != *old_key {
            return not_applied;
        }
        new.written = true;
        *slot = new;
    }
    batch.put_cf(
        cf(db, CF_OBJECTS)?,
        keys::object_key(bucket.id, r.key, version_number),
        records::encode(&object),
    );
    Ok(Response::Replaced { applied: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Request};

    fn run(db: &DB, index: u64, now: i64, command: Command) -> Response {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: now,
            command,
        };
        let response = super::super::apply(db, &mut batch, index, &request).expect("apply");
        db.write(batch).expect("write");
        response
    }

    fn item(key: &str) -> Vec<u8> {
        HealItem {
            bucket: "b".into(),
            key: key.into(),
            version_id: "00000000000000000002".into(),
            reason: HealReason::Read as i32,
            size: 10,
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn claimed(r: Response) -> Vec<HealItem> {
        match r {
            Response::HealItems { items } => items
                .iter()
                .map(|raw| HealItem::decode(raw.as_slice()).expect("item"))
                .collect(),
            other => panic!("claim: {other:?}"),
        }
    }

    #[test]
    fn items_queue_once_lease_expire_and_finish_into_the_statistics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        run(
            &db,
            1,
            1_000,
            Command::QueueHeal {
                items: vec![item("a"), item("b"), item("a")],
            },
        );
        // Reported again later: keeps its place (and its first time stamp).
        run(
            &db,
            2,
            2_000,
            Command::QueueHeal {
                items: vec![item("a")],
            },
        );
        let items = read_items(&db).expect("items");
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.queued_ms == 1_000));

        let first = claimed(run(
            &db,
            3,
            3_000,
            Command::ClaimHeal {
                max: 1,
                lease_ms: 500,
            },
        ));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].key, "a");
        // Leased: the next claim gets the other one, then nothing until the lease runs out.
        let second = claimed(run(
            &db,
            4,
            3_100,
            Command::ClaimHeal {
                max: 5,
                lease_ms: 500,
            },
        ));
        assert_eq!(
            second.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(claimed(run(
            &db,
            5,
            3_200,
            Command::ClaimHeal {
                max: 5,
                lease_ms: 500
            }
        ))
        .is_empty());
        let again = claimed(run(
            &db,
            6,
            3_550,
            Command::ClaimHeal {
                max: 5,
                lease_ms: 500,
            },
        ));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].key, "a");
        assert_eq!(again[0].attempts, 2);
        // A retryable failure reschedules the item instead of ending it.
        run(
            &db,
            10,
            3_700,
            Command::FinishHeal {
                bucket: "b".into(),
                key: "b".into(),
                version_id: "00000000000000000002".into(),
                healed: false,
                bytes_rebuilt: 0,
                shards_rebuilt: 0,
                retry_in_ms: 5_000,
            },
        );
        assert!(claimed(run(
            &db,
            11,
            8_000,
            Command::ClaimHeal {
                max: 5,
                lease_ms: 500
            }
        ))
        .iter()
        .all(|i| i.key != "b"));
        assert_eq!(read_items(&db).expect("items").len(), 2);
        assert_eq!(read_stats(&db).expect("stats").objects_failed, 0);

        run(
            &db,
            7,
            4_000,
            Command::FinishHeal {
                bucket: "b".into(),
                key: "a".into(),
                version_id: "00000000000000000002".into(),
                healed: true,
                bytes_rebuilt: 100,
                shards_rebuilt: 2,
                retry_in_ms: 0,
            },
        );
        run(
            &db,
            8,
            4_100,
            Command::FinishHeal {
                bucket: "b".into(),
                key: "b".into(),
                version_id: "00000000000000000002".into(),
                healed: false,
                bytes_rebuilt: 0,
                shards_rebuilt: 0,
                retry_in_ms: 0,
            },
        );
        assert!(read_items(&db).expect("items").is_empty());
        let stats = read_stats(&db).expect("stats");
        assert_eq!(
            (
                stats.objects_healed,
                stats.objects_failed,
                stats.shards_rebuilt,
                stats.bytes_rebuilt
            ),
            (1, 1, 2, 100)
        );
    }
}
