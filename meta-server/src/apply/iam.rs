//! S3 users and custom policies in the state machine (column family `iam`).
//!
//! A user is stored under `u/<access key>` and a custom policy under `p/<name>`, each as a
//! record of its `cairn_proto::admin` message. Secrets are stored in the clear, like MinIO's
//! IAM store without KMS: whoever can read a meta node's disk can read them. The admin
//! service validates names and keys before proposing; the checks here are the ones that
//! depend on the state (a taken key, a missing policy, a policy still in use), so that two
//! concurrent changes are ordered by the log and never both win.

use cairn_proto::admin::{IamPolicy, IamUser};
use cairn_proto::iam::is_canned;
use cairn_proto::meta::MetaError;
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch, DB};

use super::error;
use crate::records;
use crate::store::{cf, StoreError, CF_IAM};
use crate::types::Response;

const USER_PREFIX: &[u8] = b"u/";
const POLICY_PREFIX: &[u8] = b"p/";

fn user_key(access_key: &str) -> Vec<u8> {
    [USER_PREFIX, access_key.as_bytes()].concat()
}

fn policy_key(name: &str) -> Vec<u8> {
    [POLICY_PREFIX, name.as_bytes()].concat()
}

/// The user with `access_key`, if there is one.
pub(crate) fn read_user(db: &DB, access_key: &str) -> Result<Option<IamUser>, StoreError> {
    match db.get_cf(cf(db, CF_IAM)?, user_key(access_key))? {
        Some(raw) => Ok(Some(records::decode(&raw)?)),
        None => Ok(None),
    }
}

/// The custom policy called `name`, if there is one.
pub(crate) fn read_policy(db: &DB, name: &str) -> Result<Option<IamPolicy>, StoreError> {
    match db.get_cf(cf(db, CF_IAM)?, policy_key(name))? {
        Some(raw) => Ok(Some(records::decode(&raw)?)),
        None => Ok(None),
    }
}

/// Every record under `prefix`, in key order.
fn scan<M: Message + Default>(db: &DB, prefix: &[u8]) -> Result<Vec<M>, StoreError> {
    let handle = cf(db, CF_IAM)?;
    let mut out = Vec::new();
    let iter = db.iterator_cf(
        handle,
        IteratorMode::From(prefix, rocksdb::Direction::Forward),
    );
    for item in iter {
        let (key, raw) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        out.push(records::decode(&raw)?);
    }
    Ok(out)
}

/// Every user, by access key.
pub(crate) fn users(db: &DB) -> Result<Vec<IamUser>, StoreError> {
    scan(db, USER_PREFIX)
}

/// Every custom policy, by name.
pub(crate) fn policies(db: &DB) -> Result<Vec<IamPolicy>, StoreError> {
    scan(db, POLICY_PREFIX)
}

/// Whether every name in `names` is canned or a stored custom policy.
fn policies_exist<'a>(
    db: &DB,
    mut names: impl Iterator<Item = &'a String>,
) -> Result<bool, StoreError> {
    names.try_fold(true, |ok, name| {
        Ok(ok && (is_canned(name) || read_policy(db, name)?.is_some()))
    })
}

fn put_user(db: &DB, batch: &mut WriteBatch, user: &IamUser) -> Result<Response, StoreError> {
    batch.put_cf(
        cf(db, CF_IAM)?,
        user_key(&user.access_key),
        records::encode(user),
    );
    Ok(Response::User {
        user: user.encode_to_vec(),
    })
}

/// `CreateUser`: a new user, stamped with the leader's clock.
pub(super) fn create_user(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    raw: &[u8],
) -> Result<Response, StoreError> {
    let Ok(mut user) = IamUser::decode(raw) else {
        return Ok(error(MetaError::InvalidArgument));
    };
    if user.access_key.is_empty() || user.secret_key.is_empty() {
        return Ok(error(MetaError::InvalidArgument));
    }
    if read_user(db, &user.access_key)?.is_some() {
        return Ok(error(MetaError::UserAlreadyExists));
    }
    if !policies_exist(db, user.policies.iter())? {
        return Ok(error(MetaError::NoSuchPolicy));
    }
    user.policies.sort();
    user.policies.dedup();
    user.created_ms = now;
    put_user(db, batch, &user)
}

/// `UpdateUser`: state and attached policies. Detaching a policy that is not attached is no
/// error; attaching one that does not exist is.
pub(super) fn update_user(
    db: &DB,
    batch: &mut WriteBatch,
    access_key: &str,
    enabled: Option<bool>,
    (attach, detach): (&[String], &[String]),
) -> Result<Response, StoreError> {
    let Some(mut user) = read_user(db, access_key)? else {
        return Ok(error(MetaError::NoSuchUser));
    };
    if !policies_exist(db, attach.iter())? {
        return Ok(error(MetaError::NoSuchPolicy));
    }
    if let Some(enabled) = enabled {
        user.disabled = !enabled;
    }
    user.policies.retain(|p| !detach.contains(p));
    user.policies.extend(attach.iter().cloned());
    user.policies.sort();
    user.policies.dedup();
    put_user(db, batch, &user)
}

