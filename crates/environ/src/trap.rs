//! Trap codes: the reasons wasm execution can stop abnormally.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why wasm code trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TrapCode {
    /// The wasm stack (or the host stack beneath it) ran out.
    StackOverflow = 0,
    /// A load or store outside the bounds of linear memory.
    MemoryOutOfBounds = 1,
    /// An atomic access at a misaligned address.
    HeapMisaligned = 2,
    /// A table access outside the bounds of the table.
    TableOutOfBounds = 3,
    /// `call_indirect` through a null table element.
    IndirectCallToNull = 4,
    /// `call_indirect` to a function of another signature.
    BadSignature = 5,
    /// Integer overflow (`i32.div_s` of `INT_MIN / -1`, float-to-int out of range).
    IntegerOverflow = 6,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 7,
    /// Float-to-int conversion of a NaN.
    BadConversionToInteger = 8,
    /// `unreachable` was executed.
    UnreachableCodeReached = 9,
    /// Execution was interrupted (epoch deadline).
    Interrupt = 10,
    /// The store ran out of fuel.
    OutOfFuel = 11,
    /// A null reference was dereferenced.
    NullReference = 12,
    /// `memory.atomic.wait` on a memory that is not shared.
    AtomicWaitNonSharedMemory = 13,
    /// `call_ref` or `return_call_ref` of a null reference.
    NullFunctionReference = 14,
    /// `i31.get_s` or `i31.get_u` of null (GC).
    NullI31Reference = 15,
    /// `ref.cast` of a value not of the target type (GC).
    CastFailure = 16,
    /// A struct access through a null reference (GC).
    NullStructReference = 17,
    /// The GC heap could not provide an object (GC).
    AllocationFailed = 18,
    /// An array access through a null reference (GC).
    NullArrayReference = 19,
    /// An array access outside the array (GC).
    ArrayOutOfBounds = 20,
}

impl TrapCode {
    /// All trap codes, in numeric order.
    pub const ALL: [TrapCode; 21] = [
        TrapCode::StackOverflow,
        TrapCode::MemoryOutOfBounds,
        TrapCode::HeapMisaligned,
        TrapCode::TableOutOfBounds,
        TrapCode::IndirectCallToNull,
        TrapCode::BadSignature,
        TrapCode::IntegerOverflow,
        TrapCode::IntegerDivisionByZero,
        TrapCode::BadConversionToInteger,
        TrapCode::UnreachableCodeReached,
        TrapCode::Interrupt,
        TrapCode::OutOfFuel,
        TrapCode::NullReference,
        TrapCode::AtomicWaitNonSharedMemory,
        TrapCode::NullFunctionReference,
        TrapCode::NullI31Reference,
        TrapCode::CastFailure,
        TrapCode::NullStructReference,
        TrapCode::AllocationFailed,
        TrapCode::NullArrayReference,
        TrapCode::ArrayOutOfBounds,
    ];

    /// Decodes a trap code from its byte, as stored in trap tables.
    pub fn from_u8(b: u8) -> Option<TrapCode> {
        TrapCode::ALL.get(usize::from(b)).copied()
    }

    /// The message the WebAssembly spec tests expect for this trap.
    pub fn message(&self) -> &'static str {
        match self {
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::HeapMisaligned => "unaligned atomic",
            TrapCode::TableOutOfBounds => "undefined element: out of bounds table access",
            TrapCode::IndirectCallToNull => "uninitialized element",
            TrapCode::BadSignature => "indirect call type mismatch",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::IntegerDivisionByZero => "integer divide by zero",
            TrapCode::BadConversionToInteger => "invalid conversion to integer",
            TrapCode::UnreachableCodeReached => "unreachable",
            TrapCode::Interrupt => "interrupt: epoch deadline reached",
            TrapCode::OutOfFuel => "all fuel consumed",
            TrapCode::NullReference => "null reference",
            TrapCode::AtomicWaitNonSharedMemory => "expected shared memory",
            TrapCode::NullFunctionReference => "null function reference",
            TrapCode::NullI31Reference => "null i31 reference",
            TrapCode::CastFailure => "cast failure",
            TrapCode::NullStructReference => "null structure reference",
            TrapCode::AllocationFailed => "allocation failed",
            TrapCode::NullArrayReference => "null array reference",
            TrapCode::ArrayOutOfBounds => "out of bounds array access",
        }
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A sorted table mapping code offsets (within a text blob) to trap codes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrapTable(crate::blob::U32PairTable);

impl TrapTable {
    /// Builds the table from `(code offset, trap code)` pairs sorted by offset.
    pub fn new(traps: &[(u32, TrapCode)]) -> TrapTable {
        let pairs: Vec<(u32, u32)> = traps.iter().map(|(o, c)| (*o, *c as u32)).collect();
        TrapTable(crate::blob::U32PairTable::new(&pairs))
    }

    /// Looks up the trap code for the instruction at `offset`.
    pub fn lookup(&self, offset: u32) -> Option<TrapCode> {
        self.0.exact(offset).and_then(|c| u8::try_from(c).ok()).and_then(TrapCode::from_u8)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the table is well formed (sorted, whole entries, known codes).
    pub fn is_well_formed(&self) -> bool {
        self.0.is_well_formed()
    }
}
