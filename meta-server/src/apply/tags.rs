//! Object tagging in the state machine: `SetObjectTags` rewrites the tag set of an object's
//! current version (or the version named) in place (same key, same version id); data, placement and every other
//! attribute stay as they are.

use cairn_proto::meta::{MetaError, ObjectTag};
use rocksdb::{WriteBatch, DB};

use super::{error, read_bucket};
use crate::records;
use crate::store::{cf, StoreError, CF_OBJECTS};
use crate::types::Response;

/// Replaces the tags of the current version of `key`, or of the version `version_id` names
/// (`null`: the null version). A delete marker has no tags (see
/// [`super::versions::find_target`]).
pub(super) fn set(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key, version_id): (&str, &str, &str),
    tags: &[(String, String)],
) -> Result<Response, StoreError> {
    let Some(bucket) = read_bucket(db, bucket)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    let (raw_key, mut object) = match super::versions::find_target(db, bucket.id, key, version_id)?
    {
        Ok(found) => found,
        Err(code) => return Ok(error(code)),
    };
    object.tags = tags
        .iter()
        .map(|(key, value)| ObjectTag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    batch.put_cf(cf(db, CF_OBJECTS)?, raw_key, records::encode(&object));
    Ok(Response::TagsSet {
        version_id: object.version_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Request};
    use cairn_proto::meta::ObjectVersion;
    use prost::Message;

    fn run(db: &DB, index: u64, command: Command) -> Result<Response, StoreError> {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000 + index as i64,
            command,
        };
        let response = super::super::apply(db, &mut batch, index, &request)?;
        db.write(batch)?;
        Ok(response)
    }

    fn set_tags(version_id: &str, tags: &[(&str, &str)]) -> Command {
        Command::SetObjectTags {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn tags_are_replaced_on_the_current_version_only() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|_| StoreError::LockPoisoned("tempdir"))?;
        let (_, sm) = crate::store::open(dir.path())?;
        let db = sm.db();
        assert_eq!(
            run(&db, 1, set_tags("", &[("a", "1")]))?,
            error(MetaError::NoSuchBucket)
        );
        run(
            &db,
            2,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        )?;
        assert_eq!(
            run(&db, 3, set_tags("", &[("a", "1")]))?,
            error(MetaError::NoSuchKey)
        );
        let object = ObjectVersion {
            bucket: "b".into(),
            key: "k".into(),
            size: 3,
            etag: "e".into(),
            content_type: "text/plain".into(),
            upload_id: "u1".into(),
            ..Default::default()
        };
        run(
            &db,
            4,
            Command::CommitObject {
                object: object.encode_to_vec(),
                condition: None,
            },
        )?;
        let version = super::super::version_id(4);
        assert_eq!(
            run(&db, 5, set_tags("00000000000000000001", &[("a", "1")]))?,
            error(MetaError::NoSuchVersion)
        );
        assert_eq!(
            run(&db, 6, set_tags(&version, &[("b", "2"), ("a", "1")]))?,
            Response::TagsSet {
                version_id: version.clone()
            }
        );
        let reader = crate::store::MetaReader::new(db.clone());
        // Bucket "b" has id 2: the index of the entry that created it.
        let stored = reader
            .object(2, "k")?
            .ok_or(StoreError::LockPoisoned("gone"))?;
        assert_eq!(stored.version_id, version);
        assert_eq!(stored.content_type, "text/plain");
        let pairs: Vec<(&str, &str)> = stored
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(pairs, vec![("b", "2"), ("a", "1")]);
        run(&db, 7, set_tags("", &[]))?;
        let stored = reader
            .object(2, "k")?
            .ok_or(StoreError::LockPoisoned("gone"))?;
        assert!(stored.tags.is_empty());
        Ok(())
    }
}
