//! S3 bucket versioning in the state machine: which versions a write or a DELETE replaces,
//! delete markers, and finding a version by the id S3 clients see.
//!
//! Every version of a key is its own record, `bucket id | escaped key | !index`, so the
//! newest comes first. A record's `version_id` is always derived from its log index (heal
//! and GC address versions by it); S3 sees that id only for records written while the
//! bucket's versioning was Enabled (`versioned = true`). Every other record is the key's
//! `null` version, and a key has at most one: an unversioned bucket's write replaces every
//! version (there is only ever one), a suspended bucket's write or DELETE replaces only the
//! `null` one, an enabled bucket's replaces nothing.
//!
//! Durability: a version is removed only by (a) a write or DELETE in an unversioned bucket,
//! (b) a write or DELETE in a suspended bucket, and then only the `null` version, or (c) a
//! DELETE naming that version. Every non-current version stays a record in `objects`, and
//! GC's `owner_of` and the heal scans read every record of a key, so its shards stay live and
//! are healed like the current version's.

use cairn_proto::meta::{Bucket, MetaError, ObjectVersion, VersioningStatus};
use prost::Message;
use rocksdb::{WriteBatch, DB};

use super::{error, read_blob_nodes, read_bucket, refresh_addresses, version_id};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_BUCKETS, CF_OBJECTS};
use crate::types::Response;

/// The version id S3 gives versions written while versioning was not Enabled.
pub const NULL_VERSION: &str = "null";

/// The versioning state of a bucket (an unknown value reads as unversioned).
pub fn status(bucket: &Bucket) -> VersioningStatus {
    VersioningStatus::try_from(bucket.versioning).unwrap_or(VersioningStatus::Unversioned)
}

/// The version id S3 clients see for `object`: its own, or `null`.
pub fn s3_version_id(object: &ObjectVersion) -> &str {
    if object.versioned {
        &object.version_id
    } else {
        NULL_VERSION
    }
}

/// `SetBucketVersioning`: Enabled or Suspended. Unversioned cannot be set: once enabled, a
/// bucket is versioned or suspended for good, as in S3.
pub(super) fn set_status(
    db: &DB,
    batch: &mut WriteBatch,
    name: &str,
    wanted: i32,
) -> Result<Response, StoreError> {
    let Some(mut bucket) = read_bucket(db, name)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    match VersioningStatus::try_from(wanted) {
        Ok(VersioningStatus::Enabled) => {}
        // Object Lock needs every version kept: its versioning cannot be suspended.
        Ok(VersioningStatus::Suspended) if bucket.object_lock_enabled => {
            return Ok(error(MetaError::InvalidBucketState))
        }
        Ok(VersioningStatus::Suspended) => {}
        _ => return Ok(error(MetaError::InvalidArgument)),
    }
    // Suspending a never-versioned bucket is accepted, as in S3: writes stay `null`, but the
    // bucket is no longer "never versioned".
    bucket.versioning = wanted;
    batch.put_cf(
        cf(db, CF_BUCKETS)?,
        name.as_bytes(),
        records::encode(&bucket),
    );
    Ok(Response::Bucket {
        bucket: bucket.encode_to_vec(),
    })
}

/// Writes `object` as the new version of its key, committed at `index`, and removes what it
/// replaces under the bucket's versioning state. Returns the newest version removed (its
/// shards are garbage now).
pub(super) fn put_version(
    db: &DB,
    batch: &mut WriteBatch,
    bucket: &Bucket,
    object: &mut ObjectVersion,
    index: u64,
) -> Result<Option<ObjectVersion>, StoreError> {
    object.version_id = version_id(index);
    let replaced = match status(bucket) {
        VersioningStatus::Unversioned => {
            object.versioned = false;
            remove_all(db, batch, bucket.id, &object.key)?
        }
        VersioningStatus::Suspended => {
            object.versioned = false;
            remove_null(db, batch, bucket.id, &object.key)?
        }
        VersioningStatus::Enabled => {
            object.versioned = true;
            None
        }
    };
    batch.put_cf(
        cf(db, CF_OBJECTS)?,
        keys::object_key(bucket.id, &object.key, index),
        records::encode(&*object),
    );
    Ok(replaced)
}

