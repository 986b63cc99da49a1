//! The checksum of a whole multipart object, made from its parts' checksums, as S3 defines
//! it for an upload created with `x-amz-checksum-algorithm`:
//!
//! - **COMPOSITE** (any algorithm but CRC64NVME): the checksum of the parts' raw checksums
//!   concatenated in part order, then `-` and the number of parts (`"abc=-3"`);
//! - **FULL_OBJECT** (CRC32, CRC32C, CRC64NVME): the CRC of the whole body, combined from the
//!   parts' CRCs and lengths without reading a byte again (zlib's `crc32_combine`, which holds
//!   for any CRC whose initial value equals its final XOR, as these three do).
//!
//! Each part's checksum of the upload's algorithm is computed while the part streams in
//! (whether or not the client sent one), so the object's can always be made at completion.

use base64::Engine as _;
use cairn_proto::meta as pb;

use crate::checksum::{self, Algorithm};
use crate::error::{ApiError, ApiResult};

/// How a multipart object's checksum is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumType {
    Composite,
    FullObject,
}

impl ChecksumType {
    /// S3's name of the type (`x-amz-checksum-type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Composite => "COMPOSITE",
            Self::FullObject => "FULL_OBJECT",
        }
    }

    /// The type S3 calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "COMPOSITE" => Some(Self::Composite),
            "FULL_OBJECT" => Some(Self::FullObject),
            _ => None,
        }
    }
}

/// The checksum of an upload: its algorithm and type, or `None` when it has none.
pub(crate) type UploadChecksum = Option<(Algorithm, ChecksumType)>;

/// The checksum CreateMultipartUpload asks for: an algorithm, and a type that defaults to
/// COMPOSITE (FULL_OBJECT for CRC64NVME, which has no composite form). SHA checksums cannot
/// be combined, so they are COMPOSITE only.
pub(crate) fn for_upload(algorithm: Option<&str>, kind: Option<&str>) -> ApiResult<UploadChecksum> {
    let Some(name) = algorithm else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(ApiError::InvalidRequest(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
                    .into(),
            )),
        };
    };
    let Some(algorithm) = Algorithm::from_name(&name.to_ascii_uppercase()) else {
        return Err(ApiError::InvalidRequest(format!(
            "Checksum algorithm provided is unsupported: {name}"
        )));
    };
    let default = if algorithm == Algorithm::Crc64Nvme {
        ChecksumType::FullObject
    } else {
        ChecksumType::Composite
    };
    let kind = match kind {
        None => default,
        Some(k) => ChecksumType::from_name(&k.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::InvalidRequest(format!("Value for x-amz-checksum-type is invalid: {k}"))
        })?,
    };
    let combinable = matches!(
        algorithm,
        Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme
    );
    let allowed = match kind {
        ChecksumType::FullObject => combinable,
        ChecksumType::Composite => algorithm != Algorithm::Crc64Nvme,
    };
    if !allowed {
        return Err(ApiError::InvalidRequest(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            algorithm.name()
        )));
    }
    Ok(Some((algorithm, kind)))
}

/// The upload's checksum as stored in its record.
pub(crate) fn of_upload(upload: &pb::MultipartUpload) -> UploadChecksum {
    let algorithm = Algorithm::from_name(&upload.checksum_algorithm)?;
    let kind = ChecksumType::from_name(&upload.checksum_type).unwrap_or(ChecksumType::Composite);
    Some((algorithm, kind))
}

/// A part's stored checksum of `algorithm`, base64.
pub(crate) fn part_value(part: &pb::ObjectPart, algorithm: Algorithm) -> Option<&str> {
    part.checksums
        .iter()
        .find(|c| c.algorithm == algorithm.name())
        .map(|c| c.value.as_str())
}

fn decode(value: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| ApiError::Internal(format!("a stored part checksum is not base64: {value}")))
}

/// The object's checksum from its parts (in order: each part's size and base64 checksum of
/// `algorithm`).
pub(crate) fn object_value(
    (algorithm, kind): (Algorithm, ChecksumType),
    parts: &[(u64, &str)],
) -> ApiResult<String> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    match kind {
        ChecksumType::Composite => {
            let mut raw = Vec::with_capacity(parts.len() * 32);
            for (_, value) in parts {
                raw.extend_from_slice(&decode(value)?);
            }
            let digest = checksum::digest(algorithm, &raw);
            Ok(format!("{}-{}", digest, parts.len()))
        }
        ChecksumType::FullObject => {
            let crc = Crc::of(algorithm).ok_or_else(|| {
                ApiError::Internal(format!("{} cannot be combined", algorithm.name()))
            })?;
            let mut whole: Option<u64> = None;
            for (size, value) in parts {
                let part = crc.decode_value(&decode(value)?)?;
                whole = Some(match whole {
                    None => part,
                    Some(before) => crc.combine(before, part, *size),
                });
            }
            // An upload of no parts cannot complete, so `whole` is set; an empty body's CRC
            // is zero for all three.
            Ok(b64(&crc.encode_value(whole.unwrap_or(0))))
        }
    }
}

/// One of the combinable CRCs: its width and reflected polynomial.
#[derive(Debug, Clone, Copy)]
struct Crc {
    width: u32,
    poly: u64,
}

