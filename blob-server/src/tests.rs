//! End-to-end tests: the real gRPC server on 127.0.0.1:0, driven through the generated
//! clients over a real socket.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::blob::blob_client::BlobClient;
use cairn_proto::blob::{
    DeleteShardRequest, DiskState, GetShardRequest, NodeInfoRequest, PutShardRequest, ShardHeader,
    StatShardRequest, StatShardResponse,
};
use cairn_proto::meta::meta_server::{Meta, MetaServer};
use cairn_proto::meta::*;
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use super::*;

fn config(dirs: Vec<PathBuf>) -> BlobServerConfig {
    BlobServerConfig {
        data_dirs: dirs,
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        meta_endpoints: Vec::new(),
        node_id: None,
        zone: String::new(),
        auth: BlobAuth::Open,
        scrub: ScrubConfig::default(),
        gc: GcConfig::default(),
    }
}

async fn client(server: &RunningBlobServer) -> BlobClient<Channel> {
    BlobClient::connect(format!("http://{}", server.local_addr()))
        .await
        .unwrap()
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn put_messages(disk_id: &str, key: &str, data: &[u8], piece: usize) -> Vec<PutShardRequest> {
    let mut msgs = vec![PutShardRequest {
        header: Some(ShardHeader {
            disk_id: disk_id.into(),
            shard_key: key.into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for (i, p) in data.chunks(piece).enumerate() {
        if i == 0 {
            msgs[0].data = Bytes::copy_from_slice(p);
        } else {
            msgs.push(PutShardRequest {
                data: Bytes::copy_from_slice(p),
                ..Default::default()
            });
        }
    }
    msgs
}

/// [`put_messages`] from a writer that promises an explicit end: the header says so, and the
/// final message is marked `last` when `mark_last`.
fn explicit_put_messages(
    disk_id: &str,
    key: &str,
    data: &[u8],
    mark_last: bool,
) -> Vec<PutShardRequest> {
    let mut msgs = put_messages(disk_id, key, data, 4096);
    if let Some(header) = msgs[0].header.as_mut() {
        header.explicit_end = true;
    }
    if mark_last {
        msgs.push(PutShardRequest {
            last: true,
            ..Default::default()
        });
    }
    msgs
}

/// A client that calls the server's own service object, as the embedded gateway does.
fn local_client(server: &RunningBlobServer) -> BlobClient<cairn_proto::local::Transport> {
    BlobClient::new(cairn_proto::local::Transport::Local(
        server.local_endpoint().service,
    ))
    .max_decoding_message_size(MAX_MESSAGE_SIZE)
    .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

async fn put(
    c: &mut BlobClient<Channel>,
    disk_id: &str,
    key: &str,
    data: &[u8],
    piece: usize,
) -> Result<u64, Status> {
    let msgs = put_messages(disk_id, key, data, piece);
    Ok(c.put_shard(tokio_stream::iter(msgs))
        .await?
        .into_inner()
        .length)
}

/// Stats shard `key` on disk `disk_id`.
async fn stat_of(c: &mut BlobClient<Channel>, disk_id: &str, key: &str) -> StatShardResponse {
    c.stat_shard(StatShardRequest {
        disk_id: disk_id.into(),
        shard_key: key.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// Reads a range; returns the bytes and the number of messages, or the first error.
async fn get(
    c: &mut BlobClient<Channel>,
    disk_id: &str,
    key: &str,
    offset: u64,
    length: u64,
) -> Result<(Vec<u8>, usize), Status> {
    let mut stream = c
        .get_shard(GetShardRequest {
            disk_id: disk_id.into(),
            shard_key: key.into(),
            offset,
            length,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    let mut messages = 0;
    while let Some(msg) = stream.message().await? {
        assert!(msg.data.len() <= crate::service::GET_MESSAGE_SIZE);
        out.extend_from_slice(&msg.data);
        messages += 1;
    }
    Ok((out, messages))
}

async fn disk_ids(c: &mut BlobClient<Channel>) -> Vec<(String, i32)> {
    c.node_info(NodeInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .disks
        .into_iter()
        .map(|d| (d.disk_id, d.state))
        .collect()
}

/// Waits up to 5 s for the writer threads to remove their temporary files (they do once they
/// see their channel close), then requires that none is left.
async fn assert_no_tmp_files_soon(root: &Path) {
    for _ in 0..100 {
        if tmp_files(root).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tmp_files(root).is_empty(), "{:?}", tmp_files(root));
}

fn tmp_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for sub in std::fs::read_dir(root.join("shards")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().ends_with(".tmp") {
                found.push(p);
            }
        }
    }
    found
}

#[tokio::test]
async fn grpc_put_get_stat_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(config(vec![tmp.path().join("d0"), tmp.path().join("d1")]))
        .await
        .unwrap();
    let mut c = client(&server).await;

    let info = c.node_info(NodeInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.node_id, server.node_id());
    assert_eq!(info.disks.len(), 2);
    assert!(info
        .disks
        .iter()
        .all(|d| d.state == DiskState::Ok as i32 && d.capacity_bytes >= d.free_bytes));
    let disk = info.disks[1].disk_id.clone();

    // Put in many messages (sizes that do not line up with chunks), then read it back.
    let data = pattern(crate::service::GET_MESSAGE_SIZE + 5 * 64 * 1024 + 17);
    assert_eq!(
        put(&mut c, &disk, "obj1.s0", &data, 50_000).await.unwrap(),
        data.len() as u64
    );
    let (all, messages) = get(&mut c, &disk, "obj1.s0", 0, 0).await.unwrap();
    assert_eq!(all, data);
    assert_eq!(
        messages, 2,
        "one full message of GET_MESSAGE_SIZE + the rest"
    );

    for (off, len) in [
        (65_535u64, 70_000u64),
        (0, 1),
        (65_536, 65_536),
        (100, 10_000_000),
    ] {
        let (got, _) = get(&mut c, &disk, "obj1.s0", off, len).await.unwrap();
        let end = (off + len).min(data.len() as u64) as usize;
        assert_eq!(got, &data[off as usize..end], "range {off}+{len}");
    }
    let (empty, messages) = get(&mut c, &disk, "obj1.s0", data.len() as u64, 0)
        .await
        .unwrap();
    assert!(empty.is_empty() && messages == 0);
    let err = get(&mut c, &disk, "obj1.s0", data.len() as u64 + 1, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    let stat = stat_of(&mut c, &disk, "obj1.s0").await;
    assert!(stat.exists);
    assert_eq!(stat.length, data.len() as u64);

    // Overwrite with an empty shard.
    assert_eq!(put(&mut c, &disk, "obj1.s0", &[], 1).await.unwrap(), 0);
    assert_eq!(get(&mut c, &disk, "obj1.s0", 0, 0).await.unwrap().0, b"");

    let del = |disk: String| DeleteShardRequest {
        disk_id: disk,
        shard_key: "obj1.s0".into(),
    };
    assert!(
        c.delete_shard(del(disk.clone()))
            .await
            .unwrap()
            .into_inner()
            .existed
    );
    assert!(
        !c.delete_shard(del(disk.clone()))
            .await
            .unwrap()
            .into_inner()
            .existed
    );
    let stat = stat_of(&mut c, &disk, "obj1.s0").await;
    assert!(!stat.exists);
    let err = get(&mut c, &disk, "obj1.s0", 0, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Argument errors.
    let err = put(&mut c, "no-such-disk", "k", b"x", 1).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    for bad in ["../x", "a/b", ""] {
        let err = put(&mut c, &disk, bad, b"x", 1).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    let headerless = vec![PutShardRequest {
        data: Bytes::from_static(b"x"),
        ..Default::default()
    }];
    let err = c
        .put_shard(tokio_stream::iter(headerless))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut two_headers = put_messages(&disk, "twice", &pattern(10), 5);
    two_headers[1].header = two_headers[0].header.clone();
    let err = c
        .put_shard(tokio_stream::iter(two_headers))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(tmp_files(&tmp.path().join("d1")).is_empty());

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn faulty_disk_is_reported_and_server_still_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let server = start(config(vec![file.join("d0"), tmp.path().join("d1")]))
        .await
        .unwrap();
    let mut c = client(&server).await;
    let disks = disk_ids(&mut c).await;
    assert_eq!(disks[0], ("faulty-0".to_owned(), DiskState::Faulty as i32));
    assert_eq!(disks[1].1, DiskState::Ok as i32);
    let err = put(&mut c, "faulty-0", "k", b"x", 1).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(put(&mut c, &disks[1].0, "k", b"x", 1).await.unwrap(), 1);
    server.shutdown().await.unwrap();

    let err = start(config(vec![file.join("d0")])).await.unwrap_err();
    assert!(matches!(err, BlobError::NoUsableDisk(1)), "{err}");
}

#[tokio::test]
async fn a_disk_removed_while_running_fails_fast_at_its_first_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (d0, d1) = (tmp.path().join("d0"), tmp.path().join("d1"));
    let server = start(config(vec![d0.clone(), d1.clone()])).await.unwrap();
    let mut c = client(&server).await;
    let disks = disk_ids(&mut c).await;
    put(&mut c, &disks[1].0, "before", b"x", 1).await.unwrap();

    std::fs::remove_dir_all(&d1).unwrap();
    // The first put to it fails, probes the disk and marks it FAULTY (well before the
    // periodic check); the error tells the caller to go elsewhere.
    let err = put(&mut c, &disks[1].0, "k", b"x", 1).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let now = disk_ids(&mut c).await;
    assert_eq!(now[1], (disks[1].0.clone(), DiskState::Faulty as i32));
    assert_eq!(now[0].1, DiskState::Ok as i32);
    let err = get(&mut c, &disks[1].0, "before", 0, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // The other disk serves on; nothing recreated the removed one.
    assert_eq!(put(&mut c, &disks[0].0, "k", b"xy", 1).await.unwrap(), 2);
    assert!(!d1.exists());
    let info = c.node_info(NodeInfoRequest {}).await.unwrap().into_inner();
    assert!(info.maintenance.is_some());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cut_off_put_removes_its_tmp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d0");
    let server = start(config(vec![root.clone()])).await.unwrap();
    let mut c = client(&server).await;
    let disk = disk_ids(&mut c).await[0].0.clone();

    // Sends a header and some data, then never ends the stream.
    let msgs = put_messages(&disk, "cut", &pattern(200_000), 65_536);
    let stream = tokio_stream::iter(msgs).chain(futures::stream::pending());
    let mut c2 = c.clone();
    let upload = tokio::spawn(async move { c2.put_shard(stream).await });

    let mut waited = 0;
    while tmp_files(&root).is_empty() {
        assert!(waited < 500, "the put never started writing");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    upload.abort(); // the client goes away mid-stream
    let mut waited = 0;
    while !tmp_files(&root).is_empty() {
        assert!(waited < 500, "temporary file left behind");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let stat = stat_of(&mut c, &disk, "cut").await;
    assert!(!stat.exists);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn corrupt_chunk_ends_the_stream_with_data_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d0");
    let server = start(config(vec![root.clone()])).await.unwrap();
    let mut c = client(&server).await;
    let disk = disk_ids(&mut c).await[0].0.clone();
    let data = pattern(3 * 65_536);
    put(&mut c, &disk, "rot", &data, 100_000).await.unwrap();

    let path = layout::shard_dir(&root, "rot").join("rot");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[256 + 2 * (65_536 + 32) + 10] ^= 1; // a byte of chunk 2
    std::fs::write(&path, bytes).unwrap();

    let (head, _) = get(&mut c, &disk, "rot", 0, 2 * 65_536).await.unwrap();
    assert_eq!(head, &data[..2 * 65_536]);
    let err = get(&mut c, &disk, "rot", 0, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    let err = get(&mut c, &disk, "rot", 2 * 65_536 + 5, 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn leftover_tmp_files_are_cleaned_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d0");
    let server = start(config(vec![root.clone()])).await.unwrap();
    let node_id = server.node_id().to_owned();
    server.shutdown().await.unwrap();

    let leftover = layout::shard_dir(&root, "s1").join(layout::tmp_name("s1"));
    std::fs::write(&leftover, b"half a shard").unwrap();
    let server = start(config(vec![root.clone()])).await.unwrap();
    assert!(!leftover.exists());
    assert_eq!(server.node_id(), node_id, "the node id is kept on the disk");
    server.shutdown().await.unwrap();
}

/// A meta service that refuses the first registration, then records them; every other
/// method answers UNIMPLEMENTED (tonic's default).
#[derive(Default, Clone)]
struct FakeMeta {
    calls: Arc<Mutex<Vec<RegisterBlobNodeRequest>>>,
    refused: Arc<Mutex<u32>>,
}

#[tonic::async_trait]
impl Meta for FakeMeta {
    async fn register_blob_node(
        &self,
        request: Request<RegisterBlobNodeRequest>,
    ) -> Result<Response<RegisterBlobNodeResponse>, Status> {
        let mut refused = self.refused.lock().unwrap();
        if *refused == 0 {
            *refused += 1;
            return Err(Status::unavailable("no leader yet"));
        }
        self.calls.lock().unwrap().push(request.into_inner());
        Ok(Response::new(RegisterBlobNodeResponse {}))
    }
}

#[tokio::test]
async fn registers_with_meta_after_retries() {
    let meta = FakeMeta::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let meta_addr = listener.local_addr().unwrap();
    let meta_task = tokio::spawn(
        Server::builder()
            .add_service(MetaServer::new(meta.clone()))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(vec![tmp.path().join("d0")]);
    cfg.node_id = Some("node-7".into());
    cfg.advertise = Some("blob-7.example:9000".into());
    // The first endpoint refuses connections; the second refuses the first call.
    cfg.meta_endpoints = vec![
        "http://127.0.0.1:1".into(),
        "not a uri".into(),
        format!("http://{meta_addr}"),
    ];
    let server = start(cfg).await.unwrap();

    let mut waited = 0;
    while meta.calls.lock().unwrap().is_empty() {
        assert!(waited < 1000, "never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let req = meta.calls.lock().unwrap()[0].clone();
    assert_eq!(req.node_id, "node-7");
    assert_eq!(req.address, "blob-7.example:9000");
    assert_eq!(req.disks.len(), 1);
    assert_eq!(req.disks[0].state, DiskState::Ok as i32);
    server.shutdown().await.unwrap();
    meta_task.abort();
}

#[tokio::test]
async fn in_process_calls_store_and_read_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(config(vec![tmp.path().join("d0")])).await.unwrap();
    let disk = disk_ids(&mut client(&server).await).await[0].0.clone();
    let mut c = local_client(&server);
    let data = pattern(300_000);
    let msgs = explicit_put_messages(&disk, "local-shard", &data, true);
    let len = c
        .put_shard(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner()
        .length;
    assert_eq!(len, data.len() as u64);
    // Read back both in-process and over the socket: the same file.
    let mut stream = c
        .get_shard(GetShardRequest {
            disk_id: disk.clone(),
            shard_key: "local-shard".into(),
            offset: 0,
            length: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut back = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        back.extend_from_slice(&msg.data);
    }
    assert_eq!(back, data);
    let (remote, _) = get(&mut client(&server).await, &disk, "local-shard", 0, 0)
        .await
        .unwrap();
    assert_eq!(remote, data);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_that_promised_an_end_mark_and_ends_without_it_is_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d0");
    let server = start(config(vec![root.clone()])).await.unwrap();
    let mut remote = client(&server).await;
    let disk = disk_ids(&mut remote).await[0].0.clone();
    let data = pattern(100_000);
    // In-process and over the socket, a stream that simply ends is not a complete shard.
    let mut local = local_client(&server);
    let unmarked = explicit_put_messages(&disk, "cut-local", &data, false);
    let err = local
        .put_shard(tokio_stream::iter(unmarked))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    let unmarked = explicit_put_messages(&disk, "cut-remote", &data, false);
    let err = remote
        .put_shard(tokio_stream::iter(unmarked))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    for key in ["cut-local", "cut-remote"] {
        let stat = stat_of(&mut remote, &disk, key).await;
        assert!(!stat.exists, "{key} was stored");
    }
    // Nothing may follow the final message.
    let mut after_last = explicit_put_messages(&disk, "after-last", &data, true);
    after_last.push(PutShardRequest {
        data: Bytes::from_static(b"more"),
        ..Default::default()
    });
    let err = local
        .put_shard(tokio_stream::iter(after_last))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // The writer threads remove their temporary files once they see the channel close.
    assert_no_tmp_files_soon(&root).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn explicit_ends_of_every_shape_and_in_process_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d0");
    let server = start(config(vec![root.clone()])).await.unwrap();
    let mut remote = client(&server).await;
    let disk = disk_ids(&mut remote).await[0].0.clone();
    let mut local = local_client(&server);
    let stored_len = |key: &'static str| {
        let mut remote = remote.clone();
        let disk = disk.clone();
        async move {
            let stat = stat_of(&mut remote, &disk, key).await;
            stat.exists.then_some(stat.length)
        }
    };

    // A zero-length shard: the header, then an empty message marked last.
    let empty = explicit_put_messages(&disk, "empty", &[], true);
    let len = local
        .put_shard(tokio_stream::iter(empty))
        .await
        .unwrap()
        .into_inner()
        .length;
    assert_eq!((len, stored_len("empty").await), (0, Some(0)));

    // `last` on a message that also carries data: that data is the shard's end.
    let data = pattern(10_000);
    let mut msgs = explicit_put_messages(&disk, "last-with-data", &data, false);
    if let Some(final_msg) = msgs.last_mut() {
        final_msg.last = true;
    }
    local.put_shard(tokio_stream::iter(msgs)).await.unwrap();
    assert_eq!(stored_len("last-with-data").await, Some(10_000));

    // In-process, only an explicit end can be trusted: a writer that promises none is refused.
    let implicit = put_messages(&disk, "implicit", &data, 4096);
    let err = local
        .put_shard(tokio_stream::iter(implicit))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(stored_len("implicit").await, None);

    // An in-process caller aborted mid-stream stores nothing and leaves no temporary file.
    let first = explicit_put_messages(&disk, "aborted", &data, false);
    let stalled = tokio_stream::iter(first).chain(futures::stream::pending());
    let call = tokio::spawn(async move { local.put_shard(stalled).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_no_tmp_files_soon(&root).await;
    assert_eq!(stored_len("aborted").await, None);
    server.shutdown().await.unwrap();
}

/// Collects a `GetShard` reply stream, or its first error.
async fn collect_shard(
    mut stream: cairn_proto::local::GetShardMessages,
) -> Result<Vec<u8>, Status> {
    let mut out = Vec::new();
    while let Some(msg) = stream.next().await {
        out.extend_from_slice(&msg?.data);
    }
    Ok(out)
}

#[tokio::test]
async fn direct_shard_data_calls_follow_the_grpc_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d0");
    let server = start(config(vec![root.clone()])).await.unwrap();
    let mut remote = client(&server).await;
    let disk = disk_ids(&mut remote).await[0].0.clone();
    let direct = server.local_endpoint().shard_data;
    let messages = |msgs: Vec<PutShardRequest>| -> cairn_proto::local::PutShardMessages {
        Box::pin(tokio_stream::iter(msgs))
    };
    let get_req = |key: &str, offset, length| GetShardRequest {
        disk_id: disk.clone(),
        shard_key: key.into(),
        offset,
        length,
    };

    // Stored directly, read back directly (whole and a range) and over the socket.
    let data = pattern(1_300_000);
    let put = explicit_put_messages(&disk, "direct", &data, true);
    let len = direct.put_shard(messages(put)).await.unwrap().length;
    assert_eq!(len, data.len() as u64);
    let back = collect_shard(direct.get_shard(get_req("direct", 0, 0)).await.unwrap());
    assert_eq!(back.await.unwrap(), data);
    let part = collect_shard(
        direct
            .get_shard(get_req("direct", 70_000, 600_000))
            .await
            .unwrap(),
    );
    assert_eq!(part.await.unwrap(), &data[70_000..670_000]);
    let (over_socket, _) = get(&mut remote, &disk, "direct", 0, 0).await.unwrap();
    assert_eq!(over_socket, data);

    // The statuses of the gRPC call, as the call's own result.
    let missing = direct
        .get_shard(get_req("absent", 0, 0))
        .await
        .err()
        .unwrap();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let beyond = direct
        .get_shard(get_req("direct", data.len() as u64 + 1, 1))
        .await
        .err()
        .unwrap();
    assert_eq!(beyond.code(), Code::OutOfRange, "{beyond:?}");

    // Only an explicit end is trusted, nothing may follow it, and a refused or cut-off
    // stream keeps nothing.
    let implicit = put_messages(&disk, "implicit", &data, 4096);
    let err = direct.put_shard(messages(implicit)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let unmarked = explicit_put_messages(&disk, "unmarked", &data, false);
    let err = direct.put_shard(messages(unmarked)).await.unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    let mut after_last = explicit_put_messages(&disk, "after-last", &data, true);
    after_last.push(PutShardRequest {
        data: Bytes::from_static(b"more"),
        ..Default::default()
    });
    let err = direct.put_shard(messages(after_last)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A caller aborted mid-stream stores nothing and leaves no temporary file.
    let first = explicit_put_messages(&disk, "aborted", &data[..10_000], false);
    let stalled: cairn_proto::local::PutShardMessages =
        Box::pin(tokio_stream::iter(first).chain(futures::stream::pending()));
    let call = tokio::spawn({
        let direct = Arc::clone(&direct);
        async move { direct.put_shard(stalled).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_no_tmp_files_soon(&root).await;
    for key in ["implicit", "unmarked", "after-last", "aborted"] {
        let stat = stat_of(&mut remote, &disk, key).await;
        assert!(!stat.exists, "{key} was stored");
    }
    server.shutdown().await.unwrap();
}
