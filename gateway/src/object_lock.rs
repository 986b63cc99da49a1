//! Object Lock (WORM) at the S3 edge: validating what clients send (bucket configuration,
//! retention, legal hold, the `x-amz-object-lock-*` headers of a write), and showing what is
//! stored. The rules themselves (what a lock protects, which changes it allows) are the
//! meta service's, checked inside the Raft entry that makes the change.
//!
//! Codes follow AWS where the S3 documentation says, and MinIO / Ceph where it is silent:
//! a malformed configuration is `MalformedXML`, a non-positive default retention
//! `InvalidRetentionPeriod`, a lock setting in a bucket without Object Lock
//! `InvalidRequest`, a lock that forbids the request `AccessDenied`.

use cairn_proto::meta as pb;
use s3s::dto::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, Timestamp,
};

use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::Gateway;

/// The longest default retention AWS accepts.
const MAX_DAYS: i32 = 36_500;
const MAX_YEARS: i32 = 100;
/// A requested retain-until date, which must be in the future. There is no upper bound (S3
/// has none; a client may lock for 2140): what keeps a writer from locking a version for
/// ever is that setting a lock needs `s3:PutObjectRetention` (see `crate::access`).
fn check_retain_until(until: &Timestamp) -> ApiResult<i64> {
    let until = dto::millis(until);
    if until <= dto::now_ms() {
        return Err(ApiError::InvalidArgument(
            "The retain until date must be in the future!".into(),
        ));
    }
    Ok(until)
}

fn malformed(why: &str) -> ApiError {
    ApiError::MalformedXml(format!(
        "The XML you provided was not well-formed or did not validate against our published schema: {why}"
    ))
}

/// A retention mode as S3 spells it (exactly: `governance` is not a mode).
fn mode_from(s: &str) -> Option<pb::RetentionMode> {
    match s {
        "GOVERNANCE" => Some(pb::RetentionMode::Governance),
        "COMPLIANCE" => Some(pb::RetentionMode::Compliance),
        _ => None,
    }
}

fn mode_name(mode: pb::RetentionMode) -> Option<&'static str> {
    match mode {
        pb::RetentionMode::Governance => Some("GOVERNANCE"),
        pb::RetentionMode::Compliance => Some("COMPLIANCE"),
        pb::RetentionMode::None => None,
    }
}

/// A legal hold status as S3 spells it.
fn hold_from(s: &str) -> Option<bool> {
    match s {
        "ON" => Some(true),
        "OFF" => Some(false),
        _ => None,
    }
}

/// PutObjectLockConfiguration's body: `Enabled`, and optionally a default retention of
/// one mode and either days or years.
pub(crate) fn parse_configuration(
    config: Option<ObjectLockConfiguration>,
) -> ApiResult<Option<pb::ObjectLockRule>> {
    let Some(config) = config else {
        return Err(malformed("an ObjectLockConfiguration is required"));
    };
    if config
        .object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
        != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(malformed("ObjectLockEnabled must be Enabled"));
    }
    let Some(rule) = config.rule else {
        return Ok(None);
    };
    let Some(retention) = rule.default_retention else {
        return Err(malformed("a Rule needs a DefaultRetention"));
    };
    let Some(mode) = retention.mode.as_ref().and_then(|m| mode_from(m.as_str())) else {
        return Err(malformed("Mode must be GOVERNANCE or COMPLIANCE"));
    };
    let (days, years) = match (retention.days, retention.years) {
        (Some(d), None) => (d, 0),
        (None, Some(y)) => (0, y),
        _ => return Err(malformed("a DefaultRetention has either Days or Years")),
    };
    if days < 0 || years < 0 || (days == 0 && years == 0) {
        return Err(ApiError::InvalidRetentionPeriod(
            "Default retention period must be a positive integer value".into(),
        ));
    }
    if days > MAX_DAYS || years > MAX_YEARS {
        return Err(ApiError::InvalidArgument(format!(
            "Default retention period is at most {MAX_DAYS} days or {MAX_YEARS} years"
        )));
    }
    Ok(Some(pb::ObjectLockRule {
        mode: mode as i32,
        days: days.unsigned_abs(),
        years: years.unsigned_abs(),
    }))
}

/// GetObjectLockConfiguration's answer for `bucket`.
pub(crate) fn configuration(bucket: &pb::Bucket) -> ApiResult<ObjectLockConfiguration> {
    if !bucket.object_lock_enabled {
        return Err(ApiError::ObjectLockConfigurationNotFound);
    }
    let rule = bucket.object_lock_default.as_ref().map(|r| {
        let positive = |n: u32| (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX));
        ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: mode_name(r.mode()).map(|m| ObjectLockRetentionMode::from(m.to_string())),
                days: positive(r.days),
                years: positive(r.years),
            }),
        }
    });
    Ok(ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    })
}

