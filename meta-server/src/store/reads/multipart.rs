//! Read-only queries over multipart uploads: one upload, a page of its parts, a page of a
//! bucket's uploads. Each is one range scan of the `multipart` column family.

use cairn_proto::meta::{MultipartUpload, ObjectPart};

use super::{common_prefix, MetaReader};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_MULTIPART};

/// One page of a bucket's multipart uploads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UploadsPage {
    /// Uploads in this page, by key then upload id.
    pub uploads: Vec<MultipartUpload>,
    /// Common prefixes (rolled up by the delimiter) in this page.
    pub common_prefixes: Vec<String>,
    /// True when more uploads or prefixes follow.
    pub is_truncated: bool,
    /// The last key or common prefix returned.
    pub next_key_marker: String,
    /// The last upload id returned (empty when the page ended on a common prefix).
    pub next_upload_id_marker: String,
}

impl MetaReader {
    /// The upload `upload_id` of `key` in the bucket with id `bucket_id`, if in progress.
    pub fn upload(
        &self,
        bucket_id: u64,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<MultipartUpload>, StoreError> {
        crate::apply::multipart::read_upload(&self.db, bucket_id, key, upload_id)
    }

    /// Up to `max` parts of an upload numbered above `after`, without their placements, and
    /// whether more follow.
    pub fn parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(Vec<ObjectPart>, bool), StoreError> {
        let prefix = keys::parts_prefix(upload_id);
        let start = match after.checked_add(1) {
            Some(next) => keys::part_key(upload_id, next),
            None => return Ok((Vec::new(), false)),
        };
        let mut iter = self.db.raw_iterator_cf(cf(&self.db, CF_MULTIPART)?);
        iter.seek(&start);
        let mut parts = Vec::new();
        while let (Some(raw_key), Some(raw_value)) = (iter.key(), iter.value()) {
            if !raw_key.starts_with(&prefix) {
                break;
            }
            if parts.len() == max {
                return Ok((parts, true));
            }
            let part: ObjectPart = records::decode(raw_value)?;
            parts.push(ObjectPart {
                shards: Vec::new(),
                ..part
            });
            iter.next();
        }
        iter.status()?;
        Ok((parts, false))
    }

    /// Up to `limit` parts (with their placements) of every upload in progress, after the raw
    /// key `after`; and the raw key to continue after (`None` at the end).
    pub fn all_parts_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<ObjectPart>, Option<Vec<u8>>), StoreError> {
        let prefix = keys::all_parts_prefix();
        let mut iter = self.db.raw_iterator_cf(cf(&self.db, CF_MULTIPART)?);
        match after {
            Some(after) => {
                iter.seek(after);
                if iter.key() == Some(after) {
                    iter.next();
                }
            }
            None => iter.seek(&prefix),
        }
        let mut parts = Vec::new();
        let mut last = None;
        while let (Some(raw_key), Some(raw_value)) = (iter.key(), iter.value()) {
            if !raw_key.starts_with(&prefix) || parts.len() >= limit {
                break;
            }
            parts.push(records::decode(raw_value)?);
            last = Some(raw_key.to_vec());
            iter.next();
        }
        iter.status()?;
        let more = parts.len() >= limit;
        Ok((parts, if more { last } else { None }))
    }

    /// Lists the uploads in progress in a bucket, like [`MetaReader::list`] lists objects:
    /// keys starting with `prefix`, rolled up at the first `delimiter` after it, starting
    /// after `key_marker` (or after `upload_id_marker` among the uploads of `key_marker`),
    /// at most `max` uploads and prefixes together.
    pub fn uploads(
        &self,
        bucket_id: u64,
        prefix: &str,
        delimiter: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: usize,
    ) -> Result<UploadsPage, StoreError> {
        let scan_prefix = keys::upload_prefix(bucket_id, prefix);
        let mut seek_to = scan_prefix.clone();
        if !key_marker.is_empty() && key_marker >= prefix {
            let after = if keys::is_upload_id(upload_id_marker) {
                // Upload ids have a fixed length, so appending a byte gives the first key
                // strictly after this one and before the next id of the same object key.
                let mut k = keys::upload_key(bucket_id, key_marker, upload_id_marker);
                k.push(0);
                k
            } else {
                // Past every upload of the marker key (its terminator 0x00 0x01 becomes
                // 0x00 0x02), but before the keys that extend it.
                let mut k = keys::upload_key_start(bucket_id, key_marker);
                if let Some(last) = k.last_mut() {
                    *last += 1;
                }
                k
            };
            seek_to = seek_to.max(after);
        }
        let mut page = UploadsPage::default();
        let mut iter = self.db.raw_iterator_cf(cf(&self.db, CF_MULTIPART)?);
        iter.seek(&seek_to);
        let mut returned = 0usize;
        while let (Some(raw_key), Some(raw_value)) = (iter.key(), iter.value()) {
            if !raw_key.starts_with(&scan_prefix) {
                break;
            }
            let Some((_, key, upload_id)) = keys::decode_upload_key(raw_key) else {
                iter.next();
                continue;
            };
            let common = common_prefix(&key, prefix, delimiter);
            if let Some(cp) = &common {
                if cp.as_str() <= key_marker {
                    // Returned on an earlier page: jump past the whole group.
                    skip_group(&mut iter, bucket_id, cp);
                    continue;
                }
            }
            if returned == max {
                page.is_truncated = true;
                break;
            }
            returned += 1;
            match common {
                Some(cp) => {
                    page.next_key_marker = cp.clone();
                    page.next_upload_id_marker = String::new();
                    skip_group(&mut iter, bucket_id, &cp);
                    page.common_prefixes.push(cp);
                }
                None => {
                    let upload: MultipartUpload = records::decode(raw_value)?;
                    page.next_key_marker = key;
                    page.next_upload_id_marker = upload_id;
                    page.uploads.push(upload);
                    iter.next();
                }
            }
        }
        iter.status()?;
        Ok(page)
    }
}

/// Moves `iter` to the first upload whose key does not start with `group`.
fn skip_group(iter: &mut rocksdb::DBRawIterator<'_>, bucket_id: u64, group: &str) {
    match keys::prefix_successor(&keys::upload_prefix(bucket_id, group)) {
        Some(next) => iter.seek(next),
        None => {
            iter.seek_to_last();
            iter.next();
        }
    }
}
