//! Erasure-coding geometry and the Reed-Solomon codec: pure functions, no I/O.
//!
//! An object is cut into stripes of `k * block_size` bytes. Each stripe becomes `k` data
//! blocks plus `m` parity blocks; shard `i` is block `i` of every stripe, concatenated. Only the
//! last stripe may be short: with `r` bytes left it is cut into `k` blocks of `ceil(r / k)`
//! bytes (the last data block zero-padded), so a shard is
//! `full_stripes * block_size + ceil(r / k)` bytes long.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use reed_solomon_erasure::galois_8::ReedSolomon;

/// Why a scheme was rejected or a stripe could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The scheme's parameters cannot describe an object.
    #[error("invalid erasure scheme: {0}")]
    InvalidScheme(String),
    /// Fewer than `k` blocks of a stripe are available.
    #[error("only {have} of the {need} blocks needed to decode a stripe are available")]
    TooFewBlocks {
        /// Blocks present.
        have: usize,
        /// Blocks needed (`k`).
        need: usize,
    },
    /// A block or stripe has the wrong length for the geometry.
    #[error("bad length: {0}")]
    BadLength(String),
    /// The Reed-Solomon library refused the input.
    #[error("reed-solomon: {0}")]
    Codec(#[from] reed_solomon_erasure::Error),
}

/// The erasure parameters of one object: `k` data shards, `m` parity shards, block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Bytes per block of a full stripe.
    pub block_size: usize,
}

/// The part of the shards that a byte range of the object needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeSpan {
    /// First stripe touched by the range.
    pub first_stripe: u64,
    /// Last stripe touched by the range (inclusive).
    pub last_stripe: u64,
    /// Offset inside every shard where `first_stripe` starts.
    pub shard_offset: u64,
    /// Bytes to read from every shard, from `shard_offset` to the end of `last_stripe`.
    pub shard_length: u64,
    /// Bytes of the first stripe's data that precede the range.
    pub skip: u64,
    /// Length of the range.
    pub len: u64,
}

impl Scheme {
    /// Checks and builds a scheme from the wire values.
    pub fn new(k: u32, m: u32, block_size: u32) -> Result<Self, ErasureError> {
        let (k, m, block_size) = (k as usize, m as usize, block_size as usize);
        if k == 0 {
            return Err(ErasureError::InvalidScheme("zero data shards".into()));
        }
        if k + m > 256 {
            return Err(ErasureError::InvalidScheme(format!(
                "{k}+{m} exceeds 256 shards"
            )));
        }
        if block_size == 0 {
            return Err(ErasureError::InvalidScheme("zero block size".into()));
        }
        Ok(Self { k, m, block_size })
    }

    /// `k + m`.
    pub fn total_shards(&self) -> usize {
        self.k + self.m
    }

    /// Bytes of object data in one full stripe.
    pub fn stripe_size(&self) -> u64 {
        (self.k as u64) * (self.block_size as u64)
    }

    /// Bytes of object data in stripe `stripe`.
    pub fn stripe_data_len(&self, size: u64, stripe: u64) -> usize {
        let start = stripe.saturating_mul(self.stripe_size());
        let len = size.saturating_sub(start).min(self.stripe_size());
        // Bounded by the stripe size, which is k * u32, so it fits in usize on 64-bit targets.
        len as usize
    }

    /// Bytes each shard holds for stripe `stripe`.
    pub fn block_len(&self, size: u64, stripe: u64) -> usize {
        self.stripe_data_len(size, stripe).div_ceil(self.k)
    }

    /// Length of every shard of an object of `size` bytes.
    pub fn shard_len(&self, size: u64) -> u64 {
        let full = size / self.stripe_size();
        let rest = size % self.stripe_size();
        full * self.block_size as u64 + rest.div_ceil(self.k as u64)
    }

    /// How many shards must be durable for a write to count (MinIO's rule): `k + 1` when
    /// data and parity are equal (so two disjoint halves can never both commit), else `k`.
    pub fn write_quorum(&self) -> usize {
        if self.k == self.m && self.m > 0 {
            self.k + 1
        } else {
            self.k
        }
    }

