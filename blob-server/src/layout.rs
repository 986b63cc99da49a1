//! Where shards live inside a data directory, and which shard keys are allowed.
//!
//! ```text
//! <data dir>/
//!   cairn-disk.json                      disk identity (see `disk`)
//!   shards/
//!     <xx>/                              xx = first byte of BLAKE3(shard_key), 2 lowercase hex
//!       <shard_key>                      a complete, fsynced shard file (see `shard_file`)
//!       <shard_key>+<16 hex>.tmp         a put in progress; deleted at start if left over
//! ```
//!
//! The 256 fan-out directories keep directories small and are created (and the `shards`
//! directory fsynced) when a disk is opened, so a put only has to fsync its own fan-out
//! directory. A shard key is `[A-Za-z0-9._-]{1,128}` and neither `.` nor `..`, so it can
//! never escape its directory. Temporary names contain `+`, which no shard key can
//! contain: a shard legitimately named `x.tmp` is never mistaken for a leftover.

use std::path::{Path, PathBuf};

use crate::error::BlobError;

/// Name of the directory, inside a data directory, that holds the fan-out directories.
pub(crate) const SHARDS_DIR: &str = "shards";
/// Longest allowed shard key, in bytes.
pub(crate) const MAX_SHARD_KEY_LEN: usize = 128;
/// Suffix of every temporary file the blob server creates.
const TMP_SUFFIX: &str = ".tmp";

/// Checks a shard key against `[A-Za-z0-9._-]{1,128}`, excluding `.` and `..`.
pub(crate) fn validate_shard_key(key: &str) -> Result<(), BlobError> {
    if is_valid_shard_key(key) {
        Ok(())
    } else {
        Err(BlobError::InvalidShardKey(key.to_owned()))
    }
}

/// Whether `key` matches `[A-Za-z0-9._-]{1,128}` and is neither `.` nor `..`.
pub(crate) fn is_valid_shard_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_SHARD_KEY_LEN
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The fan-out directory name of a shard key: 2 hex chars of BLAKE3(key).
fn fanout(key: &str) -> String {
    hex::encode(&blake3::hash(key.as_bytes()).as_bytes()[..1])
}

/// The fan-out directory (`<disk>/shards/<xx>`) that holds a shard. The key must be valid.
pub(crate) fn shard_dir(disk_root: &Path, key: &str) -> PathBuf {
    disk_root.join(SHARDS_DIR).join(fanout(key))
}

/// All 256 fan-out directory names, `00` to `ff`.
pub(crate) fn all_fanout_names() -> impl Iterator<Item = String> {
    (0u8..=255).map(|b| hex::encode([b]))
}

/// A fresh temporary file name for a put of `key`, in the shard's own directory, so the
/// final rename never crosses file systems.
pub(crate) fn tmp_name(key: &str) -> String {
    format!("{key}+{:016x}{TMP_SUFFIX}", rand::random::<u64>())
}

/// Whether a file name in a fan-out directory is a leftover temporary file: ends in `.tmp`
/// and is not itself a valid shard key.
pub(crate) fn is_tmp_name(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX) && !is_valid_shard_key(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_are_accepted() {
        for key in ["a", "obj-1.shard_03", "...", "A.b-C_9", &"k".repeat(128)] {
            assert!(validate_shard_key(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn invalid_keys_are_rejected() {
        let long = "k".repeat(129);
        for key in [
            "../x", "a/b", "", &long, ".", "..", "a b", "a\\b", "é", "a\0b", "x+y",
        ] {
            assert!(
                matches!(validate_shard_key(key), Err(BlobError::InvalidShardKey(_))),
                "{key:?} should be rejected"
            );
        }
    }

    #[test]
    fn tmp_names_are_never_shard_keys() {
        let t = tmp_name("abc.tmp");
        assert!(is_tmp_name(&t));
        assert!(!is_valid_shard_key(&t));
        assert!(!is_tmp_name("abc.tmp"), "a real shard named *.tmp is kept");
        assert!(!is_tmp_name("abc"));
    }

    #[test]
    fn fanout_is_two_hex_chars() {
        let dir = shard_dir(Path::new("/d"), "key");
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(name.len(), 2);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(dir.parent(), Some(Path::new("/d/shards")));
        assert_eq!(all_fanout_names().count(), 256);
    }
}
