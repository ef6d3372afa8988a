//! `memory.atomic.wait` / `memory.atomic.notify`: threads park on a
//! native address of a shared memory and are woken in FIFO order.

use super::send_sync_ptr::SendSyncPtr;
use std::collections::{HashMap, VecDeque};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Waiter {
    woken: Mutex<bool>,
    cv: Condvar,
}

/// The threads parked at each address, in arrival order (the address is a
/// key only: never dereferenced here).
type Queues = HashMap<SendSyncPtr<u8>, VecDeque<Arc<Waiter>>>;

/// Parked threads by address.
static QUEUES: Mutex<Option<Queues>> = Mutex::new(None);

/// Result codes of `memory.atomic.wait`.
const OK: u32 = 0;
const NOT_EQUAL: u32 = 1;
const TIMED_OUT: u32 = 2;

/// How often a parked thread asks whether it should stop waiting (an
/// epoch deadline that passed): the bound on how late `--timeout` and
/// epoch interruption reach a thread blocked in `memory.atomic.wait`.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken by a notify (`memory.atomic.wait` result 0).
    Woken,
    /// The value differed (1).
    NotEqual,
    /// The timeout passed (2).
    TimedOut,
    /// `interrupted` returned true; the thread left the queue.
    Interrupted,
}

impl WaitResult {
    /// The `memory.atomic.wait` result code (not for `Interrupted`).
    pub fn code(self) -> u32 {
        match self {
            WaitResult::Woken => OK,
            WaitResult::NotEqual => NOT_EQUAL,
            WaitResult::TimedOut | WaitResult::Interrupted => TIMED_OUT,
        }
    }
}

/// Waits at `addr` while it holds `expected` (a 4- or 8-byte value), until
/// `deadline` (none: forever), polling `interrupted` every few
/// milliseconds.
///
/// `load` reads the current value; it is called with the queue lock held,
/// so a `notify` cannot slip between the check and the parking.
pub fn wait(
    addr: NonNull<u8>,
    load: impl Fn() -> u64,
    expected: u64,
    deadline: Option<Instant>,
    mut interrupted: impl FnMut() -> bool,
) -> WaitResult {
    let addr = SendSyncPtr::new(addr);
    let waiter = Arc::new(Waiter { woken: Mutex::new(false), cv: Condvar::new() });
    {
        let mut q = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
        if load() != expected {
            return WaitResult::NotEqual;
        }
        q.get_or_insert_with(HashMap::new).entry(addr).or_default().push_back(waiter.clone());
    }
    let mut woken = waiter.woken.lock().unwrap_or_else(|e| e.into_inner());
    let ended = loop {
        if *woken {
            return WaitResult::Woken;
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if now >= d => break WaitResult::TimedOut,
            Some(d) => (d - now).min(POLL_INTERVAL),
            None => POLL_INTERVAL,
        };
        woken = waiter.cv.wait_timeout(woken, slice).unwrap_or_else(|e| e.into_inner()).0;
        if !*woken && interrupted() {
            break WaitResult::Interrupted;
        }
    };
    drop(woken);
    // Leave the queue, unless a notify got to us meanwhile.
    let mut q = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    if *waiter.woken.lock().unwrap_or_else(|e| e.into_inner()) {
        return WaitResult::Woken;
    }
    if let Some(list) = q.as_mut().and_then(|m| m.get_mut(&addr)) {
        list.retain(|w| !Arc::ptr_eq(w, &waiter));
        if list.is_empty() {
            q.as_mut().map(|m| m.remove(&addr));
        }
    }
    ended
}

/// Wakes up to `count` threads waiting at `addr`; returns how many.
pub fn notify(addr: NonNull<u8>, count: u32) -> u32 {
    let addr = SendSyncPtr::new(addr);
    let mut q = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let Some(list) = q.as_mut().and_then(|m| m.get_mut(&addr)) else { return 0 };
    let mut n = 0;
    while n < count {
        let Some(w) = list.pop_front() else { break };
        *w.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        w.cv.notify_one();
        n += 1;
    }
    if list.is_empty() {
        q.as_mut().map(|m| m.remove(&addr));
    }
    n
}

/// Reads a 4-byte value atomically.
///
/// # Safety
///
/// `addr` must be a valid, 4-byte-aligned address inside a live memory.
pub unsafe fn load32(addr: NonNull<u8>) -> u64 {
    // SAFETY: per the contract.
    u64::from(unsafe { addr.cast::<AtomicU32>().as_ref() }.load(Ordering::SeqCst))
}

/// Reads an 8-byte value atomically.
///
/// # Safety
///
/// `addr` must be a valid, 8-byte-aligned address inside a live memory.
pub unsafe fn load64(addr: NonNull<u8>) -> u64 {
    // SAFETY: per the contract.
    unsafe { addr.cast::<AtomicU64>().as_ref() }.load(Ordering::SeqCst)
}
