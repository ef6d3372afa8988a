//! The bodies of the `wasi_snapshot_preview1` calls, as methods on
//! [`WasiState`] that take the guest memory and raw arguments and return an
//! errno. `linker.rs` binds them to the import names.
//!
//! The calls that may wait indefinitely (`fd_read`, `fd_write`,
//! `sock_accept`, `sock_recv`, `sock_send`, and `poll_oneoff` in `poll.rs`)
//! are functions of an [`Access`] instead: they hold the state only to
//! look the descriptor up and clone its [`HostIo`], and wait without it,
//! so that with a context shared by threads one blocked thread does not
//! stop the others' WASI calls.
//!
//! Checks run in the same order everywhere: the descriptor exists
//! (`badf`), it is of a kind the call applies to (`badf` for file calls on
//! directories, `notdir` for path calls on files, `spipe` for seeks on
//! streams, `notsock` for socket calls on non-sockets), it holds the
//! rights (`notcapable`), then the host does the work and its error, if
//! any, is mapped by [`Errno::from`].

use crate::ctx::{Access, Descriptor, DirFd, DirPerms, FileFd, HostIo, Kind, WasiState};
use crate::errno::{Errno, WasiResult};
use crate::memory::{GuestMemory, IoVec};
use crate::stdio::Stream;
use crate::types::{clockid, fdflags, filetype, fstflags, lookupflags, oflags, rights, size};
use crate::wait::Waiter;
use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OpenOptionsSyncExt, SystemTimeSpec,
};
use cap_std::fs::{Dir, MetadataExt, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One entry of a directory listing (`dirent` plus its name).
#[derive(Clone, Debug)]
pub(crate) struct Dirent {
    pub name: Vec<u8>,
    pub ino: u64,
    pub filetype: u8,
}

/// A `filestat`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Filestat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: u8,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

impl Filestat {
    fn write(&self, mem: &mut GuestMemory<'_>, at: u32) -> WasiResult<()> {
        let mut b = [0u8; size::FILESTAT as usize];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16] = self.filetype;
        b[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.atim.to_le_bytes());
        b[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        b[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        mem.write_bytes(at, &b)
    }
}

/// Nanoseconds since the epoch; times before it read as 0.
fn nanos(sec: i64, nsec: i64) -> u64 {
    if sec < 0 {
        return 0;
    }
    (sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec.max(0) as u64)
}

fn filetype_of_stat(st: &rustix::fs::Stat) -> u8 {
    use rustix::fs::FileType as F;
    match F::from_raw_mode(st.st_mode) {
        F::RegularFile => filetype::REGULAR_FILE,
        F::Directory => filetype::DIRECTORY,
        F::Symlink => filetype::SYMBOLIC_LINK,
        F::CharacterDevice => filetype::CHARACTER_DEVICE,
        F::BlockDevice => filetype::BLOCK_DEVICE,
        F::Socket => filetype::SOCKET_STREAM,
        _ => filetype::UNKNOWN,
    }
}

fn filetype_of(ft: cap_std::fs::FileType) -> u8 {
    use cap_std::fs::FileTypeExt;
    if ft.is_file() {
        filetype::REGULAR_FILE
    } else if ft.is_dir() {
        filetype::DIRECTORY
    } else if ft.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else if ft.is_char_device() {
        filetype::CHARACTER_DEVICE
    } else if ft.is_block_device() {
        filetype::BLOCK_DEVICE
    } else if ft.is_socket() {
        filetype::SOCKET_STREAM
    } else {
        filetype::UNKNOWN
    }
}

fn stat_fd(fd: BorrowedFd<'_>) -> WasiResult<Filestat> {
    let st = rustix::fs::fstat(fd)?;
    Ok(Filestat {
        dev: st.st_dev,
        ino: st.st_ino,
        filetype: filetype_of_stat(&st),
        nlink: st.st_nlink,
        size: st.st_size as u64,
        atim: nanos(st.st_atime, st.st_atime_nsec as i64),
        mtim: nanos(st.st_mtime, st.st_mtime_nsec as i64),
        ctim: nanos(st.st_ctime, st.st_ctime_nsec as i64),
    })
}

fn stat_meta(m: &cap_std::fs::Metadata) -> Filestat {
    Filestat {
        dev: m.dev(),
        ino: m.ino(),
        filetype: filetype_of(m.file_type()),
        nlink: m.nlink(),
        size: m.len(),
        atim: nanos(m.atime(), m.atime_nsec()),
        mtim: nanos(m.mtime(), m.mtime_nsec()),
        ctim: nanos(m.ctime(), m.ctime_nsec()),
    }
}

/// The host descriptor behind a WASI descriptor, if any.
pub(crate) fn host_fd(kind: &Kind) -> Option<BorrowedFd<'_>> {
    match kind {
        Kind::File(f) => Some(f.file.as_fd()),
        Kind::Dir(d) => Some(d.dir.as_fd()),
        Kind::Stream(s) => s.host_fd(),
        Kind::Listener(l) => Some(l.as_fd()),
        Kind::Socket(s) => Some(s.as_fd()),
    }
}

/// A guest timestamp pair for `*_set_times`, validated.
fn time_specs(atim: u64, mtim: u64, flags: u32) -> WasiResult<(Option<SystemTimeSpec>, Option<SystemTimeSpec>)> {
    let known = u32::from(fstflags::ATIM | fstflags::ATIM_NOW | fstflags::MTIM | fstflags::MTIM_NOW);
    if flags & !known != 0 {
        return Err(Errno::Inval);
    }
    let flags = flags as u16;
    let one = |set: u16, now: u16, value: u64| -> WasiResult<Option<SystemTimeSpec>> {
        match (flags & set != 0, flags & now != 0) {
            (true, true) => Err(Errno::Inval),
            (false, true) => Ok(Some(SystemTimeSpec::SymbolicNow)),
            (true, false) => {
                let t = SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(value)).ok_or(Errno::Overflow)?;
                Ok(Some(SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(t))))
            }
            (false, false) => Ok(None),
        }
    };
    Ok((one(fstflags::ATIM, fstflags::ATIM_NOW, atim)?, one(fstflags::MTIM, fstflags::MTIM_NOW, mtim)?))
}

