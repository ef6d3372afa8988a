//! Bounds-checked access to the guest's linear memory. Every pointer and
//! length comes from the guest: any range outside the memory is
//! [`Errno::Fault`], never a trap or a panic.
//!
//! Two kinds of memory: an ordinary one, borrowed as `&mut [u8]` for the
//! call (reads and writes go straight to and from the guest's buffers), and
//! a shared one (threads), which other threads may be using during the
//! call, so it is only ever copied from and to, through
//! `SharedMemory::read`/`write`, in pieces of at most [`SHARED_CHUNK`]
//! bytes; nothing is allocated in proportion to a guest length.

use crate::errno::{Errno, WasiResult};
use crate::types::size;
use kiln::SharedMemory;
use std::borrow::Cow;

/// The largest piece of a shared memory copied at once.
pub(crate) const SHARED_CHUNK: u32 = 64 * 1024;

enum Data<'a> {
    Plain(&'a mut [u8]),
    Shared(&'a SharedMemory),
}

/// The calling instance's memory, for the duration of one WASI call.
pub(crate) struct GuestMemory<'a> {
    data: Data<'a>,
}

/// One `iovec`/`ciovec`: a guest buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IoVec {
    pub ptr: u32,
    pub len: u32,
}

impl<'a> GuestMemory<'a> {
    /// Wraps `data` (empty when the module exports no memory: every
    /// access is then a fault).
    pub fn new(data: &'a mut [u8]) -> Self {
        GuestMemory { data: Data::Plain(data) }
    }

