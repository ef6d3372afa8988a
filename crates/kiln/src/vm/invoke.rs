//! The argument/result buffer of calls into wasm, and the register
//! classes, shapes and register files of the direct entry (typed calls
//! whose values all travel in registers).

use super::vmcontext::ValRaw;

/// Runs `f` with `n` zeroed value slots (at most [`MAX_STACK_VALUES`]) on
/// the stack: the typed call path's argument/result buffer, zeroing only
/// the slots it uses.
#[inline(always)]
pub fn with_stack_values<R>(n: usize, f: impl FnOnce(&mut [ValRaw]) -> R) -> R {
    let mut buf = [const { std::mem::MaybeUninit::<ValRaw>::uninit() }; MAX_STACK_VALUES];
    let n = n.min(MAX_STACK_VALUES);
    for slot in &mut buf[..n] {
        slot.write(ValRaw::default());
    }
    // SAFETY: the first `n` slots were just initialized; `MaybeUninit<T>`
    // has the layout of `T`.
    let values = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<ValRaw>(), n) };
    f(values)
}

/// The largest number of slots [`with_stack_values`] provides: 16
/// parameters or results, plus one so an empty signature still has a slot.
pub const MAX_STACK_VALUES: usize = 17;

/// Register class of a value passed in registers: not passable (a
/// reference or a `v128`: such calls go through the value slots).
pub const REG_NONE: u8 = 0;
/// Register class of `i32` and `i64` values: general-purpose registers.
pub const REG_INT: u8 = 1;
/// Register class of `f32` and `f64` values: vector registers.
pub const REG_FLOAT: u8 = 2;

/// Most integer parameters passed in registers (after the two contexts).
pub const REG_INT_PARAMS: usize = 4;
/// Most float parameters passed in registers.
pub const REG_FLOAT_PARAMS: usize = 8;
/// Most integer results returned in registers.
pub const REG_INT_RESULTS: usize = 4;
/// Most float results returned in registers.
pub const REG_FLOAT_RESULTS: usize = 4;

/// The register class of a value type.
pub fn reg_class(t: kiln_environ::WasmValType) -> u8 {
    use kiln_environ::WasmValType as T;
    match t {
        T::I32 | T::I64 => REG_INT,
        T::F32 | T::F64 => REG_FLOAT,
        T::V128 | T::Ref(_) => REG_NONE,
    }
}

/// The register shape of a signature whose parameters and results have
/// the register classes `params` and `results`: `Some` exactly when a
/// direct entry can call a function of that signature with every value in
/// a register (see `traphandlers::enter_wasm_regs`), and then equal for
/// two signatures exactly when their class sequences are equal. `None` on
/// architectures without a direct entry.
pub const fn reg_shape(params: &[u8], results: &[u8]) -> Option<u64> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    // Two bits per value (its class), three for the separator; at most
    // 4 + 8 parameters, 4 + 4 results and the separator fit 64 bits.
    let mut shape = 0u64;
    let (mut ints, mut floats) = (0, 0);
    let mut i = 0;
    while i < params.len() {
        match params[i] {
            REG_INT => ints += 1,
            REG_FLOAT => floats += 1,
            _ => return None,
        }
        shape = shape << 2 | params[i] as u64;
        i += 1;
    }
    if ints > REG_INT_PARAMS || floats > REG_FLOAT_PARAMS {
        return None;
    }
    shape = shape << 2 | 3;
    let (mut ints, mut floats) = (0, 0);
    let mut i = 0;
    while i < results.len() {
        match results[i] {
            REG_INT => ints += 1,
            REG_FLOAT => floats += 1,
            _ => return None,
        }
        shape = shape << 2 | results[i] as u64;
        i += 1;
    }
    if ints > REG_INT_RESULTS || floats > REG_FLOAT_RESULTS {
        return None;
    }
    Some(shape)
}

/// Whether any of `classes` is [`REG_FLOAT`].
pub const fn any_float(classes: &[u8]) -> bool {
    let mut i = 0;
    while i < classes.len() {
        if classes[i] == REG_FLOAT {
            return true;
        }
        i += 1;
    }
    false
}

/// The register shape of `ty` (see [`reg_shape`]).
pub fn func_reg_shape(ty: &kiln_environ::FuncType) -> Option<u64> {
    if ty.params().len() > REG_INT_PARAMS + REG_FLOAT_PARAMS || ty.results().len() > REG_INT_RESULTS + REG_FLOAT_RESULTS
    {
        return None;
    }
    let mut p = [REG_NONE; REG_INT_PARAMS + REG_FLOAT_PARAMS];
    let mut r = [REG_NONE; REG_INT_RESULTS + REG_FLOAT_RESULTS];
    for (slot, t) in p.iter_mut().zip(ty.params()) {
        *slot = reg_class(*t);
    }
    for (slot, t) in r.iter_mut().zip(ty.results()) {
        *slot = reg_class(*t);
    }
    reg_shape(&p[..ty.params().len()], &r[..ty.results().len()])
}

/// The arguments of a direct entry, by register class, each in the order
/// of the parameters of its class (an `i32` or `f32` in the low bits).
#[derive(Clone, Copy, Default, Debug)]
pub struct RegArgs {
    /// Integer parameters.
    pub ints: [u64; REG_INT_PARAMS],
    /// Float parameters, as bits.
    pub floats: [u64; REG_FLOAT_PARAMS],
}

/// The results of a direct entry, by register class, as [`RegArgs`]. The
/// registers no result of the signature uses hold unspecified bits.
#[derive(Clone, Copy, Default, Debug)]
pub struct RegResults {
    /// Integer results.
    pub ints: [u64; REG_INT_RESULTS],
    /// Float results, as bits.
    pub floats: [u64; REG_FLOAT_RESULTS],
}