    /// The stripes and shard byte range covering `range` of an object of `size` bytes.
    /// `range` must be non-empty and inside the object.
    pub fn span(&self, size: u64, range: Range<u64>) -> StripeSpan {
        let stripe = self.stripe_size();
        let first_stripe = range.start / stripe;
        let last_stripe = range.end.saturating_sub(1).max(range.start) / stripe;
        let shard_offset = first_stripe * self.block_size as u64;
        let shard_end =
            last_stripe * self.block_size as u64 + self.block_len(size, last_stripe) as u64;
        StripeSpan {
            first_stripe,
            last_stripe,
            shard_offset,
            shard_length: shard_end.saturating_sub(shard_offset),
            skip: range.start - first_stripe * stripe,
            len: range.end.saturating_sub(range.start),
        }
    }
}

/// Encoder/decoder for one scheme. With no parity (`m == 0`) it only splits and joins.
pub struct Codec {
    scheme: Scheme,
    rs: Option<ReedSolomon>,
}

impl Codec {
    /// Builds the codec. `ReedSolomon::new` refuses zero parity shards, so `k+0` skips it.
    pub fn new(scheme: Scheme) -> Result<Self, ErasureError> {
        let rs = if scheme.m == 0 {
            None
        } else {
            Some(ReedSolomon::new(scheme.k, scheme.m)?)
        };
        Ok(Self { scheme, rs })
    }

    /// The scheme this codec was built for.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Cuts one stripe (1..=stripe_size bytes) into `k` data blocks and computes `m` parity
    /// blocks; all `k + m` blocks have the same length, `ceil(len / k)`.
    pub fn encode(&self, stripe: Bytes) -> Result<Vec<Bytes>, ErasureError> {
        let k = self.scheme.k;
        let len = stripe.len();
        if len == 0 || len as u64 > self.scheme.stripe_size() {
            return Err(ErasureError::BadLength(format!(
                "stripe of {len} bytes for a stripe size of {}",
                self.scheme.stripe_size()
            )));
        }
        let block_len = len.div_ceil(k);
        let mut blocks: Vec<Bytes> = Vec::with_capacity(self.scheme.total_shards());
        if block_len * k == len {
            // Zero-copy: the data blocks are views of the stripe.
            blocks.extend((0..k).map(|i| stripe.slice(i * block_len..(i + 1) * block_len)));
        } else {
            for i in 0..k {
                let start = (i * block_len).min(len);
                let end = ((i + 1) * block_len).min(len);
                let mut block = vec![0u8; block_len];
                block[..end - start].copy_from_slice(&stripe[start..end]);
                blocks.push(Bytes::from(block));
            }
        }
        if let Some(rs) = &self.rs {
            let mut parity = vec![vec![0u8; block_len]; self.scheme.m];
            rs.encode_sep(&blocks[..k], &mut parity)?;
            blocks.extend(parity.into_iter().map(Bytes::from));
        }
        Ok(blocks)
    }

    /// Rebuilds a stripe's data from any `k` of its `k + m` blocks (`None` = missing) and
    /// returns its first `data_len` bytes.
    pub fn decode(
        &self,
        blocks: Vec<Option<Bytes>>,
        data_len: usize,
    ) -> Result<Bytes, ErasureError> {
        let data = self.decode_blocks(blocks, data_len)?;
        Ok(join(data.into_iter(), data_len))
    }

