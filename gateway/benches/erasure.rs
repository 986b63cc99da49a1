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
    group.bench_function("md5 (ETag)", |b| {
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

criterion_group!(benches, erasure);
criterion_main!(benches);