fn rustix_timestamp(spec: Option<SystemTimeSpec>) -> rustix::fs::Timespec {
    match spec {
        None => rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
        Some(SystemTimeSpec::SymbolicNow) => rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW },
        Some(SystemTimeSpec::Absolute(t)) => {
            let d = t.into_std().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            rustix::fs::Timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as _ }
        }
    }
}

fn clock(id: u32) -> WasiResult<rustix::time::ClockId> {
    use rustix::time::ClockId;
    Ok(match id {
        clockid::REALTIME => ClockId::Realtime,
        clockid::MONOTONIC => ClockId::Monotonic,
        clockid::PROCESS_CPUTIME_ID => ClockId::ProcessCPUTime,
        clockid::THREAD_CPUTIME_ID => ClockId::ThreadCPUTime,
        _ => return Err(Errno::Inval),
    })
}

/// The current time of clock `id` in nanoseconds.
pub(crate) fn clock_now(id: u32) -> WasiResult<u64> {
    let ts = rustix::time::clock_gettime(clock(id)?);
    Ok(nanos(ts.tv_sec, ts.tv_nsec as i64))
}

/// Reads into the guest's buffers in order. `fill` reads into one buffer;
/// reading stops at the first short read, and after the first buffer
/// unless `all` (streams must not block for more once they have data). A
/// shared memory is filled in pieces of at most
/// [`chunk_limit`](GuestMemory::chunk_limit) bytes, each read like a buffer
/// of its own.
fn read_iovecs(
    mem: &mut GuestMemory<'_>,
    iovs: &[IoVec],
    all: bool,
    mut fill: impl FnMut(&mut [u8]) -> WasiResult<usize>,
) -> WasiResult<u32> {
    let chunk = mem.chunk_limit();
    let mut total: u32 = 0;
    for v in iovs {
        let len = v.len.min(u32::MAX - total);
        let mut done = 0;
        while done < len {
            let want = (len - done).min(chunk);
            let n = match mem.fill(v.ptr + done, want, &mut fill) {
                Ok(n) => n.min(want as usize) as u32,
                Err(_) if total > 0 => return Ok(total),
                Err(e) => return Err(e),
            };
            total += n;
            done += n;
            if n < want || !all {
                return Ok(total);
            }
        }
    }
    Ok(total)
}

/// Writes the guest's buffers in order, stopping at a short write (a
/// shared memory in pieces, as in [`read_iovecs`]).
fn write_iovecs(
    mem: &GuestMemory<'_>,
    iovs: &[IoVec],
    mut send: impl FnMut(&[u8]) -> WasiResult<usize>,
) -> WasiResult<u32> {
    let chunk = mem.chunk_limit();
    let mut total: u32 = 0;
    for v in iovs {
        let len = v.len.min(u32::MAX - total);
        let mut done = 0;
        while done < len {
            let want = (len - done).min(chunk);
            let n = match mem.with_slice(v.ptr + done, want, &mut send)? {
                Ok(n) => n.min(want as usize) as u32,
                Err(_) if total > 0 => return Ok(total),
                Err(e) => return Err(e),
            };
            total += n;
            done += n;
            if n < want {
                return Ok(total);
            }
        }
    }
    Ok(total)
}

/// Writes a list of NUL-terminated strings (arguments or environment) and
/// the array of pointers to them.
fn write_strings(mem: &mut GuestMemory<'_>, strings: &[Vec<u8>], mut ptrs: u32, mut buf: u32) -> WasiResult<()> {
    for s in strings {
        mem.write_u32(ptrs, buf)?;
        mem.write_bytes(buf, s)?;
        let end = buf.checked_add(s.len() as u32).ok_or(Errno::Fault)?;
        mem.write_u8(end, 0)?;
        buf = end.checked_add(1).ok_or(Errno::Fault)?;
        ptrs = ptrs.checked_add(4).ok_or(Errno::Fault)?;
    }
    Ok(())
}

fn strings_size(strings: &[Vec<u8>]) -> WasiResult<u32> {
    let total: usize = strings.iter().map(|s| s.len() + 1).sum();
    u32::try_from(total).map_err(|_| Errno::Overflow)
}

/// Rights that let a descriptor change what it names.
const WRITE_RIGHTS: u64 = rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE;

/// Rights a file opened beneath a read-only directory does not get (the
/// directory's own path calls are refused by its `DirPerms` instead).
const FILE_CHANGE_RIGHTS: u64 = WRITE_RIGHTS | rights::FD_DATASYNC | rights::FD_FILESTAT_SET_TIMES;

