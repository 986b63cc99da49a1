//! `--baseline`: the limits of this machine, measured in the same run as the workload so
//! that results can be read as ratios on a noisy, shared machine.
//!
//! - disk: write `--baseline-size` bytes sequentially in 1 MiB writes into a temporary file
//!   in `--dir`, fsync, then (after dropping the file from the page cache where the OS allows)
//!   read it back in 1 MiB reads;
//! - fsync latency: append 4 KiB and fsync, repeated (up to 500 times or 3 s);
//! - loopback TCP: one connection on 127.0.0.1 carrying 2 GiB in 1 MiB writes;
//! - memcpy: 1 GiB copied as 16 × 64 MiB;
//! - erasure coding: encode and decode (with min(k, m) data blocks lost) 256 MiB of 1 MiB
//!   stripes with Cairn's own codec and the block size Cairn uses for the scheme.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cairn_gateway::erasure::{Codec, Scheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use super::args::SchemeSpec;
use super::stats::{new_histogram, Percentiles};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// What `--baseline` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Baseline {
    /// Bytes written and read back on disk.
    pub disk_bytes: u64,
    /// Directory of the disk test.
    pub disk_dir: String,
    /// Sequential write including the final fsync, MiB/s.
    pub disk_write_mib_s: f64,
    /// Sequential read, MiB/s.
    pub disk_read_mib_s: f64,
    /// Whether the file was dropped from the page cache before the read (else the read
    /// may be served from memory).
    pub disk_read_uncached: bool,
    /// 4 KiB append + fsync latency, milliseconds.
    pub fsync_ms: Percentiles,
    /// One loopback TCP connection, MiB/s.
    pub loopback_mib_s: f64,
    /// memcpy, GiB/s.
    pub memcpy_gib_s: f64,
    /// The erasure scheme measured, `k+m`.
    pub scheme: String,
    /// Erasure encode, GiB/s of object data.
    pub ec_encode_gib_s: f64,
    /// Erasure decode with min(k, m) data blocks missing, GiB/s of object data.
    pub ec_decode_gib_s: f64,
}

/// Measures everything; `dir` holds the temporary files.
pub async fn measure(dir: &Path, disk_bytes: u64, scheme: SchemeSpec) -> anyhow::Result<Baseline> {
    let dir_owned = dir.to_path_buf();
    let (write, read, uncached) =
        tokio::task::spawn_blocking(move || disk(&dir_owned, disk_bytes)).await??;
    let dir_owned = dir.to_path_buf();
    let fsync_ms = tokio::task::spawn_blocking(move || fsync_latency(&dir_owned)).await??;
    let loopback = loopback().await?;
    let memcpy = tokio::task::spawn_blocking(memcpy).await?;
    let (encode, decode) = tokio::task::spawn_blocking(move || erasure(scheme)).await??;
    Ok(Baseline {
        disk_bytes,
        disk_dir: dir.display().to_string(),
        disk_write_mib_s: write,
        disk_read_mib_s: read,
        disk_read_uncached: uncached,
        fsync_ms,
        loopback_mib_s: loopback,
        memcpy_gib_s: memcpy,
        scheme: format!("{}+{}", scheme.k, scheme.m),
        ec_encode_gib_s: encode,
        ec_decode_gib_s: decode,
    })
}

