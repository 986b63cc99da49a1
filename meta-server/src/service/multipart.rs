//! The multipart part of the `Meta` service: writes go through Raft as one command each,
//! listings read the leader's applied state after a linearizable check.

use cairn_proto::meta::*;
use prost::Message;
use tonic::Status;

use super::{decode, group_status, meta_error, store_status, unexpected, MetaService};
use crate::types::{Command, Response as Applied};

/// Default and largest page of ListParts and ListMultipartUploads (S3's limits).
const MAX_PAGE: u32 = 1000;

/// Decodes the parts a state-machine reply carries.
pub(super) fn decode_parts(raw: &[Vec<u8>]) -> Result<Vec<ObjectPart>, Status> {
    raw.iter().map(|p| decode(p)).collect()
}

fn page_size(requested: u32) -> usize {
    if requested == 0 {
        MAX_PAGE as usize
    } else {
        requested.min(MAX_PAGE) as usize
    }
}

impl MetaService {
    pub(super) async fn create_upload(
        &self,
        request: CreateMultipartUploadRequest,
    ) -> Result<CreateMultipartUploadResponse, Status> {
        let upload = MultipartUpload {
            bucket: request.bucket,
            key: request.key,
            upload_id: String::new(),
            initiated_ms: 0,
            content_type: request.content_type,
            user_metadata: request.user_metadata,
            headers: request.headers,
            tags: request.tags,
            lock: request.lock,
            checksum_algorithm: request.checksum_algorithm,
            checksum_type: request.checksum_type,
        };
        let group = self.groups()?.for_bucket(&upload.bucket);
        let applied = group
            .write(Command::CreateMultipartUpload {
                upload: upload.encode_to_vec(),
                // Drawn here, by the proposer: apply must not use randomness.
                nonce: rand::random(),
            })
            .await
            .map_err(group_status)?;
        Ok(match applied {
            Applied::Upload { upload } => CreateMultipartUploadResponse {
                error: MetaError::None as i32,
                upload: Some(decode(&upload)?),
            },
            Applied::Error { code } => CreateMultipartUploadResponse {
                error: meta_error(code) as i32,
                upload: None,
            },
            other => return Err(unexpected(&other)),
        })
    }

    pub(super) async fn commit_upload_part(
        &self,
        request: CommitPartRequest,
    ) -> Result<CommitPartResponse, Status> {
        let Some(part) = request.part else {
            return Err(Status::invalid_argument("part missing"));
        };
        let group = self.groups()?.for_bucket(&request.bucket);
        let applied = group
            .write(Command::CommitPart {
                bucket: request.bucket,
                key: request.key,
                upload_id: request.upload_id,
                part: part.encode_to_vec(),
            })
            .await
            .map_err(group_status)?;
        Ok(match applied {
            Applied::PartCommitted { part, replaced } => CommitPartResponse {
                error: MetaError::None as i32,
                part: Some(decode(&part)?),
                replaced: replaced.map(|r| decode(&r)).transpose()?,
            },
            Applied::Error { code } => CommitPartResponse {
                error: meta_error(code) as i32,
                ..Default::default()
            },
            other => return Err(unexpected(&other)),
        })
    }

    pub(super) async fn complete_upload(
        &self,
        request: CompleteMultipartUploadRequest,
    ) -> Result<CompleteMultipartUploadResponse, Status> {
        let group = self.groups()?.for_bucket(&request.bucket);
        let applied = group
            .write(Command::CompleteMultipartUpload {
                bucket: request.bucket,
                key: request.key,
                upload_id: request.upload_id,
                parts: request
                    .parts
                    .into_iter()
                    .map(|p| (p.part_number, p.etag))
                    .collect(),
                condition: crate::types::WriteCondition::from_proto(request.condition),
                checksums: request
                    .checksums
                    .iter()
                    .map(prost::Message::encode_to_vec)
                    .collect(),
            })
            .await
            .map_err(group_status)?;
        Ok(match applied {
            Applied::MultipartCompleted {
                object,
                replaced,
                unused_parts,
                expiry,
            } => CompleteMultipartUploadResponse {
                error: MetaError::None as i32,
                object: Some(decode(&object)?),
                replaced: replaced.map(|r| decode(&r)).transpose()?,
                unused_parts: decode_parts(&unused_parts)?,
                expiry: expiry.map(|e| decode(&e)).transpose()?,
            },
            Applied::Error { code } => CompleteMultipartUploadResponse {
                error: meta_error(code) as i32,
                ..Default::default()
            },
            other => return Err(unexpected(&other)),
        })
    }

    pub(super) async fn abort_upload(
        &self,
        request: AbortMultipartUploadRequest,
    ) -> Result<AbortMultipartUploadResponse, Status> {
        let group = self.groups()?.for_bucket(&request.bucket);
        let applied = group
            .write(Command::AbortMultipartUpload {
                bucket: request.bucket,
                key: request.key,
                upload_id: request.upload_id,
            })
            .await
            .map_err(group_status)?;
        Ok(match applied {
            Applied::Aborted { parts } => AbortMultipartUploadResponse {
                error: MetaError::None as i32,
                parts: decode_parts(&parts)?,
            },
            Applied::Error { code } => AbortMultipartUploadResponse {
                error: meta_error(code) as i32,
                parts: Vec::new(),
            },
            other => return Err(unexpected(&other)),
        })
    }

    pub(super) async fn list_upload_parts(
        &self,
        request: ListPartsRequest,
    ) -> Result<ListPartsResponse, Status> {
        let (reader, bucket) = self.bucket_view(&request.bucket).await?;
        let Some(bucket) = bucket else {
            return Ok(ListPartsResponse {
                error: MetaError::NoSuchBucket as i32,
                ..Default::default()
            });
        };
        let Some(upload) = reader
            .upload(bucket.id, &request.key, &request.upload_id)
            .map_err(store_status)?
        else {
            return Ok(ListPartsResponse {
                error: MetaError::NoSuchUpload as i32,
                ..Default::default()
            });
        };
        let (parts, is_truncated) = reader
            .parts(
                &request.upload_id,
                request.part_number_marker,
                page_size(request.max_parts),
            )
            .map_err(store_status)?;
        Ok(ListPartsResponse {
            error: MetaError::None as i32,
            upload: Some(upload),
            next_part_number_marker: parts.last().map_or(0, |p| p.part_number),
            parts,
            is_truncated,
        })
    }

    pub(super) async fn list_uploads(
        &self,
        request: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse, Status> {
        let (reader, bucket) = self.bucket_view(&request.bucket).await?;
        let Some(bucket) = bucket else {
            return Ok(ListMultipartUploadsResponse {
                error: MetaError::NoSuchBucket as i32,
                ..Default::default()
            });
        };
        let page = reader
            .uploads(
                bucket.id,
                &request.prefix,
                &request.delimiter,
                &request.key_marker,
                &request.upload_id_marker,
                page_size(request.max_uploads),
            )
            .map_err(store_status)?;
        Ok(ListMultipartUploadsResponse {
            error: MetaError::None as i32,
            uploads: page.uploads,
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_key_marker: page.next_key_marker,
            next_upload_id_marker: page.next_upload_id_marker,
        })
    }
}
