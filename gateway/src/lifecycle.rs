//! Bucket lifecycle at the S3 edge: checking a PutBucketLifecycleConfiguration against S3's
//! rules, storing it in the meta service's form, giving it back as it was written, and the
//! `x-amz-expiration` header of objects a rule will expire.
//!
//! What a rule means (scope, due dates) is in `cairn_proto::lifecycle`, shared with the
//! meta service, which runs the rules (`meta-server/src/lifecycle.rs`). Cairn has one
//! storage class, so transitions are refused with `InvalidStorageClass` rather than stored
//! and never carried out.

use cairn_proto::meta as pb;
use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, Tag,
};

use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::tagging;

/// Most rules one configuration may hold (S3's limit).
const MAX_RULES: usize = 1000;
/// Longest rule id.
const MAX_ID_LEN: usize = 255;

fn malformed(why: &str) -> ApiError {
    ApiError::MalformedXml(format!(
        "The XML you provided was not well-formed or did not validate against our published schema: {why}"
    ))
}

/// Checks a configuration and turns it into the stored form. Rules without an id get one.
pub(crate) fn parse(
    config: Option<BucketLifecycleConfiguration>,
) -> ApiResult<pb::LifecycleConfiguration> {
    let Some(config) = config else {
        return Err(malformed("a LifecycleConfiguration is required"));
    };
    if config.rules.is_empty() || config.rules.len() > MAX_RULES {
        return Err(malformed(&format!(
            "a LifecycleConfiguration has 1 to {MAX_RULES} rules"
        )));
    }
    let mut rules: Vec<pb::LifecycleRule> = Vec::with_capacity(config.rules.len());
    for rule in config.rules {
        let rule = parse_rule(rule)?;
        if rules.iter().any(|r| r.id == rule.id) {
            return Err(ApiError::InvalidArgument(
                "Rule ID must be unique. Found same ID for more than one rule".into(),
            ));
        }
        rules.push(rule);
    }
    Ok(pb::LifecycleConfiguration { rules })
}

fn parse_rule(rule: LifecycleRule) -> ApiResult<pb::LifecycleRule> {
    let id = match rule.id.filter(|id| !id.is_empty()) {
        Some(id) if id.len() > MAX_ID_LEN => {
            return Err(ApiError::InvalidArgument(format!(
                "ID length should not exceed allowed limit of {MAX_ID_LEN}"
            )))
        }
        // The id goes into the x-amz-expiration header, which cannot carry control
        // characters (or quotes, which delimit it there).
        Some(id) if id.chars().any(|c| c.is_control() || c == '"') => {
            return Err(ApiError::InvalidArgument(
                "ID must not contain control characters or quotes".into(),
            ))
        }
        Some(id) => id,
        None => {
            let bytes: [u8; 15] = rand::random();
            base32(&bytes)
        }
    };
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed("Status must be Enabled or Disabled")),
    };
    let (legacy_prefix, filter) = match (rule.prefix, rule.filter) {
        (Some(_), Some(_)) => return Err(malformed("a Rule has a Prefix or a Filter, not both")),
        (prefix, None) => (prefix, None),
        (None, Some(filter)) => (None, Some(parse_filter(filter)?)),
    };
    let mut out = pb::LifecycleRule {
        id,
        enabled,
        legacy_prefix,
        filter,
        ..Default::default()
    };
    let has_transitions = rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty());
    if has_transitions {
        return Err(ApiError::InvalidStorageClass(
            "Cairn has a single storage class: lifecycle transitions are not available".into(),
        ));
    }
    if rule.expiration.is_none()
        && rule.noncurrent_version_expiration.is_none()
        && rule.abort_incomplete_multipart_upload.is_none()
    {
        return Err(ApiError::InvalidRequest(
            "At least one action needs to be specified in a rule".into(),
        ));
    }
    if let Some(expiration) = rule.expiration {
        parse_expiration(expiration, &mut out)?;
    }
    if let Some(noncurrent) = rule.noncurrent_version_expiration {
        let days = noncurrent.noncurrent_days.unwrap_or(0);
        if days <= 0 {
            return Err(ApiError::InvalidArgument(
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer"
                    .into(),
            ));
        }
        out.noncurrent_days = Some(days.unsigned_abs());
        if let Some(newer) = noncurrent.newer_noncurrent_versions {
            if !(1..=100).contains(&newer) {
                return Err(ApiError::InvalidArgument(
                    "'NewerNoncurrentVersions' must be between 1 and 100".into(),
                ));
            }
            out.newer_noncurrent_versions = Some(newer.unsigned_abs());
        }
    }
    if let Some(abort) = rule.abort_incomplete_multipart_upload {
        let days = abort.days_after_initiation.unwrap_or(0);
        if days <= 0 {
            return Err(ApiError::InvalidArgument(
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer"
                    .into(),
            ));
        }
        if cairn_proto::lifecycle::filters_beyond_prefix(&out) {
            return Err(ApiError::InvalidRequest(
                "AbortIncompleteMultipartUpload cannot be specified with Tags or object sizes"
                    .into(),
            ));
        }
        out.abort_incomplete_days = Some(days.unsigned_abs());
    }
    Ok(out)
}

