//! Conditional GET/HEAD (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) with S3's precedence rules (those of RFC 9110 §13.2.2), and the
//! conditions of writes (PutObject, CompleteMultipartUpload, DeleteObject), which the meta
//! service checks in the Raft entry of the write itself ([`write_condition`]).

use cairn_proto::meta as pb;

use crate::error::{ApiError, ApiResult};

/// An entity-tag condition: `*` or one tag (unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagCondition {
    Any,
    Tag(String),
}

impl TagCondition {
    fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tag(t) => t == etag,
        }
    }
}

/// The conditional headers of one request; dates in whole seconds since the Unix epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    pub if_match: Option<TagCondition>,
    pub if_none_match: Option<TagCondition>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

/// What the conditions say about serving the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Proceed,
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// Evaluates the conditions against an object's ETag (unquoted) and Last-Modified (seconds).
/// 412 checks come first: `If-Match`, or `If-Unmodified-Since` when there is no `If-Match`.
/// Then 304: `If-None-Match`, or `If-Modified-Since` when there is no `If-None-Match`.
pub(crate) fn evaluate(c: &Conditions, etag: &str, last_modified: i64) -> Verdict {
    if let Some(cond) = &c.if_match {
        if !cond.matches(etag) {
            return Verdict::PreconditionFailed;
        }
    } else if let Some(t) = c.if_unmodified_since {
        if last_modified > t {
            return Verdict::PreconditionFailed;
        }
    }
    if let Some(cond) = &c.if_none_match {
        if cond.matches(etag) {
            return Verdict::NotModified;
        }
    } else if let Some(t) = c.if_modified_since {
        if last_modified <= t {
            return Verdict::NotModified;
        }
    }
    Verdict::Proceed
}

/// The condition a write carries to the meta service (`None`: unconditional).
/// `If-None-Match` takes only `*` (the key must not exist), as in S3; `If-Match` takes an
/// ETag (or `*`: the key must exist).
pub(crate) fn write_condition(
    if_match: Option<TagCondition>,
    if_none_match: Option<TagCondition>,
) -> ApiResult<Option<pb::WriteCondition>> {
    let if_none_match_any = match if_none_match {
        None => false,
        Some(TagCondition::Any) => true,
        Some(TagCondition::Tag(_)) => {
            return Err(ApiError::NotImplemented(
                "If-None-Match with an ETag on a write (only * is supported)".into(),
            ))
        }
    };
    let if_match = match if_match {
        None => String::new(),
        Some(TagCondition::Any) => "*".into(),
        Some(TagCondition::Tag(t)) => t,
    };
    Ok(
        (if_none_match_any || !if_match.is_empty()).then_some(pb::WriteCondition {
            if_none_match_any,
            if_match,
        }),
    )
}

/// The destination condition of a request whose s3s input has no field for it (CopyObject):
/// `If-Match` / `If-None-Match` read from the raw headers, as [`write_condition`] takes them.
pub(crate) fn write_condition_from_headers(
    headers: &http::HeaderMap,
) -> ApiResult<Option<pb::WriteCondition>> {
    let read = |name: http::header::HeaderName| -> ApiResult<Option<TagCondition>> {
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::InvalidArgument("an ETag condition is not ASCII".into()))?
            .trim();
        Ok(Some(if value == "*" {
            TagCondition::Any
        } else {
            TagCondition::Tag(value.trim_matches('"').to_string())
        }))
    };
    write_condition(
        read(http::header::IF_MATCH)?,
        read(http::header::IF_NONE_MATCH)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "abc";
    const T: i64 = 1_000_000;

    fn tag(s: &str) -> Option<TagCondition> {
        Some(TagCondition::Tag(s.into()))
    }

    fn eval(c: Conditions) -> Verdict {
        evaluate(&c, ETAG, T)
    }

    #[test]
    fn write_conditions() {
        assert_eq!(write_condition(None, None).ok(), Some(None));
        let none_match = write_condition(None, Some(TagCondition::Any))
            .ok()
            .flatten();
        assert_eq!(
            none_match,
            Some(pb::WriteCondition {
                if_none_match_any: true,
                if_match: String::new()
            })
        );
        let matching = write_condition(tag("abc"), None).ok().flatten();
        assert_eq!(matching.map(|c| c.if_match), Some("abc".to_string()));
        assert!(matches!(
            write_condition(None, tag("abc")),
            Err(ApiError::NotImplemented(_))
        ));
    }

    #[test]
    fn write_conditions_from_raw_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(write_condition_from_headers(&h).ok(), Some(None));
        h.insert(
            http::header::IF_MATCH,
            http::HeaderValue::from_static("\"abc\""),
        );
        h.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static("*"),
        );
        assert_eq!(
            write_condition_from_headers(&h).ok().flatten(),
            Some(pb::WriteCondition {
                if_none_match_any: true,
                if_match: "abc".into()
            })
        );
    }

    #[test]
    fn no_conditions() {
        assert_eq!(eval(Conditions::default()), Verdict::Proceed);
    }

    #[test]
    fn if_match() {
        assert_eq!(
            eval(Conditions {
                if_match: tag("abc"),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_match: Some(TagCondition::Any),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_match: tag("zzz"),
                ..Default::default()
            }),
            Verdict::PreconditionFailed
        );
    }

    #[test]
    fn if_match_true_overrides_unmodified_since_false() {
        let c = Conditions {
            if_match: tag("abc"),
            if_unmodified_since: Some(T - 10),
            ..Default::default()
        };
        assert_eq!(eval(c), Verdict::Proceed);
    }

    #[test]
    fn if_unmodified_since() {
        assert_eq!(
            eval(Conditions {
                if_unmodified_since: Some(T),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_unmodified_since: Some(T - 1),
                ..Default::default()
            }),
            Verdict::PreconditionFailed
        );
    }

    #[test]
    fn if_none_match() {
        assert_eq!(
            eval(Conditions {
                if_none_match: tag("abc"),
                ..Default::default()
            }),
            Verdict::NotModified
        );
        assert_eq!(
            eval(Conditions {
                if_none_match: Some(TagCondition::Any),
                ..Default::default()
            }),
            Verdict::NotModified
        );
        assert_eq!(
            eval(Conditions {
                if_none_match: tag("zzz"),
                ..Default::default()
            }),
            Verdict::Proceed
        );
    }

    #[test]
    fn if_none_match_false_overrides_modified_since() {
        // The tag differs (If-None-Match true) so If-Modified-Since is ignored: 200.
        let c = Conditions {
            if_none_match: tag("zzz"),
            if_modified_since: Some(T + 10),
            ..Default::default()
        };
        assert_eq!(eval(c), Verdict::Proceed);
        // The tag matches: 304 whatever the date says.
        let c = Conditions {
            if_none_match: tag("abc"),
            if_modified_since: Some(T - 10),
            ..Default::default()
        };
        assert_eq!(eval(c), Verdict::NotModified);
    }

    #[test]
    fn if_modified_since() {
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(T),
                ..Default::default()
            }),
            Verdict::NotModified
        );
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(T - 1),
                ..Default::default()
            }),
            Verdict::Proceed
        );
    }

    #[test]
    fn precondition_failed_beats_not_modified() {
        let c = Conditions {
            if_match: tag("zzz"),
            if_none_match: tag("abc"),
            ..Default::default()
        };
        assert_eq!(eval(c), Verdict::PreconditionFailed);
    }
}
