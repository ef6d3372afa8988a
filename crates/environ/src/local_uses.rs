//! How often a function body uses each of its locals, each use weighted
//! by the loops around it: what the baseline compiler picks the locals it
//! keeps in registers by. Counted while the body is validated, so that a
//! lazily compiled function's first call does not read its body an extra
//! time for it, or by reading the body alone.

use crate::error::WasmResult;
use crate::translate::FunctionBodyInput;
use wasmparser::{
    BinaryReaderError, FrameKind, FrameStack, FuncToValidate, FuncValidatorAllocations, FunctionBody, Operator,
    VisitOperator, VisitSimdOperator,
};

/// The uses of each local of one function body (parameters first): a
/// `local.get`, `local.set` or `local.tee` inside `d` nested loops counts
/// `4^d` (`d` at most 10), saturating. Also which of the used locals are
/// integers (`i32` or `i64`).
///
/// Only the locals below the smaller of the local count and the body's
/// size in bytes are counted, so that the work stays proportional to the
/// body however many locals it declares (a few bytes can declare 50,000);
/// a local past that is never used enough to matter in real code.
#[derive(Clone, Debug, Default)]
pub struct LocalUses {
    uses: Vec<u64>,
    integer: Vec<bool>,
    /// The blocks open at this point, each with whether it is a loop.
    open: Vec<bool>,
    loops: u32,
}

impl LocalUses {
    /// Starts a new count for a body of `body_len` bytes with `locals`
    /// locals.
    pub fn reset(&mut self, locals: u32, body_len: u64) {
        // At most `locals`, a `u32`.
        let counted = u64::from(locals).min(body_len) as usize;
        self.uses.clear();
        self.uses.resize(counted, 0);
        self.integer.clear();
        self.integer.resize(counted, false);
        self.open.clear();
        self.loops = 0;
    }

    /// Records, for each local counted as used, whether it is an
    /// integer, as `is_integer` says.
    pub fn mark_integers(&mut self, is_integer: impl Fn(u32) -> bool) {
        for (i, (uses, integer)) in self.uses.iter().zip(self.integer.iter_mut()).enumerate() {
            if *uses > 0 {
                *integer = is_integer(i as u32);
            }
        }
    }

    /// The weighted uses, by local index (only the locals counted).
    pub fn counts(&self) -> &[u64] {
        &self.uses
    }

    /// Whether local `index` was used and is an `i32` or `i64`.
    pub fn is_integer(&self, index: u32) -> bool {
        self.integer.get(index as usize).copied().unwrap_or(false)
    }

    /// Counts the uses in `body`, which has `locals` locals, by reading
    /// its operators (it is not validated); `is_integer` says which
    /// locals are integers.
    ///
    /// # Errors
    ///
    /// The body's operators cannot be read.
    pub fn count(
        &mut self,
        body: &FunctionBody<'_>,
        locals: u32,
        is_integer: impl Fn(u32) -> bool,
    ) -> Result<(), BinaryReaderError> {
        let range = body.range();
        self.reset(locals, range.end - range.start);
        let mut ops = body.get_operators_reader()?;
        while !ops.eof() {
            match ops.read()? {
                Operator::Block { .. } | Operator::If { .. } | Operator::TryTable { .. } | Operator::Try { .. } => {
                    self.block()
                }
                Operator::Loop { .. } => self.loop_(),
                Operator::End => self.end(),
                Operator::LocalGet { local_index }
                | Operator::LocalSet { local_index }
                | Operator::LocalTee { local_index } => self.local(local_index),
                _ => {}
            }
        }
        self.mark_integers(is_integer);
        Ok(())
    }

    fn block(&mut self) {
        self.open.push(false);
    }

    fn loop_(&mut self) {
        self.open.push(true);
        self.loops += 1;
    }

    fn end(&mut self) {
        if self.open.pop() == Some(true) {
            self.loops -= 1;
        }
    }

    fn local(&mut self, index: u32) {
        if let Some(n) = self.uses.get_mut(index as usize) {
            *n = n.saturating_add(1 << (2 * self.loops.min(10)));
        }
    }
}