/// `DeleteObject` without a version id: removes the object (unversioned), or adds a delete
/// marker (enabled: a new version; suspended: the `null` version, replacing the old one).
pub(super) fn delete_current(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key): (&str, &str),
    index: u64,
    now: i64,
) -> Result<Response, StoreError> {
    let Some(bucket) = read_bucket(db, bucket)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    if status(&bucket) == VersioningStatus::Unversioned {
        let deleted = remove_all(db, batch, bucket.id, key)?;
        return Ok(Response::Deleted {
            deleted: deleted.map(|d| d.encode_to_vec()),
            marker: None,
        });
    }
    let mut marker = ObjectVersion {
        bucket: bucket.name.clone(),
        key: key.to_string(),
        delete_marker: true,
        last_modified_ms: now,
        ..Default::default()
    };
    let replaced = put_version(db, batch, &bucket, &mut marker, index)?;
    Ok(Response::Deleted {
        deleted: replaced.map(|d| d.encode_to_vec()),
        marker: Some(marker.encode_to_vec()),
    })
}

/// `DeleteObject` with a version id: removes exactly that version for good (a missing one is
/// no error, as in S3). Removing the newest makes the next one current; removing a delete
/// marker thereby brings the version under it back. A version that Object Lock protects at
/// `now` stays (`OBJECT_LOCKED`); `bypass_governance` lifts a GOVERNANCE retention.
pub(super) fn delete_version(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key, version): (&str, &str, &str),
    now: i64,
    bypass_governance: bool,
) -> Result<Response, StoreError> {
    let Some(bucket) = read_bucket(db, bucket)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    if !is_version_id(version) {
        return Ok(error(MetaError::InvalidArgument));
    }
    let found = find(db, bucket.id, key, version)?;
    if let Some((_, object)) = &found {
        if super::object_lock::protects(object.lock.as_ref(), now, bypass_governance) {
            return Ok(error(MetaError::ObjectLocked));
        }
    }
    let deleted = match found {
        Some((raw_key, mut object)) => {
            batch.delete_cf(cf(db, CF_OBJECTS)?, raw_key);
            refresh_addresses(&mut object, &read_blob_nodes(db)?);
            Some(object.encode_to_vec())
        }
        None => None,
    };
    Ok(Response::Deleted {
        deleted,
        marker: None,
    })
}

/// The version a per-version command (tags, Object Lock) acts on, with its raw key: the
/// current version of `key` when `version` is empty, else the version it names. A delete
/// marker has nothing to set: `NO_SUCH_KEY` when it is current (S3's 404), else
/// `METHOD_NOT_ALLOWED` (S3's 405).
pub(super) fn find_target(
    db: &DB,
    bucket_id: u64,
    key: &str,
    version: &str,
) -> Result<Result<(Vec<u8>, ObjectVersion), MetaError>, StoreError> {
    let found = if version.is_empty() {
        let start = keys::object_versions_start(bucket_id, key);
        let mut iter = db.raw_iterator_cf_opt(cf(db, CF_OBJECTS)?, crate::store::within(&start));
        iter.seek(&start);
        match (iter.key(), iter.value()) {
            (Some(k), Some(v)) if k.starts_with(&start) => {
                Some((k.to_vec(), records::decode::<ObjectVersion>(v)?))
            }
            _ => {
                iter.status()?;
                return Ok(Err(MetaError::NoSuchKey));
            }
        }
    } else {
        if !is_version_id(version) {
            return Ok(Err(MetaError::InvalidArgument));
        }
        find(db, bucket_id, key, version)?
    };
    Ok(match found {
        None => Err(MetaError::NoSuchVersion),
        Some((_, object)) if object.delete_marker && version.is_empty() => {
            Err(MetaError::NoSuchKey)
        }
        Some((_, object)) if object.delete_marker => Err(MetaError::MethodNotAllowed),
        Some(found) => Ok(found),
    })
}

