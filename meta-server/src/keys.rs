//! Byte layout of RocksDB keys.
//!
//! Keys are range-ordered so that the operations that scan, scan one contiguous range:
//!
//! ```text
//! buckets CF:    bucket name (UTF-8)                      -> Bucket record
//! objects CF:    bucket id (u64 BE) | escaped(object key) | !version (u64 BE) -> ObjectVersion
//! blob_nodes CF: node id (UTF-8)                          -> BlobNode record
//! multipart CF:  'U' | bucket id | escaped(object key) | upload id -> MultipartUpload
//!                'P' | upload id | 0x00 | part number (u32 BE)      -> ObjectPart
//!                'A' | upload id | 0x00 | PlanPut attempt id        -> ObjectPart, no shards
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

/// The first position strictly after every version of exactly `key` (and before the keys
/// that extend it).
pub fn after_versions(bucket_id: u64, key: &str) -> Vec<u8> {
    let mut out = object_prefix(bucket_id, key);
    out.extend_from_slice(&[0x00, 0x02]);
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

/// Tag of multipart upload records in the `multipart` column family.
const TAG_UPLOAD: u8 = b'U';
/// Tag of part records.
const TAG_PART: u8 = b'P';
/// Tag of committed part attempts (what makes CommitPart idempotent).
const TAG_ATTEMPT: u8 = b'A';

/// Whether `id` has the shape of a multipart upload id (32 lowercase hex digits). Ids from
/// clients are checked before they are used in a key, so they cannot reach another upload's
/// records.
pub fn is_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The range-scan prefix of every multipart upload in `bucket_id` whose key starts with
/// `prefix`. Uploads sort by key, then by upload id (creation order).
pub fn upload_prefix(bucket_id: u64, prefix: &str) -> Vec<u8> {
    let mut out = vec![TAG_UPLOAD];
    out.extend_from_slice(&object_prefix(bucket_id, prefix));
    out
}

/// The scan start of every upload of exactly `key`.
pub fn upload_key_start(bucket_id: u64, key: &str) -> Vec<u8> {
    let mut out = vec![TAG_UPLOAD];
    out.extend_from_slice(&object_versions_start(bucket_id, key));
    out
}

/// The key of one multipart upload record.
pub fn upload_key(bucket_id: u64, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = upload_key_start(bucket_id, key);
    out.extend_from_slice(upload_id.as_bytes());
    out
}

/// Splits an upload record key into (bucket id, object key, upload id). `None` if malformed.
pub fn decode_upload_key(raw: &[u8]) -> Option<(u64, String, String)> {
    let rest = raw.strip_prefix(&[TAG_UPLOAD])?;
    if rest.len() < BUCKET_ID_LEN {
        return None;
    }
    let (id, body) = rest.split_at(BUCKET_ID_LEN);
    let bucket_id = u64::from_be_bytes(id.try_into().ok()?);
    let mut key = Vec::new();
    let mut i = 0;
    loop {
        let b = *body.get(i)?;
        if b == 0 {
            match body.get(i + 1)? {
                0xFF => key.push(0),
                0x01 => break,
                _ => return None,
            }
            i += 2;
        } else {
            key.push(b);
            i += 1;
        }
    }
    let upload_id = std::str::from_utf8(&body[i + 2..]).ok()?;
    Some((
        bucket_id,
        String::from_utf8(key).ok()?,
        upload_id.to_string(),
    ))
}

/// The prefix of every part record of an upload.
pub fn parts_prefix(upload_id: &str) -> Vec<u8> {
    let mut out = vec![TAG_PART];
    out.extend_from_slice(upload_id.as_bytes());
    out.push(0);
    out
}

/// The prefix of every part record of every upload in progress.
pub fn all_parts_prefix() -> Vec<u8> {
    vec![TAG_PART]
}

/// The key of part `number` of an upload (parts sort by number).
pub fn part_key(upload_id: &str, number: u32) -> Vec<u8> {
    let mut out = parts_prefix(upload_id);
    out.extend_from_slice(&number.to_be_bytes());
    out
}

/// The part number of a part record key.
pub fn decode_part_number(raw: &[u8]) -> Option<u32> {
    let tail = raw.len().checked_sub(4).map(|at| &raw[at..])?;
    Some(u32::from_be_bytes(tail.try_into().ok()?))
}

/// The prefix of every committed-attempt record of an upload.
pub fn attempts_prefix(upload_id: &str) -> Vec<u8> {
    let mut out = vec![TAG_ATTEMPT];
    out.extend_from_slice(upload_id.as_bytes());
    out.push(0);
    out
}

/// The key recording that PlanPut attempt `attempt_id` was committed as a part of an upload.
pub fn attempt_key(upload_id: &str, attempt_id: &str) -> Vec<u8> {
    let mut out = attempts_prefix(upload_id);
    out.extend_from_slice(attempt_id.as_bytes());
    out
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
    fn upload_keys_sort_by_key_then_id_and_round_trip() {
        let a = upload_key(3, "a", "0000000000000002ffffffffffffffff");
        let a_later = upload_key(3, "a", "0000000000000009ffffffffffffffff");
        let a0 = upload_key(3, "a\0", "0000000000000001ffffffffffffffff");
        let b = upload_key(3, "b", "0000000000000001ffffffffffffffff");
        assert!(a < a_later && a_later < a0 && a0 < b);
        assert_eq!(
            decode_upload_key(&a0),
            Some((
                3,
                "a\0".to_string(),
                "0000000000000001ffffffffffffffff".into()
            ))
        );
        assert!(a.starts_with(&upload_prefix(3, "")));
        assert!(!a.starts_with(&upload_prefix(4, "")));
        assert!(b.starts_with(&upload_key_start(3, "b")));
        assert!(!a0.starts_with(&upload_key_start(3, "a")));
    }

    #[test]
    fn part_keys_sort_by_number_within_their_upload() {
        let id = "00000000000000010123456789abcdef";
        let two = part_key(id, 2);
        let ten = part_key(id, 10);
        assert!(two < ten);
        assert!(ten.starts_with(&parts_prefix(id)));
        assert_eq!(decode_part_number(&ten), Some(10));
        assert!(is_upload_id(id));
        assert!(!is_upload_id("0000000000000001"));
        assert!(!is_upload_id("0000000000000001012345678\0abcdef"));
        assert!(!is_upload_id("00000000000000010123456789ABCDEF"));
    }

    #[test]
    fn successor_skips_the_whole_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }
}