/// Validates one function body like [`crate::validate_function_body`]
/// (the same checks, operator by operator, in the same order) and counts
/// its locals' uses into `uses` as it goes.
///
/// # Errors
///
/// The first validation error in the body, with its byte offset.
pub fn validate_function_body_counting(
    input: &FunctionBodyInput<'_>,
    allocations: &mut FuncValidatorAllocations,
    uses: &mut LocalUses,
) -> WasmResult<()> {
    let v = &input.validator;
    let borrowed = FuncToValidate { resources: &v.resources, index: v.index, ty: v.ty, features: v.features };
    let mut validator = borrowed.into_validator(std::mem::take(allocations));
    let mut reader = input.body.get_binary_reader();
    validator.read_locals(&mut reader)?;
    reader.set_features(*validator.features());
    let range = input.body.range();
    uses.reset(validator.len_locals(), range.end - range.start);
    while !reader.eof() {
        let at = reader.original_position();
        reader.visit_operator(&mut Counting { inner: validator.visitor(at), uses })??;
    }
    reader.finish_expression(&validator.visitor(reader.original_position()))?;
    uses.mark_integers(|i| {
        matches!(validator.get_local_type(i), Some(wasmparser::ValType::I32 | wasmparser::ValType::I64))
    });
    *allocations = validator.into_allocations();
    Ok(())
}

/// A validator's operator visitor that also counts local uses.
struct Counting<'u, V> {
    inner: V,
    uses: &'u mut LocalUses,
}

/// Forwards every operator to the validator; blocks, loops, ends and
/// local accesses are counted first.
macro_rules! forward_counting {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        $( forward_counting!(one $op $visit $({ $($arg: $argty),* })?); )*
    };
    (one Block $visit:ident { $($arg:ident: $argty:ty),* }) => { forward_counting!(hook block $visit { $($arg: $argty),* }); };
    (one If $visit:ident { $($arg:ident: $argty:ty),* }) => { forward_counting!(hook block $visit { $($arg: $argty),* }); };
    (one TryTable $visit:ident { $($arg:ident: $argty:ty),* }) => { forward_counting!(hook block $visit { $($arg: $argty),* }); };
    (one Try $visit:ident { $($arg:ident: $argty:ty),* }) => { forward_counting!(hook block $visit { $($arg: $argty),* }); };
    (one Loop $visit:ident { $($arg:ident: $argty:ty),* }) => { forward_counting!(hook loop_ $visit { $($arg: $argty),* }); };
    (one End $visit:ident) => {
        fn $visit(&mut self) -> Self::Output {
            self.uses.end();
            self.inner.$visit()
        }
    };
    (one LocalGet $visit:ident { $arg:ident: $argty:ty }) => { forward_counting!(local $visit $arg: $argty); };
    (one LocalSet $visit:ident { $arg:ident: $argty:ty }) => { forward_counting!(local $visit $arg: $argty); };
    (one LocalTee $visit:ident { $arg:ident: $argty:ty }) => { forward_counting!(local $visit $arg: $argty); };
    (one $op:ident $visit:ident $({ $($arg:ident: $argty:ty),* })?) => {
        fn $visit(&mut self $($(, $arg: $argty)*)?) -> Self::Output {
            self.inner.$visit($($($arg),*)?)
        }
    };
    (hook $count:ident $visit:ident { $($arg:ident: $argty:ty),* }) => {
        fn $visit(&mut self $(, $arg: $argty)*) -> Self::Output {
            self.uses.$count();
            self.inner.$visit($($arg),*)
        }
    };
    (local $visit:ident $arg:ident: $argty:ty) => {
        fn $visit(&mut self, $arg: $argty) -> Self::Output {
            self.uses.local($arg);
            self.inner.$visit($arg)
        }
    };
}

impl<'a, V> VisitOperator<'a> for Counting<'_, V>
where
    V: VisitOperator<'a, Output = wasmparser::Result<()>>,
{
    type Output = wasmparser::Result<()>;

    fn simd_visitor(&mut self) -> Option<&mut dyn VisitSimdOperator<'a, Output = Self::Output>> {
        self.inner.simd_visitor()
    }

    wasmparser::for_each_visit_operator!(forward_counting);
}

impl<V: FrameStack> FrameStack for Counting<'_, V> {
    fn current_frame(&self) -> Option<FrameKind> {
        self.inner.current_frame()
    }
}
