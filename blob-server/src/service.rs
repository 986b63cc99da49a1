//! The gRPC `Blob` service: request validation and streaming, on top of `store`.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::blob::blob_server::Blob;
use cairn_proto::blob::{
    DeleteShardRequest, DeleteShardResponse, GetShardRequest, GetShardResponse, NodeInfoRequest,
    NodeInfoResponse, PutShardRequest, PutShardResponse, StatShardRequest, StatShardResponse,
};
use cairn_proto::local::{GetShardMessages, LocalShardData, PutShardMessages};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::spawn_blocking;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::body_end::BodyEnd;
use crate::disk::DiskSet;
use crate::error::BlobError;
use crate::layout::validate_shard_key;
use crate::shard_file::{resolve_range, ShardReader};
use crate::stats::Stats;
use crate::store::{self, PutItem};

/// Largest data payload of one `GetShardResponse`. A multiple of the block sizes placement
/// picks (512 KiB for k = 2, 256 KiB for k = 4, ...), so that a reader starting at a block
/// boundary gets whole blocks as views of one message instead of gluing two together.
pub(crate) const GET_MESSAGE_SIZE: usize = 512 * 1024;
/// Responses buffered per GetShard stream (bounds memory to about 1 MiB per stream).
const GET_QUEUE_DEPTH: usize = 2;
/// Put messages buffered between the network and the writer thread.
const PUT_QUEUE_DEPTH: usize = 4;

/// Implements the `Blob` gRPC service over a set of disks.
pub(crate) struct BlobService {
    disks: Arc<DiskSet>,
    stats: Arc<Stats>,
}

impl BlobService {
    /// A service serving the given disks and reporting these maintenance counters.
    pub(crate) fn new(disks: Arc<DiskSet>, stats: Arc<Stats>) -> Self {
        BlobService { disks, stats }
    }

    /// Validates the key and finds the disk; returns the disk's directory.
    fn locate(&self, disk_id: &str, shard_key: &str) -> Result<PathBuf, BlobError> {
        validate_shard_key(shard_key)?;
        Ok(self.disks.usable(disk_id)?.path.clone())
    }

    /// Runs a blocking shard operation on disk `disk_id`; its error goes through
    /// [`after_error`] (which may mark the disk faulty) before it becomes a status.
    async fn on_disk<T, F>(&self, disk_id: &str, f: F) -> Result<T, Status>
    where
        F: FnOnce() -> Result<T, BlobError> + Send + 'static,
        T: Send + 'static,
    {
        match spawn_blocking(f)
            .await
            .map_err(BlobError::from)
            .and_then(|r| r)
        {
            Ok(v) => Ok(v),
            Err(e) => Err(after_error(&self.disks, disk_id, e).await.into()),
        }
    }
}

/// Whether a PutShard stream that just ended carried the whole shard. A writer that promised
/// an explicit end (`ShardHeader.explicit_end`) must have marked its final message `last`: a
/// stream it abandoned ends just as cleanly (an in-process call, or a stream dropped rather than
/// reset). Otherwise only the transport can tell: tonic reports a cancelled stream as a normal
/// end, so its own verdict ([`BodyEnd`]) decides.
fn stream_complete(explicit_end: bool, saw_last: bool, body_end: Option<&BodyEnd>) -> bool {
    if explicit_end {
        saw_last
    } else {
        body_end.is_some_and(BodyEnd::ended_cleanly)
    }
}

/// Logs a corruption found while serving a shard (the caller still returns the error).
fn log_corruption(err: &BlobError, disk_id: &str, shard_key: &str) {
    match err {
        BlobError::ChecksumMismatch { path, chunk } => tracing::error!(
            disk_id,
            shard_key,
            chunk_index = chunk,
            path = %path.display(),
            "shard chunk checksum mismatch"
        ),
        BlobError::CorruptShard { path, reason } => tracing::error!(
            disk_id,
            shard_key,
            path = %path.display(),
            reason = %reason,
            "corrupt shard file"
        ),
        _ => {}
    }
}

/// Follows up an error of a shard operation on disk `disk_id`. A full disk triggers an early
/// registration, so placement learns its free space now rather than at the next heartbeat.
/// Any other I/O error may mean the disk is failing: it is probed at once (see
/// [`DiskSet::check`]) rather than at the next periodic check. Returns the error to answer:
/// [`BlobError::FaultyDisk`] when the probe failed, so the caller retries elsewhere.
async fn after_error(disks: &Arc<DiskSet>, disk_id: &str, err: BlobError) -> BlobError {
    if err.is_out_of_space() {
        tracing::warn!(disk_id, error = %err, "disk is full; announcing its free space now");
        disks.announce_soon();
        return err;
    }
    if !err.suggests_disk_fault() {
        return err;
    }
    let (set, id) = (Arc::clone(disks), disk_id.to_owned());
    match spawn_blocking(move || set.check(&id)).await {
        Ok(false) => BlobError::FaultyDisk(disk_id.to_owned()),
        _ => err,
    }
}

