//! The entry stubs of lazily compiled functions (x86-64): their layout in
//! a module's text and their machine code. The runtime side (the slots'
//! contents, the shared entry, installing code) is `kiln/src/vm/lazy_code.rs`.
//!
//! Every defined function of a lazily compiled module has a 16-byte stub
//! and an 8-byte slot:
//!
//! ```text
//! stub f:  jmp  qword ptr [rip + slot f]      ; ff 25 rel32
//!          call qword ptr [rip + entry slot]  ; ff 15 rel32   (the slot's first target)
//!          int3 x 4
//! ```
//!
//! The slot first holds the address of the stub's second instruction, so
//! the first call of `f` reaches the shared lazy entry with the address
//! after that `call` on the stack, which says which stub (hence which
//! function) was called. Once `f` is compiled its slot holds its code: a
//! call through the stub is then one indirect jump. Calls between
//! functions and function references go to the stub while the callee is
//! not compiled; the calls of code compiled later go straight to the code
//! of callees compiled before it.

/// Bytes per stub.
pub const STUB_SIZE: u32 = 16;

/// Bytes per slot.
pub const SLOT_SIZE: u32 = 8;

/// Offset, inside a stub, of the instruction its slot first points at.
pub const STUB_CALL_OFFSET: u32 = 6;

/// Offset, inside a stub, of the return address its call pushes.
pub const STUB_RETURN_OFFSET: u32 = 12;

/// Where a lazily compiled module's stubs and slots lie, as text offsets
/// (the slots follow the text, on their own read-write pages; the entry
/// slot after the functions' slots holds the address of the shared entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StubLayout {
    /// Offset of stub 0.
    pub stubs: u32,
    /// Offset of slot 0.
    pub slots: u32,
    /// Number of stubs (the module's defined functions).
    pub count: u32,
}

impl StubLayout {
    /// Offset of the stub of defined function `index`.
    pub fn stub(&self, index: u32) -> u32 {
        self.stubs + index * STUB_SIZE
    }

    /// Offset of the slot of defined function `index`.
    pub fn slot(&self, index: u32) -> u32 {
        self.slots + index * SLOT_SIZE
    }

    /// Offset of the entry slot.
    pub fn entry_slot(&self) -> u32 {
        self.slots + self.count * SLOT_SIZE
    }

    /// Bytes of slots, the entry slot included.
    pub fn slots_len(&self) -> u32 {
        (self.count + 1) * SLOT_SIZE
    }

    /// The defined function whose stub's call pushed return offset `ret`.
    pub fn function_of_return(&self, ret: u32) -> Option<u32> {
        let rel = ret.checked_sub(self.stubs + STUB_RETURN_OFFSET)?;
        (rel.is_multiple_of(STUB_SIZE) && rel / STUB_SIZE < self.count).then_some(rel / STUB_SIZE)
    }

    /// The machine code of all the stubs, to place at offset `stubs`.
    pub fn x86_64_code(&self) -> Vec<u8> {
        let mut code = Vec::with_capacity((self.count * STUB_SIZE) as usize);
        for f in 0..self.count {
            let at = self.stub(f);
            let rel = |to: u32, next: u32| (i64::from(to) - i64::from(next)) as i32;
            code.extend_from_slice(&[0xff, 0x25]);
            code.extend_from_slice(&rel(self.slot(f), at + STUB_CALL_OFFSET).to_le_bytes());
            code.extend_from_slice(&[0xff, 0x15]);
            code.extend_from_slice(&rel(self.entry_slot(), at + STUB_RETURN_OFFSET).to_le_bytes());
            code.extend_from_slice(&[0xcc; (STUB_SIZE - STUB_RETURN_OFFSET) as usize]);
        }
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_jump_through_their_slot_and_call_through_the_entry_slot() {
        let layout = StubLayout { stubs: 0x100, slots: 0x1000, count: 2 };
        let code = layout.x86_64_code();
        assert_eq!(code.len(), 32);
        let word = |at: usize| i32::from_le_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]]);
        // Stub 1 at 0x110: jmp [rip + d] with rip = 0x116 reaches slot 1 (0x1008).
        assert_eq!(&code[16..18], &[0xff, 0x25]);
        assert_eq!(0x116 + word(18), 0x1008);
        // call [rip + d] with rip = 0x11c reaches the entry slot (0x1010).
        assert_eq!(&code[22..24], &[0xff, 0x15]);
        assert_eq!(0x11c + word(24), 0x1010);
        assert_eq!(layout.function_of_return(0x11c), Some(1));
        assert_eq!(layout.function_of_return(0x10c), Some(0));
        assert_eq!(layout.function_of_return(0x12c), None);
        assert_eq!(layout.function_of_return(0x11d), None);
    }
}
