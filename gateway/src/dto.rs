//! Small conversions from metadata values to s3s DTO values.

use s3s::dto::{ETag, Owner, Timestamp};

/// The single owner of every bucket and object.
pub(crate) fn owner() -> Owner {
    Owner {
        display_name: Some("cairn".into()),
        id: Some("cairn".into()),
    }
}

/// A timestamp from milliseconds since the Unix epoch (the epoch itself if out of range).
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    Timestamp::from(
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// Milliseconds since the Unix epoch (saturating far outside the representable range).
pub(crate) fn millis(ts: &Timestamp) -> i64 {
    let nanos = time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Milliseconds since the Unix epoch now, by this gateway's clock.
pub(crate) fn now_ms() -> i64 {
    millis(&Timestamp::from(std::time::SystemTime::now()))
}

/// Whole seconds since the epoch, as HTTP dates carry them.
pub(crate) fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

/// A stored (unquoted) ETag; s3s adds the quotes.
pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_to_seconds() {
        assert_eq!(seconds(&timestamp(1_700_000_000_999)), 1_700_000_000);
        assert_eq!(seconds(&timestamp(0)), 0);
        assert_eq!(seconds(&timestamp(i64::MAX)), 0);
        assert_eq!(millis(&timestamp(1_700_000_000_999)), 1_700_000_000_999);
        assert_eq!(millis(&timestamp(-5)), -5);
    }
}
