//! Which bytes of an object a GET or HEAD returns: the `Range` header and `partNumber`.

use std::ops::Range;

use crate::error::{ApiError, ApiResult};

/// The byte range to serve: `None` for the whole object (200), `Some` for a part of it
/// (206). An unsatisfiable range is `InvalidRange` (416). `part_sizes` are the sizes of a
/// multipart object's parts in order (empty for a single PUT): `partNumber=N` is then the
/// bytes of part N. A single-PUT object has exactly one part, so `partNumber=1` is the whole
/// object and any other part number does not exist.
pub(crate) fn resolve(
    range: Option<&s3s::dto::Range>,
    part_number: Option<i32>,
    size: u64,
    part_sizes: &[u64],
) -> ApiResult<Option<Range<u64>>> {
    match (range, part_number) {
        (Some(_), Some(_)) => Err(ApiError::InvalidArgument(
            "Range and partNumber cannot both be specified".into(),
        )),
        (None, None) => Ok(None),
        (None, Some(1)) if part_sizes.is_empty() => Ok(None),
        (None, Some(n)) => {
            let index = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|&i| i < part_sizes.len())
                .ok_or(ApiError::InvalidPartNumber)?;
            let start: u64 = part_sizes[..index].iter().sum();
            Ok(Some(start..start + part_sizes[index]))
        }
        (Some(r), None) => r.check(size).map(Some).map_err(|_| ApiError::InvalidRange),
    }
}

/// The `Content-Range` value for `range` of an object of `size` bytes.
pub(crate) fn content_range(range: &Range<u64>, size: u64) -> String {
    format!(
        "bytes {}-{}/{size}",
        range.start,
        range.end.saturating_sub(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::Range as Header;

    fn r(header: &str, size: u64) -> ApiResult<Option<Range<u64>>> {
        let parsed = Header::parse(header).unwrap();
        resolve(Some(&parsed), None, size, &[])
    }

    #[test]
    fn parse_and_resolve() {
        assert_eq!(r("bytes=0-0", 10).unwrap(), Some(0..1));
        assert_eq!(r("bytes=2-5", 10).unwrap(), Some(2..6));
        assert_eq!(r("bytes=2-", 10).unwrap(), Some(2..10));
        assert_eq!(r("bytes=-3", 10).unwrap(), Some(7..10));
        assert_eq!(r("bytes=-30", 10).unwrap(), Some(0..10));
        assert_eq!(r("bytes=5-100", 10).unwrap(), Some(5..10));
        assert_eq!(r("bytes=9-9", 10).unwrap(), Some(9..10));
    }

    #[test]
    fn unsatisfiable() {
        assert!(matches!(r("bytes=10-", 10), Err(ApiError::InvalidRange)));
        assert!(matches!(r("bytes=10-20", 10), Err(ApiError::InvalidRange)));
        assert!(matches!(r("bytes=-0", 10), Err(ApiError::InvalidRange)));
        assert!(matches!(r("bytes=0-", 0), Err(ApiError::InvalidRange)));
    }

    #[test]
    fn malformed_headers_do_not_parse() {
        for h in [
            "bytes=5-2",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=",
        ] {
            assert!(Header::parse(h).is_err(), "{h}");
        }
    }

    #[test]
    fn part_numbers() {
        assert_eq!(resolve(None, None, 10, &[]).unwrap(), None);
        assert_eq!(resolve(None, Some(1), 10, &[]).unwrap(), None);
        assert!(matches!(
            resolve(None, Some(2), 10, &[]),
            Err(ApiError::InvalidPartNumber)
        ));
        let h = Header::parse("bytes=0-1").unwrap();
        assert!(resolve(Some(&h), Some(1), 10, &[]).is_err());
        // A multipart object: part N is its own byte range.
        let parts = [6, 3, 1];
        assert_eq!(resolve(None, Some(1), 10, &parts).unwrap(), Some(0..6));
        assert_eq!(resolve(None, Some(2), 10, &parts).unwrap(), Some(6..9));
        assert_eq!(resolve(None, Some(3), 10, &parts).unwrap(), Some(9..10));
        for bad in [0, 4, -1] {
            assert!(matches!(
                resolve(None, Some(bad), 10, &parts),
                Err(ApiError::InvalidPartNumber)
            ));
        }
    }

    #[test]
    fn content_range_header() {
        assert_eq!(content_range(&(0..1), 10), "bytes 0-0/10");
        assert_eq!(content_range(&(7..10), 10), "bytes 7-9/10");
    }
}