impl WasiState {
    /// The directory `fd` with `needed` rights, for a path call.
    fn dir(&self, fd: u32, needed: u64) -> WasiResult<&DirFd> {
        let d = self.get(fd)?;
        let Kind::Dir(dir) = &d.kind else { return Err(Errno::NotDir) };
        d.check(needed)?;
        Ok(dir)
    }

    /// Like [`dir`](Self::dir), for a call that changes the tree.
    fn dir_for_change(&self, fd: u32, needed: u64) -> WasiResult<&DirFd> {
        let dir = self.dir(fd, needed)?;
        if dir.perms == DirPerms::ReadOnly {
            return Err(Errno::Perm);
        }
        Ok(dir)
    }

    /// The regular-file descriptor `fd` with `needed` rights. Directories
    /// are `badf`; streams and sockets are `non_file`.
    fn file(&mut self, fd: u32, needed: u64, non_file: Errno) -> WasiResult<&mut FileFd> {
        let d = self.get_mut(fd)?;
        match &mut d.kind {
            Kind::File(_) => {}
            Kind::Dir(_) => return Err(Errno::Badf),
            _ => return Err(non_file),
        }
        d.check(needed)?;
        match &mut d.kind {
            Kind::File(f) => Ok(f),
            _ => Err(Errno::Badf),
        }
    }

    // ---- arguments, environment, clocks, random ----

    pub(crate) fn args_get(&mut self, mem: &mut GuestMemory<'_>, argv: u32, argv_buf: u32) -> WasiResult<()> {
        write_strings(mem, &self.args, argv, argv_buf)
    }

    pub(crate) fn args_sizes_get(&mut self, mem: &mut GuestMemory<'_>, argc: u32, buf_size: u32) -> WasiResult<()> {
        mem.write_u32(argc, self.args.len() as u32)?;
        mem.write_u32(buf_size, strings_size(&self.args)?)
    }

    pub(crate) fn environ_get(&mut self, mem: &mut GuestMemory<'_>, environ: u32, buf: u32) -> WasiResult<()> {
        write_strings(mem, &self.env, environ, buf)
    }

    pub(crate) fn environ_sizes_get(&mut self, mem: &mut GuestMemory<'_>, count: u32, buf_size: u32) -> WasiResult<()> {
        mem.write_u32(count, self.env.len() as u32)?;
        mem.write_u32(buf_size, strings_size(&self.env)?)
    }

    pub(crate) fn clock_res_get(&mut self, mem: &mut GuestMemory<'_>, id: u32, out: u32) -> WasiResult<()> {
        let ts = rustix::time::clock_getres(clock(id)?);
        mem.write_u64(out, nanos(ts.tv_sec, ts.tv_nsec as i64).max(1))
    }

