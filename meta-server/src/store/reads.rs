//! Read-only queries over the applied state.
//!
//! These read the local replica. Callers must first make the read linearizable (see
//! `crate::service`): `ensure_linearizable` on the leader waits until this replica has applied
//! everything committed before the read began.

mod multipart;
mod versions;

use std::sync::Arc;

pub use multipart::UploadsPage;
pub use versions::{VersionsPage, VersionsQuery};

use cairn_proto::meta::{BlobNode, Bucket, HealItem, HealStats, ObjectSummary, ObjectVersion};
use rocksdb::{IteratorMode, DB};

use super::{cf, StoreError, CF_BUCKETS, CF_OBJECTS};
use crate::keys;
use crate::records;

/// One page of a listing: keys and common prefixes in UTF-8 byte order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ListPage {
    /// Objects in this page.
    pub objects: Vec<ObjectSummary>,
    /// Common prefixes (rolled up by the delimiter) in this page.
    pub common_prefixes: Vec<String>,
    /// True when more keys or prefixes follow.
    pub is_truncated: bool,
    /// The last key or prefix returned (the `start_after` of the next page).
    pub next_start_after: String,
}

/// Queries over one meta node's applied state. Cheap to clone.
#[derive(Clone)]
pub struct MetaReader {
    db: Arc<DB>,
}

impl MetaReader {
    /// A reader over `db` (the database a `StateMachine` applies to).
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    /// The bucket called `name`, if it exists.
    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        crate::apply::read_bucket(&self.db, name)
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Result<Vec<Bucket>, StoreError> {
        let handle = cf(&self.db, CF_BUCKETS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(handle, IteratorMode::Start) {
            let (_, raw) = item?;
            out.push(records::decode(&raw)?);
        }
        Ok(out)
    }

    /// The current version of `key` in the bucket with id `bucket_id`.
    pub fn object(&self, bucket_id: u64, key: &str) -> Result<Option<ObjectVersion>, StoreError> {
        let handle = cf(&self.db, CF_OBJECTS)?;
        let start = keys::object_versions_start(bucket_id, key);
        let mut iter = self.db.raw_iterator_cf_opt(handle, super::within(&start));
        iter.seek(&start);
        match (iter.key(), iter.value()) {
            (Some(k), Some(v)) if k.starts_with(&start) => Ok(Some(records::decode(v)?)),
            _ => {
                iter.status()?;
                Ok(None)
            }
        }
    }

    /// One version of `key`, by its version id.
    pub fn object_version(
        &self,
        bucket_id: u64,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectVersion>, StoreError> {
        crate::apply::heal::read_version(&self.db, bucket_id, key, version_id)
    }

    /// The version of `key` that an S3 version id names (`null`: the null version).
    pub fn s3_version(
        &self,
        bucket_id: u64,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectVersion>, StoreError> {
        Ok(crate::apply::versions::find(&self.db, bucket_id, key, version_id)?.map(|(_, v)| v))
    }

    /// The committed version that places shard file `shard_key` on this node and disk.
    pub fn shard_owner(
        &self,
        shard_key: &str,
        node_id: &str,
        disk_id: &str,
    ) -> Result<Option<ObjectVersion>, StoreError> {
        let file = crate::apply::gc::ShardFile { node_id, disk_id };
        Ok(
            match crate::apply::gc::owner_of(&self.db, shard_key, &file)? {
                Some(crate::apply::gc::Owner::Version(v)) => Some(*v),
                _ => None,
            },
        )
    }

    /// Every queued heal item, in key order.
    pub fn heal_items(&self) -> Result<Vec<HealItem>, StoreError> {
        crate::apply::heal::read_items(&self.db)
    }

    /// Whether a heal item is free to claim at `now_ms`.
    pub fn heal_item_free(&self, now_ms: i64) -> Result<bool, StoreError> {
        crate::apply::heal::any_free(&self.db, now_ms)
    }

    /// The heal statistics.
    pub fn heal_stats(&self) -> Result<HealStats, StoreError> {
        crate::apply::heal::read_stats(&self.db)
    }

    /// Up to `limit` stored versions of `bucket_id` whose key starts with `prefix`, in key
    /// order, starting after the raw object key `after`; and the raw key to continue after
    /// (`None` at the end).
    pub fn versions_page(
        &self,
        bucket_id: u64,
        prefix: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<ObjectVersion>, Option<Vec<u8>>), StoreError> {
        self.scan_versions(&keys::object_prefix(bucket_id, prefix), after, limit)
    }

    /// Every stored version of every bucket, `limit` at a time (see [`Self::versions_page`]);
    /// `after` is a raw key of the objects column family.
    pub fn all_versions_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<ObjectVersion>, Option<Vec<u8>>), StoreError> {
        self.scan_versions(&[], after, limit)
    }

    /// Up to `limit` versions whose raw key starts with `start`, after the raw key `after`.
    fn scan_versions(
        &self,
        start: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<ObjectVersion>, Option<Vec<u8>>), StoreError> {
        let mut iter = self
            .db
            .raw_iterator_cf_opt(cf(&self.db, CF_OBJECTS)?, super::within(start));
        match after {
            Some(after) => {
                iter.seek(after);
                if iter.key() == Some(after) {
                    iter.next();
                }
            }
            None => iter.seek(start),
        }
        let mut out = Vec::new();
        let mut last = None;
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(start) || out.len() >= limit {
                break;
            }
            out.push(records::decode(v)?);
            last = Some(k.to_vec());
            iter.next();
        }
        iter.status()?;
        let more = out.len() >= limit;
        Ok((out, if more { last } else { None }))
    }

    /// The cluster secret, once one was set.
    pub fn cluster_secret(&self) -> Result<Option<String>, StoreError> {
        let handle = cf(&self.db, super::CF_CLUSTER)?;
        Ok(self
            .db
            .get_cf(handle, crate::apply::KEY_CLUSTER_SECRET)?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned()))
    }