/// Whether `id` can name a version: `null`, or the decimal log index form of
/// [`version_id`].
pub fn is_version_id(id: &str) -> bool {
    id == NULL_VERSION || (id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The version of `key` that `version` names (`null`: the null version; otherwise the
/// version committed at that log index), with its raw key.
pub fn find(
    db: &DB,
    bucket_id: u64,
    key: &str,
    version: &str,
) -> Result<Option<(Vec<u8>, ObjectVersion)>, StoreError> {
    if version == NULL_VERSION {
        let start = keys::object_versions_start(bucket_id, key);
        let mut iter = db.raw_iterator_cf_opt(cf(db, CF_OBJECTS)?, crate::store::within(&start));
        iter.seek(&start);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(&start) {
                break;
            }
            let object: ObjectVersion = records::decode(v)?;
            if !object.versioned {
                return Ok(Some((k.to_vec(), object)));
            }
            iter.next();
        }
        iter.status()?;
        return Ok(None);
    }
    let Some(number) = super::heal::parse_version_id(version) else {
        return Ok(None);
    };
    let raw_key = keys::object_key(bucket_id, key, number);
    match db.get_cf(cf(db, CF_OBJECTS)?, &raw_key)? {
        Some(raw) => Ok(Some((raw_key, records::decode(&raw)?))),
        None => Ok(None),
    }
}

/// Deletes every stored version of `key` and returns the newest one (an unversioned bucket
/// has at most one).
pub(super) fn remove_all(
    db: &DB,
    batch: &mut WriteBatch,
    bucket_id: u64,
    key: &str,
) -> Result<Option<ObjectVersion>, StoreError> {
    remove_matching(db, batch, bucket_id, key, |_| true)
}

/// Deletes the `null` version(s) of `key` and returns the newest one removed.
fn remove_null(
    db: &DB,
    batch: &mut WriteBatch,
    bucket_id: u64,
    key: &str,
) -> Result<Option<ObjectVersion>, StoreError> {
    remove_matching(db, batch, bucket_id, key, |v| !v.versioned)
}

fn remove_matching(
    db: &DB,
    batch: &mut WriteBatch,
    bucket_id: u64,
    key: &str,
    matches: impl Fn(&ObjectVersion) -> bool,
) -> Result<Option<ObjectVersion>, StoreError> {
    let objects = cf(db, CF_OBJECTS)?;
    let start = keys::object_versions_start(bucket_id, key);
    let mut newest: Option<ObjectVersion> = None;
    for item in db.iterator_cf_opt(
        objects,
        crate::store::within(&start),
        rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
    ) {
        let (raw_key, raw_value) = item?;
        if !raw_key.starts_with(&start) {
            break;
        }
        let version = records::decode::<ObjectVersion>(&raw_value)?;
        if !matches(&version) {
            continue;
        }
        if newest.is_none() {
            newest = Some(version);
        }
        // Durability: only the versions the caller's versioning rule replaces are removed;
        // any other (older, versioned) one keeps its record and so its shards.
        batch.delete_cf(objects, raw_key);
    }
    if let Some(version) = newest.as_mut() {
        refresh_addresses(version, &read_blob_nodes(db)?);
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MetaReader, VersionsQuery};
    use crate::types::{Command, Request};
    use cairn_proto::meta::ShardPlacement;

    fn run(db: &DB, index: u64, command: Command) -> Response {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000 + index as i64,
            command,
        };
        let response = super::super::apply(db, &mut batch, index, &request).expect("apply");
        db.write(batch).expect("write");
        response
    }

    fn commit(key: &str, attempt: &str) -> Command {
        Command::CommitObject {
            object: ObjectVersion {
                bucket: "b".into(),
                key: key.into(),
                size: 1,
                etag: attempt.into(),
                shards: vec![ShardPlacement {
                    node_id: "n1".into(),
                    disk_id: "d1".into(),
                    shard_key: format!("{attempt}.0"),
                    written: true,
                    ..Default::default()
                }],
                upload_id: attempt.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            condition: None,
        }
    }

    fn delete(key: &str, version: Option<&str>) -> Command {
        Command::DeleteObject {
            bucket: "b".into(),
            key: key.into(),
            condition: None,
            version_id: version.map(str::to_string),
            bypass_governance: false,
        }
    }

    fn set(status: VersioningStatus) -> Command {
        Command::SetBucketVersioning {
            name: "b".into(),
            status: status as i32,
        }
    }

    fn decode(raw: &Option<Vec<u8>>) -> Option<ObjectVersion> {
        raw.as_ref()
            .map(|r| ObjectVersion::decode(r.as_slice()).expect("decode"))
    }

    /// Every version of `key` as (S3 id, etag, marker), newest first.
    fn versions(reader: &MetaReader, key: &str) -> Vec<(String, String, bool)> {
        let page = reader
            .list_versions(
                1,
                VersionsQuery {
                    prefix: key,
                    delimiter: "",
                    key_marker: "",
                    version_id_marker: "",
                    max_keys: 1000,
                },
            )
            .expect("list");
        page.versions
            .into_iter()
            .filter(|v| v.key == key)
            .map(|v| (v.version_id, v.etag, v.delete_marker))
            .collect()
    }

    fn collect(db: &DB, index: u64, keys: &[&str]) -> Vec<String> {
        match run(
            db,
            index,
            Command::CollectGarbage {
                node_id: "n1".into(),
                disk_id: "d1".into(),
                shard_keys: keys.iter().map(|k| k.to_string()).collect(),
            },
        ) {
            Response::Garbage { shard_keys } => shard_keys,
            other => panic!("collect: {other:?}"),
        }
    }

    #[test]
    fn enabled_buckets_keep_versions_and_markers_hide_and_restore_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        let reader = MetaReader::new(db.clone());
        // Bucket id 1.
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        assert_eq!(
            run(&db, 2, set(VersioningStatus::Unversioned)),
            error(MetaError::InvalidArgument)
        );
        run(&db, 3, commit("k", "null0"));
        run(&db, 4, set(VersioningStatus::Enabled));
        for (i, attempt) in ["v5", "v6", "v7"].iter().enumerate() {
            let Response::Committed {
                object, replaced, ..
            } = run(&db, 5 + i as u64, commit("k", attempt))
            else {
                panic!("commit");
            };
            assert_eq!(replaced, None, "an enabled bucket replaces nothing");
            let object = ObjectVersion::decode(object.as_slice()).expect("decode");
            assert!(object.versioned);
            assert_eq!(s3_version_id(&object), version_id(5 + i as u64));
        }
        assert_eq!(
            versions(&reader, "k"),
            vec![
                (version_id(7), "v7".into(), false),
                (version_id(6), "v6".into(), false),
                (version_id(5), "v5".into(), false),
                ("null".into(), "null0".into(), false),
            ]
        );
        // Every version's shard is live for GC.
        assert!(collect(&db, 8, &["null0.0", "v5.0", "v6.0", "v7.0"]).is_empty());

        // A non-current version is healed like the current one: its shard can be replaced,
        // and the rebuilt copy is what GC keeps.
        let rebuilt = ShardPlacement {
            node_id: "n1".into(),
            disk_id: "d1".into(),
            // A healer names rebuilt shards `{attempt}.{index}.{nonce}`.
            shard_key: "v5.0.h".into(),
            written: true,
            ..Default::default()
        };
        assert_eq!(
            run(
                &db,
                20,
                Command::ReplaceShards {
                    bucket: "b".into(),
                    key: "k".into(),
                    version_id: version_id(5),
                    part_number: 0,
                    replacements: vec![("v5.0".into(), rebuilt.encode_to_vec())],
                },
            ),
            Response::Replaced { applied: true }
        );
        let healed = reader
            .s3_version(1, "k", &version_id(5))
            .expect("read")
            .expect("v5");
        assert_eq!(healed.shards[0].shard_key, "v5.0.h");
        assert_eq!(collect(&db, 21, &["v5.0", "v5.0.h"]), ["v5.0"]);

        // A delete adds a marker and removes nothing.
        let Response::Deleted { deleted, marker } = run(&db, 9, delete("k", None)) else {
            panic!("delete");
        };
        assert_eq!(deleted, None);
        let marker = decode(&marker).expect("a marker");
        assert!(marker.delete_marker && marker.versioned);
        assert!(
            reader
                .object(1, "k")
                .expect("read")
                .expect("current")
                .delete_marker
        );
        assert!(reader
            .list(1, "", "", "", 1000)
            .expect("list")
            .objects
            .is_empty());
        assert!(collect(&db, 10, &["v7.0"]).is_empty());

        // Deleting the marker by id brings v7 back.
        let Response::Deleted {
            deleted,
            marker: None,
        } = run(&db, 11, delete("k", Some(&version_id(9))))
        else {
            panic!("delete marker");
        };
        assert!(decode(&deleted).expect("the marker").delete_marker);
        assert_eq!(
            reader.object(1, "k").expect("read").expect("current").etag,
            "v7"
        );

        // Deleting one version by id removes exactly it; its shard becomes garbage.
        let Response::Deleted { deleted, .. } = run(&db, 12, delete("k", Some(&version_id(6))))
        else {
            panic!("delete version");
        };
        assert_eq!(decode(&deleted).expect("v6").etag, "v6");
        assert_eq!(
            collect(&db, 13, &["v5.0.h", "v6.0", "v7.0", "null0.0"]),
            ["v6.0"]
        );
        // A missing version, and a malformed id.
        assert_eq!(
            run(&db, 14, delete("k", Some(&version_id(6)))),
            Response::Deleted {
                deleted: None,
                marker: None
            }
        );
        assert_eq!(
            run(&db, 15, delete("k", Some("nope"))),
            error(MetaError::InvalidArgument)
        );
        // The null version by name.
        assert_eq!(
            reader
                .s3_version(1, "k", "null")
                .expect("read")
                .expect("null")
                .etag,
            "null0"
        );
        // The bucket cannot be deleted while versions remain.
        assert_eq!(
            run(&db, 16, Command::DeleteBucket { name: "b".into() }),
            error(MetaError::BucketNotEmpty)
        );
    }

    #[test]
    fn suspended_writes_replace_only_the_null_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        let reader = MetaReader::new(db.clone());
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        run(&db, 2, set(VersioningStatus::Enabled));
        run(&db, 3, commit("k", "v3"));
        run(&db, 4, set(VersioningStatus::Suspended));
        let Response::Committed { replaced, .. } = run(&db, 5, commit("k", "n5")) else {
            panic!("commit");
        };
        assert_eq!(replaced, None, "no null version yet");
        let Response::Committed { replaced, .. } = run(&db, 6, commit("k", "n6")) else {
            panic!("commit");
        };
        assert_eq!(decode(&replaced).expect("n5").etag, "n5");
        assert_eq!(
            versions(&reader, "k"),
            vec![
                ("null".into(), "n6".into(), false),
                (version_id(3), "v3".into(), false),
            ]
        );
        // A suspended delete: a null marker replacing the null version.
        let Response::Deleted { deleted, marker } = run(&db, 7, delete("k", None)) else {
            panic!("delete");
        };
        assert_eq!(decode(&deleted).expect("n6").etag, "n6");
        let marker = decode(&marker).expect("marker");
        assert_eq!(s3_version_id(&marker), "null");
        assert_eq!(
            versions(&reader, "k"),
            vec![
                ("null".into(), String::new(), true),
                (version_id(3), "v3".into(), false),
            ]
        );
        assert_eq!(collect(&db, 8, &["v3.0", "n5.0", "n6.0"]), ["n5.0", "n6.0"]);
    }

    #[test]
    fn unversioned_buckets_behave_as_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        let reader = MetaReader::new(db.clone());
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        run(&db, 2, commit("k", "a"));
        let Response::Committed { replaced, .. } = run(&db, 3, commit("k", "b")) else {
            panic!("commit");
        };
        assert_eq!(decode(&replaced).expect("a").etag, "a");
        assert_eq!(
            versions(&reader, "k"),
            vec![("null".into(), "b".into(), false)]
        );
        let Response::Deleted { deleted, marker } = run(&db, 4, delete("k", None)) else {
            panic!("delete");
        };
        assert_eq!(marker, None);
        assert_eq!(decode(&deleted).expect("b").etag, "b");
        assert!(versions(&reader, "k").is_empty());
    }

    #[test]
    fn version_listings_page_through_versions_and_markers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        let reader = MetaReader::new(db.clone());
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        run(&db, 2, commit("a", "a2"));
        run(&db, 3, set(VersioningStatus::Enabled));
        let mut index = 4;
        for key in ["a", "b", "c/1", "c/2"] {
            for _ in 0..2 {
                run(&db, index, commit(key, &format!("x{index}")));
                index += 1;
            }
        }
        run(&db, index, delete("b", None));
        let mut all = Vec::new();
        let (mut key_marker, mut version_marker) = (String::new(), String::new());
        loop {
            let page = reader
                .list_versions(
                    1,
                    VersionsQuery {
                        prefix: "",
                        delimiter: "",
                        key_marker: &key_marker,
                        version_id_marker: &version_marker,
                        max_keys: 2,
                    },
                )
                .expect("list");
            assert!(page.versions.len() <= 2);
            all.extend(
                page.versions
                    .iter()
                    .map(|v| (v.key.clone(), v.version_id.clone(), v.is_latest)),
            );
            if !page.is_truncated {
                break;
            }
            key_marker = page.next_key_marker;
            version_marker = page.next_version_id_marker;
        }
        let expected: Vec<(String, String, bool)> = vec![
            ("a".into(), version_id(5), true),
            ("a".into(), version_id(4), false),
            ("a".into(), "null".into(), false),
            ("b".into(), version_id(12), true),
            ("b".into(), version_id(7), false),
            ("b".into(), version_id(6), false),
            ("c/1".into(), version_id(9), true),
            ("c/1".into(), version_id(8), false),
            ("c/2".into(), version_id(11), true),
            ("c/2".into(), version_id(10), false),
        ];
        assert_eq!(all, expected);
        // A page that resumes after a key's `null` version starts at the next key.
        let page = reader
            .list_versions(
                1,
                VersionsQuery {
                    prefix: "",
                    delimiter: "",
                    key_marker: "a",
                    version_id_marker: "null",
                    max_keys: 1,
                },
            )
            .expect("list");
        assert_eq!(page.versions[0].key, "b");
        assert!(page.versions[0].delete_marker && page.versions[0].is_latest);
        // With a delimiter, c/ is one entry; a deleted key is not listed by ListObjects.
        let page = reader
            .list_versions(
                1,
                VersionsQuery {
                    prefix: "",
                    delimiter: "/",
                    key_marker: "",
                    version_id_marker: "",
                    max_keys: 1000,
                },
            )
            .expect("list");
        assert_eq!(page.common_prefixes, ["c/"]);
        assert_eq!(page.versions.len(), 6);
        let listed = reader.list(1, "", "/", "", 1000).expect("list");
        let keys: Vec<&str> = listed.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a"]);
        assert_eq!(listed.common_prefixes, ["c/"]);
    }
}