    pub(crate) fn clock_time_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        id: u32,
        _precision: u64,
        out: u32,
    ) -> WasiResult<()> {
        let now = clock_now(id)?;
        mem.write_u64(out, now)
    }

    pub(crate) fn random_get(&mut self, mem: &mut GuestMemory<'_>, buf: u32, len: u32) -> WasiResult<()> {
        mem.check(buf, len)?;
        let chunk = mem.chunk_limit();
        let mut done = 0;
        while done < len {
            let want = (len - done).min(chunk);
            mem.fill(buf + done, want, |mut out| {
                while !out.is_empty() {
                    match rustix::rand::getrandom(&mut *out, rustix::rand::GetRandomFlags::empty()) {
                        Ok(n) => out = &mut out[n..],
                        Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(want as usize)
            })?;
            done += want;
        }
        Ok(())
    }

    // ---- descriptors ----

    pub(crate) fn fd_advise(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: u32,
        offset: u64,
        len: u64,
        advice: u32,
    ) -> WasiResult<()> {
        use rustix::fs::Advice;
        let advice = match advice {
            0 => Advice::Normal,
            1 => Advice::Sequential,
            2 => Advice::Random,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            5 => Advice::NoReuse,
            _ => return Err(Errno::Inval),
        };
        let f = self.file(fd, rights::FD_ADVISE, Errno::Spipe)?;
        rustix::fs::fadvise(&f.file, offset, std::num::NonZeroU64::new(len), advice)?;
        Ok(())
    }

    pub(crate) fn fd_allocate(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, offset: u64, len: u64) -> WasiResult<()> {
        let f = self.file(fd, rights::FD_ALLOCATE, Errno::Spipe)?;
        let end = offset.checked_add(len).filter(|e| *e <= i64::MAX as u64).ok_or(Errno::Fbig)?;
        match rustix::fs::fallocate(&f.file, rustix::fs::FallocateFlags::empty(), offset, len) {
            Ok(()) => Ok(()),
            // Filesystems without fallocate: extending the size is what
            // the guest can observe.
            Err(rustix::io::Errno::OPNOTSUPP) => {
                if f.file.metadata()?.len() < end {
                    f.file.set_len(end)?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn fd_close(&mut self, _mem: &mut GuestMemory<'_>, fd: u32) -> WasiResult<()> {
        self.fds.remove(&fd).map(drop).ok_or(Errno::Badf)
    }

    pub(crate) fn fd_datasync(&mut self, _mem: &mut GuestMemory<'_>, fd: u32) -> WasiResult<()> {
        self.sync(fd, rights::FD_DATASYNC, true)
    }

    pub(crate) fn fd_sync(&mut self, _mem: &mut GuestMemory<'_>, fd: u32) -> WasiResult<()> {
        self.sync(fd, rights::FD_SYNC, false)
    }

    fn sync(&mut self, fd: u32, right: u64, data_only: bool) -> WasiResult<()> {
        let d = self.get(fd)?;
        let host = match &d.kind {
            Kind::File(f) => f.file.as_fd(),
            Kind::Dir(dir) => dir.dir.as_fd(),
            _ => return Err(Errno::Inval),
        };
        d.check(right)?;
        if data_only {
            rustix::fs::fdatasync(host)?
        } else {
            rustix::fs::fsync(host)?
        }
        Ok(())
    }

    pub(crate) fn fd_fdstat_get(&mut self, mem: &mut GuestMemory<'_>, fd: u32, out: u32) -> WasiResult<()> {
        let d = self.get(fd)?;
        let ft = match &d.kind {
            Kind::File(f) => f.filetype,
            Kind::Dir(_) => filetype::DIRECTORY,
            Kind::Listener(_) | Kind::Socket(_) => filetype::SOCKET_STREAM,
            Kind::Stream(s) => match s.host_fd() {
                Some(h) => match rustix::fs::fstat(h) {
                    Ok(st) => filetype_of_stat(&st),
                    Err(_) => filetype::UNKNOWN,
                },
                None => filetype::UNKNOWN,
            },
        };
        let mut flags = 0u16;
        if let (Kind::File(_) | Kind::Socket(_) | Kind::Listener(_), Some(h)) = (&d.kind, host_fd(&d.kind)) {
            let fl = rustix::fs::fcntl_getfl(h)?;
            use rustix::fs::OFlags;
            if fl.contains(OFlags::APPEND) {
                flags |= fdflags::APPEND;
            }
            if fl.contains(OFlags::NONBLOCK) {
                flags |= fdflags::NONBLOCK;
            }
            if fl.contains(OFlags::SYNC) {
                flags |= fdflags::SYNC;
            } else if fl.contains(OFlags::DSYNC) {
                flags |= fdflags::DSYNC;
            }
        }
        let mut b = [0u8; size::FDSTAT as usize];
        b[0] = ft;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&d.base.to_le_bytes());
        b[16..24].copy_from_slice(&d.inheriting.to_le_bytes());
        mem.write_bytes(out, &b)
    }

    pub(crate) fn fd_fdstat_set_flags(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, flags: u32) -> WasiResult<()> {
        use rustix::fs::OFlags;
        if flags & !u32::from(fdflags::ALL) != 0 {
            return Err(Errno::Inval);
        }
        let flags = flags as u16;
        let d = self.get(fd)?;
        d.check(rights::FD_FDSTAT_SET_FLAGS)?;
        let host = match &d.kind {
            Kind::File(_) | Kind::Socket(_) | Kind::Listener(_) => host_fd(&d.kind).ok_or(Errno::Badf)?,
            Kind::Dir(_) => return Err(Errno::Badf),
            // Standard streams stay as the host set them up (changing the
            // host's own descriptors would outlive the guest).
            Kind::Stream(_) => return if flags == 0 { Ok(()) } else { Err(Errno::NotSup) },
        };
        // The synchronization flags are fixed at open time on Linux.
        if flags & (fdflags::DSYNC | fdflags::RSYNC | fdflags::SYNC) != 0 {
            return Err(Errno::NotSup);
        }
        let mut fl = rustix::fs::fcntl_getfl(host)?;
        fl.set(OFlags::APPEND, flags & fdflags::APPEND != 0);
        fl.set(OFlags::NONBLOCK, flags & fdflags::NONBLOCK != 0);
        rustix::fs::fcntl_setfl(host, fl)?;
        Ok(())
    }

    pub(crate) fn fd_fdstat_set_rights(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: u32,
        base: u64,
        inheriting: u64,
    ) -> WasiResult<()> {
        let d = self.get_mut(fd)?;
        if base & !d.base != 0 || inheriting & !d.inheriting != 0 {
            return Err(Errno::NotCapable);
        }
        d.base = base;
        d.inheriting = inheriting;
        Ok(())
    }

    pub(crate) fn fd_filestat_get(&mut self, mem: &mut GuestMemory<'_>, fd: u32, out: u32) -> WasiResult<()> {
        let d = self.get(fd)?;
        d.check(rights::FD_FILESTAT_GET)?;
        let st = match host_fd(&d.kind) {
            Some(h) => stat_fd(h)?,
            None => Filestat::default(),
        };
        st.write(mem, out)
    }

    pub(crate) fn fd_filestat_set_size(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, size: u64) -> WasiResult<()> {
        let f = self.file(fd, rights::FD_FILESTAT_SET_SIZE, Errno::Inval)?;
        if size > i64::MAX as u64 {
            return Err(Errno::Fbig);
        }
        f.file.set_len(size)?;
        Ok(())
    }

    pub(crate) fn fd_filestat_set_times(
        &mut self,
        _mem: &mut GuestMemory<'_>,
        fd: u32,
        atim: u64,
        mtim: u64,
        flags: u32,
    ) -> WasiResult<()> {
        let (a, m) = time_specs(atim, mtim, flags)?;
        let d = self.get(fd)?;
        let host = match &d.kind {
            Kind::File(f) => f.file.as_fd(),
            Kind::Dir(dir) => {
                if dir.perms == DirPerms::ReadOnly {
                    return Err(Errno::Perm);
                }
                dir.dir.as_fd()
            }
            _ => return Err(Errno::Badf),
        };
        d.check(rights::FD_FILESTAT_SET_TIMES)?;
        let times = rustix::fs::Timestamps { last_access: rustix_timestamp(a), last_modification: rustix_timestamp(m) };
        rustix::fs::futimens(host, &times)?;
        Ok(())
    }

    pub(crate) fn fd_pread(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nread: u32,
    ) -> WasiResult<()> {
        let iovs = mem.iovecs(iovs, iovs_len)?;
        let f = self.file(fd, rights::FD_READ | rights::FD_SEEK, Errno::Spipe)?;
        let mut pos = offset;
        let n = read_iovecs(mem, &iovs, true, |buf| {
            let n = rustix::io::pread(&f.file, buf, pos)?;
            pos = pos.saturating_add(n as u64);
            Ok(n)
        })?;
        mem.write_u32(nread, n)
    }

    pub(crate) fn fd_pwrite(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nwritten: u32,
    ) -> WasiResult<()> {
        let iovs = mem.iovecs(iovs, iovs_len)?;
        let f = self.file(fd, rights::FD_WRITE | rights::FD_SEEK, Errno::Spipe)?;
        // On a file opened for appending, Linux's pwrite writes at the end
        // whatever the offset (POSIX would write at the offset); either
        // way the file position does not move.
        let mut pos = offset;
        let n = write_iovecs(mem, &iovs, |buf| {
            let n = rustix::io::pwrite(&f.file, buf, pos)?;
            pos = pos.saturating_add(n as u64);
            Ok(n)
        })?;
        mem.write_u32(nwritten, n)
    }

    pub(crate) fn fd_prestat_get(&mut self, mem: &mut GuestMemory<'_>, fd: u32, out: u32) -> WasiResult<()> {
        let name = self.get(fd)?.preopen.as_ref().ok_or(Errno::Badf)?;
        let mut b = [0u8; size::PRESTAT as usize];
        b[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        mem.write_bytes(out, &b)
    }

    pub(crate) fn fd_prestat_dir_name(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let name = self.get(fd)?.preopen.as_ref().ok_or(Errno::Badf)?;
        if (path_len as usize) < name.len() {
            return Err(Errno::NameTooLong);
        }
        mem.write_bytes(path, name.as_bytes())
    }

    pub(crate) fn fd_readdir(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        bufused: u32,
    ) -> WasiResult<()> {
        let d = self.get_mut(fd)?;
        if !matches!(d.kind, Kind::Dir(_)) {
            return Err(Errno::NotDir);
        }
        d.check(rights::FD_READDIR)?;
        let Kind::Dir(dir) = &mut d.kind else { return Err(Errno::NotDir) };
        if cookie == 0 || dir.listing.is_none() {
            dir.listing = Some(list_dir(&dir.dir)?);
        }
        let listing = dir.listing.as_deref().unwrap_or_default();
        mem.check(buf, buf_len)?;
        let mut used = 0u32;
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        for (i, e) in listing.iter().enumerate().skip(start) {
            let mut header = [0u8; size::DIRENT as usize];
            header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            header[8..16].copy_from_slice(&e.ino.to_le_bytes());
            header[16..20].copy_from_slice(&(e.name.len() as u32).to_le_bytes());
            header[20] = e.filetype;
            for part in [&header[..], &e.name[..]] {
                let n = part.len().min((buf_len - used) as usize);
                mem.write_bytes(buf + used, &part[..n])?;
                used += n as u32;
            }
            if used == buf_len {
                break;
            }
        }
        mem.write_u32(bufused, used)
    }

    pub(crate) fn fd_renumber(&mut self, _mem: &mut GuestMemory<'_>, from: u32, to: u32) -> WasiResult<()> {
        if !self.fds.contains_key(&from) || !self.fds.contains_key(&to) {
            return Err(Errno::Badf);
        }
        if from != to {
            let d = self.fds.remove(&from).ok_or(Errno::Badf)?;
            self.fds.insert(to, d);
        }
        Ok(())
    }

    pub(crate) fn fd_seek(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        offset: i64,
        whence: u32,
        out: u32,
    ) -> WasiResult<()> {
        let pos = match whence {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::Inval)?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => return Err(Errno::Inval),
        };
        let needed = if offset == 0 && whence == 1 { rights::FD_TELL } else { rights::FD_SEEK };
        let f = self.file(fd, needed, Errno::Spipe)?;
        let new = Seek::seek(&mut &*f.file, pos)?;
        mem.write_u64(out, new)
    }

    pub(crate) fn fd_tell(&mut self, mem: &mut GuestMemory<'_>, fd: u32, out: u32) -> WasiResult<()> {
        let f = self.file(fd, rights::FD_TELL, Errno::Spipe)?;
        let pos = Seek::stream_position(&mut &*f.file)?;
        mem.write_u64(out, pos)
    }

    // ---- paths ----

    pub(crate) fn path_create_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let dir = self.dir_for_change(fd, rights::PATH_CREATE_DIRECTORY)?;
        dir.dir.create_dir(&*mem.str(path, path_len)?)?;
        Ok(())
    }

    pub(crate) fn path_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        out: u32,
    ) -> WasiResult<()> {
        let dir = self.dir(fd, rights::PATH_FILESTAT_GET)?;
        let path = &*mem.str(path, path_len)?;
        let meta = if flags & lookupflags::SYMLINK_FOLLOW != 0 {
            dir.dir.metadata(path)?
        } else {
            dir.dir.symlink_metadata(path)?
        };
        stat_meta(&meta).write(mem, out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_filestat_set_times(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        atim: u64,
        mtim: u64,
        fst_flags: u32,
    ) -> WasiResult<()> {
        let (a, m) = time_specs(atim, mtim, fst_flags)?;
        let dir = self.dir_for_change(fd, rights::PATH_FILESTAT_SET_TIMES)?;
        let path = &*mem.str(path, path_len)?;
        if flags & lookupflags::SYMLINK_FOLLOW != 0 {
            dir.dir.set_times(path, a, m)?;
        } else {
            dir.dir.set_symlink_times(path, a, m)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_link(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_fd: u32,
        old_flags: u32,
        old_path: u32,
        old_len: u32,
        new_fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> WasiResult<()> {
        let old = self.dir_for_change(old_fd, rights::PATH_LINK_SOURCE)?;
        let new = self.dir_for_change(new_fd, rights::PATH_LINK_TARGET)?;
        // Hard links to what a symlink points at are not supported: the
        // target could only be checked and linked in two racing steps.
        if old_flags & lookupflags::SYMLINK_FOLLOW != 0 {
            return Err(Errno::Inval);
        }
        old.dir.hard_link(&*mem.str(old_path, old_len)?, &new.dir, &*mem.str(new_path, new_len)?)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_open(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        dirflags: u32,
        path: u32,
        path_len: u32,
        oflags: u32,
        base: u64,
        inheriting: u64,
        fdflags: u32,
        fd_out: u32,
    ) -> WasiResult<()> {
        if oflags & !u32::from(oflags::ALL) != 0 || fdflags & !u32::from(fdflags::ALL) != 0 {
            return Err(Errno::Inval);
        }
        let (oflags, fdflags) = (oflags as u16, fdflags as u16);
        let mut needed = rights::PATH_OPEN;
        if oflags & oflags::CREAT != 0 {
            needed |= rights::PATH_CREATE_FILE;
        }
        if oflags & oflags::TRUNC != 0 {
            needed |= rights::PATH_FILESTAT_SET_SIZE;
        }
        let parent = self.get(fd)?;
        let Kind::Dir(dir) = &parent.kind else { return Err(Errno::NotDir) };
        parent.check(needed)?;
        let path = &*mem.str(path, path_len)?;
        // Ask for more than the directory passes on and get what it has
        // (as wasi-libc and Rust's std expect).
        let mut base = base & parent.inheriting;
        let mut inheriting = inheriting & parent.inheriting;
        let follow = if dirflags & lookupflags::SYMLINK_FOLLOW != 0 { FollowSymlinks::Yes } else { FollowSymlinks::No };
        let want_dir = oflags & oflags::DIRECTORY != 0;
        // Directories cannot be opened for writing (and the other write
        // rights are simply not passed on to a directory).
        if want_dir && base & rights::FD_WRITE != 0 {
            return Err(Errno::IsDir);
        }
        let wants_write = !want_dir && (base & WRITE_RIGHTS != 0 || fdflags & fdflags::APPEND != 0);
        let changes = oflags & (oflags::CREAT | oflags::TRUNC) != 0;
        if dir.perms == DirPerms::ReadOnly {
            if wants_write || changes {
                return Err(Errno::Perm);
            }
            base &= !FILE_CHANGE_RIGHTS;
            inheriting &= !FILE_CHANGE_RIGHTS;
        }
        let perms = dir.perms;

        let kind = if want_dir {
            if changes {
                return Err(Errno::Inval);
            }
            let d = match follow {
                FollowSymlinks::Yes => dir.dir.open_dir(path)?,
                FollowSymlinks::No => dir.dir.open_dir_nofollow(path)?,
            };
            base &= rights::DIRECTORY;
            Kind::Dir(DirFd { dir: d, perms, listing: None })
        } else {
            let mut opts = OpenOptions::new();
            let write = wants_write;
            let read = base & (rights::FD_READ | rights::FD_READDIR) != 0 || !write;
            // std's (and cap-std's) open options refuse append with
            // truncate, which POSIX allows: open for writing and set
            // O_APPEND afterwards.
            let append = fdflags & fdflags::APPEND != 0;
            let append_later = append && oflags & oflags::TRUNC != 0;
            opts.read(read).write(write || changes).append(append && !append_later);
            if oflags & oflags::CREAT != 0 {
                if oflags & oflags::EXCL != 0 {
                    opts.create_new(true);
                } else {
                    opts.create(true);
                }
            }
            opts.truncate(oflags & oflags::TRUNC != 0);
            opts.follow(follow);
            opts.maybe_dir(!write && !changes);
            opts.dsync(fdflags & fdflags::DSYNC != 0);
            opts.rsync(fdflags & fdflags::RSYNC != 0);
            opts.sync(fdflags & fdflags::SYNC != 0);
            opts.nonblock(fdflags & fdflags::NONBLOCK != 0);
            let file = dir.dir.open_with(path, &opts)?;
            if append_later {
                let fl = rustix::fs::fcntl_getfl(&file)?;
                rustix::fs::fcntl_setfl(&file, fl | rustix::fs::OFlags::APPEND)?;
            }
            let meta = file.metadata()?;
            if meta.is_dir() {
                base &= rights::DIRECTORY;
                Kind::Dir(DirFd { dir: Dir::from_std_file(file.into_std()), perms, listing: None })
            } else {
                base &= rights::FILE;
                Kind::File(FileFd { file: Arc::new(file), filetype: filetype_of(meta.file_type()) })
            }
        };
        let new = self.insert(Descriptor { kind, base, inheriting, preopen: None })?;
        mem.write_u32(fd_out, new)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_readlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        path: u32,
        path_len: u32,
        buf: u32,
        buf_len: u32,
        bufused: u32,
    ) -> WasiResult<()> {
        let dir = self.dir(fd, rights::PATH_READLINK)?;
        let target = dir.dir.read_link_contents(&*mem.str(path, path_len)?)?;
        let bytes = target.as_os_str().as_bytes();
        let n = bytes.len().min(buf_len as usize);
        mem.check(buf, buf_len)?;
        mem.write_bytes(buf, &bytes[..n])?;
        mem.write_u32(bufused, n as u32)
    }

    pub(crate) fn path_remove_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let dir = self.dir_for_change(fd, rights::PATH_REMOVE_DIRECTORY)?;
        dir.dir.remove_dir(&*mem.str(path, path_len)?)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn path_rename(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        old_path: u32,
        old_len: u32,
        new_fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> WasiResult<()> {
        let old = self.dir_for_change(fd, rights::PATH_RENAME_SOURCE)?;
        let new = self.dir_for_change(new_fd, rights::PATH_RENAME_TARGET)?;
        old.dir.rename(&*mem.str(old_path, old_len)?, &new.dir, &*mem.str(new_path, new_len)?)?;
        Ok(())
    }

    pub(crate) fn path_symlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        old_path: u32,
        old_len: u32,
        fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> WasiResult<()> {
        let dir = self.dir_for_change(fd, rights::PATH_SYMLINK)?;
        dir.dir.symlink(&*mem.str(old_path, old_len)?, &*mem.str(new_path, new_len)?)?;
        Ok(())
    }

    pub(crate) fn path_unlink_file(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult<()> {
        let dir = self.dir_for_change(fd, rights::PATH_UNLINK_FILE)?;
        dir.dir.remove_file(&*mem.str(path, path_len)?)?;
        Ok(())
    }

    // ---- processes and scheduling ----

    pub(crate) fn proc_raise(&mut self, _mem: &mut GuestMemory<'_>, _sig: u32) -> WasiResult<()> {
        Err(Errno::NoSys)
    }

    pub(crate) fn sched_yield(&mut self, _mem: &mut GuestMemory<'_>) -> WasiResult<()> {
        std::thread::yield_now();
        Ok(())
    }

    // ---- sockets ----

    fn socket(&mut self, fd: u32, needed: u64) -> WasiResult<&mut Kind> {
        let d = self.get_mut(fd)?;
        if !matches!(d.kind, Kind::Socket(_) | Kind::Listener(_)) {
            return Err(Errno::NotSock);
        }
        d.check(needed)?;
        Ok(&mut d.kind)
    }

    /// The host object of `fd` for reading or writing (`needed` is
    /// `FD_READ` or `FD_WRITE`): directories and listeners are `badf`.
    fn stream_io(&self, fd: u32, needed: u64) -> WasiResult<HostIo> {
        let d = self.get(fd)?;
        if matches!(d.kind, Kind::Dir(_) | Kind::Listener(_)) {
            return Err(Errno::Badf);
        }
        d.check(needed)?;
        d.host_io().ok_or(Errno::Badf)
    }

    /// The host object of socket `fd` for a socket call: `notsock` for
    /// anything but sockets, `notconn` for a listener.
    fn socket_io(&mut self, fd: u32, needed: u64) -> WasiResult<Arc<std::net::TcpStream>> {
        match self.socket(fd, needed)? {
            Kind::Socket(s) => Ok(s.clone()),
            _ => Err(Errno::NotConn),
        }
    }

    pub(crate) fn sock_shutdown(&mut self, _mem: &mut GuestMemory<'_>, fd: u32, how: u32) -> WasiResult<()> {
        use std::net::Shutdown;
        let how = match how {
            1 => Shutdown::Read,
            2 => Shutdown::Write,
            3 => Shutdown::Both,
            _ => return Err(Errno::Inval),
        };
        let Kind::Socket(s) = self.socket(fd, rights::SOCK_SHUTDOWN)? else { return Err(Errno::NotConn) };
        s.shutdown(how)?;
        Ok(())
    }
}

// ---- calls that may wait: the state is held only for the look-up ----

pub(crate) fn fd_read(
    cx: &mut Access<'_>,
    waiter: &Waiter,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nread: u32,
) -> WasiResult<()> {
    let iovs = mem.iovecs(iovs, iovs_len)?;
    let n = match cx.with(|s| s.stream_io(fd, rights::FD_READ))? {
        HostIo::File { file, filetype } => {
            let regular = filetype == filetype::REGULAR_FILE;
            read_iovecs(mem, &iovs, regular, |buf| Ok(Read::read(&mut &*file, buf)?))?
        }
        HostIo::Stream(s) => {
            if let Some(fd) = s.host_fd() {
                waiter.ready(fd, false)?;
            }
            read_iovecs(mem, &iovs, false, |buf| s.read(buf))?
        }
        HostIo::Socket(s) => {
            waiter.ready(s.as_fd(), false)?;
            read_iovecs(mem, &iovs, false, |buf| Ok(rustix::net::recv(&*s, buf, rustix::net::RecvFlags::empty())?.0))?
        }
        HostIo::Listener(_) => return Err(Errno::Badf),
    };
    mem.write_u32(nread, n)
}

pub(crate) fn fd_write(
    cx: &mut Access<'_>,
    waiter: &Waiter,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nwritten: u32,
) -> WasiResult<()> {
    let iovs = mem.iovecs(iovs, iovs_len)?;
    let n = match cx.with(|s| s.stream_io(fd, rights::FD_WRITE))? {
        HostIo::File { file, .. } => write_iovecs(mem, &iovs, |buf| Ok(Write::write(&mut &*file, buf)?))?,
        HostIo::Stream(s) => {
            if let Some(fd) = s.host_fd() {
                waiter.ready(fd, true)?;
            }
            write_iovecs(mem, &iovs, |buf| s.write(buf))?
        }
        HostIo::Socket(s) => {
            waiter.ready(s.as_fd(), true)?;
            write_iovecs(mem, &iovs, |buf| Ok(rustix::net::send(&*s, buf, rustix::net::SendFlags::NOSIGNAL)?))?
        }
        HostIo::Listener(_) => return Err(Errno::Badf),
    };
    mem.write_u32(nwritten, n)
}

pub(crate) fn sock_accept(
    cx: &mut Access<'_>,
    waiter: &Waiter,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    fd_out: u32,
) -> WasiResult<()> {
    if flags & !u32::from(fdflags::NONBLOCK) != 0 {
        return Err(Errno::Inval);
    }
    let listener = cx.with(|s| match s.socket(fd, rights::SOCK_ACCEPT)? {
        Kind::Listener(l) => Ok(l.clone()),
        _ => Err(Errno::NotSup),
    })?;
    waiter.ready(listener.as_fd(), false)?;
    let (stream, _) = listener.accept()?;
    stream.set_nonblocking(flags & u32::from(fdflags::NONBLOCK) != 0)?;
    let d = Descriptor { kind: Kind::Socket(Arc::new(stream)), base: rights::SOCKET, inheriting: 0, preopen: None };
    let new = cx.with(|s| s.insert(d))?;
    mem.write_u32(fd_out, new)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn sock_recv(
    cx: &mut Access<'_>,
    waiter: &Waiter,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    ri_flags: u32,
    ro_datalen: u32,
    ro_flags: u32,
) -> WasiResult<()> {
    use rustix::net::RecvFlags;
    if ri_flags & !3 != 0 {
        return Err(Errno::Inval);
    }
    let mut flags = RecvFlags::empty();
    flags.set(RecvFlags::PEEK, ri_flags & 1 != 0);
    flags.set(RecvFlags::WAITALL, ri_flags & 2 != 0);
    let iovs = mem.iovecs(iovs, iovs_len)?;
    let s = cx.with(|s| s.socket_io(fd, rights::FD_READ))?;
    waiter.ready(s.as_fd(), false)?;
    let n = read_iovecs(mem, &iovs, false, |buf| Ok(rustix::net::recv(&*s, buf, flags)?.0))?;
    mem.write_u32(ro_datalen, n)?;
    mem.write_u16(ro_flags, 0)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn sock_send(
    cx: &mut Access<'_>,
    waiter: &Waiter,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    si_flags: u32,
    so_datalen: u32,
) -> WasiResult<()> {
    if si_flags != 0 {
        return Err(Errno::Inval);
    }
    let iovs = mem.iovecs(iovs, iovs_len)?;
    let s = cx.with(|s| s.socket_io(fd, rights::FD_WRITE))?;
    waiter.ready(s.as_fd(), true)?;
    let n = write_iovecs(mem, &iovs, |buf| Ok(rustix::net::send(&*s, buf, rustix::net::SendFlags::NOSIGNAL)?))?;
    mem.write_u32(so_datalen, n)
}

/// Reads a whole directory: `.`, `..`, then the entries in the host's order.
fn list_dir(dir: &Dir) -> WasiResult<Vec<Dirent>> {
    use rustix::fs::DirEntryExt;
    let this = dir.dir_metadata()?;
    // `..` of a preopened directory is outside the sandbox: it is listed
    // (programs expect it) with the directory's own inode.
    let parent = dir.metadata("..").map(|m| m.ino()).unwrap_or(this.ino());
    let mut out = vec![
        Dirent { name: b".".to_vec(), ino: this.ino(), filetype: filetype::DIRECTORY },
        Dirent { name: b"..".to_vec(), ino: parent, filetype: filetype::DIRECTORY },
    ];
    for entry in dir.entries()? {
        let entry = entry?;
        let ft = match entry.file_type() {
            Ok(ft) => filetype_of(ft),
            // Removed while we were listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(Dirent { name: entry.file_name().as_bytes().to_vec(), ino: entry.ino(), filetype: ft });
    }
    Ok(out)
}

/// A stream's readiness for `poll_oneoff`: the host fd to poll, or bytes
/// ready now.
pub(crate) fn stream_ready(s: &Stream) -> Option<u64> {
    s.buffered().or(match s {
        Stream::Output(..) if s.host_fd().is_none() => Some(0),
        _ => None,
    })
}
