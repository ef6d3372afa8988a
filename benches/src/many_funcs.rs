//! A generated module of thousands of small functions, for measuring what
//! a one-function edit costs with the function cache warm (`edit-bench`,
//! `gen-many-funcs`).
//!
//! Each function loads and stores linear memory, mixes its arguments with
//! a constant of its own, calls one or two earlier functions, and some
//! branch or loop; four signatures take turns. `_start` calls a few of the
//! first functions, so `kiln run` runs it in no time. Edit number `e`
//! (from 1) changes the constant of function [`edited_function`]`(e)`;
//! the module after `k` edits has edits 1 to `k` applied, so it differs
//! from the module after `k - 1` edits in one function body, as a program
//! does from one build to the next while someone works on it.

use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, MemArg, MemArgTarget,
    MemorySection, MemoryType, Module, TypeSection, ValType,
};

/// The signatures functions take turns with: `(params, has a result)`.
const SIGNATURES: [(&[ValType], bool); 4] =
    [(&[ValType::I32], true), (&[ValType::I32, ValType::I32], true), (&[ValType::I32], false), (&[], true)];

/// A small deterministic generator (SplitMix64), so every run of the
/// benchmark builds the same module.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }
}

/// The function edit number `edit` changes, in a module of `funcs`
/// functions. 7,919 is prime, so unless `funcs` is a multiple of it, any
/// `funcs` consecutive edits change different functions.
pub fn edited_function(funcs: u32, edit: u32) -> u32 {
    (edit.wrapping_mul(7919).wrapping_add(13)) % funcs.max(1)
}

/// The module: `funcs` functions (at least one) plus `_start`, after
/// `edits` edits (0: the original).
pub fn many_funcs_wasm(funcs: u32, edits: u32) -> Vec<u8> {
    let funcs = funcs.max(1);
    let mut delta = vec![0i32; funcs as usize];
    for e in 1..=edits {
        let d = &mut delta[edited_function(funcs, e) as usize];
        *d = d.wrapping_add(e as i32);
    }
    let mut types = TypeSection::new();
    for (params, result) in SIGNATURES {
        types.ty().function(params.iter().copied(), if result { vec![ValType::I32] } else { vec![] });
    }
    types.ty().function([], []);
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut rng = Rng(0x6b69_6c6e);
    for i in 0..funcs {
        functions.function(i % 4);
        let constant = (rng.next() as i32).wrapping_add(delta[i as usize]);
        code.function(&small_function(i, constant, &mut rng));
    }
    let start = funcs;
    functions.function(4);
    code.function(&start_function(funcs));
    let mut memories = MemorySection::new();
    memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, start);
    exports.export("memory", ExportKind::Memory, 0);
    let mut module = Module::new();
    module.section(&types).section(&functions).section(&memories).section(&exports).section(&code);
    module.finish()
}

fn mem(offset: u64) -> MemArg {
    MemArg { offset, align: 2, target: MemArgTarget::Memory(0), ordering: None }
}

/// Pushes the arguments of a call to a function of signature `sig`.
fn push_args(f: &mut Function, sig: u32, value: Instruction<'_>) {
    for _ in 0..SIGNATURES[sig as usize].0.len() {
        f.instruction(&value);
    }
}

