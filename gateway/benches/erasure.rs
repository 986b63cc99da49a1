//! Erasure coding and the ETag digest on 1 MiB stripes, beside a memcpy of the same bytes
//! (the machine's own limit, measured in the same run). Run: `cargo bench -p cairn-gateway`.

use std::hint::black_box;

use bytes::Bytes;
use cairn_gateway::erasure::{Codec, Scheme};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use md5::{Digest, Md5};

const STRIPE: usize = 1 << 20;

fn stripe_data() -> Vec<u8> {
    (0..STRIPE)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect()
}

fn erasure(c: &mut Criterion) {
    let data = stripe_data();
    let mut group = c.benchmark_group("stripe_1MiB");
    group.throughput(Throughput::Bytes(STRIPE as u64));
    group.bench_function("memcpy (baseline)", |b| {
        b.iter(|| black_box(black_box(&data).to_vec()))
    });
    group.bench_function("md5 (ETag, md5-simd)", |b| {
        b.iter(|| black_box(md5_simd::digest(black_box(&data))))
    });
    group.bench_function("md5 (md-5 with asm)", |b| {
        b.iter(|| black_box(Md5::digest(black_box(&data))))
    });
    for (k, m) in [(2u32, 2u32), (4, 2)] {
        let Ok(scheme) = Scheme::new(k, m, STRIPE as u32 / k) else {
            continue;
        };
        let Ok(codec) = Codec::new(scheme) else {
            continue;
        };
        let stripe = Bytes::from(data.clone());
        group.bench_function(format!("encode {k}+{m}"), |b| {
            b.iter(|| black_box(codec.encode(black_box(stripe.clone()))))
        });
        let Ok(blocks) = codec.encode(stripe.clone()) else {
            continue;
        };
        group.bench_function(format!("decode {k}+{m}, {m} data blocks lost"), |b| {
            b.iter(|| {
                let mut present: Vec<Option<Bytes>> = blocks.iter().cloned().map(Some).collect();
                for lost in present.iter_mut().take(m as usize) {
                    *lost = None;
                }
                black_box(codec.decode(present, STRIPE))
            })
        });
    }
    group.finish();
}

/// The Reed-Solomon libraries alone, on the same stripe cut into k blocks with parity buffers
/// allocated once: what issue 7's "within 80% of the fastest Rust implementation" compares.
/// `reed-solomon-erasure` (what Cairn uses, with `simd-accel` on x86_64) against
/// `reed-solomon-simd` (O(n log n) Leopard-style codes, SIMD on x86-64 and AArch64).
fn libraries(c: &mut Criterion) {
    let data = stripe_data();
    let mut group = c.benchmark_group("library_encode_1MiB");
    group.throughput(Throughput::Bytes(STRIPE as u64));
    for (k, m) in [(2usize, 2usize), (4, 2), (8, 4)] {
        let block = STRIPE / k;
        let originals: Vec<&[u8]> = data.chunks(block).collect();

        let Ok(rse) = reed_solomon_erasure::galois_8::ReedSolomon::new(k, m) else {
            continue;
        };
        let mut parity = vec![vec![0u8; block]; m];
        group.bench_function(format!("reed-solomon-erasure {k}+{m}"), |b| {
            b.iter(|| black_box(rse.encode_sep(black_box(&originals), &mut parity)))
        });

        let Ok(mut simd) = reed_solomon_simd::ReedSolomonEncoder::new(k, m, block) else {
            continue;
        };
        group.bench_function(format!("reed-solomon-simd {k}+{m}"), |b| {
            b.iter(|| {
                for original in &originals {
                    let _ = simd.add_original_shard(black_box(original));
                }
                match simd.encode() {
                    Ok(result) => {
                        for recovery in result.recovery_iter() {
                            black_box(recovery);
                        }
                    }
                    Err(e) => panic!("reed-solomon-simd encode: {e}"),
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, erasure, libraries);
criterion_main!(benches);
