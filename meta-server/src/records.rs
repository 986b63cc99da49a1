//! Versioned encoding of the values stored in RocksDB.
//!
//! Every value is one format-version byte followed by the protobuf (prost) encoding of a
//! `cairn_proto::meta` message. Protobuf already tolerates added fields; the leading byte is
//! there for the changes it cannot absorb, so that a later release can read what this one
//! wrote and migrate it (see docs/formats.md).

use prost::Message;

/// The record format this release writes.
pub const RECORD_FORMAT_V1: u8 = 1;

/// A record that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The value was empty.
    #[error("empty record")]
    Empty,
    /// Written by a newer release (or corrupt).
    #[error("unknown record format version {0}")]
    UnknownVersion(u8),
    /// The protobuf body did not decode.
    #[error("malformed record: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Encodes `msg` as a current-format record.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + msg.encoded_len());
    out.push(RECORD_FORMAT_V1);
    msg.encode_raw(&mut out);
    out
}

/// Decodes a record written by [`encode`] (or by an older format, once there is one).
pub fn decode<M: Message + Default>(raw: &[u8]) -> Result<M, RecordError> {
    match raw.split_first() {
        None => Err(RecordError::Empty),
        Some((&RECORD_FORMAT_V1, body)) => Ok(M::decode(body)?),
        Some((&v, _)) => Err(RecordError::UnknownVersion(v)),
    }
}

/// The fields of an `ObjectVersion` record that a listing needs, and nothing else.
///
/// Why: prost steps over the fields a message does not declare, so decoding a record as
/// this type skips its shard placements, user metadata, tags and inline body instead of
/// allocating and copying them; a LIST page decodes a thousand records. The tags are those
/// of `ObjectVersion` in `meta.proto` (a test below holds them together).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListedVersion {
    /// `ObjectVersion.size`.
    #[prost(uint64, tag = "4")]
    pub size: u64,
    /// `ObjectVersion.etag`.
    #[prost(string, tag = "5")]
    pub etag: String,
    /// `ObjectVersion.last_modified_ms`.
    #[prost(int64, tag = "8")]
    pub last_modified_ms: i64,
    /// `ObjectVersion.delete_marker`.
    #[prost(bool, tag = "16")]
    pub delete_marker: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_version_reads_the_same_fields_as_the_full_record() {
        use cairn_proto::meta::{ObjectVersion, ShardPlacement};
        let full = ObjectVersion {
            bucket: "b".into(),
            key: "k".into(),
            version_id: "v1".into(),
            size: 1234,
            etag: "abc".into(),
            last_modified_ms: 99,
            shards: vec![ShardPlacement {
                node_id: "n".into(),
                ..Default::default()
            }],
            delete_marker: true,
            inline_data: Some(b"body".to_vec().into()),
            ..Default::default()
        };
        let listed: ListedVersion = decode(&encode(&full)).unwrap();
        assert_eq!(
            listed,
            ListedVersion {
                size: 1234,
                etag: "abc".into(),
                last_modified_ms: 99,
                delete_marker: true,
            }
        );
    }
    use cairn_proto::meta::Bucket;

    #[test]
    fn round_trip_and_reject_unknown_versions() {
        let b = Bucket {
            name: "b".into(),
            id: 3,
            created_ms: 9,
            scheme: None,
            versioning: 1,
            ..Default::default()
        };
        let raw = encode(&b);
        assert_eq!(raw[0], RECORD_FORMAT_V1);
        assert_eq!(decode::<Bucket>(&raw).ok(), Some(b));
        let mut newer = raw.clone();
        newer[0] = 2;
        assert!(matches!(
            decode::<Bucket>(&newer),
            Err(RecordError::UnknownVersion(2))
        ));
        assert!(matches!(decode::<Bucket>(&[]), Err(RecordError::Empty)));
    }
}
