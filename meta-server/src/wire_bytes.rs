//! How byte payloads of Raft commands are written in the log's JSON: as one base64 string.
//!
//! Why: serde writes a `Vec<u8>` as a JSON array of numbers, about 3.6 characters per byte.
//! Object records are the bulk of the log, and small objects kept inline carry their whole
//! body in them, so that form made every such entry (its log write, its replication to each
//! follower) several times larger than the data. Entries written before this module existed
//! hold arrays; reading accepts both forms, so an old log replays unchanged.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// `#[serde(with = "crate::wire_bytes")]` for a `Vec<u8>`.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

/// Reads a base64 string, or an array of numbers (entries written before).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_any(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a base64 string or an array of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        STANDARD.decode(v).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// The same for an `Option<Vec<u8>>` (`null` stays `None`).
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// `#[serde(with = "crate::wire_bytes::option")]`.
    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::serialize(b, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null`, a base64 string or an array of numbers.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Vec<u8>);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Carrier {
        #[serde(with = "crate::wire_bytes")]
        data: Vec<u8>,
        #[serde(with = "crate::wire_bytes::option", default)]
        extra: Option<Vec<u8>>,
    }

    #[test]
    fn bytes_are_one_base64_string() {
        let c = Carrier {
            data: vec![0, 1, 255],
            extra: Some(vec![7]),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"data":"AAH/","extra":"Bw=="}"#);
        assert_eq!(serde_json::from_str::<Carrier>(&json).unwrap(), c);
    }

    #[test]
    fn entries_written_as_arrays_still_read() {
        let old = r#"{"data":[0,1,255],"extra":[7]}"#;
        let c: Carrier = serde_json::from_str(old).unwrap();
        assert_eq!(c.data, vec![0, 1, 255]);
        assert_eq!(c.extra, Some(vec![7]));
        let none: Carrier = serde_json::from_str(r#"{"data":[],"extra":null}"#).unwrap();
        assert_eq!(none.extra, None);
        let absent: Carrier = serde_json::from_str(r#"{"data":""}"#).unwrap();
        assert_eq!(absent.extra, None);
    }

    #[test]
    fn a_bad_string_is_an_error() {
        assert!(serde_json::from_str::<Carrier>(r#"{"data":"!!"}"#).is_err());
    }
}