    /// The cluster's lifecycle day in milliseconds, once fixed.
    pub fn lifecycle_day_ms(&self) -> Result<Option<i64>, StoreError> {
        crate::apply::lifecycle::read_day_ms(&self.db)
    }

    /// The S3 user with `access_key`, if there is one.
    pub fn user(
        &self,
        access_key: &str,
    ) -> Result<Option<cairn_proto::admin::IamUser>, StoreError> {
        crate::apply::iam::read_user(&self.db, access_key)
    }

    /// Every S3 user, by access key.
    pub fn users(&self) -> Result<Vec<cairn_proto::admin::IamUser>, StoreError> {
        crate::apply::iam::users(&self.db)
    }

    /// The custom policy called `name`, if there is one.
    pub fn policy(&self, name: &str) -> Result<Option<cairn_proto::admin::IamPolicy>, StoreError> {
        crate::apply::iam::read_policy(&self.db, name)
    }

    /// Every custom policy, by name.
    pub fn policies(&self) -> Result<Vec<cairn_proto::admin::IamPolicy>, StoreError> {
        crate::apply::iam::policies(&self.db)
    }

    /// Every registered blob node.
    pub fn blob_nodes(&self) -> Result<Vec<BlobNode>, StoreError> {
        crate::apply::read_blob_nodes(&self.db)
    }

