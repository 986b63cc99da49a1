//! The gateway against an in-process fake cluster: an in-memory meta service and six
//! in-memory blob servers (which can be taken down or made to return DATA_LOSS), driven by
//! aws-sdk-s3. It checks the gateway's own behaviour (striping, quorum, degraded reads,
//! s3s integration); the real meta and blob servers are covered by the workspace's tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};
use cairn_proto::blob::blob_server::{Blob, BlobServer};
use cairn_proto::blob::*;
use cairn_proto::meta::meta_server::{Meta, MetaServer};
use cairn_proto::meta::*;
use futures::Stream;
use md5::{Digest, Md5};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

const K: u32 = 4;
const M: u32 = 2;
const BLOCK: u32 = 1000;
const NODES: usize = 6;

// ---------------------------------------------------------------- fake blob server

#[derive(Default)]
struct FakeBlob {
    shards: Mutex<HashMap<(String, String), Bytes>>,
    down: AtomicBool,
    corrupt: AtomicBool,
}

type ShardStream = Pin<Box<dyn Stream<Item = Result<GetShardResponse, Status>> + Send>>;

impl FakeBlob {
    fn check(&self) -> Result<(), Status> {
        if self.down.load(Ordering::SeqCst) {
            Err(Status::unavailable("node down"))
        } else {
            Ok(())
        }
    }
    fn count(&self) -> usize {
        self.shards.lock().unwrap().len()
    }
}