/// Function `i`: locals `a` (the first argument, or a fresh local) and
/// `t`; an address from `a`, a load, arithmetic with `constant`, calls to
/// earlier functions, a store, and a branch or a short loop.
fn small_function(i: u32, constant: i32, rng: &mut Rng) -> Function {
    use Instruction as I;
    let sig = i % 4;
    let params = SIGNATURES[sig as usize].0.len() as u32;
    // Locals after the parameters: `a` when there is no parameter, then `t`.
    let a = 0;
    let t = params.max(1);
    let mut f = Function::new([(t + 1 - params, ValType::I32)]);
    let addr = |f: &mut Function| {
        f.instruction(&I::LocalGet(a)).instruction(&I::I32Const(0xfffc)).instruction(&I::I32And);
    };
    addr(&mut f);
    f.instruction(&I::I32Load(mem(u64::from(rng.below(64)) * 4)));
    f.instruction(&I::I32Const(constant)).instruction(&I::I32Add).instruction(&I::LocalSet(t));
    if params == 2 {
        f.instruction(&I::LocalGet(t))
            .instruction(&I::LocalGet(1))
            .instruction(&I::I32Xor)
            .instruction(&I::LocalSet(t));
    }
    for _ in 0..1 + rng.below(2) {
        if i == 0 {
            break;
        }
        let callee = i - 1 - rng.below(i.min(200));
        let callee_sig = callee % 4;
        push_args(&mut f, callee_sig, I::LocalGet(t));
        f.instruction(&I::Call(callee));
        if SIGNATURES[callee_sig as usize].1 {
            f.instruction(&I::LocalGet(t)).instruction(&I::I32Add).instruction(&I::LocalSet(t));
        }
    }
    match rng.below(3) {
        0 => {
            f.instruction(&I::LocalGet(t)).instruction(&I::I32Const(1)).instruction(&I::I32And);
            f.instruction(&I::If(BlockType::Empty));
            f.instruction(&I::LocalGet(t)).instruction(&I::I32Const(rng.below(31) as i32 + 1)).instruction(&I::I32Rotl);
            f.instruction(&I::LocalSet(t)).instruction(&I::Else);
            f.instruction(&I::LocalGet(t))
                .instruction(&I::I32Const(0x9e37))
                .instruction(&I::I32Mul)
                .instruction(&I::LocalSet(t));
            f.instruction(&I::End);
        }
        1 => {
            // A loop of at most 7 rounds, counted down in `a`.
            f.instruction(&I::LocalGet(t))
                .instruction(&I::I32Const(7))
                .instruction(&I::I32And)
                .instruction(&I::LocalSet(a));
            f.instruction(&I::Block(BlockType::Empty)).instruction(&I::Loop(BlockType::Empty));
            f.instruction(&I::LocalGet(a)).instruction(&I::I32Eqz).instruction(&I::BrIf(1));
            f.instruction(&I::LocalGet(t)).instruction(&I::LocalGet(a)).instruction(&I::I32Mul);
            f.instruction(&I::I32Const(3)).instruction(&I::I32Add).instruction(&I::LocalSet(t));
            f.instruction(&I::LocalGet(a))
                .instruction(&I::I32Const(1))
                .instruction(&I::I32Sub)
                .instruction(&I::LocalSet(a));
            f.instruction(&I::Br(0)).instruction(&I::End).instruction(&I::End);
        }
        _ => {
            f.instruction(&I::LocalGet(t)).instruction(&I::I32Const(13)).instruction(&I::I32ShrU);
            f.instruction(&I::LocalGet(t)).instruction(&I::I32Xor).instruction(&I::LocalSet(t));
        }
    }
    addr(&mut f);
    f.instruction(&I::LocalGet(t)).instruction(&I::I32Store(mem(u64::from(rng.below(64)) * 4)));
    if SIGNATURES[sig as usize].1 {
        f.instruction(&I::LocalGet(t));
    }
    f.instruction(&I::End);
    f
}

/// `_start`: calls the first few functions with small arguments (each
/// function calls only earlier ones, so this stays quick).
fn start_function(funcs: u32) -> Function {
    let mut f = Function::new([]);
    for callee in 0..funcs.min(8) {
        let sig = callee % 4;
        push_args(&mut f, sig, Instruction::I32Const(3));
        f.instruction(&Instruction::Call(callee));
        if SIGNATURES[sig as usize].1 {
            f.instruction(&Instruction::Drop);
        }
    }
    f.instruction(&Instruction::End);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_deterministic_and_each_edit_changes_one_function() {
        let base = many_funcs_wasm(300, 0);
        wasmparser::Validator::new().validate_all(&base).expect("valid");
        assert_eq!(base, many_funcs_wasm(300, 0));
        let bodies = |w: &[u8]| -> Vec<Vec<u8>> {
            wasmparser::Parser::new(0)
                .parse_all(w)
                .filter_map(|p| match p {
                    Ok(wasmparser::Payload::CodeSectionEntry(b)) => {
                        Some(w[b.range().start as usize..b.range().end as usize].to_vec())
                    }
                    _ => None,
                })
                .collect()
        };
        let mut previous = base;
        for edits in 1..=5 {
            let edited = many_funcs_wasm(300, edits);
            wasmparser::Validator::new().validate_all(&edited).expect("valid");
            let changed: Vec<usize> = bodies(&previous)
                .iter()
                .zip(bodies(&edited))
                .enumerate()
                .filter(|(_, (a, b))| *a != b)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(changed, vec![edited_function(300, edits) as usize]);
            previous = edited;
        }
    }
}
