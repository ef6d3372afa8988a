//! Constant expressions (global initializers, segment offsets, element
//! items), decoded once at translation time into a small op list.

use serde::{Deserialize, Serialize};

/// One operator of a constant expression.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConstOp {
    /// `i32.const`.
    I32Const(i32),
    /// `i64.const`.
    I64Const(i64),
    /// `f32.const`, as raw bits.
    F32Const(u32),
    /// `f64.const`, as raw bits.
    F64Const(u64),
    /// `v128.const`, as raw bits.
    V128Const(u128),
    /// `ref.null` of any heap type.
    RefNull,
    /// `ref.func`.
    RefFunc(u32),
    /// `global.get`.
    GlobalGet(u32),
    /// `i32.add` (extended-const).
    I32Add,
    /// `i32.sub` (extended-const).
    I32Sub,
    /// `i32.mul` (extended-const).
    I32Mul,
    /// `i64.add` (extended-const).
    I64Add,
    /// `i64.sub` (extended-const).
    I64Sub,
    /// `i64.mul` (extended-const).
    I64Mul,
    /// `ref.i31` (GC): the `i32` operand as an unboxed i31 reference.
    RefI31,
    /// `struct.new $t` (GC): a struct of that module type from its field
    /// values.
    StructNew(u32),
    /// `struct.new_default $t` (GC).
    StructNewDefault(u32),
    /// `array.new $t` (GC): an array of a value repeated.
    ArrayNew(u32),
    /// `array.new_default $t` (GC).
    ArrayNewDefault(u32),
    /// `array.new_fixed $t n` (GC): an array of the `n` operands.
    ArrayNewFixed(u32, u32),
    /// `any.convert_extern` (GC).
    AnyConvertExtern,
    /// `extern.convert_any` (GC).
    ExternConvertAny,
}

/// A validated constant expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstExpr {
    /// The operators, in order; the expression leaves exactly one value.
    pub ops: Vec<ConstOp>,
}

impl ConstExpr {
    /// Decodes a constant expression that the validator has already checked.
    ///
    /// # Errors
    ///
    /// Fails with the reader's error for malformed bytes, or names an
    /// operator that is not allowed in constant expressions.
    pub fn from_wasmparser(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, crate::WasmError> {
        let mut reader = expr.get_operators_reader();
        let mut ops = Vec::new();
        while !reader.eof() {
            let offset = reader.original_position();
            let op = reader.read()?;
            use wasmparser::Operator as O;
            ops.push(match op {
                O::I32Const { value } => ConstOp::I32Const(value),
                O::I64Const { value } => ConstOp::I64Const(value),
                O::F32Const { value } => ConstOp::F32Const(value.bits()),
                O::F64Const { value } => ConstOp::F64Const(value.bits()),
                O::V128Const { value } => ConstOp::V128Const(u128::from_le_bytes(*value.bytes())),
                O::RefNull { .. } => ConstOp::RefNull,
                O::RefFunc { function_index } => ConstOp::RefFunc(function_index),
                O::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
                O::I32Add => ConstOp::I32Add,
                O::I32Sub => ConstOp::I32Sub,
                O::I32Mul => ConstOp::I32Mul,
                O::I64Add => ConstOp::I64Add,
                O::I64Sub => ConstOp::I64Sub,
                O::I64Mul => ConstOp::I64Mul,
                O::RefI31 => ConstOp::RefI31,
                O::AnyConvertExtern => ConstOp::AnyConvertExtern,
                O::ExternConvertAny => ConstOp::ExternConvertAny,
                O::StructNew { struct_type_index } => ConstOp::StructNew(struct_type_index),
                O::StructNewDefault { struct_type_index } => ConstOp::StructNewDefault(struct_type_index),
                O::ArrayNew { array_type_index } => ConstOp::ArrayNew(array_type_index),
                O::ArrayNewDefault { array_type_index } => ConstOp::ArrayNewDefault(array_type_index),
                O::ArrayNewFixed { array_type_index, array_size } => {
                    ConstOp::ArrayNewFixed(array_type_index, array_size)
                }
                O::End => continue,
                other => {
                    return Err(crate::WasmError::Invalid {
                        message: format!("constant expression required: unsupported operator {other:?}"),
                        offset,
                    });
                }
            });
        }
        Ok(ConstExpr { ops })
    }

    /// Whether evaluating the expression allocates a GC object (so it must
    /// be evaluated once, not at each use: the objects have identity).
    pub fn allocates(&self) -> bool {
        self.ops.iter().any(|op| {
            matches!(
                op,
                ConstOp::StructNew(_)
                    | ConstOp::StructNewDefault(_)
                    | ConstOp::ArrayNew(_)
                    | ConstOp::ArrayNewDefault(_)
                    | ConstOp::ArrayNewFixed(..)
                    | ConstOp::AnyConvertExtern
            )
        })
    }

    /// If the expression is a single `i32.const` or `i64.const`, its value.
    pub fn as_const_u64(&self) -> Option<u64> {
        match self.ops.as_slice() {
            [ConstOp::I32Const(v)] => Some(u64::from(*v as u32)),
            [ConstOp::I64Const(v)] => Some(*v as u64),
            _ => None,
        }
    }
}
