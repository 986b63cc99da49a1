//! What a bucket's lifecycle rules say about one object: whether a rule applies to it and
//! when each of its actions falls due.
//!
//! One place for these rules because two roles need them: the meta service decides (and
//! re-checks inside the Raft entry) what to expire, and reports the `x-amz-expiration` of an
//! object to the gateway. The functions are pure: time comes in as arguments, so the state
//! machine can feed them the leader-stamped clock of the entry it applies.
//!
//! Time, as S3 counts it: an action due `days` after an instant falls due at the first UTC
//! midnight at or after `instant + days`. A test cluster may shorten the day (see
//! [`Days`]); then nothing is rounded.

use crate::meta::{LifecycleConfiguration, LifecycleRule, ObjectTag};

/// Milliseconds in a real day.
pub const DAY_MS: i64 = 86_400_000;

/// The length of a lifecycle "day". Real clusters use [`Days::REAL`]; a test cluster may
/// make a day a few seconds long so that expiration can be watched happening (the
/// `x-amz-expiration` header keeps real days either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    /// Milliseconds per day; [`DAY_MS`] for real days.
    pub day_ms: i64,
}

impl Days {
    /// Real days, with S3's rounding up to the next UTC midnight.
    pub const REAL: Days = Days { day_ms: DAY_MS };

    /// When an action due `days` after `start_ms` falls due (milliseconds since the epoch).
    pub fn due(self, start_ms: i64, days: u32) -> i64 {
        let raw = start_ms.saturating_add(i64::from(days).saturating_mul(self.day_ms));
        if self.day_ms == DAY_MS {
            round_up_to_midnight(raw)
        } else {
            raw
        }
    }
}

/// The first UTC midnight at or after `ms`.
pub fn round_up_to_midnight(ms: i64) -> i64 {
    let rem = ms.rem_euclid(DAY_MS);
    if rem == 0 {
        ms
    } else {
        ms.saturating_add(DAY_MS - rem)
    }
}

/// An object version as a rule's filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The object key.
    pub key: &'a str,
    /// Its tags (S3 object tagging).
    pub tags: &'a [ObjectTag],
    /// Its size in bytes.
    pub size: u64,
}

/// The key prefix a rule is limited to (empty: every key).
pub fn prefix_of(rule: &LifecycleRule) -> &str {
    if let Some(p) = rule.legacy_prefix.as_deref() {
        return p;
    }
    rule.filter
        .as_ref()
        .and_then(|f| f.prefix.as_deref())
        .unwrap_or("")
}

/// Whether `rule` is enabled and its scope (prefix, tags, sizes) takes in `subject`.
pub fn applies(rule: &LifecycleRule, subject: &Subject<'_>) -> bool {
    if !rule.enabled || !subject.key.starts_with(prefix_of(rule)) {
        return false;
    }
    let Some(filter) = rule.filter.as_ref() else {
        return true;
    };
    let tags_match = filter.tags.iter().all(|want| {
        subject
            .tags
            .iter()
            .any(|have| have.key == want.key && have.value == want.value)
    });
    let above = filter.size_greater_than.is_none_or(|gt| subject.size > gt);
    let below = filter.size_less_than.is_none_or(|lt| subject.size < lt);
    tags_match && above && below
}

/// Whether `rule` filters on tags or sizes (S3 refuses such filters for the actions that
/// have no object to look at: aborting uploads, removing delete markers).
pub fn filters_beyond_prefix(rule: &LifecycleRule) -> bool {
    rule.filter.as_ref().is_some_and(|f| {
        !f.tags.is_empty() || f.size_greater_than.is_some() || f.size_less_than.is_some()
    })
}

/// When the current version `subject`, last modified at `mtime_ms`, expires: the earliest
/// Expiration (days or date) of the rules that apply, and that rule's id.
pub fn current_expiry<'c>(
    config: &'c LifecycleConfiguration,
    subject: &Subject<'_>,
    mtime_ms: i64,
    days: Days,
) -> Option<(i64, &'c str)> {
    config
        .rules
        .iter()
        .filter(|rule| applies(rule, subject))
        .filter_map(|rule| {
            let due = match (rule.expiration_days, rule.expiration_date_ms) {
                (Some(d), _) => days.due(mtime_ms, d),
                (None, Some(date)) => date,
                (None, None) => return None,
            };
            Some((due, rule.id.as_str()))
        })
        // The first of the earliest, so ties go to the rule listed first.
        .fold(None, |best: Option<(i64, &str)>, (due, id)| match best {
            Some((b, _)) if b <= due => best,
            _ => Some((due, id)),
        })
}

/// Whether a current delete marker with no other version of its key left, made at
/// `mtime_ms`, is removed by the rules: an ExpiredObjectDeleteMarker rule takes it at once,
/// an Expiration of some days once it is that old.
pub fn lone_marker_due(
    config: &LifecycleConfiguration,
    key: &str,
    mtime_ms: i64,
    now_ms: i64,
    days: Days,
) -> bool {
    let subject = Subject {
        key,
        tags: &[],
        size: 0,
    };
    config
        .rules
        .iter()
        .filter(|rule| applies(rule, &subject))
        .any(|rule| {
            rule.expired_object_delete_marker
                || rule
                    .expiration_days
                    .is_some_and(|d| days.due(mtime_ms, d) <= now_ms)
        })
}