    /// Wraps a shared memory.
    pub fn shared(memory: &'a SharedMemory) -> Self {
        GuestMemory { data: Data::Shared(memory) }
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::Plain(d) => d.len(),
            Data::Shared(m) => m.data_size(),
        }
    }

    fn range(&self, ptr: u32, len: u32) -> WasiResult<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    /// `fault` unless `len` bytes at `ptr` lie inside memory.
    pub fn check(&self, ptr: u32, len: u32) -> WasiResult<()> {
        self.range(ptr, len).map(drop)
    }

    /// The most bytes a call should hand to [`with_slice`](Self::with_slice)
    /// or [`fill`](Self::fill) at once: unlimited for an ordinary memory,
    /// [`SHARED_CHUNK`] for a shared one (which is copied).
    pub fn chunk_limit(&self) -> u32 {
        match self.data {
            Data::Plain(_) => u32::MAX,
            Data::Shared(_) => SHARED_CHUNK,
        }
    }

    /// Runs `f` on the `len` bytes at `ptr` (a copy of them, for a shared
    /// memory).
    pub fn with_slice<R>(&self, ptr: u32, len: u32, f: impl FnOnce(&[u8]) -> R) -> WasiResult<R> {
        let r = self.range(ptr, len)?;
        match &self.data {
            Data::Plain(d) => Ok(f(&d[r])),
            Data::Shared(m) => {
                let mut copy = vec![0u8; r.len()];
                m.read(r.start, &mut copy).map_err(|_| Errno::Fault)?;
                Ok(f(&copy))
            }
        }
    }

    /// Lets `f` fill the `len` bytes at `ptr`; `f` returns how many bytes
    /// it filled from the start (for a shared memory, only those are
    /// copied in, so the rest of the buffer is left untouched).
    pub fn fill(&mut self, ptr: u32, len: u32, f: impl FnOnce(&mut [u8]) -> WasiResult<usize>) -> WasiResult<usize> {
        let r = self.range(ptr, len)?;
        match &mut self.data {
            Data::Plain(d) => f(&mut d[r]),
            Data::Shared(m) => {
                let mut buf = vec![0u8; r.len()];
                let n = f(&mut buf)?.min(buf.len());
                m.write(r.start, &buf[..n]).map_err(|_| Errno::Fault)?;
                Ok(n)
            }
        }
    }

    /// Copies the bytes at `ptr` into `out`.
    pub fn read_bytes(&self, ptr: u32, out: &mut [u8]) -> WasiResult<()> {
        let len = u32::try_from(out.len()).map_err(|_| Errno::Fault)?;
        let r = self.range(ptr, len)?;
        match &self.data {
            Data::Plain(d) => out.copy_from_slice(&d[r]),
            Data::Shared(m) => m.read(r.start, out).map_err(|_| Errno::Fault)?,
        }
        Ok(())
    }

    fn array<const N: usize>(&self, ptr: u32) -> WasiResult<[u8; N]> {
        let mut out = [0u8; N];
        self.read_bytes(ptr, &mut out)?;
        Ok(out)
    }

    /// Reads a `u8`.
    pub fn read_u8(&self, ptr: u32) -> WasiResult<u8> {
        Ok(self.array::<1>(ptr)?[0])
    }

    /// Reads a `u16`.
    pub fn read_u16(&self, ptr: u32) -> WasiResult<u16> {
        Ok(u16::from_le_bytes(self.array(ptr)?))
    }

    /// Reads a `u32`.
    pub fn read_u32(&self, ptr: u32) -> WasiResult<u32> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    /// Reads a `u64`.
    pub fn read_u64(&self, ptr: u32) -> WasiResult<u64> {
        Ok(u64::from_le_bytes(self.array(ptr)?))
    }

    /// Writes bytes at `ptr`.
    pub fn write_bytes(&mut self, ptr: u32, bytes: &[u8]) -> WasiResult<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| Errno::Fault)?;
        let r = self.range(ptr, len)?;
        match &mut self.data {
            Data::Plain(d) => d[r].copy_from_slice(bytes),
            Data::Shared(m) => m.write(r.start, bytes).map_err(|_| Errno::Fault)?,
        }
        Ok(())
    }

    /// Writes a `u8`.
    pub fn write_u8(&mut self, ptr: u32, v: u8) -> WasiResult<()> {
        self.write_bytes(ptr, &[v])
    }

    /// Writes a `u16`.
    pub fn write_u16(&mut self, ptr: u32, v: u16) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Writes a `u32`.
    pub fn write_u32(&mut self, ptr: u32, v: u32) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Writes a `u64`.
    pub fn write_u64(&mut self, ptr: u32, v: u64) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Reads a guest string (`ptr`, `len`): UTF-8 or [`Errno::Ilseq`].
    /// Borrowed from an ordinary memory; copied out of a shared one, where
    /// strings longer than [`SHARED_CHUNK`] are [`Errno::NameTooLong`]
    /// (strings are paths, and Linux refuses paths over 4 KiB anyway).
    pub fn str(&self, ptr: u32, len: u32) -> WasiResult<Cow<'_, str>> {
        let r = self.range(ptr, len)?;
        match &self.data {
            Data::Plain(d) => std::str::from_utf8(&d[r]).map(Cow::Borrowed).map_err(|_| Errno::Ilseq),
            Data::Shared(m) => {
                if len > SHARED_CHUNK {
                    return Err(Errno::NameTooLong);
                }
                let mut copy = vec![0u8; r.len()];
                m.read(r.start, &mut copy).map_err(|_| Errno::Fault)?;
                String::from_utf8(copy).map(Cow::Owned).map_err(|_| Errno::Ilseq)
            }
        }
    }

    /// Reads an array of `count` iovecs at `ptr`, checking that each buffer
    /// lies inside memory.
    pub fn iovecs(&self, ptr: u32, count: u32) -> WasiResult<Vec<IoVec>> {
        let bytes = count.checked_mul(size::IOVEC).ok_or(Errno::Fault)?;
        self.range(ptr, bytes)?;
        let mut out = Vec::new();
        for i in 0..count {
            let at = ptr + i * size::IOVEC;
            let v = IoVec { ptr: self.read_u32(at)?, len: self.read_u32(at + 4)? };
            self.range(v.ptr, v.len)?;
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_fault() {
        let mut buf = vec![0u8; 16];
        let mut m = GuestMemory::new(&mut buf);
        assert_eq!(m.read_u64(8), Ok(0));
        assert_eq!(m.read_u64(9), Err(Errno::Fault));
        assert_eq!(m.write_u32(u32::MAX, 1), Err(Errno::Fault));
        assert_eq!(m.check(16, 0), Ok(()));
        assert_eq!(m.check(17, 0), Err(Errno::Fault));
        assert_eq!(m.with_slice(8, 8, |s| s.len()), Ok(8));
        assert_eq!(m.fill(12, 8, |_| Ok(0)), Err(Errno::Fault));
        m.write_u32(0, 4).unwrap();
        m.write_u32(4, 100).unwrap();
        assert_eq!(m.iovecs(0, 1).map(|v| v.len()), Err(Errno::Fault));
        assert_eq!(m.iovecs(0, u32::MAX).map(|v| v.len()), Err(Errno::Fault));
        let mut empty: [u8; 0] = [];
        assert_eq!(GuestMemory::new(&mut empty).read_u8(0), Err(Errno::Fault));
    }

    #[test]
    fn strings() {
        let mut buf = b"abc\xff".to_vec();
        let m = GuestMemory::new(&mut buf);
        assert_eq!(m.str(0, 3).as_deref(), Ok("abc"));
        assert_eq!(m.str(1, 3), Err(Errno::Ilseq));
        assert_eq!(m.str(2, 3), Err(Errno::Fault));
    }

    #[test]
    fn shared_memory_is_copied_in_bounds() {
        let engine = kiln::Engine::default();
        let shared = SharedMemory::new(&engine, kiln::MemoryType::shared(1, 2)).unwrap();
        let mut m = GuestMemory::shared(&shared);
        assert_eq!(m.chunk_limit(), SHARED_CHUNK);
        m.write_bytes(10, b"abc\xff").unwrap();
        assert_eq!(m.str(10, 3).as_deref(), Ok("abc"));
        assert_eq!(m.str(11, 3), Err(Errno::Ilseq));
        assert_eq!(m.str(65535, 2), Err(Errno::Fault));
        assert_eq!(m.read_u32(65532), Ok(0));
        assert_eq!(m.read_u32(65533), Err(Errno::Fault));
        assert_eq!(m.with_slice(10, 3, |s| s.to_vec()), Ok(b"abc".to_vec()));
        // Only the filled prefix is copied in.
        assert_eq!(
            m.fill(10, 4, |buf| {
                buf[0] = b'x';
                buf[3] = b'!';
                Ok(1)
            }),
            Ok(1)
        );
        let mut back = [0u8; 4];
        shared.read(10, &mut back).unwrap();
        assert_eq!(&back, b"xbc\xff");
        // The memory grows under the calls' feet: the new pages are in bounds.
        shared.grow(1).unwrap();
        assert_eq!(m.read_u32(65536), Ok(0));
        assert_eq!(m.str(0, SHARED_CHUNK + 1), Err(Errno::NameTooLong));
    }
}
