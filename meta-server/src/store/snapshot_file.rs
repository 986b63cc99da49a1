//! The snapshot data openraft streams: a file, read and written either on tokio's blocking
//! pool (a server) or on the calling task (the deterministic simulation).
//!
//! Why two ways: a server must not stall a runtime thread on disk I/O, so its snapshot files
//! are [`tokio::fs::File`]s, whose every read and write runs on the blocking pool. But the
//! pool's threads are real: when one of them finishes decides where in the interleaving the
//! waiting task resumes, and that would make a simulated run depend on the machine. The
//! simulation therefore opens its stores with [`super::OpenOptions::inline_io`], and snapshot
//! I/O then happens at once, on the task that asked for it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// A snapshot file (openraft's `SnapshotData`).
#[derive(Debug)]
pub struct SnapshotFile(Inner);

#[derive(Debug)]
enum Inner {
    /// I/O on tokio's blocking pool.
    Pooled(tokio::fs::File),
    /// I/O on the calling task. `seek` holds the outcome of a seek started and not yet
    /// collected (tokio's seek is a start and a completion).
    Inline {
        file: std::fs::File,
        seek: Option<std::io::Result<u64>>,
    },
}

impl SnapshotFile {
    /// Wraps `file`, doing its I/O inline when `inline` is set (see the module comment).
    pub(crate) fn new(file: std::fs::File, inline: bool) -> Self {
        Self(if inline {
            Inner::Inline { file, seek: None }
        } else {
            Inner::Pooled(tokio::fs::File::from_std(file))
        })
    }

    /// The underlying file, at whatever position the last operation left it.
    pub(crate) async fn into_std(self) -> std::fs::File {
        match self.0 {
            Inner::Pooled(file) => file.into_std().await,
            Inner::Inline { file, .. } => file,
        }
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Pooled(file) => Pin::new(file).poll_read(cx, buf),
            Inner::Inline { file, .. } => {
                let n = file.read(buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Pooled(file) => Pin::new(file).poll_write(cx, buf),
            Inner::Inline { file, .. } => Poll::Ready(file.write(buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Pooled(file) => Pin::new(file).poll_flush(cx),
            Inner::Inline { file, .. } => Poll::Ready(file.flush()),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Pooled(file) => Pin::new(file).poll_shutdown(cx),
            Inner::Inline { file, .. } => Poll::Ready(file.flush()),
        }
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match &mut self.get_mut().0 {
            Inner::Pooled(file) => Pin::new(file).start_seek(position),
            Inner::Inline { file, seek } => {
                *seek = Some(file.seek(position));
                Ok(())
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match &mut self.get_mut().0 {
            Inner::Pooled(file) => Pin::new(file).poll_complete(cx),
            // No seek pending: tokio then asks for the current position.
            Inner::Inline { file, seek } => {
                Poll::Ready(seek.take().unwrap_or_else(|| file.stream_position()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    /// Both ways behave as one file: write, seek back, read, and the position after.
    #[tokio::test]
    async fn inline_and_pooled_files_read_write_and_seek_alike() {
        for inline in [false, true] {
            let mut file = SnapshotFile::new(tempfile::tempfile().expect("tempfile"), inline);
            file.write_all(b"hello snapshot").await.expect("write");
            file.flush().await.expect("flush");
            assert_eq!(file.seek(SeekFrom::End(0)).await.expect("end"), 14);
            assert_eq!(file.seek(SeekFrom::Start(6)).await.expect("seek"), 6);
            let mut read = String::new();
            file.read_to_string(&mut read).await.expect("read");
            assert_eq!(read, "snapshot", "inline={inline}");
            assert_eq!(file.stream_position().await.expect("pos"), 14);
            let mut std_file = file.into_std().await;
            std_file.seek(SeekFrom::Start(0)).expect("std seek");
            let mut all = String::new();
            std_file.read_to_string(&mut all).expect("std read");
            assert_eq!(all, "hello snapshot");
        }
    }
}
