//! Log lines written off the hot path: a task that logs hands its formatted line to a bounded
//! queue and goes on; one thread writes the queue to stderr. When stderr is slower than the
//! lines come (a full pipe, a slow terminal), lines are dropped rather than blocking a tokio
//! worker, and the writer says how many before its next line.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines waiting for the writer thread before new ones are dropped.
const QUEUE: usize = 8192;

struct Shared {
    dropped: AtomicU64,
    queued: AtomicU64,
    written: AtomicU64,
}

/// The `MakeWriter` of the log subscriber: each event's line goes to the queue in one piece.
#[derive(Clone)]
pub(crate) struct NonBlocking {
    sender: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// Waits (a second at most), when dropped, for the queued lines to be written.
pub(crate) struct Flushed(Arc<Shared>);

impl Drop for Flushed {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.0.written.load(Ordering::Acquire) < self.0.queued.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A writer to `out` on a thread of its own (`None` if no thread can be started).
pub(crate) fn non_blocking<W: Write + Send + 'static>(out: W) -> Option<(NonBlocking, Flushed)> {
    non_blocking_with(out, QUEUE)
}

fn non_blocking_with<W: Write + Send + 'static>(
    out: W,
    queue: usize,
) -> Option<(NonBlocking, Flushed)> {
    let (sender, receiver) = sync_channel(queue);
    let shared = Arc::new(Shared {
        dropped: AtomicU64::new(0),
        queued: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(receiver, out, &thread_shared))
        .ok()?;
    Some((
        NonBlocking {
            sender,
            shared: shared.clone(),
        },
        Flushed(shared),
    ))
}

fn write_lines<W: Write>(receiver: Receiver<Vec<u8>>, out: W, shared: &Shared) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut unflushed = 0;
    loop {
        // Buffered while lines keep coming, flushed when the queue is empty.
        let line = match receiver.try_recv() {
            Ok(line) => line,
            Err(_) => {
                let _ = out.flush();
                shared.written.fetch_add(unflushed, Ordering::Release);
                unflushed = 0;
                match receiver.recv() {
                    Ok(line) => line,
                    Err(_) => return,
                }
            }
        };
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{dropped} log lines dropped: the log output was slower than the server"
            );
        }
        let _ = out.write_all(&line);
        unflushed += 1;
    }
}

/// One event's line, sent to the queue when the subscriber is done with it.
pub(crate) struct Line<'a> {
    owner: &'a NonBlocking,
    bytes: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        let shared = &self.owner.shared;
        match self.owner.sender.try_send(std::mem::take(&mut self.bytes)) {
            Ok(()) => {
                shared.queued.fetch_add(1, Ordering::Release);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NonBlocking {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            owner: self,
            bytes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::fmt::MakeWriter;

    /// An output that blocks until the test lets it go, recording what it was given.
    #[derive(Clone)]
    struct Gate {
        entered: Arc<std::sync::atomic::AtomicBool>,
        open: Arc<Mutex<bool>>,
        seen: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.entered.store(true, Ordering::Release);
            while !*self.open.lock().unwrap() {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.seen.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_never_blocks_the_logger_and_drops_are_counted() {
        let gate = Gate {
            entered: Arc::default(),
            open: Arc::new(Mutex::new(false)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let (writer, flushed) = non_blocking_with(gate.clone(), 4).unwrap();
        // The thread takes the first line and blocks writing it out.
        writeln!(writer.make_writer(), "line 0").unwrap();
        while !gate.entered.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Four more fill the queue; the rest are dropped, all without waiting.
        let started = Instant::now();
        for index in 1..100 {
            writeln!(writer.make_writer(), "line {index}").unwrap();
        }
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(writer.shared.queued.load(Ordering::Acquire), 5);
        let dropped = writer.shared.dropped.load(Ordering::Relaxed);
        assert_eq!(dropped, 95);
        *gate.open.lock().unwrap() = true;
        while writer.shared.written.load(Ordering::Acquire) < 5 {
            std::thread::sleep(Duration::from_millis(1));
        }
        writeln!(writer.make_writer(), "after").unwrap();
        drop(flushed);
        let seen = String::from_utf8(gate.seen.lock().unwrap().clone()).unwrap();
        // The count of dropped lines comes before the next line written after them.
        assert_eq!(
            seen,
            "line 0\n95 log lines dropped: the log output was slower than the server\n\
             line 1\nline 2\nline 3\nline 4\nafter\n"
        );
    }
}
