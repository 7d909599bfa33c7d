//! Fewer, larger socket writes for connections that carry many small frames at once.
//!
//! hyper's HTTP/2 layer writes every DATA frame above a few hundred bytes in its own `writev`,
//! and flushes as soon as it has nothing more queued. When one put call wakes a consumer's push
//! sessions on several shards, each session queues its event on the shared connection in turn,
//! and each event would cost a write (on loopback, also the receiver's TCP processing and a
//! wake-up of its thread). [`CoalescingIo`] accepts what the connection writes into a buffer
//! and sends it when the connection flushes, one scheduler turn later: the sessions woken
//! together have queued their frames by then, and they leave in one write. A flush costs one
//! extra turn of the connection's task; the buffer is bounded ([`SEND_AT`]) so a slow peer
//! still pushes back, and bulk writes ([`DIRECT_AT`]) bypass it uncopied.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered before a write sends them without waiting for a flush.
const SEND_AT: usize = 256 * 1024;
/// A write this large (a full HTTP/2 DATA frame of 16 KiB, as bulk responses are cut into) goes
/// to the socket as it is, after what is buffered: there is nothing to gain from gathering it,
/// and copying it would cost more than the write.
const DIRECT_AT: usize = 16 * 1024;
/// A buffer that grew beyond this (a burst) is released once sent.
const KEEP_CAPACITY: usize = 64 * 1024;

/// A connection's socket (or TLS stream) whose writes are gathered until a flush.
#[derive(Debug)]
pub(crate) struct CoalescingIo<IO> {
    inner: IO,
    buffer: Vec<u8>,
    /// How much of `buffer` the socket has taken.
    sent: usize,
    /// The connection gave the other tasks their turn since it asked to flush.
    yielded: bool,
}

impl<IO> CoalescingIo<IO> {
    pub(crate) fn new(inner: IO) -> Self {
        CoalescingIo {
            inner,
            buffer: Vec::new(),
            sent: 0,
            yielded: false,
        }
    }
}

impl<IO: AsyncWrite + Unpin> CoalescingIo<IO> {
    /// Writes out the buffer.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.buffer.len() {
            let written =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buffer[self.sent..]))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        self.sent = 0;
        if self.buffer.capacity() > KEEP_CAPACITY {
            self.buffer = Vec::new();
        } else {
            self.buffer.clear();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.buffer.len() >= SEND_AT {
            ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for CoalescingIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CoalescingIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.len() >= DIRECT_AT {
            ready!(self.poll_send(cx))?;
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        ready!(self.poll_room(cx))?;
        self.buffer.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if bufs.iter().map(|buf| buf.len()).sum::<usize>() >= DIRECT_AT {
            ready!(self.poll_send(cx))?;
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        ready!(self.poll_room(cx))?;
        let mut taken = 0;
        for buf in bufs {
            self.buffer.extend_from_slice(buf);
            taken += buf.len();
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.sent < self.buffer.len() {
            if !self.yielded {
                // One turn for the tasks woken with this one to queue their frames too.
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.poll_send(cx))?;
            self.yielded = false;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A socket that records each write it is given and takes at most `limit` bytes a call.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: Option<usize>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let taken = self.limit.map_or(buf.len(), |limit| limit.min(buf.len()));
            self.writes.push(buf[..taken].to_vec());
            Poll::Ready(Ok(taken))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let joined: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            self.poll_write(cx, &joined)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write(io: &mut CoalescingIo<Recorder>, cx: &mut Context<'_>, bytes: &[u8]) {
        let slices = [IoSlice::new(&bytes[..1]), IoSlice::new(&bytes[1..])];
        let taken = Pin::new(&mut *io).poll_write_vectored(cx, &slices);
        assert!(matches!(taken, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    #[test]
    fn frames_written_before_a_flush_leave_in_one_write_a_turn_later() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut io = CoalescingIo::new(Recorder::default());
        write(&mut io, &mut cx, b"frame-1");
        // The flush waits one turn; frames queued meanwhile join the same write.
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
        assert!(io.inner.writes.is_empty());
        write(&mut io, &mut cx, b"frame-2");
        write(&mut io, &mut cx, b"frame-3");
        assert!(matches!(
            Pin::new(&mut io).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.inner.writes, vec![b"frame-1frame-2frame-3".to_vec()]);
        // Nothing buffered: a flush passes straight through.
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert_eq!(io.inner.writes.len(), 1);
    }

    #[test]
    fn partial_socket_writes_send_everything_in_order_and_shutdown_sends_the_rest() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut io = CoalescingIo::new(Recorder {
            limit: Some(4),
            ..Recorder::default()
        });
        write(&mut io, &mut cx, b"0123456789");
        assert!(Pin::new(&mut io).poll_shutdown(&mut cx).is_ready());
        assert_eq!(io.inner.writes.concat(), b"0123456789".to_vec());
        assert_eq!(io.inner.writes.len(), 3);
    }

    #[test]
    fn a_full_frame_goes_straight_to_the_socket_after_what_is_buffered() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut io = CoalescingIo::new(Recorder::default());
        write(&mut io, &mut cx, b"small");
        let frame = vec![1u8; DIRECT_AT];
        write(&mut io, &mut cx, &frame);
        assert_eq!(
            io.inner.writes.len(),
            2,
            "the buffer, then the frame as it was given"
        );
        assert_eq!(io.inner.writes[0], b"small".to_vec());
        assert_eq!(io.inner.writes[1].len(), DIRECT_AT);
        assert!(io.buffer.is_empty());
    }

    #[test]
    fn a_full_buffer_is_sent_before_more_is_taken() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut io = CoalescingIo::new(Recorder::default());
        let chunk = vec![7u8; DIRECT_AT - 1];
        while io.buffer.len() < SEND_AT {
            write(&mut io, &mut cx, &chunk);
        }
        let buffered = io.buffer.len();
        assert!(io.inner.writes.is_empty());
        write(&mut io, &mut cx, b"after");
        assert_eq!(io.inner.writes.len(), 1, "the full buffer went out first");
        assert_eq!(io.inner.writes[0].len(), buffered);
        assert_eq!(io.buffer, b"after".to_vec());
    }
}
