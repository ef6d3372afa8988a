//! Mapping between Kiln's trap codes and Cranelift's.

use cranelift_codegen::ir;
use kiln_environ::TrapCode;

/// The Cranelift trap code used to encode `code`.
pub fn to_clif(code: TrapCode) -> ir::TrapCode {
    match code {
        TrapCode::StackOverflow => ir::TrapCode::STACK_OVERFLOW,
        TrapCode::MemoryOutOfBounds => ir::TrapCode::HEAP_OUT_OF_BOUNDS,
        TrapCode::IntegerOverflow => ir::TrapCode::INTEGER_OVERFLOW,
        TrapCode::IntegerDivisionByZero => ir::TrapCode::INTEGER_DIVISION_BY_ZERO,
        TrapCode::BadConversionToInteger => ir::TrapCode::BAD_CONVERSION_TO_INTEGER,
        other => ir::TrapCode::user(other as u8 + 1).expect("nonzero user trap code"),
    }
}

/// Kiln's trap code for a Cranelift trap code found in a compiled function.
pub fn from_clif(code: ir::TrapCode) -> Option<TrapCode> {
    TrapCode::ALL.iter().copied().find(|c| to_clif(*c) == code)
}
