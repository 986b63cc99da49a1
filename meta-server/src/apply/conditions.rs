//! Conditional writes in the state machine: a [`WriteCondition`] is checked against the key's
//! current version inside the entry that writes, so the check and the write are one atomic
//! step on every replica (two conditional writes of one key are ordered by the log: the
//! second sees the first's result).

use cairn_proto::meta::{MetaError, ObjectVersion};
use rocksdb::DB;

use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_OBJECTS};
use crate::types::WriteCondition;

/// The current version of `key` in bucket `bucket_id`, if any.
pub(super) fn current_version(
    db: &DB,
    bucket_id: u64,
    key: &str,
) -> Result<Option<ObjectVersion>, StoreError> {
    let start = keys::object_versions_start(bucket_id, key);
    let mut iter = db.raw_iterator_cf_opt(cf(db, CF_OBJECTS)?, crate::store::within(&start));
    iter.seek(&start);
    match (iter.key(), iter.value()) {
        // A key whose newest version is a delete marker has no current version (S3 answers
        // it with 404), so `If-None-Match: *` holds and `If-Match` is NO_SUCH_KEY.
        (Some(k), Some(v)) if k.starts_with(&start) => {
            let newest: ObjectVersion = records::decode(v)?;
            Ok((!newest.delete_marker).then_some(newest))
        }
        _ => {
            iter.status()?;
            Ok(None)
        }
    }
}

/// Why `condition` does not hold for the current version of `key` (`None`: it holds, or
/// there is no condition). `If-Match` on a missing key is NO_SUCH_KEY, as in S3.
pub(super) fn violated(
    db: &DB,
    bucket_id: u64,
    key: &str,
    condition: Option<&WriteCondition>,
) -> Result<Option<MetaError>, StoreError> {
    let Some(condition) = condition else {
        return Ok(None);
    };
    let current = current_version(db, bucket_id, key)?;
    Ok(check(condition, current.as_ref().map(|v| v.etag.as_str())))
}

/// [`violated`] once the current version's ETag (`None`: no version) is known.
fn check(condition: &WriteCondition, current_etag: Option<&str>) -> Option<MetaError> {
    if condition.if_none_match_any && current_etag.is_some() {
        return Some(MetaError::PreconditionFailed);
    }
    if let Some(wanted) = &condition.if_match {
        match current_etag {
            None => return Some(MetaError::NoSuchKey),
            Some(etag) if wanted != "*" && !etag.eq_ignore_ascii_case(wanted) => {
                return Some(MetaError::PreconditionFailed)
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(none_match: bool, if_match: Option<&str>) -> WriteCondition {
        WriteCondition {
            if_none_match_any: none_match,
            if_match: if_match.map(str::to_string),
        }
    }

    #[test]
    fn conditions() {
        assert_eq!(check(&cond(true, None), None), None);
        assert_eq!(
            check(&cond(true, None), Some("e")),
            Some(MetaError::PreconditionFailed)
        );
        assert_eq!(check(&cond(false, Some("e")), Some("e")), None);
        assert_eq!(check(&cond(false, Some("*")), Some("e")), None);
        assert_eq!(
            check(&cond(false, Some("f")), Some("e")),
            Some(MetaError::PreconditionFailed)
        );
        assert_eq!(
            check(&cond(false, Some("e")), None),
            Some(MetaError::NoSuchKey)
        );
    }

    #[test]
    fn log_entries_written_before_conditions_decode_unconditional() -> serde_json::Result<()> {
        use crate::types::Command;
        let old: Command = serde_json::from_str(r#"{"CommitObject":{"object":[1,2]}}"#)?;
        assert_eq!(
            old,
            Command::CommitObject {
                object: vec![1, 2],
                condition: None
            }
        );
        let old: Command = serde_json::from_str(r#"{"DeleteObject":{"bucket":"b","key":"k"}}"#)?;
        assert!(matches!(
            old,
            Command::DeleteObject {
                condition: None,
                ..
            }
        ));
        Ok(())
    }
}
