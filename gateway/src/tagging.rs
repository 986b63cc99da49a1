//! Object tagging: the rules a tag set must meet, the `x-amz-tagging` header (PutObject,
//! CreateMultipartUpload, CopyObject), and the tag set stored in the version record, which
//! PutObjectTagging / DeleteObjectTagging replace with one Raft entry.

use cairn_proto::meta as pb;
use s3s::dto::{Tag, TagSet, Tagging};

use crate::error::{ApiError, ApiResult};
use crate::Gateway;

/// Most tags an object may have.
pub(crate) const MAX_TAGS: usize = 10;
/// Longest tag key, in characters.
const MAX_KEY_CHARS: usize = 128;
/// Longest tag value, in characters.
const MAX_VALUE_CHARS: usize = 256;

/// Checks a tag set against S3's rules: at most 10 tags, keys of 1-128 and values of at most
/// 256 characters (letters, digits, white space and `_ . : / = + - @`), no key twice, no
/// key in the reserved `aws:` namespace.
pub(crate) fn validate(tags: &[pb::ObjectTag]) -> ApiResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::InvalidTag(format!(
            "Object tags cannot be greater than {MAX_TAGS}"
        )));
    }
    validate_each(tags)
}

/// Checks each tag of a set (lengths, characters, duplicates, the `aws:` prefix), whatever
/// their number: the rules object and bucket tags share.
pub(crate) fn validate_each(tags: &[pb::ObjectTag]) -> ApiResult<()> {
    for (i, tag) in tags.iter().enumerate() {
        let key_chars = tag.key.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(ApiError::InvalidTag(format!(
                "The TagKey you have provided is invalid: it must have 1 to {MAX_KEY_CHARS} characters"
            )));
        }
        if tag.value.chars().count() > MAX_VALUE_CHARS {
            return Err(ApiError::InvalidTag(format!(
                "The TagValue you have provided is too long, max {MAX_VALUE_CHARS}"
            )));
        }
        if !tag.key.chars().all(allowed) {
            return Err(ApiError::InvalidTag(
                "The TagKey you have provided is invalid".into(),
            ));
        }
        if !tag.value.chars().all(allowed) {
            return Err(ApiError::InvalidTag(
                "The TagValue you have provided is invalid".into(),
            ));
        }
        if tag.key.starts_with("aws:") {
            return Err(ApiError::InvalidTag(
                "Your TagKey cannot be prefixed with aws:".into(),
            ));
        }
        if tags[..i].iter().any(|t| t.key == tag.key) {
            return Err(ApiError::InvalidTag(
                "Cannot provide multiple Tags with the same key".into(),
            ));
        }
    }
    Ok(())
}

/// The characters S3 allows in tag keys and values.
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// The tags of an `x-amz-tagging` header (URL query encoding: `k1=v1&k2=v2`), checked.
pub(crate) fn from_header(header: &str) -> ApiResult<Vec<pb::ObjectTag>> {
    let bad = || {
        ApiError::InvalidArgument(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters"
                .into(),
        )
    };
    let decode = |s: &str| -> ApiResult<String> {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push(pb::ObjectTag {
            key: decode(k)?,
            value: decode(v)?,
        });
    }
    validate(&tags)?;
    Ok(tags)
}

/// The tags of a PutObjectTagging body, checked.
pub(crate) fn from_tagging(tagging: Tagging) -> ApiResult<Vec<pb::ObjectTag>> {
    let tags = unchecked(&tagging);
    validate(&tags)?;
    Ok(tags)
}

/// The tags of a Tagging body as sent, not yet checked.
pub(crate) fn unchecked(tagging: &Tagging) -> Vec<pb::ObjectTag> {
    tagging
        .tag_set
        .iter()
        .map(|t| pb::ObjectTag {
            key: t.key.clone().unwrap_or_default(),
            value: t.value.clone().unwrap_or_default(),
        })
        .collect()
}

/// A stored tag set as GetObjectTagging answers it.
pub(crate) fn tag_set(tags: &[pb::ObjectTag]) -> TagSet {
    tags.iter()
        .map(|t| Tag {
            key: Some(t.key.clone()),
            value: Some(t.value.clone()),
        })
        .collect()
}

/// `x-amz-tagging-count`: the number of tags, if there are any.
pub(crate) fn count(tags: &[pb::ObjectTag]) -> Option<i32> {
    (!tags.is_empty()).then(|| i32::try_from(tags.len()).unwrap_or(i32::MAX))
}

/// Replaces the tags of an object version (none: the current one; `null`: the null
/// version; an empty set removes them). Returns the version's id as S3 shows it, if it has
/// one of its own.
pub(crate) async fn set(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: Vec<pb::ObjectTag>,
) -> ApiResult<Option<String>> {
    validate(&tags)?;
    let wanted = crate::versioning::check_id(version_id)?;
    match gw
        .meta
        .set_object_tags(bucket, key, wanted.unwrap_or(""), tags)
        .await
    {
        Ok(_) => Ok(wanted
            .filter(|v| *v != crate::versioning::NULL_VERSION)
            .map(str::to_string)),
        // The current version is a delete marker.
        Err(ApiError::NoSuchKey) if wanted.is_none() => {
            // Tell a deleted key from a missing one, as GET does.
            crate::versioning::read(gw, bucket, key, None).await?;
            Err(ApiError::NoSuchKey)
        }
        Err(e) => Err(e),
    }
}

/// The tags of an object version (a linearizable read of its version record), and its id
/// as S3 shows it, if it has one of its own.
pub(crate) async fn get(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> ApiResult<(Vec<pb::ObjectTag>, Option<String>)> {
    let obj = crate::versioning::read(gw, bucket, key, version_id).await?;
    let id = crate::versioning::header_id(&obj);
    Ok((obj.tags, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> pb::ObjectTag {
        pb::ObjectTag {
            key: k.into(),
            value: v.into(),
        }
    }

    fn is_invalid_tag<T: std::fmt::Debug>(r: ApiResult<T>) -> bool {
        matches!(r, Err(ApiError::InvalidTag(_)))
    }

    #[test]
    fn limits() {
        let ten: Vec<_> = (0..10).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(validate(&ten).is_ok());
        let eleven: Vec<_> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(is_invalid_tag(validate(&eleven)));
        assert!(validate(&[tag(&"é".repeat(128), &"ü".repeat(256))]).is_ok());
        assert!(is_invalid_tag(validate(&[tag(&"k".repeat(129), "")])));
        assert!(is_invalid_tag(validate(&[tag("k", &"v".repeat(257))])));
        assert!(is_invalid_tag(validate(&[tag("", "v")])));
        assert!(is_invalid_tag(validate(&[tag("a", "1"), tag("a", "2")])));
        assert!(is_invalid_tag(validate(&[tag("a*", "1")])));
        assert!(is_invalid_tag(validate(&[tag("aws:x", "1")])));
        assert!(validate(&[tag("Project X_1.2:a/b=c+d-e@f", "")]).is_ok());
    }

    #[test]
    fn header_parsing() {
        let tags = from_header("a=1&b%20c=x%2By&empty=&d=e+f").unwrap();
        assert_eq!(
            tags,
            vec![
                tag("a", "1"),
                tag("b c", "x+y"),
                tag("empty", ""),
                tag("d", "e f")
            ]
        );
        assert!(from_header("").unwrap().is_empty());
        assert!(is_invalid_tag(from_header("a=1&a=2")));
        assert!(matches!(
            from_header("a=%FF"),
            Err(ApiError::InvalidArgument(_))
        ));
    }
}