    /// Like [`Codec::decode`], but returns the stripe's data as its data blocks in order, cut
    /// to `data_len` bytes in all, without concatenating them: a reader that sends the bytes
    /// on (a GET) saves a copy of every stripe.
    pub fn decode_blocks(
        &self,
        blocks: Vec<Option<Bytes>>,
        data_len: usize,
    ) -> Result<Vec<Bytes>, ErasureError> {
        let (k, total) = (self.scheme.k, self.scheme.total_shards());
        if blocks.len() != total {
            return Err(ErasureError::BadLength(format!(
                "{} blocks for {total} shards",
                blocks.len()
            )));
        }
        let block_len = data_len.div_ceil(k);
        if let Some(bad) = blocks.iter().flatten().find(|b| b.len() != block_len) {
            return Err(ErasureError::BadLength(format!(
                "block of {} bytes, expected {block_len}",
                bad.len()
            )));
        }
        let have = blocks.iter().filter(|b| b.is_some()).count();
        if have < k {
            return Err(ErasureError::TooFewBlocks { have, need: k });
        }
        if blocks[..k].iter().all(Option::is_some) {
            return Ok(cut(blocks.into_iter().take(k).flatten(), data_len));
        }
        let Some(rs) = &self.rs else {
            return Err(ErasureError::TooFewBlocks { have, need: k });
        };
        let mut shards: Vec<Option<Vec<u8>>> =
            blocks.into_iter().map(|b| b.map(|b| b.to_vec())).collect();
        rs.reconstruct_data(&mut shards)?;
        let data = shards.into_iter().take(k).map(|b| b.map(Bytes::from));
        let mut parts = Vec::with_capacity(k);
        for block in data {
            parts.push(block.ok_or(ErasureError::TooFewBlocks { have, need: k })?);
        }
        Ok(cut(parts.into_iter(), data_len))
    }
}

/// The first `len` bytes of a sequence of blocks, as views of them (empty views dropped).
fn cut(blocks: impl Iterator<Item = Bytes>, len: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut left = len;
    for block in blocks {
        if left == 0 {
            break;
        }
        let take = left.min(block.len());
        out.push(block.slice(..take));
        left -= take;
    }
    out
}

