//! Connections whose peer stops reading. Whatever a response or a WebSocket has left to send
//! stays in memory while the peer does not read it, and neither hyper nor the kernel ever gives
//! up on such a peer. Here a write that makes no progress for [`WRITE_STALL_TIMEOUT`] fails: the
//! connection ends and what it held is freed. A peer that reads slowly but reads is not
//! affected: the clock starts again with every byte the socket takes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// How long a write may wait for the peer to read before the connection is dropped.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A TCP listener whose connections are [`StallIo`]s.
pub struct StallListener {
    inner: TcpListener,
    limit: Duration,
}

impl StallListener {
    pub fn new(inner: TcpListener, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl Listener for StallListener {
    type Io = StallIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop for a TCP listener (it logs and retries failed accepts).
        let (stream, addr) = <TcpListener as Listener>::accept(&mut self.inner).await;
        (StallIo::new(stream, self.limit), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A stream whose writes fail once one has waited `limit` without progress.
pub struct StallIo<S> {
    inner: S,
    limit: Duration,
    /// Started by the first write that had to wait; cleared by any write that went through.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallIo<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Passes a write's outcome on, or fails it when it has been waiting for too long.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stalled = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer has not read for too long",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_peer_never_reads_fails_after_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut io = StallIo::new(ours, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let error = io
            .write_all(&[0u8; 64 * 1024])
            .await
            .expect_err("the peer never reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_peer_that_reads_slowly_keeps_its_connection() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut read = 0;
            let mut buf = [0u8; 1024];
            // Pauses of 60 ms, each shorter than the limit; together far longer.
            while read < 8 * 1024 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                read += theirs.read(&mut buf).await.expect("read");
            }
            read
        });
        let mut io = StallIo::new(ours, Duration::from_millis(250));
        io.write_all(&[7u8; 8 * 1024]).await.expect("slow reader");
        assert_eq!(reader.await.expect("reader"), 8 * 1024);
    }
}