fn parse_expiration(e: LifecycleExpiration, out: &mut pb::LifecycleRule) -> ApiResult<()> {
    let marker = e.expired_object_delete_marker.unwrap_or(false);
    let given = [e.days.is_some(), e.date.is_some(), marker];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(malformed(
            "an Expiration has exactly one of Days, Date and ExpiredObjectDeleteMarker",
        ));
    }
    if let Some(days) = e.days {
        if days <= 0 {
            return Err(ApiError::InvalidArgument(
                "'Days' for Expiration action must be a positive integer".into(),
            ));
        }
        out.expiration_days = Some(days.unsigned_abs());
    }
    if let Some(date) = e.date {
        let ms = dto::millis(&date);
        if ms.rem_euclid(cairn_proto::lifecycle::DAY_MS) != 0 {
            return Err(ApiError::InvalidArgument(
                "'Date' must be at midnight GMT".into(),
            ));
        }
        out.expiration_date_ms = Some(ms);
    }
    if marker {
        if cairn_proto::lifecycle::filters_beyond_prefix(out) {
            return Err(ApiError::InvalidRequest(
                "ExpiredObjectDeleteMarker cannot be specified with Tags or object sizes".into(),
            ));
        }
        out.expired_object_delete_marker = true;
    }
    Ok(())
}

/// A size bound of a filter: not negative.
fn size(bound: Option<i64>) -> ApiResult<Option<u64>> {
    bound
        .map(|b| {
            u64::try_from(b).map_err(|_| {
                ApiError::InvalidArgument("object size bounds cannot be negative".into())
            })
        })
        .transpose()
}

/// A rule's `Filter`. AWS wants exactly one condition in it (several go inside `And`);
/// MinIO and Ceph also take several side by side and AND them, and so does Cairn, so that
/// configurations written for any of them work. Only `And` beside another condition is
/// refused, since it would be ambiguous.
fn parse_filter(filter: LifecycleRuleFilter) -> ApiResult<pb::LifecycleFilter> {
    let beside_and = filter.prefix.is_some()
        || filter.tag.is_some()
        || filter.object_size_greater_than.is_some()
        || filter.object_size_less_than.is_some();
    if filter.and.is_some() && beside_and {
        return Err(malformed("a Filter with And holds nothing else"));
    }
    let out = match filter.and {
        Some(and) => pb::LifecycleFilter {
            and: true,
            prefix: and.prefix,
            tags: and
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(tag_of)
                .collect(),
            size_greater_than: size(and.object_size_greater_than)?,
            size_less_than: size(and.object_size_less_than)?,
        },
        None => pb::LifecycleFilter {
            and: false,
            prefix: filter.prefix,
            tags: filter.tag.map(tag_of).into_iter().collect(),
            size_greater_than: size(filter.object_size_greater_than)?,
            size_less_than: size(filter.object_size_less_than)?,
        },
    };
    tagging::validate_each(&out.tags)?;
    if let (Some(gt), Some(lt)) = (out.size_greater_than, out.size_less_than) {
        if gt >= lt {
            return Err(ApiError::InvalidArgument(
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan".into(),
            ));
        }
    }
    Ok(out)
}

