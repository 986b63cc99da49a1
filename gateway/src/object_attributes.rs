//! GetObjectAttributes: ETag, size, storage class and the parts of a multipart object (paged
//! with `max-parts` / `part-number-marker`), and the full-object checksums a single PUT
//! stored, from the version record alone.

use cairn_proto::meta::ObjectVersion;
use s3s::dto::{
    Checksum, ChecksumType, GetObjectAttributesInput, GetObjectAttributesOutput,
    GetObjectAttributesParts, ObjectAttributes, ObjectPart, StorageClass,
};

use crate::checksum;
use crate::error::{ApiError, ApiResult};
use crate::{dto, Gateway};

/// Default and largest page of parts.
const MAX_PARTS: i32 = 1000;

/// Answers GetObjectAttributes.
pub(crate) async fn get(
    gw: &Gateway,
    input: &GetObjectAttributesInput,
) -> ApiResult<GetObjectAttributesOutput> {
    // `x-amz-version-id` as a GET of the same version answers it.
    let (obj, version_id) =
        crate::versioning::read_with_id(gw, &input.bucket, &input.key, input.version_id.as_deref())
            .await?;
    if input.object_attributes.is_empty() {
        return Err(ApiError::InvalidArgument(
            "x-amz-object-attributes names no attribute".into(),
        ));
    }
    // One header may carry the whole list ("ETag,ObjectSize", as boto3 sends it) or several
    // headers one name each (as other SDKs do): split both ways.
    let wants = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim().eq_ignore_ascii_case(name))
    };
    Ok(GetObjectAttributesOutput {
        e_tag: wants(ObjectAttributes::ETAG).then(|| dto::etag(&obj.etag)),
        object_size: wants(ObjectAttributes::OBJECT_SIZE)
            .then(|| i64::try_from(obj.size).unwrap_or(i64::MAX)),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        object_parts: if wants(ObjectAttributes::OBJECT_PARTS) {
            parts_page(&obj, input.part_number_marker, input.max_parts)?
        } else {
            None
        },
        checksum: if wants(ObjectAttributes::CHECKSUM) {
            whole_object_checksum(&obj)
        } else {
            None
        },
        last_modified: Some(dto::timestamp(obj.last_modified_ms)),
        version_id,
        ..Default::default()
    })
}

/// The stored full-object checksums (`None` when none was stored).
fn whole_object_checksum(obj: &ObjectVersion) -> Option<Checksum> {
    let stored = checksum::stored(obj);
    if stored.is_empty() {
        return None;
    }
    let [crc32, crc32c, crc64nvme, sha1, sha256] = checksum::fields(stored);
    Some(Checksum {
        checksum_crc32: crc32,
        checksum_crc32c: crc32c,
        checksum_crc64nvme: crc64nvme,
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        checksum_type: Some(ChecksumType::from_static(checksum::stored_type(obj))),
    })
}

/// One page of a multipart object's parts (`None` for a single PUT, as in S3).
fn parts_page(
    obj: &ObjectVersion,
    marker: Option<i32>,
    max_parts: Option<i32>,
) -> ApiResult<Option<GetObjectAttributesParts>> {
    if obj.parts.is_empty() {
        return Ok(None);
    }
    let marker = marker.unwrap_or(0);
    let max = max_parts.unwrap_or(MAX_PARTS);
    if marker < 0 || max < 0 {
        return Err(ApiError::InvalidArgument(
            "max-parts and part-number-marker must not be negative".into(),
        ));
    }
    let max = max.min(MAX_PARTS) as usize;
    let after: Vec<_> = obj
        .parts
        .iter()
        .filter(|p| i64::from(p.part_number) > i64::from(marker))
        .collect();
    let page: Vec<ObjectPart> = after
        .iter()
        .take(max)
        .map(|p| {
            let [crc32, crc32c, crc64nvme, sha1, sha256] =
                checksum::fields(checksum::of_records(&p.checksums));
            ObjectPart {
                part_number: i32::try_from(p.part_number).ok(),
                size: i64::try_from(p.size).ok(),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_crc64nvme: crc64nvme,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
            }
        })
        .collect();
    let truncated = after.len() > page.len();
    let next = page.last().and_then(|p| p.part_number);
    Ok(Some(GetObjectAttributesParts {
        total_parts_count: i32::try_from(obj.parts.len()).ok(),
        part_number_marker: Some(marker),
        next_part_number_marker: next,
        max_parts: i32::try_from(max).ok(),
        is_truncated: Some(truncated),
        parts: Some(page),
    }))
}

