//! How a WASI call waits for a host descriptor or a clock: by blocking the
//! thread ([`add_to_linker`](crate::add_to_linker)), or, in async calls
//! ([`add_to_linker_async`](crate::add_to_linker_async)), by waiting on
//! the tokio executor the call runs on, so that the thread runs other
//! tasks meanwhile and a guest sleeping for a second costs no thread.
//!
//! The async flavour waits for readiness with tokio's reactor (`AsyncFd`)
//! and timer, then does the same system call the blocking flavour does,
//! which then returns at once. Descriptors the reactor cannot watch
//! (regular files, which are always ready; one registered already by
//! another guest on the same runtime) fall back to a short timer and
//! another look. With no tokio runtime around the call, or outside an
//! async call, it blocks like the other flavour.

use crate::errno::WasiResult;
use rustix::event::{PollFd, PollFlags};
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How the calls of a linker's WASI functions wait.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// Block the thread.
    Thread,
    /// Wait on the executor running the async call, through this waiter;
    /// the flag records that the call was cancelled while it waited (the
    /// WASI call then fails with `canceled`, and the host function traps,
    /// so the cancelled guest stops).
    Executor(kiln::AsyncWaiter, std::cell::Cell<bool>),
}

/// How long a descriptor the reactor cannot watch is left before it is
/// looked at again.
const RETRY: Duration = Duration::from_millis(1);

impl Waiter {
    /// The executor waiter, when it can wait here (in an async call, on a
    /// tokio runtime); `None` to block.
    fn executor(&self) -> Option<&kiln::AsyncWaiter> {
        match self {
            Waiter::Executor(w, _) if w.can_wait() && tokio::runtime::Handle::try_current().is_ok() => Some(w),
            _ => None,
        }
    }

    /// Waits for `fut` on the executor (see [`Waiter::executor`]).
    fn block_on<F: Future>(&self, w: &kiln::AsyncWaiter, fut: F) -> WasiResult<F::Output> {
        w.block_on(fut).map_err(|_| {
            if let Waiter::Executor(_, cancelled) = self {
                cancelled.set(true);
            }
            crate::errno::Errno::Canceled
        })
    }

    /// Whether the call was cancelled while it waited.
    pub(crate) fn cancelled(&self) -> bool {
        matches!(self, Waiter::Executor(_, c) if c.get())
    }

    /// `poll(2)` on `fds` (`writes[i]`: whether `fds[i]` waits for
    /// writing) for up to `timeout` (`None`: no limit), filling in what is
    /// ready.
    pub(crate) fn poll(&self, fds: &mut [PollFd<'_>], writes: &[bool], timeout: Option<Duration>) -> WasiResult<()> {
        let Some(w) = self.executor() else { return poll_host(fds, timeout) };
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            poll_host(fds, Some(Duration::ZERO))?;
            if fds.iter().any(|f| !f.revents().is_empty()) {
                return Ok(());
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(());
            }
            let watched: Vec<(RawFd, bool)> =
                fds.iter().zip(writes).map(|(f, &w)| (f.as_fd().as_raw_fd(), w)).collect();
            self.block_on(w, any_ready(watched, left))?;
        }
    }

    /// Sleeps for `d`.
    pub(crate) fn sleep(&self, d: Duration) -> WasiResult<()> {
        match self.executor() {
            Some(w) => self.block_on(w, tokio::time::sleep(d)),
            None => {
                std::thread::sleep(d);
                Ok(())
            }
        }
    }

    /// Waits until `fd` is readable (or writable, with `write`), so that a
    /// blocking read (write) on it returns at once. Returns at once when
    /// blocking is the way to wait.
    pub(crate) fn ready(&self, fd: BorrowedFd<'_>, write: bool) -> WasiResult<()> {
        let Some(w) = self.executor() else { return Ok(()) };
        let flags = if write { PollFlags::OUT } else { PollFlags::IN };
        loop {
            let mut one = [PollFd::from_borrowed_fd(fd, flags)];
            poll_host(&mut one, Some(Duration::ZERO))?;
            if !one[0].revents().is_empty() {
                return Ok(());
            }
            self.block_on(w, any_ready(vec![(fd.as_raw_fd(), write)], None))?;
        }
    }
}

/// A raw descriptor for tokio's reactor to watch; it is borrowed, and
/// deregistered (the `AsyncFd` dropped) before the wait that made it ends.
struct Watched(RawFd);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Resolves when one of `fds` (descriptor, for writing) may be ready, or
/// `timeout` passes. Descriptors the reactor refuses are looked at again
/// after [`RETRY`].
///
/// Every descriptor is one the calling WASI function holds open (through
/// the guest's descriptor table entry, an `Arc`, or the process's stdio)
/// for the whole wait, and its `AsyncFd` is dropped, deregistering it,
/// before this returns: the conditions tokio states for registering a raw
/// descriptor. (`AsyncFd::with_interest` is deprecated in favour of an
/// `unsafe` function with those conditions; Kiln keeps `unsafe` code in
/// the runtime's `vm` module only, so it uses the safe one and upholds
/// them here.)
#[allow(deprecated, reason = "see above: the conditions of the unsafe replacement hold")]
async fn any_ready(fds: Vec<(RawFd, bool)>, timeout: Option<Duration>) {
    let mut watches = Vec::new();
    let mut retry = false;
    for (fd, write) in fds {
        let interest = if write { tokio::io::Interest::WRITABLE } else { tokio::io::Interest::READABLE };
        match tokio::io::unix::AsyncFd::with_interest(Watched(fd), interest) {
            Ok(a) => watches.push((a, write)),
            Err(_) => retry = true,
        }
    }
    let timeout = match (timeout, retry) {
        (Some(t), true) => Some(t.min(RETRY)),
        (None, true) => Some(RETRY),
        (t, false) => t,
    };
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = watches
        .iter()
        .map(|(a, write)| -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            if *write {
                Box::pin(async move {
                    let _ = a.writable().await;
                })
            } else {
                Box::pin(async move {
                    let _ = a.readable().await;
                })
            }
        })
        .collect();
    if let Some(t) = timeout {
        waits.push(Box::pin(tokio::time::sleep(t)));
    }
    if waits.is_empty() {
        return;
    }
    FirstOf(waits).await;
}

/// Resolves when the first of its futures does.
struct FirstOf<'a>(Vec<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>);

impl Future for FirstOf<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for f in &mut self.0 {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

/// `poll(2)` on `fds`, retried when interrupted, for up to `wait`.
pub(crate) fn poll_host(fds: &mut [PollFd<'_>], wait: Option<Duration>) -> WasiResult<()> {
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as _ }
        });
        match rustix::event::poll(fds, timeout.as_ref()) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
