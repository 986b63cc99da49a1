//! The metadata records' encoding: an object version as the meta service stores it (prost),
//! sharded (2+2 placements, user metadata) and inline (a 4 KiB body), encoded and decoded,
//! beside a memcpy of the encoded bytes measured in the same run. Run:
//! `cargo bench -p cairn-proto`.

use std::hint::black_box;

use bytes::Bytes;
use cairn_proto::meta::{ErasureScheme, ObjectVersion, ShardPlacement};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

/// A version of a 64 MiB object stored 2+2, with a little user metadata.
fn sharded() -> ObjectVersion {
    ObjectVersion {
        bucket: "training-data".into(),
        key: "shards/2026/12/08/part-00042.tar".into(),
        version_id: "00000000000000123456".into(),
        size: 64 << 20,
        etag: "9e107d9d372bb6826bd81d3542a419d6".into(),
        content_type: "application/x-tar".into(),
        user_metadata: [("origin".to_string(), "ingest-7".to_string())].into(),
        last_modified_ms: 1_796_000_000_000,
        scheme: Some(ErasureScheme {
            data_shards: 2,
            parity_shards: 2,
            block_size: 512 * 1024,
        }),
        shards: (0..4)
            .map(|index| ShardPlacement {
                index,
                node_id: format!("blob-{index}"),
                node_address: format!("10.0.0.{index}:9100"),
                disk_id: format!("disk-{index}-7f3a9c"),
                shard_key: format!("0f3c9a7e2b5d4c1a-{index}"),
                written: true,
            })
            .collect(),
        ..Default::default()
    }
}

/// A version of a 4 KiB object kept inline in its record.
fn inline() -> ObjectVersion {
    ObjectVersion {
        bucket: "small".into(),
        key: "thumbs/000123.jpg".into(),
        version_id: "00000000000000123457".into(),
        size: 4096,
        etag: "0cc175b9c0f1b6a831c399e269772661".into(),
        last_modified_ms: 1_796_000_000_000,
        inline_data: Some(Bytes::from(vec![0x5a; 4096])),
        ..Default::default()
    }
}

fn records(c: &mut Criterion) {
    for (name, record) in [("sharded 2+2", sharded()), ("inline 4 KiB", inline())] {
        let encoded = record.encode_to_vec();
        let mut group = c.benchmark_group(format!("object_version/{name}"));
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_function("memcpy of the encoding (baseline)", |b| {
            b.iter(|| black_box(black_box(&encoded).to_vec()))
        });
        group.bench_function("encode", |b| {
            b.iter(|| black_box(black_box(&record).encode_to_vec()))
        });
        let wire = Bytes::from(encoded.clone());
        group.bench_function("decode", |b| {
            b.iter(|| black_box(ObjectVersion::decode(black_box(wire.clone()))))
        });
        group.finish();
    }
}

criterion_group!(benches, records);
criterion_main!(benches);
