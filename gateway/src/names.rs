//! Bucket-name and object-key rules.

use crate::error::{ApiError, ApiResult};

/// Longest key, in bytes of UTF-8.
pub(crate) const MAX_KEY_LEN: usize = 1024;

/// Checks S3's bucket naming rules: 3–63 characters of lowercase letters, digits, `-` and
/// `.`; starting and ending with a letter or digit; no `..`; not shaped like an IPv4
/// address; none of the prefixes and suffixes AWS reserves.
pub(crate) fn validate_bucket_name(name: &str) -> ApiResult<()> {
    let fail = |why: &str| Err(ApiError::InvalidBucketName(format!("{name:?}: {why}")));
    if !(3..=63).contains(&name.len()) {
        return fail("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return fail("only lowercase letters, digits, '-' and '.' are allowed");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return fail("must start and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return fail("no adjacent periods, nor a period next to a hyphen");
    }
    if looks_like_ipv4(name) {
        return fail("must not be formatted as an IP address");
    }
    const BAD_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const BAD_SUFFIXES: [&str; 4] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3"];
    if BAD_PREFIXES.iter().any(|p| name.starts_with(p))
        || BAD_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return fail("uses a reserved prefix or suffix");
    }
    Ok(())
}

/// Four dot-separated groups of 1–3 digits, whatever their values ("999.1.1.1" included).
fn looks_like_ipv4(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks an object key: 1 to 1024 bytes (of UTF-8, which a `&str` already is).
pub(crate) fn validate_key(key: &str) -> ApiResult<()> {
    if key.is_empty() {
        return Err(ApiError::InvalidArgument(
            "the object key must not be empty".into(),
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(ApiError::KeyTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_bucket_names() {
        for name in [
            "abc",
            "my-bucket",
            "my.bucket.1",
            "123",
            "a1-b2.c3",
            &"a".repeat(63),
        ] {
            assert!(validate_bucket_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_bucket_names() {
        for name in [
            "",
            "ab",
            &"a".repeat(64),
            "MyBucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            ".bucket",
            "bucket.",
            "my..bucket",
            "my.-bucket",
            "192.168.1.1",
            "999.1.1.1",
            "xn--bucket",
            "bucket-s3alias",
            "bücket",
            "my bucket",
        ] {
            assert!(
                matches!(
                    validate_bucket_name(name),
                    Err(ApiError::InvalidBucketName(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn keys() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key("dir/ünïcødé/🙂").is_ok());
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        assert!(matches!(
            validate_key(&"k".repeat(1025)),
            Err(ApiError::KeyTooLong)
        ));
        // 1024 bytes counts bytes, not characters: 342 three-byte characters is 1026 bytes.
        assert!(matches!(
            validate_key(&"€".repeat(342)),
            Err(ApiError::KeyTooLong)
        ));
        assert!(validate_key("").is_err());
    }
}
