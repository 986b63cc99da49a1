//! The flexible checksums (`x-amz-checksum-*`) a client may send with a PUT, in a header or
//! in an aws-chunked trailer: computed while the body streams and compared at its end.

use base64::Engine as _;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::TrailingHeaders;

use cairn_proto::meta as pb;

use crate::error::{ApiError, ApiResult};

/// A checksum algorithm of the S3 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    const ALL: [Algorithm; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The header (or trailer) carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// S3's name of the algorithm, as in `x-amz-checksum-algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The algorithm S3 calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm whose header is `name` (case-insensitive).
    pub fn from_header(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name))
    }
}

enum Hasher {
    Crc32(Crc32),
    Crc32c(Crc32c),
    Crc64Nvme(Crc64Nvme),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn new(a: Algorithm) -> Self {
        match a {
            Algorithm::Crc32 => Self::Crc32(Crc32::new()),
            Algorithm::Crc32c => Self::Crc32c(Crc32c::new()),
            Algorithm::Crc64Nvme => Self::Crc64Nvme(Crc64Nvme::new()),
            Algorithm::Sha1 => Self::Sha1(Sha1::new()),
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(h) => h.update(data),
            Self::Crc64Nvme(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The digest, base64 as on the wire.
    fn finish(self) -> String {
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        match self {
            Self::Crc32(h) => b64(h.finalize().as_ref()),
            Self::Crc32c(h) => b64(h.finalize().as_ref()),
            Self::Crc64Nvme(h) => b64(h.finalize().as_ref()),
            Self::Sha1(h) => b64(h.finalize().as_ref()),
            Self::Sha256(h) => b64(h.finalize().as_ref()),
        }
    }
}

/// Checksums of one PUT body: those announced in headers and the one promised in a trailer.
pub(crate) struct BodyChecksums {
    expected: Vec<(Algorithm, String)>,
    trailer: Option<(Algorithm, TrailingHeaders)>,
    hashers: Vec<(Algorithm, Hasher)>,
}

impl BodyChecksums {
    /// `expected`: algorithm and base64 value from request headers. `trailer`: the algorithm
    /// named by `x-amz-trailer` and the handle its value will arrive through.
    pub fn new(
        expected: Vec<(Algorithm, String)>,
        trailer: Option<(Algorithm, TrailingHeaders)>,
    ) -> Self {
        let mut algos: Vec<Algorithm> = expected.iter().map(|(a, _)| *a).collect();
        algos.extend(trailer.as_ref().map(|(a, _)| *a));
        algos.dedup();
        let mut hashers: Vec<(Algorithm, Hasher)> = Vec::new();
        for a in algos {
            if !hashers.iter().any(|(h, _)| *h == a) {
                hashers.push((a, Hasher::new(a)));
            }
        }
        Self {
            expected,
            trailer,
            hashers,
        }
    }

    /// Computes `algorithm` too (nothing to compare it with): a multipart part always gets
    /// its upload's checksum. Call before any byte is fed.
    pub fn also_compute(&mut self, algorithm: Algorithm) {
        if !self.hashers.iter().any(|(a, _)| *a == algorithm) {
            self.hashers.push((algorithm, Hasher::new(algorithm)));
        }
    }

    /// Feeds body bytes.
    pub fn update(&mut self, data: &[u8]) {
        for (_, h) in &mut self.hashers {
            h.update(data);
        }
    }

    /// Call once the body has been read to its end (so trailers are in): checks every
    /// announced checksum and returns the computed ones.
    pub fn finish(self) -> ApiResult<Vec<(Algorithm, String)>> {
        let computed: Vec<(Algorithm, String)> = self
            .hashers
            .into_iter()
            .map(|(a, h)| (a, h.finish()))
            .collect();
        let mut expected = self.expected;
        if let Some((algo, handle)) = &self.trailer {
            let value = handle.read(|h| {
                h.get(algo.header())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
            // A trailer that never came is tolerated: the body was still signed or hashed.
            if let Some(Some(v)) = value {
                expected.push((*algo, v));
            }
        }
        for (algo, want) in &expected {
            let got = computed
                .iter()
                .find(|(a, _)| a == algo)
                .map(|(_, v)| v.as_str());
            if got != Some(want.trim()) {
                return Err(ApiError::BadDigest(format!(
                    "the {} you specified did not match the calculated checksum",
                    algo.header()
                )));
            }
        }
        Ok(computed)
    }
}

/// Checksum values by algorithm, in the order S3's DTOs list them: CRC32, CRC32C,
/// CRC64NVME, SHA1, SHA256.
pub(crate) type ChecksumFields = [Option<String>; 5];

/// Spreads `(algorithm, value)` pairs into [`ChecksumFields`].
pub(crate) fn fields(values: Vec<(Algorithm, String)>) -> ChecksumFields {
    let mut out: ChecksumFields = Default::default();
    for (algo, value) in values {
        let slot = match algo {
            Algorithm::Crc32 => 0,
            Algorithm::Crc32c => 1,
            Algorithm::Crc64Nvme => 2,
            Algorithm::Sha1 => 3,
            Algorithm::Sha256 => 4,
        };
        out[slot] = Some(value);
    }
    out
}

/// The checksum of `data` with `algorithm`, base64.
pub(crate) fn digest(algorithm: Algorithm, data: &[u8]) -> String {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finish()
}

/// Verified checksums of a whole body as stored in a record.
pub(crate) fn records(computed: &[(Algorithm, String)]) -> Vec<pb::ObjectChecksum> {
    computed
        .iter()
        .map(|(a, value)| pb::ObjectChecksum {
            algorithm: a.name().to_string(),
            value: value.clone(),
            r#type: String::new(),
        })
        .collect()
}

/// `x-amz-checksum-type` of an object's stored checksums: COMPOSITE for a multipart object's
/// composite one, FULL_OBJECT otherwise.
pub(crate) fn stored_type(object: &pb::ObjectVersion) -> &'static str {
    if object.checksums.iter().any(|c| c.r#type == "COMPOSITE") {
        "COMPOSITE"
    } else {
        "FULL_OBJECT"
    }
}

/// An object's stored checksums, by algorithm (records of unknown algorithms are skipped).
pub(crate) fn stored(object: &pb::ObjectVersion) -> Vec<(Algorithm, String)> {
    of_records(&object.checksums)
}

/// An object's stored checksums of its whole body (a multipart object's COMPOSITE checksum
/// is left out: no stream of the body's bytes can reproduce it).
pub(crate) fn whole_body(object: &pb::ObjectVersion) -> Vec<(Algorithm, String)> {
    let full: Vec<pb::ObjectChecksum> = object
        .checksums
        .iter()
        .filter(|c| c.r#type != "COMPOSITE")
        .cloned()
        .collect();
    of_records(&full)
}

/// Stored checksum records by algorithm (records of unknown algorithms are skipped).
pub(crate) fn of_records(records: &[pb::ObjectChecksum]) -> Vec<(Algorithm, String)> {
    records
        .iter()
        .filter_map(|c| Some((Algorithm::from_name(&c.algorithm)?, c.value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_and_mismatches() {
        let mut ok = BodyChecksums::new(vec![(Algorithm::Crc32, "NhCmhg==".into())], None);
        ok.update(b"hel");
        ok.update(b"lo");
        let computed = ok.finish().unwrap();
        assert_eq!(computed, vec![(Algorithm::Crc32, "NhCmhg==".to_string())]);

        let mut bad = BodyChecksums::new(vec![(Algorithm::Crc32, "AAAAAA==".into())], None);
        bad.update(b"hello");
        assert!(matches!(bad.finish(), Err(ApiError::BadDigest(_))));
    }

    #[test]
    fn sha256_of_empty_body() {
        let c = BodyChecksums::new(
            vec![(
                Algorithm::Sha256,
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
            )],
            None,
        );
        assert!(c.finish().is_ok());
    }

    #[test]
    fn header_names() {
        assert_eq!(
            Algorithm::from_header("X-Amz-Checksum-CRC32C"),
            Some(Algorithm::Crc32c)
        );
        assert_eq!(
            Algorithm::from_header("x-amz-checksum-crc64nvme"),
            Some(Algorithm::Crc64Nvme)
        );
        assert_eq!(Algorithm::from_header("x-amz-meta-foo"), None);
    }
}
