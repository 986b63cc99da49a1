//! Flexible checksums of multipart uploads with aws-sdk-s3: an upload created with a
//! checksum algorithm gets each part's checksum (UploadPart, ListParts, GetObjectAttributes)
//! and an object checksum made from them, COMPOSITE (the checksum of the part checksums,
//! `-N`) or FULL_OBJECT (the CRC of the whole body, combined from the parts'), returned by
//! CompleteMultipartUpload and by HEAD with checksum mode; wrong part or object checksums
//! are refused. Expected values are computed here with the SDK's own checksum code.

use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes,
};
use aws_sdk_s3::Client;
use base64::Engine as _;

use crate::harness::*;

fn raw_checksum(algorithm: aws_smithy_checksums::ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut hasher = algorithm.into_impl();
    hasher.update(data);
    hasher.finalize().to_vec()
}

fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Uploads `bodies` as parts 1.. of `upload_id`; returns the completed-part entries (with the
/// checksums the server answered).
async fn upload_parts(
    s3: &Client,
    (bucket, key, upload_id): (&str, &str, &str),
    algorithm: ChecksumAlgorithm,
    bodies: &[Vec<u8>],
) -> Vec<CompletedPart> {
    let mut out = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let number = i as i32 + 1;
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(algorithm.clone())
            .body(body.clone().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {number}: {e:?}"));
        out.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .set_checksum_crc32(part.checksum_crc32().map(str::to_string))
                .set_checksum_crc64_nvme(part.checksum_crc64_nvme().map(str::to_string))
                .build(),
        );
    }
    out
}

