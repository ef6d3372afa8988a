//! Copy-on-write memory images.
//!
//! When every active data segment of a defined memory has a constant offset
//! and fits in the memory's initial size, the memory's initial contents are
//! known before instantiation. They are laid out once per module in an
//! in-memory file (memfd), and each new instance maps that file privately
//! over the start of its memory: instantiation costs one `mmap`, pages are
//! shared until an instance writes to them, and no data is copied.

use super::mmap::page_size;
use kiln_environ::{MemoryIndex, ModuleInfo, SegmentMode};
use std::io;
use std::os::fd::OwnedFd;

/// A memory's initial contents, in an in-memory file.
#[derive(Debug)]
pub struct MemoryImage {
    fd: OwnedFd,
    /// Byte offset in the linear memory where the image starts (page-aligned).
    offset: usize,
    /// Length of the image (a whole number of pages).
    len: usize,
}

impl MemoryImage {
    /// The image of defined memory `memory` (a module memory index) of
    /// `module`, if it has data and qualifies (see the module docs).
    ///
    /// # Errors
    ///
    /// The OS refused to create or fill the in-memory file.
    pub fn build(module: &ModuleInfo, memory: MemoryIndex) -> io::Result<Option<MemoryImage>> {
        let ty = module.memories[memory.index()];
        if ty.shared || module.is_imported_memory(memory) {
            return Ok(None);
        }
        let min_bytes = ty.minimum.saturating_mul(ty.page_size());
        let mut segments = Vec::new();
        for seg in &module.data {
            let SegmentMode::Active { index, offset } = &seg.mode else { continue };
            if *index != memory.as_u32() {
                continue;
            }
            let Some(at) = offset.as_const_u64().map(|o| if ty.memory64 { o } else { o & 0xffff_ffff }) else {
                return Ok(None);
            };
            if at.saturating_add(seg.bytes.len() as u64) > min_bytes {
                return Ok(None);
            }
            if !seg.bytes.is_empty() {
                segments.push((at as usize, seg.bytes.as_slice()));
            }
        }
        if segments.is_empty() {
            return Ok(None);
        }
        let page = page_size();
        let start = segments.iter().map(|(o, _)| *o).min().unwrap_or(0) / page * page;
        let end = segments.iter().map(|(o, b)| o + b.len()).max().unwrap_or(0).div_ceil(page) * page;
        let fd = rustix::fs::memfd_create("kiln-memory-image", rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, (end - start) as u64)?;
        // Segments are written in order, so later ones overwrite earlier
        // ones exactly as instantiation would.
        for (at, bytes) in segments {
            let mut done = 0;
            while done < bytes.len() {
                let n = rustix::io::pwrite(&fd, &bytes[done..], (at - start + done) as u64)?;
                if n == 0 {
                    return Err(io::Error::other("short write to memory image"));
                }
                done += n;
            }
        }
        Ok(Some(MemoryImage { fd, offset: start, len: end - start }))
    }

    /// The in-memory file.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Where the image starts in the linear memory.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The image's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether data segment `seg` of the module is part of this memory's image.
    pub fn covers(module: &ModuleInfo, memory: MemoryIndex, seg: usize) -> bool {
        matches!(&module.data[seg].mode, SegmentMode::Active { index, .. } if *index == memory.as_u32())
    }
}
