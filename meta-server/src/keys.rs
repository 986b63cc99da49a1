//! Byte layout of RocksDB keys.
//!
//! Keys are range-ordered so that the operations that scan, scan one contiguous range:
//!
//! ```text
//! buckets CF:    bucket name (UTF-8)                      -> Bucket record
//! objects CF:    bucket id (u64 BE) | escaped(object key) | !version (u64 BE) -> ObjectVersion
//! blob_nodes CF: node id (UTF-8)                          -> BlobNode record
//! ```
//!
//! `escaped` maps byte 0x00 to 0x00 0xFF and ends the key with 0x00 0x01. That keeps UTF-8
//! byte order (a key sorts before its extensions, and `a < b` iff `escaped(a) < escaped(b)`),
//! and no key's encoding is a prefix of another's. `escaped(prefix)` without the terminator is
//! a byte prefix of every key that starts with `prefix`, so a prefix listing is a range scan.
//! The version is stored inverted (`!v`) so that the newest version of a key comes first.

/// Length of the bucket-id part of an object key.
const BUCKET_ID_LEN: usize = 8;

/// Appends the order-preserving escape of `raw` without its terminator.
fn escape_into(out: &mut Vec<u8>, raw: &[u8]) {
    for &b in raw {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// The range-scan prefix of every object key in `bucket_id` that starts with `prefix`.
pub fn object_prefix(bucket_id: u64, prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUCKET_ID_LEN + prefix.len() + 2);
    out.extend_from_slice(&bucket_id.to_be_bytes());
    escape_into(&mut out, prefix.as_bytes());
    out
}

/// The full key of one version of an object.
pub fn object_key(bucket_id: u64, key: &str, version: u64) -> Vec<u8> {
    let mut out = object_prefix(bucket_id, key);
    out.extend_from_slice(&[0x00, 0x01]);
    out.extend_from_slice(&(!version).to_be_bytes());
    out
}

/// The scan start for all versions of exactly `key`.
pub fn object_versions_start(bucket_id: u64, key: &str) -> Vec<u8> {
    let mut out = object_prefix(bucket_id, key);
    out.extend_from_slice(&[0x00, 0x01]);
    out
}

/// The first key strictly after every key that starts with `prefix` (the successor of a
/// byte-string prefix), or `None` when no such key exists.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// Splits an object key into (bucket id, object key, version). `None` if malformed.
pub fn decode_object_key(raw: &[u8]) -> Option<(u64, String, u64)> {
    if raw.len() < BUCKET_ID_LEN + 2 + 8 {
        return None;
    }
    let bucket_id = u64::from_be_bytes(raw[..BUCKET_ID_LEN].try_into().ok()?);
    let (body, version) = raw[BUCKET_ID_LEN..].split_at(raw.len() - BUCKET_ID_LEN - 8);
    let version = !u64::from_be_bytes(version.try_into().ok()?);
    let body = body.strip_suffix(&[0x00, 0x01])?;
    let mut key = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        key.push(body[i]);
        if body[i] == 0 {
            if body.get(i + 1) != Some(&0xFF) {
                return None;
            }
            i += 1;
        }
        i += 1;
    }
    Some((bucket_id, String::from_utf8(key).ok()?, version))
}

/// The bucket-id prefix of every object key in a bucket.
pub fn bucket_objects_prefix(bucket_id: u64) -> Vec<u8> {
    bucket_id.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_sort_like_utf8_bytes() {
        let mut keys = vec!["a", "a\0", "a\0b", "ab", "a/", "b", "", "\u{e9}", "a\u{1}"];
        let mut encoded: Vec<_> = keys.iter().map(|k| object_key(7, k, 1)).collect();
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        encoded.sort();
        let decoded: Vec<_> = encoded
            .iter()
            .map(|e| decode_object_key(e).map(|(_, k, _)| k))
            .collect();
        let expected: Vec<_> = keys.iter().map(|k| Some(k.to_string())).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn newer_versions_sort_first_and_round_trip() {
        let old = object_key(1, "k", 5);
        let new = object_key(1, "k", 9);
        assert!(new < old);
        assert_eq!(decode_object_key(&new), Some((1, "k".to_string(), 9)));
    }

    #[test]
    fn prefix_is_a_byte_prefix_of_matching_keys_only() {
        let p = object_prefix(3, "photos/");
        assert!(object_key(3, "photos/a.jpg", 1).starts_with(&p));
        assert!(!object_key(3, "photos", 1).starts_with(&p));
        assert!(!object_key(4, "photos/a.jpg", 1).starts_with(&p));
    }

    #[test]
    fn successor_skips_the_whole_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }
}
