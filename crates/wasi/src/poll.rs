//! `poll_oneoff`: waits for clock deadlines and for descriptors to become
//! readable or writable.
//!
//! Regular files, directories and in-memory streams are always ready (as
//! POSIX `poll` says of regular files); host streams, pipes and sockets
//! are polled with `poll(2)`; clock subscriptions bound the wait. The call
//! returns every fd event that is ready, or, when none is, every clock
//! whose deadline has passed.

use crate::ctx::{Access, HostIo, Kind, WasiState};
use crate::errno::{Errno, WasiResult};
use crate::memory::GuestMemory;
use crate::preview1::{clock_now, stream_ready};
use crate::types::{clockid, eventtype, rights, size};
use crate::wait::Waiter;
use rustix::event::{PollFd, PollFlags};
use std::time::{Duration, Instant};

/// One event to report.
struct Event {
    userdata: u64,
    error: Errno,
    ty: u8,
    nbytes: u64,
    hangup: bool,
}

impl Event {
    fn write(&self, mem: &mut GuestMemory<'_>, at: u32) -> WasiResult<()> {
        let mut b = [0u8; size::EVENT as usize];
        b[0..8].copy_from_slice(&self.userdata.to_le_bytes());
        b[8..10].copy_from_slice(&self.error.raw().to_le_bytes());
        b[10] = self.ty;
        b[16..24].copy_from_slice(&self.nbytes.to_le_bytes());
        b[24..26].copy_from_slice(&u16::from(self.hangup).to_le_bytes());
        mem.write_bytes(at, &b)
    }

    fn error(userdata: u64, ty: u8, error: Errno) -> Event {
        Event { userdata, error, ty, nbytes: 0, hangup: false }
    }

    fn ready(userdata: u64, ty: u8, nbytes: u64) -> Event {
        Event { userdata, error: Errno::Success, ty, nbytes, hangup: false }
    }
}

/// Subscriptions for the host to wait on.
struct Waits<'a> {
    fds: Vec<PollFd<'a>>,
    /// (userdata, event type) of each entry of `fds`.
    owners: Vec<(u64, u8)>,
    /// (userdata, deadline) of each clock.
    clocks: Vec<(u64, Instant)>,
}

/// A subscription as the guest wrote it.
enum Sub {
    Clock { userdata: u64, id: u32, timeout: u64, flags: u16 },
    Fd { userdata: u64, tag: u8, fd: u32 },
}

pub(crate) fn poll_oneoff(
    cx: &mut Access<'_>,
    waiter: &Waiter,
    mem: &mut GuestMemory<'_>,
    subs: u32,
    events: u32,
    nsubs: u32,
    nevents: u32,
) -> WasiResult<()> {
    if nsubs == 0 {
        return Err(Errno::Inval);
    }
    let in_bytes = nsubs.checked_mul(size::SUBSCRIPTION).ok_or(Errno::Fault)?;
    let out_bytes = nsubs.checked_mul(size::EVENT).ok_or(Errno::Fault)?;
    mem.check(subs, in_bytes)?;
    mem.check(events, out_bytes)?;

    let start = Instant::now();
    let mut parsed = Vec::new();
    for i in 0..nsubs {
        let at = subs + i * size::SUBSCRIPTION;
        let userdata = mem.read_u64(at)?;
        let tag = mem.read_u8(at + 8)?;
        parsed.push(match tag {
            eventtype::CLOCK => Sub::Clock {
                userdata,
                id: mem.read_u32(at + 16)?,
                timeout: mem.read_u64(at + 24)?,
                flags: mem.read_u16(at + 40)?,
            },
            eventtype::FD_READ | eventtype::FD_WRITE => Sub::Fd { userdata, tag, fd: mem.read_u32(at + 16)? },
            _ => return Err(Errno::Inval),
        });
    }

    // Look the descriptors up (holding the state), then wait without it.
    let readiness: Vec<WasiResult<Readiness>> = cx.with(|st| {
        parsed
            .iter()
            .filter_map(|s| match *s {
                Sub::Fd { tag, fd, .. } => Some(fd_readiness(st, fd, tag)),
                Sub::Clock { .. } => None,
            })
            .collect()
    });
    let mut readiness = readiness.into_iter();
    let mut ready: Vec<Event> = Vec::new();
    let mut to_poll: Vec<(u64, u8, HostIo)> = Vec::new();
    let mut clocks = Vec::new();
    for s in &parsed {
        match *s {
            Sub::Clock { userdata, id, timeout, flags } => match clock_deadline(id, timeout, flags, start) {
                Ok(deadline) => clocks.push((userdata, deadline)),
                Err(e) => ready.push(Event::error(userdata, eventtype::CLOCK, e)),
            },
            Sub::Fd { userdata, tag, .. } => match readiness.next().unwrap_or(Err(Errno::Badf)) {
                Ok(Readiness::Now(n)) => ready.push(Event::ready(userdata, tag, n)),
                Ok(Readiness::Poll(h)) => to_poll.push((userdata, tag, h)),
                Err(e) => ready.push(Event::error(userdata, tag, e)),
            },
        }
    }
    let mut waits = Waits { fds: Vec::new(), owners: Vec::new(), clocks };
    for (userdata, tag, h) in &to_poll {
        match h.host_fd() {
            Some(fd) => {
                let flags = if *tag == eventtype::FD_READ { PollFlags::IN } else { PollFlags::OUT };
                waits.fds.push(PollFd::from_borrowed_fd(fd, flags));
                waits.owners.push((*userdata, *tag));
            }
            None => ready.push(Event::error(*userdata, *tag, Errno::Badf)),
        }
    }

    // Wait only when nothing is ready yet; then also report whatever
    // host descriptor is ready at that instant. Loop in case a wait
    // ends early with nothing to report.
    let earliest = waits.clocks.iter().map(|c| c.1).min();
    loop {
        let wait = if ready.is_empty() {
            earliest.map(|d| d.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO)
        };
        if !waits.fds.is_empty() {
            let writes: Vec<bool> = waits.owners.iter().map(|o| o.1 == eventtype::FD_WRITE).collect();
            waiter.poll(&mut waits.fds, &writes, wait)?;
            for (p, &(userdata, ty)) in waits.fds.iter().zip(&waits.owners) {
                let r = p.revents();
                if r.is_empty() {
                    continue;
                }
                let hangup = r.contains(PollFlags::HUP);
                let error = if r.contains(PollFlags::NVAL) { Errno::Badf } else { Errno::Success };
                // How much can be read, when the host says; otherwise at
                // least one byte (or end-of-file) is there.
                let nbytes = if ty == eventtype::FD_READ && r.contains(PollFlags::IN) {
                    rustix::io::ioctl_fionread(p).unwrap_or(1)
                } else {
                    u64::from(r.intersects(PollFlags::IN | PollFlags::OUT))
                };
                ready.push(Event { userdata, error, ty, nbytes, hangup });
            }
        } else if let Some(w) = wait {
            waiter.sleep(w)?;
        }
        if ready.is_empty() {
            let now = Instant::now();
            for &(userdata, deadline) in &waits.clocks {
                if deadline <= now {
                    ready.push(Event::ready(userdata, eventtype::CLOCK, 0));
                }
            }
        }
        if !ready.is_empty() || waits.fds.is_empty() && waits.clocks.is_empty() {
            break;
        }
    }

    for (i, e) in ready.iter().enumerate() {
        e.write(mem, events + i as u32 * size::EVENT)?;
    }
    mem.write_u32(nevents, ready.len() as u32)
}