fn tag_of(tag: Tag) -> pb::ObjectTag {
    pb::ObjectTag {
        key: tag.key.unwrap_or_default(),
        value: tag.value.unwrap_or_default(),
    }
}

fn tag_from(tag: &pb::ObjectTag) -> Tag {
    Tag {
        key: Some(tag.key.clone()),
        value: Some(tag.value.clone()),
    }
}

/// The stored rules as S3 shows them: as they were written, with generated ids.
pub(crate) fn rules(config: &pb::LifecycleConfiguration) -> Vec<LifecycleRule> {
    config.rules.iter().map(rule_of).collect()
}

fn rule_of(rule: &pb::LifecycleRule) -> LifecycleRule {
    let positive = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let expiration = (rule.expiration_days.is_some()
        || rule.expiration_date_ms.is_some()
        || rule.expired_object_delete_marker)
        .then(|| LifecycleExpiration {
            days: rule.expiration_days.map(positive),
            date: rule.expiration_date_ms.map(dto::timestamp),
            expired_object_delete_marker: rule.expired_object_delete_marker.then_some(true),
        });
    LifecycleRule {
        id: Some(rule.id.clone()),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        prefix: rule.legacy_prefix.clone(),
        filter: rule.filter.as_ref().map(filter_of),
        expiration,
        noncurrent_version_expiration: rule.noncurrent_days.map(|days| {
            NoncurrentVersionExpiration {
                noncurrent_days: Some(positive(days)),
                newer_noncurrent_versions: rule.newer_noncurrent_versions.map(positive),
            }
        }),
        abort_incomplete_multipart_upload: rule.abort_incomplete_days.map(|days| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(positive(days)),
            }
        }),
        noncurrent_version_transitions: None,
        transitions: None,
    }
}

fn filter_of(filter: &pb::LifecycleFilter) -> LifecycleRuleFilter {
    let bound = |b: Option<u64>| b.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
    if filter.and {
        return LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: filter.prefix.clone(),
                tags: (!filter.tags.is_empty()).then(|| filter.tags.iter().map(tag_from).collect()),
                object_size_greater_than: bound(filter.size_greater_than),
                object_size_less_than: bound(filter.size_less_than),
            }),
            ..Default::default()
        };
    }
    LifecycleRuleFilter {
        and: None,
        prefix: filter.prefix.clone(),
        tag: filter.tags.first().map(tag_from),
        object_size_greater_than: bound(filter.size_greater_than),
        object_size_less_than: bound(filter.size_less_than),
    }
}

/// `x-amz-expiration`: `expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="..."`.
pub(crate) fn expiration_header(expiry: Option<&pb::LifecycleExpiry>) -> Option<String> {
    let expiry = expiry?;
    let at = time::OffsetDateTime::from(dto::timestamp(expiry.expiry_ms));
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = at.format(&fmt).ok()?;
    Some(format!(
        "expiry-date=\"{date}\", rule-id=\"{}\"",
        expiry.rule_id.replace('"', "")
    ))
}