#[tokio::test]
async fn composite_and_full_object_checksums_of_multipart_uploads() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("mpck")
        .send()
        .await
        .expect("create bucket");
    let bodies = vec![data(5 << 20, 1), data(300_000, 2)];

    // --- COMPOSITE CRC32 (the default type for CRC32) ---
    let created = s3
        .create_multipart_upload()
        .bucket("mpck")
        .key("composite")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    assert_eq!(
        created.checksum_algorithm(),
        Some(&ChecksumAlgorithm::Crc32)
    );
    assert_eq!(created.checksum_type(), Some(&ChecksumType::Composite));
    let upload_id = created.upload_id().expect("id").to_string();
    let parts = upload_parts(
        &s3,
        ("mpck", "composite", &upload_id),
        ChecksumAlgorithm::Crc32,
        &bodies,
    )
    .await;
    let part_raw: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| raw_checksum(aws_smithy_checksums::ChecksumAlgorithm::Crc32, b))
        .collect();
    for (part, raw) in parts.iter().zip(&part_raw) {
        assert_eq!(
            part.checksum_crc32(),
            Some(b64(raw).as_str()),
            "UploadPart's checksum"
        );
    }
    let listed = s3
        .list_parts()
        .bucket("mpck")
        .key("composite")
        .upload_id(&upload_id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.checksum_algorithm(), Some(&ChecksumAlgorithm::Crc32));
    let listed_sums: Vec<Option<String>> = listed
        .parts()
        .iter()
        .map(|p| p.checksum_crc32().map(str::to_string))
        .collect();
    let expected_sums: Vec<Option<String>> = part_raw.iter().map(|r| Some(b64(r))).collect();
    assert_eq!(listed_sums, expected_sums, "ListParts' checksums");

    // A wrong part checksum in the completion is refused and the upload stays.
    let mut wrong = parts.clone();
    wrong[0] = CompletedPart::builder()
        .part_number(1)
        .e_tag(parts[0].e_tag().expect("etag"))
        .checksum_crc32(b64(&[0, 0, 0, 0]))
        .build();
    let err = s3
        .complete_multipart_upload()
        .bucket("mpck")
        .key("composite")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(wrong))
                .build(),
        )
        .send()
        .await
        .expect_err("a wrong part checksum");
    assert_eq!(code(&err), "InvalidPart");

    let done = s3
        .complete_multipart_upload()
        .bucket("mpck")
        .key("composite")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let concatenated: Vec<u8> = part_raw.concat();
    let expected = format!(
        "{}-2",
        b64(&raw_checksum(
            aws_smithy_checksums::ChecksumAlgorithm::Crc32,
            &concatenated
        ))
    );
    assert_eq!(done.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    let head = s3
        .head_object()
        .bucket("mpck")
        .key("composite")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
    let attributes = s3
        .get_object_attributes()
        .bucket("mpck")
        .key("composite")
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    let checksum = attributes.checksum().expect("checksum");
    assert_eq!(checksum.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(checksum.checksum_type(), Some(&ChecksumType::Composite));
    let attribute_parts = attributes.object_parts().expect("parts").parts();
    assert_eq!(
        attribute_parts[1].checksum_crc32(),
        Some(b64(&part_raw[1]).as_str())
    );
    let body = s3
        .get_object()
        .bucket("mpck")
        .key("composite")
        .send()
        .await
        .expect("get");
    assert_eq!(
        body.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        bodies.concat()
    );

    // --- FULL_OBJECT CRC64NVME (its only type) ---
    let created = s3
        .create_multipart_upload()
        .bucket("mpck")
        .key("full")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .send()
        .await
        .expect("create upload");
    assert_eq!(created.checksum_type(), Some(&ChecksumType::FullObject));
    let upload_id = created.upload_id().expect("id").to_string();
    let bodies = vec![data(5 << 20, 3), data(5 << 20, 4), data(1, 5)];
    let parts = upload_parts(
        &s3,
        ("mpck", "full", &upload_id),
        ChecksumAlgorithm::Crc64Nvme,
        &bodies,
    )
    .await;
    let whole = b64(&raw_checksum(
        aws_smithy_checksums::ChecksumAlgorithm::Crc64Nvme,
        &bodies.concat(),
    ));
    // The whole-object checksum the client sends is compared.
    let err = s3
        .complete_multipart_upload()
        .bucket("mpck")
        .key("full")
        .upload_id(&upload_id)
        .checksum_crc64_nvme(b64(&[0; 8]))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts.clone()))
                .build(),
        )
        .send()
        .await
        .expect_err("a wrong object checksum");
    assert_eq!(code(&err), "BadDigest");
    let done = s3
        .complete_multipart_upload()
        .bucket("mpck")
        .key("full")
        .upload_id(&upload_id)
        .checksum_crc64_nvme(&whole)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(done.checksum_crc64_nvme(), Some(whole.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    let got = s3
        .get_object()
        .bucket("mpck")
        .key("full")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get full");
    assert_eq!(got.checksum_crc64_nvme(), Some(whole.as_str()));
    assert_eq!(got.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        bodies.concat()
    );

    // --- Copies: a whole-body checksum is checked end to end and kept; a composite one
    // describes the source's parts, so the copy has none ---
    s3.copy_object()
        .bucket("mpck")
        .key("full-copy")
        .copy_source("mpck/full")
        .send()
        .await
        .expect("copy the full-object one");
    let head = s3
        .head_object()
        .bucket("mpck")
        .key("full-copy")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head copy");
    assert_eq!(head.checksum_crc64_nvme(), Some(whole.as_str()));
    s3.copy_object()
        .bucket("mpck")
        .key("composite-copy")
        .copy_source("mpck/composite")
        .send()
        .await
        .expect("copy the composite one");
    let head = s3
        .head_object()
        .bucket("mpck")
        .key("composite-copy")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head copy");
    assert_eq!(head.checksum_crc32(), None);

    // --- Combinations S3 refuses ---
    for (algorithm, kind) in [
        (ChecksumAlgorithm::Sha256, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite),
    ] {
        let err = s3
            .create_multipart_upload()
            .bucket("mpck")
            .key("bad")
            .checksum_algorithm(algorithm.clone())
            .checksum_type(kind.clone())
            .send()
            .await
            .expect_err("an impossible checksum");
        assert_eq!(
            (status(&err), code(&err).as_str()),
            (400, "InvalidRequest"),
            "{algorithm:?} {kind:?}"
        );
    }
}