/// When a clock subscription fires, as an instant of the monotonic clock.
fn clock_deadline(id: u32, timeout: u64, flags: u16, start: Instant) -> WasiResult<Instant> {
    const ABSTIME: u16 = 1;
    if flags & !ABSTIME != 0 {
        return Err(Errno::Inval);
    }
    let relative = match id {
        clockid::REALTIME | clockid::MONOTONIC => {
            if flags & ABSTIME != 0 {
                timeout.saturating_sub(clock_now(id)?)
            } else {
                timeout
            }
        }
        // CPU-time clocks advance no faster than real time: a relative
        // timeout on them is at least that long on the monotonic clock.
        clockid::PROCESS_CPUTIME_ID | clockid::THREAD_CPUTIME_ID if flags & ABSTIME == 0 => timeout,
        clockid::PROCESS_CPUTIME_ID | clockid::THREAD_CPUTIME_ID => return Err(Errno::NotSup),
        _ => return Err(Errno::Inval),
    };
    // Far-future deadlines: a year is as good as forever.
    let relative = Duration::from_nanos(relative.min(365 * 24 * 3600 * 1_000_000_000));
    Ok(start + relative)
}

enum Readiness {
    Now(u64),
    Poll(HostIo),
}

fn fd_readiness(st: &WasiState, fd: u32, ty: u8) -> WasiResult<Readiness> {
    let d = st.get(fd)?;
    d.check(rights::POLL_FD_READWRITE)?;
    match &d.kind {
        Kind::Dir(_) => Err(Errno::Badf),
        Kind::File(f) if f.filetype == crate::types::filetype::REGULAR_FILE => {
            if ty == eventtype::FD_READ {
                let len = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                let pos = rustix::fs::seek(&*f.file, rustix::fs::SeekFrom::Current(0)).unwrap_or(len);
                Ok(Readiness::Now(len.saturating_sub(pos)))
            } else {
                Ok(Readiness::Now(0))
            }
        }
        Kind::Stream(s) => {
            if ty == eventtype::FD_READ && !s.is_input() || ty == eventtype::FD_WRITE && s.is_input() {
                return Err(Errno::Badf);
            }
            match stream_ready(s) {
                Some(n) => Ok(Readiness::Now(n)),
                None if s.host_fd().is_some() => Ok(Readiness::Poll(HostIo::Stream(s.clone()))),
                None => Err(Errno::Badf),
            }
        }
        _ => d.host_io().filter(|h| h.host_fd().is_some()).map(Readiness::Poll).ok_or(Errno::Badf),
    }
}