/// Runs a blocking closure on the blocking pool and flattens the result into a status.
async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    spawn_blocking(f)
        .await
        .map_err(BlobError::from)
        .and_then(|r| r)
        .map_err(Status::from)
}

impl BlobService {
    /// `PutShard` over any source of messages: the gRPC stream, or an in-process caller's.
    /// `in_process` callers must promise an explicit end, since every end of theirs looks
    /// clean; `body_end` is the transport's own verdict on a gRPC stream's end, if tracked.
    async fn put_from<S>(
        &self,
        mut stream: S,
        in_process: bool,
        body_end: Option<BodyEnd>,
    ) -> Result<PutShardResponse, Status>
    where
        S: Stream<Item = Result<PutShardRequest, Status>> + Unpin + Send,
    {
        let first = stream.next().await.transpose()?.ok_or_else(|| {
            Status::invalid_argument("empty PutShard stream: the first message must carry a header")
        })?;
        let header = first.header.ok_or_else(|| {
            Status::invalid_argument("the first PutShard message must carry a header")
        })?;
        if in_process && !header.explicit_end {
            return Err(Status::invalid_argument(
                "an in-process PutShard must promise an explicit end (ShardHeader.explicit_end)",
            ));
        }
        let root = self.locate(&header.disk_id, &header.shard_key)?;

        let (tx, rx) = mpsc::channel(PUT_QUEUE_DEPTH);
        let key = header.shard_key.clone();
        // Runs detached from this future: if the client goes away and the call is dropped,
        // `tx` is dropped, the writer sees the channel close and removes its temporary file.
        let writer = spawn_blocking(move || store::put_shard(&root, &key, rx));

        let explicit_end = header.explicit_end;
        let feed = async move {
            let mut data = first.data;
            let mut last = first.last;
            loop {
                if !data.is_empty() && tx.send(PutItem::Data(data)).await.is_err() {
                    // The writer failed; its own result says why.
                    return Ok(());
                }
                match stream.next().await.transpose()? {
                    Some(_) if last => {
                        return Err(Status::invalid_argument(
                            "a PutShard message came after the one marked last",
                        ));
                    }
                    Some(msg) if msg.header.is_some() => {
                        return Err(Status::invalid_argument(
                            "only the first PutShard message may carry a header",
                        ));
                    }
                    Some(msg) => {
                        data = msg.data;
                        last = msg.last;
                    }
                    None if stream_complete(explicit_end, last, body_end.as_ref()) => break,
                    None => {
                        return Err(Status::cancelled(
                            "the PutShard stream was cut off before its end",
                        ));
                    }
                }
            }
            // Ignored error: the writer already failed and reports it below.
            let _ = tx.send(PutItem::End).await;
            Ok(())
        };
        // `feed` owns `tx`: once it returns, the writer either has `End` or sees the close.
        let fed: Result<(), Status> = feed.await;
        let written = writer.await.map_err(BlobError::from);
        match (fed, written) {
            (Err(status), _) => {
                tracing::warn!(
                    disk_id = %header.disk_id,
                    shard_key = %header.shard_key,
                    error = %status,
                    "shard upload failed; temporary file removed"
                );
                Err(status)
            }
            (Ok(()), Ok(Ok(length))) => Ok(PutShardResponse { length }),
            (Ok(()), Ok(Err(e)) | Err(e)) => {
                tracing::error!(
                    disk_id = %header.disk_id,
                    shard_key = %header.shard_key,
                    error = %e,
                    "cannot write shard; temporary file removed"
                );
                Err(after_error(&self.disks, &header.disk_id, e).await.into())
            }
        }
    }