#[tonic::async_trait]
impl Blob for FakeBlob {
    async fn put_shard(&self, req: Request<Streaming<PutShardRequest>>) -> Result<Response<PutShardResponse>, Status> {
        self.check()?;
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::invalid_argument("empty stream"))?;
        let header = first.header.ok_or_else(|| Status::invalid_argument("no header"))?;
        let mut data = BytesMut::from(&first.data[..]);
        // `?`: a reset stream (aborted PUT) stores nothing.
        while let Some(msg) = stream.message().await? {
            data.extend_from_slice(&msg.data);
        }
        self.check()?;
        let length = data.len() as u64;
        self.shards.lock().unwrap().insert((header.disk_id, header.shard_key), data.freeze());
        Ok(Response::new(PutShardResponse { length }))
    }

    type GetShardStream = ShardStream;

    async fn get_shard(&self, req: Request<GetShardRequest>) -> Result<Response<ShardStream>, Status> {
        self.check()?;
        let r = req.into_inner();
        let data = self
            .shards
            .lock()
            .unwrap()
            .get(&(r.disk_id, r.shard_key))
            .cloned()
            .ok_or_else(|| Status::not_found("no shard"))?;
        let start = r.offset as usize;
        let end = if r.length == 0 { data.len() } else { start + r.length as usize };
        if start > data.len() || end > data.len() {
            return Err(Status::out_of_range("past the end"));
        }
        // Odd message sizes exercise the gateway's reassembly.
        let mut items: Vec<Result<GetShardResponse, Status>> =
            (start..end).step_by(333).map(|i| Ok(GetShardResponse { data: data.slice(i..(i + 333).min(end)) })).collect();
        if self.corrupt.load(Ordering::SeqCst) {
            items.truncate(1);
            items.push(Err(Status::data_loss("checksum mismatch")));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }

    async fn delete_shard(&self, req: Request<DeleteShardRequest>) -> Result<Response<DeleteShardResponse>, Status> {
        self.check()?;
        let r = req.into_inner();
        let existed = self.shards.lock().unwrap().remove(&(r.disk_id, r.shard_key)).is_some();
        Ok(Response::new(DeleteShardResponse { existed }))
    }

    async fn stat_shard(&self, _req: Request<StatShardRequest>) -> Result<Response<StatShardResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn node_info(&self, _req: Request<NodeInfoRequest>) -> Result<Response<NodeInfoResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

// ---------------------------------------------------------------- fake meta server

struct FakeMeta {
    nodes: Vec<SocketAddr>,
    buckets: Mutex<BTreeMap<String, BTreeMap<String, ObjectVersion>>>,
    counter: AtomicU64,
}

fn err(e: MetaError) -> i32 {
    e as i32
}

#[tonic::async_trait]
impl Meta for FakeMeta {
    async fn create_bucket(&self, req: Request<CreateBucketRequest>) -> Result<Response<CreateBucketResponse>, Status> {
        let name = req.into_inner().name;
        let mut b = self.buckets.lock().unwrap();
        if b.contains_key(&name) {
            return Ok(Response::new(CreateBucketResponse { error: err(MetaError::BucketAlreadyExists), bucket: None }));
        }
        b.insert(name.clone(), BTreeMap::new());
        Ok(Response::new(CreateBucketResponse { error: 0, bucket: Some(Bucket { name, id: 1, created_ms: 1_700_000_000_000 }) }))
    }

    async fn delete_bucket(&self, req: Request<DeleteBucketRequest>) -> Result<Response<DeleteBucketResponse>, Status> {
        let name = req.into_inner().name;
        let mut b = self.buckets.lock().unwrap();
        let error = match b.get(&name) {
            None => err(MetaError::NoSuchBucket),
            Some(objs) if !objs.is_empty() => err(MetaError::BucketNotEmpty),
            Some(_) => {
                b.remove(&name);
                0
            }
        };
        Ok(Response::new(DeleteBucketResponse { error }))
    }

    async fn get_bucket(&self, req: Request<GetBucketRequest>) -> Result<Response<GetBucketResponse>, Status> {
        let name = req.into_inner().name;
        let b = self.buckets.lock().unwrap();
        Ok(Response::new(match b.contains_key(&name) {
            true => GetBucketResponse { error: 0, bucket: Some(Bucket { name, id: 1, created_ms: 1_700_000_000_000 }) },
            false => GetBucketResponse { error: err(MetaError::NoSuchBucket), bucket: None },
        }))
    }

    async fn list_buckets(&self, _req: Request<ListBucketsRequest>) -> Result<Response<ListBucketsResponse>, Status> {
        let b = self.buckets.lock().unwrap();
        let buckets = b.keys().map(|name| Bucket { name: name.clone(), id: 1, created_ms: 1_700_000_000_000 }).collect();
        Ok(Response::new(ListBucketsResponse { buckets }))
    }

    async fn plan_put(&self, req: Request<PlanPutRequest>) -> Result<Response<PlanPutResponse>, Status> {
        let r = req.into_inner();
        if !self.buckets.lock().unwrap().contains_key(&r.bucket) {
            return Ok(Response::new(PlanPutResponse { error: err(MetaError::NoSuchBucket), ..Default::default() }));
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let shards = (0..(K + M))
            .map(|i| ShardPlacement {
                index: i,
                node_id: format!("node{i}"),
                node_address: self.nodes[i as usize].to_string(),
                disk_id: "disk0".into(),
                shard_key: format!("obj{n}.{i}"),
                written: false,
            })
            .collect();
        let scheme = ErasureScheme { data_shards: K, parity_shards: M, block_size: BLOCK };
        Ok(Response::new(PlanPutResponse { error: 0, scheme: Some(scheme), shards }))
    }

    async fn commit_object(&self, req: Request<CommitObjectRequest>) -> Result<Response<CommitObjectResponse>, Status> {
        let mut obj = req.into_inner().object.ok_or_else(|| Status::invalid_argument("no object"))?;
        let mut b = self.buckets.lock().unwrap();
        let Some(objs) = b.get_mut(&obj.bucket) else {
            return Ok(Response::new(CommitObjectResponse { error: err(MetaError::NoSuchBucket), ..Default::default() }));
        };
        obj.version_id = format!("v{}", self.counter.fetch_add(1, Ordering::SeqCst));
        obj.last_modified_ms = 1_700_000_000_000;
        let replaced = objs.insert(obj.key.clone(), obj.clone());
        Ok(Response::new(CommitObjectResponse { error: 0, object: Some(obj), replaced }))
    }

    async fn get_object(&self, req: Request<GetObjectRequest>) -> Result<Response<GetObjectResponse>, Status> {
        let r = req.into_inner();
        let b = self.buckets.lock().unwrap();
        Ok(Response::new(match b.get(&r.bucket) {
            None => GetObjectResponse { error: err(MetaError::NoSuchBucket), object: None },
            Some(objs) => match objs.get(&r.key) {
                None => GetObjectResponse { error: err(MetaError::NoSuchKey), object: None },
                Some(o) => GetObjectResponse { error: 0, object: Some(o.clone()) },
            },
        }))
    }

    async fn delete_object(&self, req: Request<DeleteObjectRequest>) -> Result<Response<DeleteObjectResponse>, Status> {
        let r = req.into_inner();
        let mut b = self.buckets.lock().unwrap();
        Ok(Response::new(match b.get_mut(&r.bucket) {
            None => DeleteObjectResponse { error: err(MetaError::NoSuchBucket), deleted: None },
            Some(objs) => match objs.remove(&r.key) {
                None => DeleteObjectResponse { error: err(MetaError::NoSuchKey), deleted: None },
                Some(o) => DeleteObjectResponse { error: 0, deleted: Some(o) },
            },
        }))
    }

    async fn list_objects(&self, req: Request<ListObjectsRequest>) -> Result<Response<ListObjectsResponse>, Status> {
        let r = req.into_inner();
        let b = self.buckets.lock().unwrap();
        let Some(objs) = b.get(&r.bucket) else {
            return Ok(Response::new(ListObjectsResponse { error: err(MetaError::NoSuchBucket), ..Default::default() }));
        };
        let mut out = ListObjectsResponse::default();
        let mut count = 0;
        for (key, o) in objs.iter() {
            if key.as_str() <= r.start_after.as_str() || !key.starts_with(&r.prefix) {
                continue;
            }
            let rest = &key[r.prefix.len()..];
            let entry = match (!r.delimiter.is_empty()).then(|| rest.find(&r.delimiter)).flatten() {
                Some(i) => {
                    let cp = format!("{}{}", r.prefix, &rest[..i + r.delimiter.len()]);
                    if cp.as_str() <= r.start_after.as_str() || out.common_prefixes.last() == Some(&cp) {
                        continue;
                    }
                    Err(cp)
                }
                None => Ok(o),
            };
            if count == r.max_keys {
                out.is_truncated = true;
                break;
            }
            count += 1;
            match entry {
                Err(cp) => {
                    out.next_start_after = cp.clone();
                    out.common_prefixes.push(cp);
                }
                Ok(o) => {
                    out.next_start_after = o.key.clone();
                    out.objects.push(ObjectSummary {
                        key: o.key.clone(),
                        size: o.size,
                        etag: o.etag.clone(),
                        last_modified_ms: o.last_modified_ms,
                    });
                }
            }
        }
        Ok(Response::new(out))
    }

    async fn register_blob_node(&self, _r: Request<RegisterBlobNodeRequest>) -> Result<Response<RegisterBlobNodeResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_blob_nodes(&self, _r: Request<ListBlobNodesRequest>) -> Result<Response<ListBlobNodesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

// ---------------------------------------------------------------- harness

struct Cluster {
    blobs: Vec<Arc<FakeBlob>>,
    meta: Arc<FakeMeta>,
    gateway: cairn_gateway::RunningGateway,
    client: aws_sdk_s3::Client,
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn client(addr: SocketAddr, access: &str, secret: &str) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(access, secret, None, None, "test");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn cluster() -> Cluster {
    let mut blobs = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let blob = Arc::new(FakeBlob::default());
        let (l, addr) = listener().await;
        let svc = BlobServer::from_arc(Arc::clone(&blob)).max_decoding_message_size(16 << 20);
        tokio::spawn(tonic::transport::Server::builder().add_service(svc).serve_with_incoming(TcpListenerStream::new(l)));
        blobs.push(blob);
        nodes.push(addr);
    }
    let meta = Arc::new(FakeMeta { nodes, buckets: Mutex::default(), counter: AtomicU64::new(0) });
    let (l, meta_addr) = listener().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetaServer::from_arc(Arc::clone(&meta)))
            .serve_with_incoming(TcpListenerStream::new(l)),
    );
    let gateway = cairn_gateway::start(cairn_gateway::GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        // The first endpoint is dead: every call must fail over to the second.
        meta_endpoints: vec!["http://127.0.0.1:1".into(), format!("http://{meta_addr}")],
        access_key: "AKIDCAIRN".into(),
        secret_key: "cairn-secret".into(),
        region: "us-east-1".into(),
    })
    .await
    .unwrap();
    let client = client(gateway.local_addr(), "AKIDCAIRN", "cairn-secret");
    Cluster { blobs, meta, gateway, client }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

impl Cluster {
    async fn put(&self, bucket: &str, key: &str, data: &[u8]) -> Result<String, String> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .map(|o| o.e_tag.unwrap_or_default())
            .map_err(|e| format!("{}", e.code().unwrap_or("?")))
    }

    async fn get(&self, bucket: &str, key: &str, range: Option<&str>) -> Result<Vec<u8>, String> {
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if let Some(r) = range {
            req = req.range(r);
        }
        let out = req.send().await.map_err(|e| {
            eprintln!("GET {bucket}/{key}: {:?} {:?}", e.code(), e.message());
            e.code().unwrap_or("?").to_string()
        })?;
        let body = out.body.collect().await.map_err(|e| e.to_string())?;
        Ok(body.into_bytes().to_vec())
    }

    fn object(&self, bucket: &str, key: &str) -> Option<ObjectVersion> {
        self.meta.buckets.lock().unwrap().get(bucket)?.get(key).cloned()
    }

    fn shard_count(&self) -> usize {
        self.blobs.iter().map(|b| b.count()).sum()
    }
}

