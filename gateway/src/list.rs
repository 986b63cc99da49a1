//! Object listings: ListObjectsV2 and ListObjects (v1) on top of the meta `ListObjects` page,
//! ListObjectVersions on top of the meta `ListObjectVersions` page, with opaque continuation tokens and `encoding-type=url`.

use base64::Engine as _;
use cairn_proto::meta::{self as pb};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::{
    CommonPrefix, DeleteMarkerEntry, EncodingType, ListObjectVersionsInput,
    ListObjectVersionsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, ObjectStorageClass, ObjectVersion as VersionEntry,
    ObjectVersionStorageClass,
};

use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::{versioning, Gateway};

/// The default and largest page size.
pub(crate) const MAX_KEYS: u32 = 1000;

/// Characters left as they are by `encoding-type=url`: unreserved ones and `/`.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a key or prefix for `encoding-type=url`.
pub(crate) fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

/// The continuation token for a listing that stopped after `last` (the meta
/// `next_start_after`): opaque to clients, base64 of the key.
pub(crate) fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

/// The key a continuation token resumes after.
pub(crate) fn decode_token(token: &str) -> ApiResult<String> {
    let bad = || ApiError::InvalidArgument("the continuation token provided is incorrect".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// `max-keys`: default 1000, capped at 1000, never negative.
pub(crate) fn max_keys(requested: Option<i32>) -> ApiResult<u32> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(ApiError::InvalidArgument(
            "max-keys must not be negative".into(),
        )),
        Some(n) => Ok(u32::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

/// One page from meta, in the listing's terms.
struct Page {
    objects: Vec<pb::ObjectSummary>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix returned.
    last: String,
}

async fn fetch(
    gw: &Gateway,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    start_after: &str,
    max: u32,
) -> ApiResult<Page> {
    if max == 0 {
        // Nothing to list, but a missing bucket must still say so.
        gw.meta.get_bucket(bucket).await?;
        return Ok(Page {
            objects: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last: String::new(),
        });
    }
    let resp = gw
        .meta
        .list_objects(pb::ListObjectsRequest {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            delimiter: delimiter.to_string(),
            start_after: start_after.to_string(),
            max_keys: max,
        })
        .await?;
    let last = if resp.next_start_after.is_empty() {
        let key = resp.objects.last().map(|o| o.key.as_str()).unwrap_or("");
        let prefix = resp
            .common_prefixes
            .last()
            .map(String::as_str)
            .unwrap_or("");
        key.max(prefix).to_string()
    } else {
        resp.next_start_after
    };
    if resp.is_truncated && last.is_empty() {
        return Err(ApiError::Internal(
            "truncated listing without a resume point".into(),
        ));
    }
    Ok(Page {
        objects: resp.objects,
        prefixes: resp.common_prefixes,
        truncated: resp.is_truncated,
        last,
    })
}

pub(crate) fn is_url(encoding: Option<&EncodingType>) -> ApiResult<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(e) if e.eq_ignore_ascii_case(EncodingType::URL) => Ok(true),
        Some(e) => Err(ApiError::InvalidArgument(format!(
            "invalid encoding-type {e:?}"
        ))),
    }
}

fn shape(page: Page, url: bool, owner: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let objects = page
        .objects
        .into_iter()
        .map(|o| Object {
            key: Some(enc(o.key)),
            size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
            e_tag: Some(dto::etag(&o.etag)),
            last_modified: Some(dto::timestamp(o.last_modified_ms)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: owner.then(dto::owner),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    (objects, prefixes)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// ListObjectsV2.
pub(crate) async fn list_v2(
    gw: &Gateway,
    input: ListObjectsV2Input,
) -> ApiResult<ListObjectsV2Output> {
    let url = is_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = non_empty(input.delimiter.clone());
    // The token, when present, wins over start-after (it already lies past it).
    let start = match input.continuation_token.as_deref() {
        Some(token) => decode_token(token)?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let page = fetch(
        gw,
        &input.bucket,
        &prefix,
        delimiter.as_deref().unwrap_or(""),
        &start,
        max,
    )
    .await?;
    let (truncated, next) = (page.truncated, encode_token(&page.last));
    let (contents, prefixes) = shape(page, url, input.fetch_owner == Some(true));
    let enc = |s: String| if url { url_encode(&s) } else { s };
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(prefix)),
        delimiter: delimiter.map(enc),
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        key_count: Some(i32::try_from(contents.len() + prefixes.len()).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token,
        next_continuation_token: truncated.then_some(next),
        is_truncated: Some(truncated),
        start_after: non_empty(input.start_after).map(enc),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        ..Default::default()
    })
}

/// ListObjects (v1). `NextMarker` is returned only with a delimiter, as AWS does; without
/// one, clients resume after the last key listed.
pub(crate) async fn list_v1(gw: &Gateway, input: ListObjectsInput) -> ApiResult<ListObjectsOutput> {
    let url = is_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = non_empty(input.delimiter.clone());
    let marker = input.marker.clone().unwrap_or_default();
    let page = fetch(
        gw,
        &input.bucket,
        &prefix,
        delimiter.as_deref().unwrap_or(""),
        &marker,
        max,
    )
    .await?;
    let (truncated, last) = (page.truncated, page.last.clone());
    let (contents, prefixes) = shape(page, url, true);
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let next_marker = (truncated && delimiter.is_some()).then(|| enc(last));
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        // AWS leaves v1's own Prefix as sent (botocore decodes only Delimiter, Marker,
        // NextMarker, keys and common prefixes of a v1 listing).
        prefix: Some(prefix),
        marker: Some(enc(marker)),
        next_marker,
        delimiter: delimiter.map(enc),
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        is_truncated: Some(truncated),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        ..Default::default()
    })
}

/// ListObjectVersions: every version and delete marker, by key and newest first within a
/// key, from the meta `ListObjectVersions` page. A key written only while versioning was
/// never enabled has one version, `null`.
pub(crate) async fn list_versions(
    gw: &Gateway,
    input: ListObjectVersionsInput,
) -> ApiResult<ListObjectVersionsOutput> {
    let url = is_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = non_empty(input.delimiter.clone());
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let version_marker = non_empty(input.version_id_marker.clone());
    if version_marker.is_some() && key_marker.is_empty() {
        return Err(ApiError::InvalidArgument(
            "a version-id marker cannot be specified without a key marker".into(),
        ));
    }
    if versioning::check_id(version_marker.as_deref()).is_err() {
        return Err(ApiError::InvalidArgument(
            "Invalid version id specified".into(),
        ));
    }
    let page = if max == 0 {
        // Nothing to list, but a missing bucket must still say so.
        gw.meta.get_bucket(&input.bucket).await?;
        pb::ListObjectVersionsResponse::default()
    } else {
        gw.meta
            .list_object_versions(pb::ListObjectVersionsRequest {
                bucket: input.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: delimiter.clone().unwrap_or_default(),
                key_marker: key_marker.clone(),
                version_id_marker: version_marker.clone().unwrap_or_default(),
                max_keys: max,
            })
            .await?
    };
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in page.versions {
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                key: Some(enc(v.key)),
                version_id: Some(v.version_id),
                is_latest: Some(v.is_latest),
                last_modified: Some(dto::timestamp(v.last_modified_ms)),
                owner: Some(dto::owner()),
            });
        } else {
            versions.push(VersionEntry {
                key: Some(enc(v.key)),
                size: Some(i64::try_from(v.size).unwrap_or(i64::MAX)),
                e_tag: Some(dto::etag(&v.etag)),
                last_modified: Some(dto::timestamp(v.last_modified_ms)),
                owner: Some(dto::owner()),
                is_latest: Some(v.is_latest),
                version_id: Some(v.version_id),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            });
        }
    }
    let prefixes = page
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    let truncated = page.is_truncated;
    Ok(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(prefix)),
        delimiter: delimiter.map(enc),
        key_marker: Some(enc(key_marker)),
        version_id_marker: version_marker,
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        is_truncated: Some(truncated),
        next_key_marker: truncated.then(|| enc(page.next_key_marker)),
        next_version_id_marker: (truncated && !page.next_version_id_marker.is_empty())
            .then_some(page.next_version_id_marker),
        encoding_type: input.encoding_type,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(prefixes),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        for key in [
            "",
            "a",
            "photos/2024/",
            "ünïcødé/🙂 key+with=odd&chars",
            &"k".repeat(1024),
        ] {
            let token = encode_token(key);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token}"
            );
            assert_eq!(decode_token(&token).unwrap(), key);
        }
    }

    #[test]
    fn bad_tokens() {
        assert!(matches!(
            decode_token("%%%"),
            Err(ApiError::InvalidArgument(_))
        ));
        // Valid base64 of bytes that are not UTF-8.
        let not_utf8 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xff, 0xfe]);
        assert!(decode_token(&not_utf8).is_err());
    }

    #[test]
    fn max_keys_rules() {
        assert_eq!(max_keys(None).unwrap(), 1000);
        assert_eq!(max_keys(Some(0)).unwrap(), 0);
        assert_eq!(max_keys(Some(7)).unwrap(), 7);
        assert_eq!(max_keys(Some(5000)).unwrap(), 1000);
        assert!(max_keys(Some(-1)).is_err());
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(url_encode("ü"), "%C3%BC");
        assert_eq!(url_encode("safe-_.~"), "safe-_.~");
    }
}
