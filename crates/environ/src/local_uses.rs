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
/// `4^d` (`d` at most 10), saturating. Also which locals are integers
/// (`i32` or `i64`).
#[derive(Clone, Debug, Default)]
pub struct LocalUses {
    uses: Vec<u64>,
    integer: Vec<bool>,
    /// The blocks open at this point, each with whether it is a loop.
    open: Vec<bool>,
    loops: u32,
}

impl LocalUses {
    /// Starts a new count for a body whose locals are integers or not as
    /// `integer` says, in order.
    pub fn reset(&mut self, integer: impl IntoIterator<Item = bool>) {
        self.integer.clear();
        self.integer.extend(integer);
        self.uses.clear();
        self.uses.resize(self.integer.len(), 0);
        self.open.clear();
        self.loops = 0;
    }

    /// The weighted uses, by local index.
    pub fn counts(&self) -> &[u64] {
        &self.uses
    }

    /// Whether local `index` is an `i32` or `i64`.
    pub fn is_integer(&self, index: u32) -> bool {
        self.integer.get(index as usize).copied().unwrap_or(false)
    }

    /// Counts the uses in `body`, whose locals are integers or not as
    /// `integer` says, by reading its operators (it is not validated).
    ///
    /// # Errors
    ///
    /// The body's operators cannot be read.
    pub fn count(
        &mut self,
        body: &FunctionBody<'_>,
        integer: impl IntoIterator<Item = bool>,
    ) -> Result<(), BinaryReaderError> {
        self.reset(integer);
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
    uses.reset(
        (0..validator.len_locals())
            .map(|i| matches!(validator.get_local_type(i), Some(wasmparser::ValType::I32 | wasmparser::ValType::I64))),
    );
    while !reader.eof() {
        let at = reader.original_position();
        reader.visit_operator(&mut Counting { inner: validator.visitor(at), uses })??;
    }
    reader.finish_expression(&validator.visitor(reader.original_position()))?;
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