    /// `GetShard`: opens the shard, checks the range, and starts the task that streams it.
    async fn open_range(&self, req: GetShardRequest) -> Result<GetShardMessages, Status> {
        let root = self.locate(&req.disk_id, &req.shard_key)?;
        let (disk_id, key) = (req.disk_id, req.shard_key);
        // Open and check the range first, so NOT_FOUND / OUT_OF_RANGE / DATA_LOSS in the
        // header come back as the call's status rather than mid-stream.
        let (reader, offset, len) = {
            let (disk_id, key) = (disk_id.clone(), key.clone());
            self.on_disk(&disk_id.clone(), move || {
                let reader = store::open_shard(&root, &key)
                    .inspect_err(|e| log_corruption(e, &disk_id, &key))?;
                let (offset, len) = resolve_range(req.offset, req.length, reader.len())?;
                Ok((reader, offset, len))
            })
            .await?
        };
        let (tx, rx) = mpsc::channel(GET_QUEUE_DEPTH);
        let span = tracing::debug_span!("blob-get-stream", %disk_id, shard_key = %key);
        let disks = Arc::clone(&self.disks);
        tokio::spawn(stream_range(reader, offset, len, tx, disks, disk_id, key).instrument(span));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// The shard data calls of an embedded gateway: the same code as the gRPC ones below, fed
/// with the caller's messages instead of decoded ones.
#[tonic::async_trait]
impl LocalShardData for BlobService {
    async fn put_shard(&self, messages: PutShardMessages) -> Result<PutShardResponse, Status> {
        self.put_from(messages.map(Ok), true, None).await
    }

    async fn get_shard(&self, request: GetShardRequest) -> Result<GetShardMessages, Status> {
        self.open_range(request).await
    }
}

#[tonic::async_trait]
impl Blob for BlobService {
    async fn put_shard(
        &self,
        request: Request<Streaming<PutShardRequest>>,
    ) -> Result<Response<PutShardResponse>, Status> {
        // Missing only if the service is mounted without `TrackBodyEnd`; then a stream without
        // an explicit end cannot be trusted, and such a put is refused rather than risk
        // committing a cut-off one.
        let body_end = request.extensions().get::<BodyEnd>().cloned();
        // In-process, every end looks clean: only an explicit end mark can be trusted.
        let in_process = request
            .extensions()
            .get::<cairn_proto::local::InProcess>()
            .is_some();
        self.put_from(request.into_inner(), in_process, body_end)
            .await
            .map(Response::new)
    }

    async fn get_shard(
        &self,
        request: Request<GetShardRequest>,
    ) -> Result<Response<GetShardMessages>, Status> {
        self.open_range(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_shard(
        &self,
        request: Request<DeleteShardRequest>,
    ) -> Result<Response<DeleteShardResponse>, Status> {
        let req = request.into_inner();
        let root = self.locate(&req.disk_id, &req.shard_key)?;
        let existed = self
            .on_disk(&req.disk_id, move || {
                store::delete_shard(&root, &req.shard_key)
            })
            .await?;
        Ok(Response::new(DeleteShardResponse { existed }))
    }

    async fn stat_shard(
        &self,
        request: Request<StatShardRequest>,
    ) -> Result<Response<StatShardResponse>, Status> {
        let req = request.into_inner();
        let root = self.locate(&req.disk_id, &req.shard_key)?;
        let disk_id = req.disk_id.clone();
        let reply = self
            .on_disk(&disk_id, move || {
                match store::open_shard(&root, &req.shard_key) {
                    Ok(reader) => Ok(StatShardResponse {
                        exists: true,
                        length: reader.len(),
                    }),
                    Err(BlobError::ShardNotFound(_)) => Ok(StatShardResponse {
                        exists: false,
                        length: 0,
                    }),
                    Err(e) => {
                        log_corruption(&e, &req.disk_id, &req.shard_key);
                        Err(e)
                    }
                }
            })
            .await?;
        Ok(Response::new(reply))
    }

    async fn node_info(
        &self,
        _request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        let disks = Arc::clone(&self.disks);
        let maintenance = Some(self.stats.snapshot());
        let reply = blocking(move || {
            Ok(NodeInfoResponse {
                node_id: disks.node_id().to_owned(),
                disks: disks.disk_infos(),
                maintenance,
            })
        })
        .await?;
        Ok(Response::new(reply))
    }
}

/// Streams `[offset, offset + len)` in messages of at most [`GET_MESSAGE_SIZE`], each read
/// and verified by a short job on the blocking pool. Between messages no thread is held, so a
/// client that stops reading costs a parked task and a bounded queue, not a blocking thread;
/// a closed channel (client gone) stops the read. Message boundaries are multiples of
/// [`GET_MESSAGE_SIZE`] in shard coordinates, which the 64 KiB chunks divide, so no chunk is
/// read (and hashed) twice.
async fn stream_range(
    mut reader: ShardReader,
    offset: u64,
    len: u64,
    tx: mpsc::Sender<Result<GetShardResponse, Status>>,
    disks: Arc<DiskSet>,
    disk_id: String,
    key: String,
) {
    let window = GET_MESSAGE_SIZE as u64;
    let end = offset.saturating_add(len);
    let mut pos = offset;
    while pos < end {
        let next = (pos / window + 1).saturating_mul(window).min(end);
        let job = spawn_blocking(move || {
            // At most GET_MESSAGE_SIZE bytes, so the cast cannot truncate.
            let mut buf = Vec::with_capacity((next - pos) as usize);
            let read = reader.read_range_into(pos, next - pos, &mut buf);
            (reader, read.map(|()| Bytes::from(buf)))
        });
        let (back, read) = match job.await {
            Ok(done) => done,
            Err(e) => {
                let _ = tx
                    .send(Err(Status::internal(format!("shard reader failed: {e}"))))
                    .await;
                return;
            }
        };
        reader = back;
        match read {
            Ok(data) => {
                if tx.send(Ok(GetShardResponse { data })).await.is_err() {
                    return; // The client is gone.
                }
            }
            Err(e) => {
                log_corruption(&e, &disk_id, &key);
                let e = after_error(&disks, &disk_id, e).await;
                // Ignored error: the client may be gone; there is no one left to tell.
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        }
        pos = next;
    }
}