    /// Lists current object versions in a bucket: one range scan from the first key after
    /// `start_after` that starts with `prefix`, rolling keys up into common prefixes at the
    /// first `delimiter` after the prefix. Whole common-prefix groups are skipped with one seek.
    pub fn list(
        &self,
        bucket_id: u64,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<ListPage, StoreError> {
        let handle = cf(&self.db, CF_OBJECTS)?;
        let scan_prefix = keys::object_prefix(bucket_id, prefix);
        let mut seek_to = scan_prefix.clone();
        if start_after.as_bytes() >= prefix.as_bytes() && !start_after.is_empty() {
            // The first position strictly after every version of `start_after`.
            seek_to = seek_to.max(keys::after_versions(bucket_id, start_after));
        }
        let mut page = ListPage::default();
        let mut iter = self
            .db
            .raw_iterator_cf_opt(handle, super::within(&scan_prefix));
        iter.seek(&seek_to);
        let mut last_key: Option<String> = None;
        let mut returned = 0usize;
        while let (Some(raw_key), Some(raw_value)) = (iter.key(), iter.value()) {
            if !raw_key.starts_with(&scan_prefix) {
                break;
            }
            let Some((_, key, _)) = keys::decode_object_key(raw_key) else {
                iter.next();
                continue;
            };
            if last_key.as_deref() == Some(key.as_str()) || key.as_str() <= start_after {
                // An older version of a key already seen, or not after the marker.
                iter.next();
                continue;
            }
            let common = common_prefix(&key, prefix, delimiter);
            if let Some(cp) = &common {
                if cp.as_str() <= start_after {
                    // This group was returned on an earlier page: jump past all of it.
                    skip_group(&mut iter, bucket_id, cp);
                    continue;
                }
                if !self.group_has_visible_key(bucket_id, cp)? {
                    // Every key in the group is deleted (its newest version is a delete
                    // marker): the group is not listed.
                    skip_group(&mut iter, bucket_id, cp);
                    continue;
                }
            }
            let object = match common {
                Some(_) => None,
                None => {
                    let object: records::ListedVersion = records::decode(raw_value)?;
                    if object.delete_marker {
                        // The key is deleted: neither it nor its older versions are listed.
                        last_key = Some(key);
                        iter.next();
                        continue;
                    }
                    Some(object)
                }
            };
            if returned == max_keys {
                page.is_truncated = true;
                break;
            }
            returned += 1;
            match (common, object) {
                (Some(cp), _) => {
                    page.next_start_after = cp.clone();
                    page.common_prefixes.push(cp.clone());
                    skip_group(&mut iter, bucket_id, &cp);
                    last_key = None;
                }
                (None, Some(object)) => {
                    page.next_start_after = key.clone();
                    page.objects.push(ObjectSummary {
                        key: key.clone(),
                        size: object.size,
                        etag: object.etag,
                        last_modified_ms: object.last_modified_ms,
                    });
                    last_key = Some(key);
                    iter.next();
                }
                (None, None) => iter.next(),
            }
        }
        iter.status()?;
        Ok(page)
    }

    /// Whether some key under the common prefix `group` has a newest version that is not a
    /// delete marker. Stops at the first such key (the first key, unless keys are deleted).
    fn group_has_visible_key(&self, bucket_id: u64, group: &str) -> Result<bool, StoreError> {
        let scan = keys::object_prefix(bucket_id, group);
        let mut iter = self
            .db
            .raw_iterator_cf_opt(cf(&self.db, CF_OBJECTS)?, super::within(&scan));
        iter.seek(&scan);
        while let (Some(raw_key), Some(raw_value)) = (iter.key(), iter.value()) {
            if !raw_key.starts_with(&scan) {
                break;
            }
            let object: records::ListedVersion = records::decode(raw_value)?;
            if !object.delete_marker {
                return Ok(true);
            }
            // Past every version of this key.
            let Some((_, key, _)) = keys::decode_object_key(raw_key) else {
                iter.next();
                continue;
            };
            iter.seek(keys::after_versions(bucket_id, &key));
        }
        iter.status()?;
        Ok(false)
    }
}

/// The common prefix `key` rolls up into, if the delimiter occurs after `prefix`.
pub(super) fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter)
        .map(|at| key[..prefix.len() + at + delimiter.len()].to_string())
}

/// Moves `iter` to the first key that does not start with `group`.
pub(super) fn skip_group(iter: &mut rocksdb::DBRawIterator<'_>, bucket_id: u64, group: &str) {
    match keys::prefix_successor(&keys::object_prefix(bucket_id, group)) {
        Some(next) => iter.seek(next),
        None => iter.seek_to_last_then_past(),
    }
}

/// Positioning past the end, for a group that extends to the end of the key space.
trait SeekPastEnd {
    fn seek_to_last_then_past(&mut self);
}

impl SeekPastEnd for rocksdb::DBRawIterator<'_> {
    fn seek_to_last_then_past(&mut self) {
        self.seek_to_last();
        self.next();
    }
}
