//! Where `serve` writes its log: lines are appended to a buffer in memory and a thread of its
//! own writes them to stderr every few milliseconds, so that a request never waits for a write
//! system call (one log line per request, SPEC §4's `X-Request-Id`). The buffer is bounded: if
//! stderr cannot keep up, lines beyond it are counted and the count is written instead.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a line may wait in memory before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Bytes held at most; more waits for the flusher's next write.
const MAX_BUFFERED: usize = 8 << 20;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

/// The sink's shared state; cloned into every writer `tracing` makes.
#[derive(Clone, Default)]
pub struct LogSink {
    inner: Arc<(Mutex<Buffer>, Condvar)>,
}

/// One event's writer (`tracing_subscriber::fmt` writes each formatted line at once).
pub struct LineWriter(LogSink);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut b = self
            .0
            .inner
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.closed {
            drop(b);
            return std::io::stderr().lock().write(buf);
        }
        if b.bytes.len() + buf.len() > MAX_BUFFERED {
            b.dropped += 1;
        } else {
            b.bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogSink {
    /// Starts the thread that writes the buffer to stderr.
    pub fn start() -> LogSink {
        let sink = LogSink::default();
        let flusher = sink.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || flusher.run());
        if spawned.is_err() {
            // No thread: write synchronously from now on.
            sink.lock().closed = true;
        }
        sink
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn writer(&self) -> LineWriter {
        LineWriter(self.clone())
    }

    fn run(&self) {
        let mut pending = Vec::new();
        loop {
            let closed = {
                let (lock, wake) = &*self.inner;
                let b = lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (mut b, _) = wake
                    .wait_timeout(b, FLUSH_EVERY)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                std::mem::swap(&mut pending, &mut b.bytes);
                if b.dropped > 0 {
                    let note = format!("log: {} lines dropped (stderr too slow)\n", b.dropped);
                    pending.extend_from_slice(note.as_bytes());
                    b.dropped = 0;
                }
                b.closed
            };
            if !pending.is_empty() {
                let _ = std::io::stderr().lock().write_all(&pending);
                pending.clear();
            }
            if closed {
                return;
            }
        }
    }

    /// Writes what is buffered now (at shutdown). Later lines go straight to stderr.
    pub fn flush_now(&self) {
        let bytes = {
            let mut b = self.lock();
            b.closed = true;
            std::mem::take(&mut b.bytes)
        };
        self.inner.1.notify_all();
        let _ = std::io::stderr().lock().write_all(&bytes);
    }
}