impl Crc {
    fn of(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::Crc32 => Some(Self {
                width: 32,
                poly: 0xEDB8_8320,
            }),
            Algorithm::Crc32c => Some(Self {
                width: 32,
                poly: 0x82F6_3B78,
            }),
            Algorithm::Crc64Nvme => Some(Self {
                width: 64,
                poly: 0x9A6C_9329_AC4B_C9B5,
            }),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    fn decode_value(self, raw: &[u8]) -> ApiResult<u64> {
        let bytes = (self.width / 8) as usize;
        if raw.len() != bytes {
            return Err(ApiError::Internal(format!(
                "a stored CRC has {} bytes, not {bytes}",
                raw.len()
            )));
        }
        Ok(raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn encode_value(self, value: u64) -> Vec<u8> {
        let bytes = self.width / 8;
        (0..bytes)
            .rev()
            .map(|i| ((value >> (8 * i)) & 0xff) as u8)
            .collect()
    }

    /// The CRC of `A || B` from `crc(A)`, `crc(B)` and the length of B (zlib's method: apply
    /// the operator "append len_b zero bytes" to crc(A) by repeated squaring in GF(2)).
    fn combine(self, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        if len_b == 0 {
            return crc_a;
        }
        let width = self.width as usize;
        let mut odd = [0u64; 64];
        let mut even = [0u64; 64];
        // The operator for one zero bit.
        odd[0] = self.poly;
        for (n, row) in odd.iter_mut().enumerate().take(width).skip(1) {
            *row = 1u64 << (n - 1);
        }
        square(&mut even, &odd, width); // two zero bits
        square(&mut odd, &even, width); // four zero bits
        let mut crc = crc_a;
        let mut len = len_b;
        loop {
            square(&mut even, &odd, width); // one zero byte, then 2^k bytes
            if len & 1 != 0 {
                crc = times(&even, crc);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
            square(&mut odd, &even, width);
            if len & 1 != 0 {
                crc = times(&odd, crc);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
        }
        crc ^ crc_b
    }
}

/// A GF(2) matrix (rows as bit vectors) times a vector.
fn times(matrix: &[u64; 64], mut vector: u64) -> u64 {
    let mut sum = 0;
    let mut row = 0;
    while vector != 0 {
        if vector & 1 != 0 {
            sum ^= matrix[row];
        }
        vector >>= 1;
        row += 1;
    }
    sum
}

/// `out = matrix * matrix`.
fn square(out: &mut [u64; 64], matrix: &[u64; 64], width: usize) {
    for n in 0..width {
        out[n] = times(matrix, matrix[n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, data: &[u8]) -> String {
        checksum::digest(algorithm, data)
    }

    #[test]
    fn full_object_crcs_combine_to_the_crc_of_the_whole() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let cuts = [0usize, 1, 65_536, 100_000, 299_999, 300_000];
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &body[w[0]..w[1]]).collect();
            let values: Vec<String> = pieces.iter().map(|p| digest(algorithm, p)).collect();
            let parts: Vec<(u64, &str)> = pieces
                .iter()
                .zip(&values)
                .map(|(p, v)| (p.len() as u64, v.as_str()))
                .collect();
            let combined =
                object_value((algorithm, ChecksumType::FullObject), &parts).expect("combine");
            assert_eq!(combined, digest(algorithm, &body), "{}", algorithm.name());
        }
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums() {
        // Two CRC32 parts: the CRC32 of their 4-byte checksums, then "-2".
        let a = digest(Algorithm::Crc32, b"hello ");
        let b = digest(Algorithm::Crc32, b"world");
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .expect("a");
        raw.extend(
            base64::engine::general_purpose::STANDARD
                .decode(&b)
                .expect("b"),
        );
        let want = format!("{}-2", digest(Algorithm::Crc32, &raw));
        let got = object_value(
            (Algorithm::Crc32, ChecksumType::Composite),
            &[(6, a.as_str()), (5, b.as_str())],
        )
        .expect("composite");
        assert_eq!(got, want);
    }

    #[test]
    fn which_uploads_may_ask_for_what() {
        use Algorithm::*;
        use ChecksumType::*;
        assert_eq!(for_upload(None, None).expect("none"), None);
        assert_eq!(
            for_upload(Some("CRC32"), None).expect("crc32"),
            Some((Crc32, Composite))
        );
        assert_eq!(
            for_upload(Some("CRC64NVME"), None).expect("crc64"),
            Some((Crc64Nvme, FullObject))
        );
        assert_eq!(
            for_upload(Some("crc32c"), Some("FULL_OBJECT")).expect("crc32c"),
            Some((Crc32c, FullObject))
        );
        for (algorithm, kind) in [
            (Some("SHA256"), Some("FULL_OBJECT")),
            (Some("CRC64NVME"), Some("COMPOSITE")),
            (None, Some("COMPOSITE")),
            (Some("MD5"), None),
            (Some("CRC32"), Some("PARTIAL")),
        ] {
            assert!(
                for_upload(algorithm, kind).is_err(),
                "{algorithm:?} {kind:?}"
            );
        }
    }
}