/// The lock a write asks for with `x-amz-object-lock-mode`,
/// `x-amz-object-lock-retain-until-date` and `x-amz-object-lock-legal-hold`; `None` for none.
pub(crate) fn from_headers(
    mode: Option<&ObjectLockMode>,
    retain_until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> ApiResult<Option<pb::ObjectLock>> {
    let mut lock = pb::ObjectLock::default();
    match (mode, retain_until) {
        (None, None) => {}
        (Some(mode), Some(until)) => {
            let Some(mode) = mode_from(mode.as_str()) else {
                return Err(ApiError::InvalidArgument(
                    "Unknown wormMode directive.".into(),
                ));
            };
            lock.mode = mode as i32;
            lock.retain_until_ms = check_retain_until(until)?;
        }
        _ => return Err(ApiError::InvalidArgument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                .into(),
        )),
    }
    if let Some(hold) = legal_hold {
        let Some(on) = hold_from(hold.as_str()) else {
            return Err(ApiError::InvalidArgument(
                "x-amz-object-lock-legal-hold must be ON or OFF".into(),
            ));
        };
        lock.legal_hold = on;
    }
    let asks = lock.mode != pb::RetentionMode::None as i32 || lock.legal_hold;
    Ok(asks.then_some(lock))
}

/// The `x-amz-object-lock-*` fields of a GET or HEAD answer: mode, retain-until date and
/// legal hold (ON only when one is set; nothing at all for a version without a lock).
pub(crate) fn headers(
    lock: Option<&pb::ObjectLock>,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let Some(lock) = lock else {
        return (None, None, None);
    };
    let (mode, until) = match mode_name(lock.mode()) {
        Some(name) => (
            Some(ObjectLockMode::from(name.to_string())),
            Some(dto::timestamp(lock.retain_until_ms)),
        ),
        None => (None, None),
    };
    let hold = lock
        .legal_hold
        .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
    (mode, until, hold)
}