/// Concatenates blocks and cuts the result to `len` bytes; one block needs no copy.
fn join(blocks: impl Iterator<Item = Bytes>, len: usize) -> Bytes {
    let mut blocks = blocks.peekable();
    let mut out = BytesMut::with_capacity(len);
    while let Some(block) = blocks.next() {
        if out.is_empty() && blocks.peek().is_none() {
            return block.slice(..len.min(block.len()));
        }
        let want = (len - out.len()).min(block.len());
        out.extend_from_slice(&block[..want]);
        if out.len() == len {
            break;
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const BLOCK: usize = 16;

    fn schemes() -> Vec<Scheme> {
        [(1, 0), (1, 1), (2, 1), (2, 2), (4, 2)]
            .into_iter()
            .map(|(k, m)| Scheme::new(k, m, BLOCK as u32).unwrap())
            .collect()
    }

    fn sizes(s: &Scheme) -> Vec<u64> {
        let (b, st) = (BLOCK as u64, s.stripe_size());
        let mut v = vec![0, 1, b - 1, b, b + 1, st - 1, st, st + 1, 3 * st + 5];
        v.sort_unstable();
        v.dedup();
        v
    }

    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random()).collect()
    }

    /// Encodes a whole object the way the PUT path does: one shard buffer per index.
    fn encode_object(codec: &Codec, data: &[u8]) -> Vec<Vec<u8>> {
        let s = codec.scheme();
        let mut shards = vec![Vec::new(); s.total_shards()];
        for chunk in data.chunks(s.stripe_size() as usize) {
            let blocks = codec.encode(Bytes::copy_from_slice(chunk)).unwrap();
            assert_eq!(blocks.len(), s.total_shards());
            for (shard, block) in shards.iter_mut().zip(blocks) {
                shard.extend_from_slice(&block);
            }
        }
        shards
    }

    /// Decodes stripes `span.first..=span.last` from shard bytes, with `missing` shards gone.
    fn decode_range(
        codec: &Codec,
        shards: &[Vec<u8>],
        size: u64,
        range: Range<u64>,
        missing: &[usize],
    ) -> Vec<u8> {
        let s = codec.scheme();
        let span = s.span(size, range.clone());
        let mut out = Vec::new();
        let mut pos = span.shard_offset as usize;
        for stripe in span.first_stripe..=span.last_stripe {
            let blen = s.block_len(size, stripe);
            let blocks = (0..s.total_shards())
                .map(|i| {
                    (!missing.contains(&i))
                        .then(|| Bytes::copy_from_slice(&shards[i][pos..pos + blen]))
                })
                .collect();
            pos += blen;
            let data = codec
                .decode(blocks, s.stripe_data_len(size, stripe))
                .unwrap();
            out.extend_from_slice(&data);
        }
        assert_eq!(pos as u64, span.shard_offset + span.shard_length);
        let skip = span.skip as usize;
        out[skip..skip + span.len as usize].to_vec()
    }

    /// Every subset of `0..n` with at most `max` elements.
    fn subsets(n: usize, max: usize) -> Vec<Vec<usize>> {
        (0u32..(1 << n))
            .filter(|mask| mask.count_ones() as usize <= max)
            .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
            .collect()
    }

    #[test]
    fn round_trip_every_loss_pattern() {
        for s in schemes() {
            let codec = Codec::new(s).unwrap();
            for size in sizes(&s) {
                let data = random_bytes(size as usize, size * 31 + s.k as u64);
                let shards = encode_object(&codec, &data);
                for shard in &shards {
                    assert_eq!(shard.len() as u64, s.shard_len(size), "{s:?} size {size}");
                }
                if size == 0 {
                    continue;
                }
                for missing in subsets(s.total_shards(), s.m) {
                    let got = decode_range(&codec, &shards, size, 0..size, &missing);
                    assert_eq!(got, data, "{s:?} size {size} missing {missing:?}");
                }
            }
        }
    }

    #[test]
    fn ranges_decode_exactly() {
        for s in schemes() {
            let codec = Codec::new(s).unwrap();
            let st = s.stripe_size();
            let size = 3 * st + 5;
            let data = random_bytes(size as usize, 7);
            let shards = encode_object(&codec, &data);
            let edges = [
                0,
                1,
                st - 1,
                st,
                st + 1,
                2 * st,
                3 * st - 1,
                3 * st,
                size - 1,
            ];
            for &a in &edges {
                for &b in &edges {
                    if b < a {
                        continue;
                    }
                    let range = a..b + 1;
                    let missing: Vec<usize> = (0..s.m).collect();
                    let got = decode_range(&codec, &shards, size, range.clone(), &missing);
                    assert_eq!(got, &data[a as usize..=b as usize], "{s:?} {range:?}");
                }
            }
        }
    }

    #[test]
    fn more_losses_than_parity_fail() {
        for s in schemes() {
            let codec = Codec::new(s).unwrap();
            let data = Bytes::from(random_bytes(s.stripe_size() as usize, 1));
            let blocks = codec.encode(data).unwrap();
            let mut present: Vec<Option<Bytes>> = blocks.into_iter().map(Some).collect();
            for slot in present.iter_mut().take(s.m + 1) {
                *slot = None;
            }
            let err = codec.decode(present, s.stripe_size() as usize).unwrap_err();
            assert!(matches!(err, ErasureError::TooFewBlocks { .. }), "{err}");
        }
    }

    /// Every `r`-element subset of `0..n`, in lexicographic order.
    fn combinations(n: usize, r: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut pick: Vec<usize> = (0..r).collect();
        if r > n {
            return out;
        }
        loop {
            out.push(pick.clone());
            // The rightmost index that can still move right, then reset those after it.
            let Some(i) = (0..r).rev().find(|&i| pick[i] < n - r + i) else {
                return out;
            };
            pick[i] += 1;
            for j in i + 1..r {
                pick[j] = pick[j - 1] + 1;
            }
        }
    }

    #[test]
    fn combinations_are_complete() {
        assert_eq!(combinations(4, 0), vec![Vec::<usize>::new()]);
        assert_eq!(combinations(4, 2).len(), 6);
        assert_eq!(combinations(20, 5).len(), 15_504);
        assert!(combinations(2, 3).is_empty());
    }

    /// The decoder, proven exhaustively: for every scheme placement can choose and a few
    /// operator schemes, random stripes (a full one and a short, zero-padded one) decode
    /// bit-exact from every combination of up to `m` lost blocks, and every combination of
    /// `m + 1` lost blocks is an error, never bytes. This is what a GET relies on when it
    /// rebuilds from parity, whichever shards were slow, missing or corrupt.
    #[test]
    fn every_loss_of_up_to_m_blocks_decodes_and_more_fails() {
        let schemes = [
            (1, 0),
            (1, 1),
            (2, 1),
            (2, 2),
            (4, 2),
            (3, 3),
            (8, 4),
            (16, 4),
        ];
        for (k, m) in schemes {
            let s = Scheme::new(k, m, 64).unwrap();
            let codec = Codec::new(s).unwrap();
            let n = s.total_shards();
            let full = s.stripe_size() as usize;
            for (round, len) in [full, full - 7, 1].into_iter().enumerate() {
                let seed = u64::from(k * 1000 + m * 10) + round as u64;
                let data = Bytes::from(random_bytes(len, seed));
                let blocks = codec.encode(data.clone()).unwrap();
                assert_eq!(blocks.len(), n);
                for lost in 0..=s.m {
                    for missing in combinations(n, lost) {
                        let present = (0..n)
                            .map(|i| (!missing.contains(&i)).then(|| blocks[i].clone()))
                            .collect();
                        let got = codec.decode(present, len).unwrap_or_else(|e| {
                            panic!("{k}+{m} len {len} missing {missing:?}: {e}")
                        });
                        assert!(got == data, "{k}+{m} len {len} missing {missing:?}");
                    }
                }
                for missing in combinations(n, s.m + 1) {
                    let present = (0..n)
                        .map(|i| (!missing.contains(&i)).then(|| blocks[i].clone()))
                        .collect();
                    let result = codec.decode(present, len);
                    assert!(
                        matches!(result, Err(ErasureError::TooFewBlocks { .. })),
                        "{k}+{m} missing {missing:?}: {result:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn geometry() {
        let s = Scheme::new(4, 2, 10).unwrap();
        assert_eq!(s.stripe_size(), 40);
        assert_eq!(s.shard_len(0), 0);
        assert_eq!(s.shard_len(1), 1);
        assert_eq!(s.shard_len(40), 10);
        assert_eq!(s.shard_len(45), 12);
        assert_eq!(s.block_len(45, 1), 2);
        assert_eq!(s.stripe_data_len(45, 1), 5);
        assert_eq!(s.write_quorum(), 4);
        assert_eq!(Scheme::new(2, 2, 1).unwrap().write_quorum(), 3);
        assert_eq!(Scheme::new(1, 0, 1).unwrap().write_quorum(), 1);
        assert!(Scheme::new(0, 1, 1).is_err());
        assert!(Scheme::new(1, 1, 0).is_err());
        assert!(Scheme::new(200, 57, 1).is_err());
    }

    #[test]
    fn span_at_stripe_edges() {
        let s = Scheme::new(2, 1, 10).unwrap(); // stripe = 20
        let size = 65; // 3 full stripes + 5 bytes (block_len 3 in the last)
        let span = s.span(size, 0..20);
        assert_eq!((span.first_stripe, span.last_stripe), (0, 0));
        assert_eq!(
            (span.shard_offset, span.shard_length, span.skip, span.len),
            (0, 10, 0, 20)
        );
        let span = s.span(size, 19..21);
        assert_eq!((span.first_stripe, span.last_stripe), (0, 1));
        assert_eq!(
            (span.shard_offset, span.shard_length, span.skip),
            (0, 20, 19)
        );
        let span = s.span(size, 20..40);
        assert_eq!((span.first_stripe, span.last_stripe), (1, 1));
        assert_eq!(
            (span.shard_offset, span.shard_length, span.skip),
            (10, 10, 0)
        );
        let span = s.span(size, 60..65);
        assert_eq!((span.first_stripe, span.last_stripe), (3, 3));
        assert_eq!(
            (span.shard_offset, span.shard_length, span.skip, span.len),
            (30, 3, 0, 5)
        );
        let span = s.span(size, 0..65);
        assert_eq!(
            (span.shard_offset, span.shard_length),
            (0, s.shard_len(size))
        );
        let span = s.span(size, 64..65);
        assert_eq!(
            (
                span.first_stripe,
                span.shard_offset,
                span.shard_length,
                span.skip
            ),
            (3, 30, 3, 4)
        );
    }
}
