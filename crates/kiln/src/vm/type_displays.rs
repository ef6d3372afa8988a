//! The engine's table of type displays that compiled code reads for casts
//! to non-final types (layout: `kiln_environ::vmoffsets::type_displays`):
//! one read-write mapping of `TYPES` rows, reserved without backing (a
//! page costs memory once a row on it is written), so its address never
//! changes and stores publish it to compiled code once, when created.

use super::mmap::Mmap;
use kiln_environ::vmoffsets::type_displays::{DEPTH, ROW, TYPES};

/// The table.
pub struct DisplayTable {
    map: Mmap,
}

impl DisplayTable {
    /// Maps the table.
    ///
    /// # Errors
    ///
    /// The OS refuses the mapping (address space exhausted).
    pub fn new() -> std::io::Result<DisplayTable> {
        Ok(DisplayTable { map: Mmap::accessible(TYPES as usize * ROW as usize)? })
    }

    /// The first row: what compiled code indexes.
    pub fn base(&self) -> *const u32 {
        self.map.as_ptr().cast()
    }

    /// Writes row `id`: `display` (the type's supertypes from the root,
    /// then itself), cut at `DEPTH`, the rest `u32::MAX`. Ids past the
    /// table are ignored (compiled code does not look them up).
    pub fn set(&mut self, id: u32, display: &[u32]) {
        if id >= TYPES {
            return;
        }
        let mut row = [u32::MAX; DEPTH as usize];
        for (slot, t) in row.iter_mut().zip(display) {
            *slot = *t;
        }
        // SAFETY: row `id < TYPES` lies inside the read-write mapping; it
        // belongs to an id not yet handed out, so no compiled code reads it
        // while it is written (`&mut self`: no other writer); `u32` writes
        // into a page-aligned mapping at a multiple of 4 are aligned.
        unsafe {
            let p = self.map.as_ptr().add(id as usize * ROW as usize).cast::<u32>();
            for (k, v) in row.iter().enumerate() {
                p.add(k).write(*v);
            }
        }
    }
}