/// `DeleteUser`.
pub(super) fn delete_user(
    db: &DB,
    batch: &mut WriteBatch,
    access_key: &str,
) -> Result<Response, StoreError> {
    if read_user(db, access_key)?.is_none() {
        return Ok(error(MetaError::NoSuchUser));
    }
    batch.delete_cf(cf(db, CF_IAM)?, user_key(access_key));
    Ok(Response::Done)
}

/// `PutPolicy`: stores or replaces a custom policy. Users that have it attached see the new
/// document on their next lookup.
pub(super) fn put_policy(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    name: &str,
    document: &str,
) -> Result<Response, StoreError> {
    if name.is_empty() || is_canned(name) {
        return Ok(error(MetaError::InvalidArgument));
    }
    let policy = IamPolicy {
        name: name.to_string(),
        document: document.to_string(),
        updated_ms: now,
    };
    batch.put_cf(cf(db, CF_IAM)?, policy_key(name), records::encode(&policy));
    Ok(Response::Done)
}

/// `DeletePolicy`: refused while any user has the policy attached.
pub(super) fn delete_policy(
    db: &DB,
    batch: &mut WriteBatch,
    name: &str,
) -> Result<Response, StoreError> {
    if read_policy(db, name)?.is_none() {
        return Ok(error(MetaError::NoSuchPolicy));
    }
    if users(db)?
        .iter()
        .any(|u| u.policies.iter().any(|p| p == name))
    {
        return Ok(error(MetaError::PolicyInUse));
    }
    batch.delete_cf(cf(db, CF_IAM)?, policy_key(name));
    Ok(Response::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::types::{Command, Request};

    fn run(db: &DB, index: u64, command: Command) -> Result<Response, StoreError> {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 5_000,
            command,
        };
        let response = apply(db, &mut batch, index, &request)?;
        db.write(batch)?;
        Ok(response)
    }

    fn create(key: &str, policies: &[&str]) -> Command {
        Command::CreateUser {
            user: IamUser {
                access_key: key.into(),
                secret_key: "secret-key".into(),
                policies: policies.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            }
            .encode_to_vec(),
        }
    }

    fn update(key: &str, enabled: Option<bool>, attach: &[&str], detach: &[&str]) -> Command {
        Command::UpdateUser {
            access_key: key.into(),
            enabled,
            attach: attach.iter().map(|p| p.to_string()).collect(),
            detach: detach.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn users_and_policies_follow_the_rules() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|_| StoreError::LockPoisoned("tempdir"))?;
        let (_, sm) = crate::store::open(dir.path())?;
        let db = sm.db();
        // Canned policies need no record; custom ones must exist.
        assert!(matches!(
            run(&db, 1, create("alice", &["readonly"]))?,
            Response::User { .. }
        ));
        assert_eq!(
            run(&db, 2, create("alice", &[]))?,
            error(MetaError::UserAlreadyExists)
        );
        assert_eq!(
            run(&db, 3, create("bob", &["team"]))?,
            error(MetaError::NoSuchPolicy)
        );
        assert_eq!(
            run(
                &db,
                4,
                Command::PutPolicy {
                    name: "readonly".into(),
                    document: "{}".into()
                }
            )?,
            error(MetaError::InvalidArgument)
        );
        run(
            &db,
            5,
            Command::PutPolicy {
                name: "team".into(),
                document: "{\"Statement\":[]}".into(),
            },
        )?;
        run(
            &db,
            6,
            update("alice", Some(false), &["team"], &["readonly"]),
        )?;
        let alice = read_user(&db, "alice")?.ok_or(StoreError::LockPoisoned("alice"))?;
        assert!(alice.disabled);
        assert_eq!(alice.policies, vec!["team".to_string()]);
        assert_eq!(alice.created_ms, 5_000);
        assert_eq!(alice.secret_key, "secret-key");
        // A policy in use cannot go; once detached it can.
        assert_eq!(
            run(
                &db,
                7,
                Command::DeletePolicy {
                    name: "team".into()
                }
            )?,
            error(MetaError::PolicyInUse)
        );
        run(&db, 8, update("alice", Some(true), &[], &["team"]))?;
        assert_eq!(
            run(
                &db,
                9,
                Command::DeletePolicy {
                    name: "team".into()
                }
            )?,
            Response::Done
        );
        assert!(policies(&db)?.is_empty());
        assert_eq!(
            run(&db, 10, update("nobody", None, &[], &[]))?,
            error(MetaError::NoSuchUser)
        );
        assert_eq!(users(&db)?.len(), 1);
        run(
            &db,
            11,
            Command::DeleteUser {
                access_key: "alice".into(),
            },
        )?;
        assert!(users(&db)?.is_empty());
        assert_eq!(
            run(
                &db,
                12,
                Command::DeleteUser {
                    access_key: "alice".into()
                }
            )?,
            error(MetaError::NoSuchUser)
        );
        Ok(())
    }
}
