//! The per-call log of a process sandbox: everything its processes write to stdout and
//! stderr, capped, and taken at the end of each call.
//!
//! A task reads the pipe as it fills (so that a function that logs more than a pipe holds
//! never blocks on it); the end of a call reads what is left itself, under the same lock, and
//! takes the buffer: no round trip to the task on a call's path.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::net::unix::pipe;

/// What has been read since the last take.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    truncated: bool,
    /// The pipe has ended (every writer closed it) or broke.
    eof: bool,
}

struct Shared {
    rx: pipe::Receiver,
    max: usize,
    buffer: Mutex<Buffer>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads what the pipe holds now (never waits), keeping at most `max` bytes.
    fn drain(&self, b: &mut Buffer) {
        let mut chunk = [0u8; 16 * 1024];
        while !b.eof {
            match self.rx.try_read(&mut chunk) {
                Ok(0) => b.eof = true,
                Ok(n) => {
                    let room = self.max.saturating_sub(b.bytes.len());
                    if n > room {
                        b.truncated = true;
                    }
                    b.bytes.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => b.eof = true,
            }
        }
    }
}

/// The per-call log of one sandbox.
pub(super) struct Logs {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Logs {
    pub(super) fn collect(fd: OwnedFd, max: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            rx: pipe::Receiver::from_owned_fd(fd)?,
            max,
            buffer: Mutex::new(Buffer::default()),
        });
        let reader = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                if reader.rx.readable().await.is_err() {
                    reader.lock().eof = true;
                    return;
                }
                let mut b = reader.lock();
                reader.drain(&mut b);
                if b.eof {
                    return;
                }
            }
        });
        Ok(Self { shared, task })
    }

    /// What was written since the last take, and whether some was dropped at the limit.
    pub(super) fn take(&self) -> (Bytes, bool) {
        let mut b = self.shared.lock();
        self.shared.drain(&mut b);
        let truncated = std::mem::take(&mut b.truncated);
        (Bytes::from(std::mem::take(&mut b.bytes)), truncated)
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        self.task.abort();
    }
}
