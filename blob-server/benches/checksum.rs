//! The shard checksum (BLAKE3 per 64 KiB chunk) over 1 MiB, beside a memcpy of the same
//! bytes measured in the same run. Run: `cargo bench -p cairn-blob`.

use std::hint::black_box;

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

criterion_group!(benches, checksum);
criterion_main!(benches);