/// Whether a request is GetObjectAttributes (`GET /bucket/key?attributes`).
pub(crate) fn is_get_object_attributes(method: &http::Method, query: Option<&str>) -> bool {
    method == http::Method::GET && crate::request_values::query_param(query, "attributes").is_some()
}

/// Removes the quotes around the `<ETag>` of a GetObjectAttributes answer.
///
/// Why: S3 writes this one ETag bare (`<ETag>d41d8...</ETag>`), unlike the quoted ETags of
/// every other XML answer and header, and clients compare it with a computed MD5 as it is.
/// s3s quotes every ETag it serializes, so the answer is fixed after it. The body is the
/// small XML document s3s built in memory; anything else is left alone.
pub(crate) fn unquote_etag(resp: &mut http::Response<s3s::Body>) {
    let Some(bytes) = resp.body().bytes() else {
        return;
    };
    let Some(fixed) = unquote_etag_element(&bytes) else {
        return;
    };
    if resp.headers().contains_key(http::header::CONTENT_LENGTH) {
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, fixed.len().into());
    }
    *resp.body_mut() = s3s::Body::from(fixed);
}

/// `xml` with `<ETag>"v"</ETag>` made `<ETag>v</ETag>`; `None` when there is nothing to do.
fn unquote_etag_element(xml: &[u8]) -> Option<Vec<u8>> {
    const OPEN: &[u8] = b"<ETag>\"";
    const CLOSE: &[u8] = b"\"</ETag>";
    let start = xml.windows(OPEN.len()).position(|w| w == OPEN)?;
    let value_start = start + OPEN.len();
    let value_len = xml[value_start..]
        .windows(CLOSE.len())
        .position(|w| w == CLOSE)?;
    let value_end = value_start + value_len;
    let mut fixed = Vec::with_capacity(xml.len() - 2);
    fixed.extend_from_slice(&xml[..start]);
    fixed.extend_from_slice(b"<ETag>");
    fixed.extend_from_slice(&xml[value_start..value_end]);
    fixed.extend_from_slice(&xml[value_end + 1..]);
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::ObjectPart as PbPart;

    fn multipart(n: u32) -> ObjectVersion {
        ObjectVersion {
            parts: (1..=n)
                .map(|i| PbPart {
                    part_number: i,
                    size: u64::from(i) * 10,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parts_are_paged() {
        assert!(parts_page(&ObjectVersion::default(), None, None)
            .unwrap()
            .is_none());
        let obj = multipart(5);
        let first = parts_page(&obj, None, Some(2)).unwrap().unwrap();
        assert_eq!(first.total_parts_count, Some(5));
        assert_eq!(first.is_truncated, Some(true));
        assert_eq!(first.next_part_number_marker, Some(2));
        let sizes: Vec<_> = first.parts.unwrap().iter().map(|p| p.size).collect();
        assert_eq!(sizes, vec![Some(10), Some(20)]);
        let last = parts_page(&obj, Some(4), Some(2)).unwrap().unwrap();
        assert_eq!(last.is_truncated, Some(false));
        assert_eq!(last.parts.unwrap().len(), 1);
        assert!(parts_page(&obj, Some(-1), None).is_err());
    }

    #[test]
    fn only_the_etag_element_loses_its_quotes() {
        let xml = br#"<?xml version="1.0"?><GetObjectAttributesResponse><ETag>"abc-2"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"#;
        let fixed = unquote_etag_element(xml).expect("fixed");
        assert_eq!(
            std::str::from_utf8(&fixed).expect("utf8"),
            r#"<?xml version="1.0"?><GetObjectAttributesResponse><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"#
        );
        assert!(unquote_etag_element(b"<ObjectSize>3</ObjectSize>").is_none());
        assert!(unquote_etag_element(&fixed).is_none(), "already bare");
    }

    #[test]
    fn get_object_attributes_requests_are_recognised() {
        let get = http::Method::GET;
        assert!(is_get_object_attributes(&get, Some("attributes")));
        assert!(is_get_object_attributes(
            &get,
            Some("versionId=x&attributes=")
        ));
        assert!(!is_get_object_attributes(&get, Some("attributes-x=1")));
        assert!(!is_get_object_attributes(&get, None));
        assert!(!is_get_object_attributes(
            &http::Method::PUT,
            Some("attributes")
        ));
    }
}