/// Sends raw HTTP/1.1 and returns the status code and body.
async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_objects_ranges_and_listing() {
    let c = cluster().await;
    let s3 = &c.client;

    // Buckets.
    s3.create_bucket().bucket("data").send().await.unwrap();
    let e = s3.create_bucket().bucket("data").send().await.unwrap_err();
    assert_eq!(e.code(), Some("BucketAlreadyOwnedByYou"));
    let e = s3.head_bucket().bucket("missing").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    s3.head_bucket().bucket("data").send().await.unwrap();
    let names: Vec<String> = s3.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name.clone()).collect();
    assert_eq!(names, vec!["data"]);

    // Round trips across stripe edges (stripe = 4 * 1000 bytes).
    for (i, size) in [0usize, 1, 999, 1000, 3999, 4000, 4001, 12_005, 100_000].into_iter().enumerate() {
        let data = random(size, i as u64);
        let etag = c.put("data", &format!("obj/{size}"), &data).await.unwrap();
        assert_eq!(etag, format!("\"{}\"", hex::encode(Md5::digest(&data))), "size {size}");
        assert_eq!(c.get("data", &format!("obj/{size}"), None).await.unwrap(), data, "size {size}");
        let stored = c.object("data", &format!("obj/{size}")).unwrap();
        assert!(stored.shards.iter().all(|s| s.written));
    }

    // Ranges.
    let data = random(12_005, 7);
    for (range, want) in [
        ("bytes=0-0", &data[0..1]),
        ("bytes=3999-4000", &data[3999..4001]),
        ("bytes=4000-7999", &data[4000..8000]),
        ("bytes=11990-", &data[11990..]),
        ("bytes=-7", &data[12_005 - 7..]),
        ("bytes=100-99999", &data[100..]),
    ] {
        assert_eq!(c.get("data", "obj/12005", Some(range)).await.unwrap(), want, "{range}");
    }
    let out = s3.get_object().bucket("data").key("obj/12005").range("bytes=10-19").send().await.unwrap();
    assert_eq!(out.content_range(), Some("bytes 10-19/12005"));
    assert_eq!(out.content_length(), Some(10));
    assert_eq!(c.get("data", "obj/12005", Some("bytes=20000-")).await.unwrap_err(), "InvalidRange");

    // HEAD, metadata, content type, conditionals.
    s3.put_object()
        .bucket("data")
        .key("meta")
        .content_type("text/plain")
        .metadata("color", "blue")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("data").key("meta").send().await.unwrap();
    assert_eq!(head.content_length(), Some(5));
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.metadata().and_then(|m| m.get("color")).map(String::as_str), Some("blue"));
    let etag = head.e_tag().unwrap().to_string();
    let e = s3.get_object().bucket("data").key("meta").if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));
    let e = s3.get_object().bucket("data").key("meta").if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(412));
    s3.get_object().bucket("data").key("meta").if_match(&etag).send().await.unwrap();
    let e = s3.head_object().bucket("data").key("nope").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));

    // Bad Content-MD5: nothing is committed.
    let e = s3
        .put_object()
        .bucket("data")
        .key("bad-md5")
        .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("BadDigest"));
    assert!(c.object("data", "bad-md5").is_none());

    // Listing: v2 with delimiter and pagination.
    for key in ["list/a", "list/b", "list/d/1", "list/d/2", "list/e", "list/f/x"] {
        c.put("data", key, b"x").await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("data")
            .prefix("list/")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(out.key_count().unwrap_or(0) <= 2);
        seen.extend(out.contents().iter().filter_map(|o| o.key.clone()));
        seen.extend(out.common_prefixes().iter().filter_map(|p| p.prefix.clone()));
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token.clone();
    }
    seen.sort();
    assert_eq!(seen, vec!["list/a", "list/b", "list/d/", "list/e", "list/f/"]);
    let out = s3.list_objects_v2().bucket("data").prefix("list/d/").start_after("list/d/1").send().await.unwrap();
    assert_eq!(out.contents().iter().filter_map(|o| o.key.as_deref()).collect::<Vec<_>>(), vec!["list/d/2"]);
    // v1 with a marker.
    let out = s3.list_objects().bucket("data").prefix("list/").marker("list/b").delimiter("/").max_keys(1).send().await.unwrap();
    assert_eq!(out.common_prefixes().first().and_then(|p| p.prefix.as_deref()), Some("list/d/"));
    assert_eq!(out.next_marker(), Some("list/d/"));
    assert_eq!(out.is_truncated(), Some(true));
    let e = s3.list_objects_v2().bucket("missing").send().await.unwrap_err();
    assert_eq!(e.code(), Some("NoSuchBucket"));

    // Delete: shards go away in the background; a missing key is still 204.
    let before = c.shard_count();
    s3.delete_object().bucket("data").key("obj/100000").send().await.unwrap();
    s3.delete_object().bucket("data").key("obj/100000").send().await.unwrap();
    assert_eq!(c.get("data", "obj/100000", None).await.unwrap_err(), "NoSuchKey");
    wait_for(|| c.shard_count() == before - (K + M) as usize).await;
    // Overwrite: the replaced version's shards go too.
    let before = c.shard_count();
    c.put("data", "obj/1", b"new").await.unwrap();
    assert_eq!(c.get("data", "obj/1", None).await.unwrap(), b"new");
    wait_for(|| c.shard_count() == before).await;

    let e = s3.delete_bucket().bucket("data").send().await.unwrap_err();
    assert_eq!(e.code(), Some("BucketNotEmpty"));

    c.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_reads_and_writes() {
    let c = cluster().await;
    c.client.create_bucket().bucket("deg").send().await.unwrap();
    let data = random(25_000, 9);
    c.put("deg", "x", &data).await.unwrap();

    // Two data shards gone: decoded from parity.
    c.blobs[0].down.store(true, Ordering::SeqCst);
    c.blobs[2].down.store(true, Ordering::SeqCst);
    assert_eq!(c.get("deg", "x", None).await.unwrap(), data);
    assert_eq!(c.get("deg", "x", Some("bytes=3990-8010")).await.unwrap(), &data[3990..=8010]);
    // A third: not enough shards, an error and never wrong bytes.
    c.blobs[5].down.store(true, Ordering::SeqCst);
    let e = c.get("deg", "x", None).await.unwrap_err();
    assert_eq!(e, "ServiceUnavailable");
    c.blobs[5].down.store(false, Ordering::SeqCst);

    // A shard that fails its checksum mid-stream (DATA_LOSS) is replaced by parity, on top
    // of one server down.
    c.blobs[2].down.store(false, Ordering::SeqCst);
    c.blobs[1].corrupt.store(true, Ordering::SeqCst);
    assert_eq!(c.get("deg", "x", None).await.unwrap(), data);
    c.blobs[1].corrupt.store(false, Ordering::SeqCst);
    c.blobs[2].down.store(true, Ordering::SeqCst);

    // Degraded write with two servers down: quorum (4 of 6) still holds.
    let data2 = random(9_001, 10);
    c.put("deg", "y", &data2).await.unwrap();
    let stored = c.object("deg", "y").unwrap();
    let written: Vec<bool> = stored.shards.iter().map(|s| s.written).collect();
    assert_eq!(written, vec![false, true, false, true, true, true]);
    assert_eq!(c.get("deg", "y", None).await.unwrap(), data2);
    // Back up, the unwritten shards are still never read (only the healer may fill them).
    c.blobs[0].down.store(false, Ordering::SeqCst);
    c.blobs[2].down.store(false, Ordering::SeqCst);
    assert_eq!(c.get("deg", "y", Some("bytes=4000-")).await.unwrap(), &data2[4000..]);
    c.blobs[3].down.store(true, Ordering::SeqCst);
    assert_eq!(c.get("deg", "y", None).await.unwrap_err(), "ServiceUnavailable");
    c.blobs[3].down.store(false, Ordering::SeqCst);

    // Three down: below quorum, 503 and nothing committed.
    for i in [1, 3, 4] {
        c.blobs[i].down.store(true, Ordering::SeqCst);
    }
    assert_eq!(c.put("deg", "z", b"payload").await.unwrap_err(), "ServiceUnavailable");
    assert!(c.object("deg", "z").is_none());
    c.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_health() {
    let c = cluster().await;
    let addr = c.gateway.local_addr();

    let (status, body) = raw_http(addr, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = raw_http(addr, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 403);
    assert!(body.contains("AccessDenied"), "{body}");

    let wrong_key = client(addr, "NOBODY", "cairn-secret");
    let e = wrong_key.list_buckets().send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidAccessKeyId"));
    let wrong_secret = client(addr, "AKIDCAIRN", "wrong");
    let e = wrong_secret.list_buckets().send().await.unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));

    // A presigned GET works without the SDK's headers.
    c.client.create_bucket().bucket("pre").send().await.unwrap();
    c.put("pre", "k", b"presigned body").await.unwrap();
    let presigned = c
        .client
        .get_object()
        .bucket("pre")
        .key("k")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let path = presigned.uri().split_once(&addr.to_string()).map(|(_, p)| p.to_string()).unwrap();
    let (status, body) = raw_http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await;
    assert_eq!((status, body.as_str()), (200, "presigned body"));

    c.gateway.shutdown().await.unwrap();
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached");
}
