//! Bounds-checked access to the guest's linear memory. Every pointer and
//! length comes from the guest: any range outside the memory is
//! [`Errno::Fault`], never a trap or a panic.

use crate::errno::{Errno, WasiResult};
use crate::types::size;

/// The calling instance's memory, for the duration of one WASI call.
pub(crate) struct GuestMemory<'a> {
    data: &'a mut [u8],
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
        GuestMemory { data }
    }

    fn range(&self, ptr: u32, len: u32) -> WasiResult<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.data.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    /// `len` bytes at `ptr`.
    pub fn slice(&self, ptr: u32, len: u32) -> WasiResult<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.data[r])
    }

    /// `len` bytes at `ptr`, mutably.
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> WasiResult<&mut [u8]> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.data[r])
    }

    fn array<const N: usize>(&self, ptr: u32) -> WasiResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.slice(ptr, N as u32)?);
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
        self.slice_mut(ptr, len)?.copy_from_slice(bytes);
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
    pub fn str(&self, ptr: u32, len: u32) -> WasiResult<&str> {
        std::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno::Ilseq)
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
        assert_eq!(m.slice(16, 0).map(|s| s.len()), Ok(0));
        assert_eq!(m.slice(17, 0).map(|s| s.len()), Err(Errno::Fault));
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
        assert_eq!(m.str(0, 3), Ok("abc"));
        assert_eq!(m.str(1, 3), Err(Errno::Ilseq));
        assert_eq!(m.str(2, 3), Err(Errno::Fault));
    }
}