fn random_buffer(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sequential write (with fsync) and read: `(write MiB/s, read MiB/s, read was uncached)`.
fn disk(dir: &Path, bytes: u64) -> anyhow::Result<(f64, f64, bool)> {
    let chunk = random_buffer(1 << 20);
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.as_file().sync_all()?;
    let write = bytes as f64 / MIB / start.elapsed().as_secs_f64();

    let uncached = drop_cache(file.as_file());
    let mut reader = std::fs::File::open(file.path())?;
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let read = total as f64 / MIB / start.elapsed().as_secs_f64();
    Ok((write, read, uncached))
}

/// Asks the kernel to forget the file's (clean, just fsynced) pages.
#[cfg(target_os = "linux")]
fn drop_cache(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn drop_cache(_file: &std::fs::File) -> bool {
    false
}

/// 4 KiB append + fsync latency.
fn fsync_latency(dir: &Path) -> anyhow::Result<Percentiles> {
    let block = random_buffer(4096);
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    let mut hist = new_histogram();
    let deadline = Instant::now() + Duration::from_secs(3);
    for _ in 0..500 {
        let start = Instant::now();
        file.write_all(&block)?;
        file.as_file().sync_all()?;
        let us = u64::try_from(start.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = hist.record(us);
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(Percentiles::of(&hist))
}

/// One loopback TCP connection carrying 2 GiB, MiB/s as seen by the receiver.
async fn loopback() -> anyhow::Result<f64> {
    const TOTAL: u64 = 2 << 30;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(
        async move {
            let (mut stream, _) = listener.accept().await?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            let start = Instant::now();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            Ok::<_, std::io::Error>((total, start.elapsed()))
        }
        .instrument(tracing::info_span!("bench-baseline-loopback")),
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let chunk = random_buffer(1 << 20);
    let mut sent = 0u64;
    while sent < TOTAL {
        stream.write_all(&chunk).await?;
        sent += chunk.len() as u64;
    }
    stream.shutdown().await?;
    drop(stream);
    let (total, took) = receiver.await??;
    Ok(total as f64 / MIB / took.as_secs_f64())
}

/// memcpy GiB/s over 16 copies of 64 MiB.
fn memcpy() -> f64 {
    let src = random_buffer(64 << 20);
    let mut dst = vec![0u8; src.len()];
    let start = Instant::now();
    for _ in 0..16 {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    (16 * src.len()) as f64 / GIB / start.elapsed().as_secs_f64()
}

/// Erasure encode and decode GiB/s with the block size Cairn uses: ~1 MiB / k, a multiple
/// of 64 bytes.
fn erasure(spec: SchemeSpec) -> anyhow::Result<(f64, f64)> {
    let block = ((1usize << 20) / spec.k / 64).max(1) * 64;
    let scheme = Scheme::new(
        u32::try_from(spec.k)?,
        u32::try_from(spec.m)?,
        u32::try_from(block)?,
    )?;
    let codec = Codec::new(scheme)?;
    let stripe_len = spec.k * block;
    let stripe = Bytes::from(random_buffer(stripe_len));
    let stripes = ((256usize << 20) / stripe_len).max(1);

    let start = Instant::now();
    for _ in 0..stripes {
        std::hint::black_box(codec.encode(stripe.clone())?);
    }
    let encode = (stripes * stripe_len) as f64 / GIB / start.elapsed().as_secs_f64();

    let blocks = codec.encode(stripe.clone())?;
    let lost = spec.m.min(spec.k);
    let start = Instant::now();
    let mut last = Bytes::new();
    for _ in 0..stripes {
        let present: Vec<Option<Bytes>> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (i >= lost).then(|| b.clone()))
            .collect();
        last = std::hint::black_box(codec.decode(present, stripe_len)?);
    }
    let decode = (stripes * stripe_len) as f64 / GIB / start.elapsed().as_secs_f64();
    anyhow::ensure!(last == stripe, "erasure decode returned wrong bytes");
    Ok((encode, decode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coding measurement really round-trips: decode gives the stripe back.
    #[test]
    fn erasure_figures_are_positive() {
        let (enc, dec) = erasure(SchemeSpec { k: 2, m: 1 }).unwrap();
        assert!(enc > 0.0 && dec > 0.0);
    }

    #[test]
    fn disk_and_fsync_run_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (w, r, _) = disk(dir.path(), 3 << 20).unwrap();
        assert!(w > 0.0 && r > 0.0);
        let p = fsync_latency(dir.path()).unwrap();
        assert!(p.count > 0);
        // The temporary files are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
