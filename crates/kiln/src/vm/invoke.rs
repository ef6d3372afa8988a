//! The argument/result buffer of calls into wasm.

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
