//! Small objects inline: a body of at most `inline_max` bytes is not erasure-coded into
//! shard files but travels whole inside the version's metadata record, in the commit's Raft
//! entry.
//!
//! Why: a sharded PUT costs a placement read, `k + m` shard files each with a file and a
//! directory fsync, and the commit; for a 4 KiB object the fsyncs are nearly all of its
//! time (docs/performance.md). Inline, the PUT is the commit alone, whose log fsync the meta
//! service shares between all concurrent commits, and a GET is one metadata read. The cost
//! is that those bytes live in every meta voter's database (replicated, not erasure-coded)
//! and in its snapshots, so the limit stays small (docs/durability.md has the trade-off and
//! what the acknowledgement means).

use bytes::{Bytes, BytesMut};
use futures::Stream;

use crate::error::{ApiError, ApiResult};
use crate::put::{next_chunk, BodyCheck, BodyChecks, StoredBody};
use crate::Gateway;

/// Reads and checks a whole (small) body into memory, for a PUT that stores it inline.
/// Only bodies with a declared length of at most `inline_max` come here, so the buffer is
/// bounded by that limit; a body longer than it declared fails in [`BodyCheck::update`].
pub(crate) async fn read_body<B, E>(
    gw: &Gateway,
    checks: BodyChecks,
    mut body: B,
) -> ApiResult<StoredBody>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let declared = checks.content_length.unwrap_or(0);
    let mut check = BodyCheck::new(checks);
    let mut data = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(chunk) = next_chunk(&mut body, gw.body_idle_timeout).await? {
        check.update(&chunk)?;
        data.extend_from_slice(&chunk);
    }
    let checked = check.finish()?;
    Ok(StoredBody {
        size: checked.size,
        etag: checked.etag,
        checksums: checked.checksums,
        scheme: None,
        shards: Vec::new(),
        attempt_id: new_attempt_id(),
        inline_data: Some(data.freeze()),
        finalized: Vec::new(),
    })
}

/// `range` of an inline body; the range was resolved against the version's size, which the
/// body must have (a record whose bytes disagree with its size is refused, not served short).
pub(crate) fn slice(
    data: &Bytes,
    size: u64,
    range: &std::ops::Range<u64>,
    label: &str,
) -> ApiResult<Bytes> {
    if data.len() as u64 != size || range.end > size || range.start > range.end {
        return Err(ApiError::Internal(format!(
            "bad object metadata for {label}: {} inline bytes for a size of {size}",
            data.len()
        )));
    }
    // Both ends are at most `size`, which equals `data.len()`: they fit in usize.
    Ok(data.slice(range.start as usize..range.end as usize))
}

/// A unique id for an inline PUT attempt (the meta service hands these out with a
/// placement for sharded PUTs): the commit's retry detection keys on it.
fn new_attempt_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_of_an_inline_body() {
        let data = Bytes::from_static(b"hello world");
        assert_eq!(slice(&data, 11, &(0..11), "b/k").unwrap(), data);
        assert_eq!(&slice(&data, 11, &(6..11), "b/k").unwrap()[..], b"world");
        assert!(slice(&data, 11, &(0..0), "b/k").unwrap().is_empty());
    }

    #[test]
    fn a_body_that_disagrees_with_its_size_is_refused() {
        let data = Bytes::from_static(b"short");
        assert!(slice(&data, 6, &(0..6), "b/k").is_err());
        assert!(slice(&data, 5, &(0..6), "b/k").is_err());
    }

    #[test]
    fn attempt_ids_are_unique() {
        assert_ne!(new_attempt_id(), new_attempt_id());
        assert_eq!(new_attempt_id().len(), 32);
    }
}
