//! The shard checksum (BLAKE3 per 64 KiB chunk) over 1 MiB, beside a memcpy of the same
//! bytes measured in the same run; and a whole shard write (what a `PutShard` does on disk)
//! beside a plain fsynced file write of the same bytes. Run: `cargo bench -p cairn-blob`.

use std::hint::black_box;
use std::io::Write;

use bytes::Bytes;
use cairn_blob::bench_support;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 1 << 20;
const CHUNK: usize = 64 * 1024;

fn checksum(c: &mut Criterion) {
    let data: Vec<u8> = (0..SIZE)
        .map(|i| (i.wrapping_mul(17) % 253) as u8)
        .collect();
    let mut group = c.benchmark_group("shard_1MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.bench_function("memcpy (baseline)", |b| {
        b.iter(|| black_box(black_box(&data).to_vec()))
    });
    group.bench_function("blake3 per 64 KiB chunk", |b| {
        b.iter(|| {
            for chunk in black_box(&data).chunks(CHUNK) {
                black_box(blake3::hash(chunk));
            }
        })
    });
    group.finish();
}

/// A 1 MiB shard written as `PutShard` writes it (chunks and their hashes, fsync, rename,
/// directory fsync), against the disk's own limit in the same run: the same bytes written to
/// a new file and fsynced. Writes into `CAIRN_BENCH_DIR` (default: the system's temporary
/// directory), which decides which disk is measured.
fn shard_write(c: &mut Criterion) {
    let parent = std::env::var_os("CAIRN_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &parent {
        Some(p) => tempfile::tempdir_in(p),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory for the shard-write bench");
    bench_support::prepare_root(dir.path()).expect("a data directory");
    let data: Vec<u8> = (0..SIZE)
        .map(|i| (i.wrapping_mul(29) % 251) as u8)
        .collect();
    let pieces: Vec<Bytes> = data.chunks(CHUNK).map(Bytes::copy_from_slice).collect();
    let mut group = c.benchmark_group("shard_write_1MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(30);
    let mut n = 0u64;
    group.bench_function("file write + fsync (baseline)", |b| {
        b.iter(|| {
            n += 1;
            let path = dir.path().join(format!("plain-{n}"));
            let mut file = std::fs::File::create(&path).expect("create");
            file.write_all(&data).expect("write");
            file.sync_all().expect("fsync");
            std::fs::remove_file(&path).expect("remove");
        })
    });
    group.bench_function(
        "shard write (chunks + BLAKE3, fsync, rename, dir fsync)",
        |b| {
            b.iter(|| {
                n += 1;
                let key = format!("bench-{n}");
                let len =
                    bench_support::write_shard(dir.path(), &key, &pieces).expect("shard write");
                black_box(len);
                bench_support::delete_shard(dir.path(), &key).expect("shard delete");
            })
        },
    );
    group.finish();
}

criterion_group!(benches, checksum, shard_write);
criterion_main!(benches);