/// Base32 (RFC 4648 alphabet, no padding) of `bytes`: generated rule ids.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: Option<&str>) -> LifecycleRule {
        LifecycleRule {
            id: id.map(str::to_string),
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            filter: Some(LifecycleRuleFilter {
                prefix: Some("logs/".into()),
                ..Default::default()
            }),
            expiration: Some(LifecycleExpiration {
                days: Some(3),
                ..Default::default()
            }),
            abort_incomplete_multipart_upload: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    fn config(rules: Vec<LifecycleRule>) -> Option<BucketLifecycleConfiguration> {
        Some(BucketLifecycleConfiguration { rules })
    }

    fn code<T: std::fmt::Debug>(r: ApiResult<T>) -> String {
        let e = s3s::S3Error::from(r.expect_err("an error"));
        e.code().as_str().to_string()
    }

    #[test]
    fn a_configuration_reads_back_as_written() {
        let mut legacy = rule(Some("legacy"));
        legacy.filter = None;
        legacy.prefix = Some("old/".into());
        let mut and = rule(Some("and"));
        and.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("p".into()),
                tags: Some(vec![Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                }]),
                object_size_greater_than: Some(1),
                object_size_less_than: Some(100),
            }),
            ..Default::default()
        });
        and.expiration = None;
        and.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(2),
            newer_noncurrent_versions: Some(3),
        });
        let mut empty = rule(Some("empty"));
        empty.filter = Some(LifecycleRuleFilter::default());
        empty.expiration = None;
        empty.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(7),
        });
        let written = vec![rule(Some("a")), legacy, and, empty];
        let stored = parse(config(written.clone())).expect("valid");
        assert_eq!(rules(&stored), written);
    }

    #[test]
    fn s3s_rules_on_rules() {
        let generated = parse(config(vec![rule(None)])).expect("valid");
        assert!(!generated.rules[0].id.is_empty());
        assert_eq!(code(parse(None)), "MalformedXML");
        assert_eq!(code(parse(config(vec![]))), "MalformedXML");
        let long = "x".repeat(256);
        assert_eq!(
            code(parse(config(vec![rule(Some(&long))]))),
            "InvalidArgument"
        );
        assert_eq!(
            code(parse(config(vec![rule(Some("a")), rule(Some("a"))]))),
            "InvalidArgument"
        );
        let mut status = rule(Some("a"));
        status.status = ExpirationStatus::from("enabled".to_string());
        assert_eq!(code(parse(config(vec![status]))), "MalformedXML");
        let mut zero = rule(Some("a"));
        zero.expiration = Some(LifecycleExpiration {
            days: Some(0),
            ..Default::default()
        });
        assert_eq!(code(parse(config(vec![zero]))), "InvalidArgument");
        let mut not_midnight = rule(Some("a"));
        not_midnight.expiration = Some(LifecycleExpiration {
            date: Some(dto::timestamp(1_000)),
            ..Default::default()
        });
        assert_eq!(code(parse(config(vec![not_midnight]))), "InvalidArgument");
        // Several conditions side by side are ANDed (as MinIO and Ceph do) and kept as given;
        // `And` beside another is refused.
        let mut two_children = rule(Some("a"));
        two_children.filter = Some(LifecycleRuleFilter {
            prefix: Some("p".into()),
            object_size_greater_than: Some(5),
            ..Default::default()
        });
        let stored = parse(config(vec![two_children.clone()])).expect("ANDed");
        assert_eq!(rules(&stored), vec![two_children.clone()]);
        let mut and_beside = two_children;
        and_beside.filter = Some(LifecycleRuleFilter {
            prefix: Some("p".into()),
            and: Some(LifecycleRuleAndOperator::default()),
            ..Default::default()
        });
        assert_eq!(code(parse(config(vec![and_beside]))), "MalformedXML");
        let mut newline = rule(Some("a\nb"));
        newline.filter = None;
        assert_eq!(code(parse(config(vec![newline]))), "InvalidArgument");
        let mut no_action = rule(Some("a"));
        no_action.expiration = None;
        assert_eq!(code(parse(config(vec![no_action]))), "InvalidRequest");
        let mut transition = rule(Some("a"));
        transition.transitions = Some(vec![s3s::dto::Transition {
            days: Some(1),
            date: None,
            storage_class: Some(s3s::dto::TransitionStorageClass::from(
                "GLACIER".to_string(),
            )),
        }]);
        assert_eq!(code(parse(config(vec![transition]))), "InvalidStorageClass");
    }

    #[test]
    fn the_expiration_header() {
        let expiry = pb::LifecycleExpiry {
            expiry_ms: 1_356_220_800_000,
            rule_id: "picture-deletion-rule".into(),
        };
        assert_eq!(
            expiration_header(Some(&expiry)).as_deref(),
            Some(
                "expiry-date=\"Sun, 23 Dec 2012 00:00:00 GMT\", rule-id=\"picture-deletion-rule\""
            )
        );
        assert_eq!(expiration_header(None), None);
        assert_eq!(base32(&[0xff]), "74");
    }
}
