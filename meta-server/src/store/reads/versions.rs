//! ListObjectVersions: every version and delete marker under a prefix, by key and newest
//! first within a key (the order of the `objects` column family), in one range scan.

use cairn_proto::meta::{ObjectVersion, VersionSummary};

use super::{common_prefix, skip_group, MetaReader};
use crate::apply::versions::{find, s3_version_id};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_OBJECTS};

/// What a version listing asks for.
#[derive(Debug, Clone, Copy)]
pub struct VersionsQuery<'a> {
    /// Only keys that start with this.
    pub prefix: &'a str,
    /// Roll keys up into common prefixes at the first occurrence after `prefix` (empty: no).
    pub delimiter: &'a str,
    /// Versions of keys after this one, and, with `version_id_marker`, versions of this key
    /// older than that version.
    pub key_marker: &'a str,
    /// An S3 version id (`null` names the null version); empty: none.
    pub version_id_marker: &'a str,
    /// At most this many versions and common prefixes together.
    pub max_keys: usize,
}

/// One page of a version listing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VersionsPage {
    /// Versions and delete markers, by key, newest first within a key.
    pub versions: Vec<VersionSummary>,
    /// Common prefixes (rolled up by the delimiter).
    pub common_prefixes: Vec<String>,
    /// True when more versions or prefixes follow.
    pub is_truncated: bool,
    /// The last key or common prefix returned.
    pub next_key_marker: String,
    /// The S3 version id of the last version returned (empty after a common prefix).
    pub next_version_id_marker: String,
}

impl MetaReader {
    /// One page of the versions of bucket `bucket_id` (see [`VersionsQuery`]).
    pub fn list_versions(
        &self,
        bucket_id: u64,
        q: VersionsQuery<'_>,
    ) -> Result<VersionsPage, StoreError> {
        let scan_prefix = keys::object_prefix(bucket_id, q.prefix);
        let mut seek_to = scan_prefix.clone();
        // The key whose versions the scan starts in the middle of: none of them is the latest.
        let mut last_key: Option<String> = None;
        let mut skip_exact: Option<Vec<u8>> = None;
        if !q.key_marker.is_empty() {
            let start = if q.version_id_marker.is_empty() {
                keys::after_versions(bucket_id, q.key_marker)
            } else {
                last_key = Some(q.key_marker.to_string());
                match find(&self.db, bucket_id, q.key_marker, q.version_id_marker)? {
                    Some((raw, _)) => {
                        skip_exact = Some(raw.clone());
                        raw
                    }
                    // The marker version is gone (removed between pages). An id still names
                    // its place in the order; a `null` version replaced in between does not,
                    // so the listing goes on after the key rather than repeat its versions.
                    None => match crate::apply::heal::parse_version_id(q.version_id_marker) {
                        Some(n) => keys::object_key(bucket_id, q.key_marker, n),
                        None => keys::after_versions(bucket_id, q.key_marker),
                    },
                }
            };
            seek_to = seek_to.max(start);
        }
        let mut page = VersionsPage::default();
        let mut iter = self.db.raw_iterator_cf_opt(
            cf(&self.db, CF_OBJECTS)?,
            crate::store::within(&scan_prefix),
        );
        iter.seek(&seek_to);
        if skip_exact.is_some() && iter.key() == skip_exact.as_deref() {
            iter.next();
        }
        let mut returned = 0usize;
        while let (Some(raw_key), Some(raw_value)) = (iter.key(), iter.value()) {
            if !raw_key.starts_with(&scan_prefix) {
                break;
            }
            let Some((_, key, _)) = keys::decode_object_key(raw_key) else {
                iter.next();
                continue;
            };
            let common = common_prefix(&key, q.prefix, q.delimiter);
            if let Some(cp) = &common {
                if cp.as_str() <= q.key_marker {
                    // Returned on an earlier page.
                    skip_group(&mut iter, bucket_id, cp);
                    continue;
                }
            }
            if returned == q.max_keys {
                page.is_truncated = true;
                break;
            }
            returned += 1;
            match common {
                Some(cp) => {
                    page.next_key_marker = cp.clone();
                    page.next_version_id_marker = String::new();
                    page.common_prefixes.push(cp.clone());
                    skip_group(&mut iter, bucket_id, &cp);
                    last_key = None;
                }
                None => {
                    let object: ObjectVersion = records::decode(raw_value)?;
                    let is_latest = last_key.as_deref() != Some(key.as_str());
                    let id = s3_version_id(&object).to_string();
                    page.next_key_marker = key.clone();
                    page.next_version_id_marker = id.clone();
                    page.versions.push(VersionSummary {
                        key: key.clone(),
                        version_id: id,
                        is_latest,
                        delete_marker: object.delete_marker,
                        size: object.size,
                        etag: object.etag,
                        last_modified_ms: object.last_modified_ms,
                    });
                    last_key = Some(key);
                    iter.next();
                }
            }
        }
        iter.status()?;
        Ok(page)
    }
}