/// The version a retention or legal-hold call reads: it must exist and not be a delete
/// marker, in a bucket with Object Lock.
async fn read_locked(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> ApiResult<pb::ObjectVersion> {
    let read = crate::versioning::read_full(gw, bucket, key, version_id).await?;
    if !read.bucket_object_lock {
        return Err(ApiError::NoObjectLock);
    }
    Ok(read.object)
}

/// PutObjectRetention: a new mode and date (both absent: remove the retention).
pub(crate) async fn put_retention(
    gw: &Gateway,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    retention: Option<ObjectLockRetention>,
    bypass_governance: bool,
) -> ApiResult<()> {
    let version_id = crate::versioning::check_id(version_id)?;
    let Some(retention) = retention else {
        return Err(malformed("a Retention is required"));
    };
    let (mode, retain_until_ms) = match (retention.mode, retention.retain_until_date) {
        (None, None) => (pb::RetentionMode::None, 0),
        (Some(mode), Some(until)) => {
            let Some(mode) = mode_from(mode.as_str()) else {
                return Err(malformed("Mode must be GOVERNANCE or COMPLIANCE"));
            };
            (mode, check_retain_until(&until)?)
        }
        _ => return Err(malformed("a Retention has both Mode and RetainUntilDate")),
    };
    gw.meta
        .set_object_lock(pb::SetObjectLockRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
            set_retention: true,
            mode: mode as i32,
            retain_until_ms,
            bypass_governance,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// GetObjectRetention.
pub(crate) async fn get_retention(
    gw: &Gateway,
    (bucket, key, version_id): (&str, &str, Option<&str>),
) -> ApiResult<ObjectLockRetention> {
    let object = read_locked(gw, bucket, key, version_id).await?;
    match headers(object.lock.as_ref()) {
        (Some(mode), Some(until), _) => Ok(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(mode.as_str().to_string())),
            retain_until_date: Some(until),
        }),
        _ => Err(ApiError::NoSuchObjectLockConfiguration),
    }
}

/// PutObjectLegalHold.
pub(crate) async fn put_legal_hold(
    gw: &Gateway,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    legal_hold: Option<ObjectLockLegalHold>,
) -> ApiResult<()> {
    let version_id = crate::versioning::check_id(version_id)?;
    let Some(on) = legal_hold
        .and_then(|h| h.status)
        .and_then(|s| hold_from(s.as_str()))
    else {
        return Err(malformed("a LegalHold Status is ON or OFF"));
    };
    gw.meta
        .set_object_lock(pb::SetObjectLockRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
            set_legal_hold: true,
            legal_hold: on,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// GetObjectLegalHold: ON or OFF (a version whose hold was never set is OFF).
pub(crate) async fn get_legal_hold(
    gw: &Gateway,
    (bucket, key, version_id): (&str, &str, Option<&str>),
) -> ApiResult<ObjectLockLegalHold> {
    let object = read_locked(gw, bucket, key, version_id).await?;
    let on = object.lock.is_some_and(|l| l.legal_hold);
    Ok(ObjectLockLegalHold {
        status: Some(ObjectLockLegalHoldStatus::from_static(if on {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        mode: Option<&str>,
        days: Option<i32>,
        years: Option<i32>,
    ) -> ObjectLockConfiguration {
        ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static("Enabled")),
            rule: Some(ObjectLockRule {
                default_retention: Some(DefaultRetention {
                    mode: mode.map(|m| ObjectLockRetentionMode::from(m.to_string())),
                    days,
                    years,
                }),
            }),
        }
    }

    fn code<T: std::fmt::Debug>(r: ApiResult<T>) -> String {
        let e = s3s::S3Error::from(r.expect_err("an error"));
        e.code().as_str().to_string()
    }

    #[test]
    fn configurations_are_checked_as_s3_checks_them() {
        let rule = parse_configuration(Some(config(Some("GOVERNANCE"), Some(1), None)))
            .expect("valid")
            .expect("a rule");
        assert_eq!(
            (rule.mode(), rule.days, rule.years),
            (pb::RetentionMode::Governance, 1, 0)
        );
        assert_eq!(code(parse_configuration(None)), "MalformedXML");
        let both = config(Some("GOVERNANCE"), Some(1), Some(1));
        assert_eq!(code(parse_configuration(Some(both))), "MalformedXML");
        let zero = config(Some("GOVERNANCE"), Some(0), None);
        assert_eq!(
            code(parse_configuration(Some(zero))),
            "InvalidRetentionPeriod"
        );
        let negative = config(Some("COMPLIANCE"), None, Some(-1));
        assert_eq!(
            code(parse_configuration(Some(negative))),
            "InvalidRetentionPeriod"
        );
        let lower = config(Some("governance"), Some(1), None);
        assert_eq!(code(parse_configuration(Some(lower))), "MalformedXML");
        let mut disabled = config(Some("GOVERNANCE"), Some(1), None);
        disabled.object_lock_enabled = Some(ObjectLockEnabled::from("Disabled".to_string()));
        assert_eq!(code(parse_configuration(Some(disabled))), "MalformedXML");
        let mut no_rule = config(None, None, None);
        no_rule.rule = None;
        assert_eq!(parse_configuration(Some(no_rule)).expect("valid"), None);
    }

    #[test]
    fn a_stored_configuration_reads_back_as_given() {
        let mut bucket = pb::Bucket::default();
        assert_eq!(
            code(configuration(&bucket)),
            "ObjectLockConfigurationNotFoundError"
        );
        bucket.object_lock_enabled = true;
        bucket.object_lock_default =
            parse_configuration(Some(config(Some("COMPLIANCE"), None, Some(2)))).expect("valid");
        assert_eq!(
            configuration(&bucket).expect("enabled"),
            config(Some("COMPLIANCE"), None, Some(2))
        );
    }

    #[test]
    fn write_headers() {
        let future = dto::timestamp(dto::now_ms() + 60_000);
        let past = dto::timestamp(dto::now_ms() - 60_000);
        let gov = ObjectLockMode::from("GOVERNANCE".to_string());
        let on = ObjectLockLegalHoldStatus::from("ON".to_string());
        assert_eq!(from_headers(None, None, None).expect("none"), None);
        let lock = from_headers(Some(&gov), Some(&future), Some(&on))
            .expect("valid")
            .expect("a lock");
        assert_eq!(lock.mode(), pb::RetentionMode::Governance);
        assert!(lock.legal_hold);
        assert_eq!(
            code(from_headers(Some(&gov), None, None)),
            "InvalidArgument"
        );
        assert_eq!(
            code(from_headers(None, Some(&future), None)),
            "InvalidArgument"
        );
        assert_eq!(
            code(from_headers(Some(&gov), Some(&past), None)),
            "InvalidArgument"
        );
        let bad = ObjectLockMode::from("abc".to_string());
        assert_eq!(
            code(from_headers(Some(&bad), Some(&future), None)),
            "InvalidArgument"
        );
        let off = ObjectLockLegalHoldStatus::from("OFF".to_string());
        assert_eq!(from_headers(None, None, Some(&off)).expect("valid"), None);
        let far = dto::timestamp(5_364_662_400_000); // 2140-01-01, as s3-tests sets it
        assert!(from_headers(Some(&gov), Some(&far), None).is_ok());
    }
}