/// Whether a noncurrent version is removed by the rules: it became noncurrent at
/// `noncurrent_since_ms` (when its successor was made) and `newer_noncurrent` noncurrent
/// versions of its key are newer than it. A rule takes it once it has been noncurrent for
/// the rule's days and the rule keeps fewer newer noncurrent versions than there are.
pub fn noncurrent_due(
    config: &LifecycleConfiguration,
    subject: &Subject<'_>,
    noncurrent_since_ms: i64,
    newer_noncurrent: u32,
    now_ms: i64,
    days: Days,
) -> bool {
    config
        .rules
        .iter()
        .filter(|rule| applies(rule, subject))
        .any(|rule| {
            let Some(d) = rule.noncurrent_days else {
                return false;
            };
            let keep = rule.newer_noncurrent_versions.unwrap_or(0);
            newer_noncurrent >= keep && days.due(noncurrent_since_ms, d) <= now_ms
        })
}

/// Whether a multipart upload of `key` initiated at `initiated_ms` is aborted by the rules.
pub fn upload_due(
    config: &LifecycleConfiguration,
    key: &str,
    initiated_ms: i64,
    now_ms: i64,
    days: Days,
) -> bool {
    config.rules.iter().any(|rule| {
        rule.enabled
            && !filters_beyond_prefix(rule)
            && key.starts_with(prefix_of(rule))
            && rule
                .abort_incomplete_days
                .is_some_and(|d| days.due(initiated_ms, d) <= now_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::LifecycleFilter;

    fn tag(k: &str, v: &str) -> ObjectTag {
        ObjectTag {
            key: k.into(),
            value: v.into(),
        }
    }

    fn rule(id: &str) -> LifecycleRule {
        LifecycleRule {
            id: id.into(),
            enabled: true,
            ..Default::default()
        }
    }

    fn subject<'a>(key: &'a str, tags: &'a [ObjectTag], size: u64) -> Subject<'a> {
        Subject { key, tags, size }
    }

    #[test]
    fn days_round_up_to_the_next_utc_midnight() {
        // 2014-01-15 10:30 UTC + 3 days -> 2014-01-19 00:00 UTC (AWS's own example).
        let created = 1_389_781_800_000;
        assert_eq!(Days::REAL.due(created, 3), 1_390_089_600_000);
        // Exactly midnight stays.
        assert_eq!(Days::REAL.due(1_390_089_600_000, 0), 1_390_089_600_000);
        // A short test day is not rounded.
        assert_eq!(Days { day_ms: 1000 }.due(5, 3), 3005);
    }

    #[test]
    fn scope_prefix_tags_and_sizes() {
        let mut r = rule("a");
        r.filter = Some(LifecycleFilter {
            and: true,
            prefix: Some("logs/".into()),
            tags: vec![tag("t", "1")],
            size_greater_than: Some(10),
            size_less_than: Some(100),
        });
        let tags = [tag("t", "1"), tag("x", "y")];
        assert!(applies(&r, &subject("logs/a", &tags, 50)));
        assert!(!applies(&r, &subject("data/a", &tags, 50)));
        assert!(!applies(&r, &subject("logs/a", &[tag("t", "2")], 50)));
        assert!(
            !applies(&r, &subject("logs/a", &tags, 10)),
            "strictly greater"
        );
        assert!(
            !applies(&r, &subject("logs/a", &tags, 100)),
            "strictly less"
        );
        r.enabled = false;
        assert!(!applies(&r, &subject("logs/a", &tags, 50)));
        let mut legacy = rule("b");
        legacy.legacy_prefix = Some("x".into());
        assert!(applies(&legacy, &subject("xy", &[], 0)));
        assert!(!applies(&legacy, &subject("yx", &[], 0)));
    }

    #[test]
    fn the_earliest_expiration_wins_and_ties_go_to_the_first_rule() {
        let mut late = rule("late");
        late.expiration_days = Some(10);
        let mut early = rule("early");
        early.expiration_days = Some(2);
        let mut same = rule("same");
        same.expiration_days = Some(2);
        let mut other = rule("other-prefix");
        other.legacy_prefix = Some("zzz".into());
        other.expiration_days = Some(1);
        let config = LifecycleConfiguration {
            rules: vec![late, early, same, other],
        };
        let got = current_expiry(&config, &subject("k", &[], 1), 0, Days::REAL);
        assert_eq!(got, Some((2 * DAY_MS, "early")));
        let none = LifecycleConfiguration {
            rules: vec![rule("noop")],
        };
        assert_eq!(
            current_expiry(&none, &subject("k", &[], 1), 0, Days::REAL),
            None
        );
    }

    #[test]
    fn noncurrent_versions_keep_the_newest_few() {
        let mut r = rule("nc");
        r.noncurrent_days = Some(1);
        r.newer_noncurrent_versions = Some(2);
        let config = LifecycleConfiguration { rules: vec![r] };
        let day = Days { day_ms: 1000 };
        let s = subject("k", &[], 1);
        assert!(
            !noncurrent_due(&config, &s, 0, 1, 5000, day),
            "among the 2 kept"
        );
        assert!(noncurrent_due(&config, &s, 0, 2, 5000, day));
        assert!(
            !noncurrent_due(&config, &s, 4500, 2, 5000, day),
            "not old enough"
        );
    }

    #[test]
    fn uploads_and_markers() {
        let mut abort = rule("abort");
        abort.abort_incomplete_days = Some(1);
        let mut marker = rule("marker");
        marker.expired_object_delete_marker = true;
        marker.legacy_prefix = Some("m/".into());
        let config = LifecycleConfiguration {
            rules: vec![abort, marker],
        };
        let day = Days { day_ms: 1000 };
        assert!(upload_due(&config, "k", 0, 1000, day));
        assert!(!upload_due(&config, "k", 1, 1000, day));
        assert!(lone_marker_due(&config, "m/a", 0, 0, day));
        assert!(!lone_marker_due(&config, "k", 0, 0, day));
    }
}
