//! The `spectest` host module the spec scripts import from.

use anyhow::Result;
use kiln::{
    Global, GlobalType, Linker, Memory, MemoryType, Mutability, SharedMemory, Store, Table, TableType, Val, ValType,
};

/// Defines `spectest::*` in `linker`, creating its items in `store`.
pub fn define(linker: &mut Linker<()>, store: &mut Store<()>) -> Result<()> {
    linker.func_wrap("spectest", "print", || {})?;
    linker.func_wrap("spectest", "print_i32", |_: i32| {})?;
    linker.func_wrap("spectest", "print_i64", |_: i64| {})?;
    linker.func_wrap("spectest", "print_f32", |_: f32| {})?;
    linker.func_wrap("spectest", "print_f64", |_: f64| {})?;
    linker.func_wrap("spectest", "print_i32_f32", |_: i32, _: f32| {})?;
    linker.func_wrap("spectest", "print_f64_f64", |_: f64, _: f64| {})?;
    let g = |store: &mut Store<()>, ty, v| Global::new(store, GlobalType::new(ty, Mutability::Const), v);
    let gi32 = g(store, ValType::I32, Val::I32(666))?;
    let gi64 = g(store, ValType::I64, Val::I64(666))?;
    let gf32 = g(store, ValType::F32, Val::F32(666.6f32.to_bits()))?;
    let gf64 = g(store, ValType::F64, Val::F64(666.6f64.to_bits()))?;
    linker.define("spectest", "global_i32", gi32)?;
    linker.define("spectest", "global_i64", gi64)?;
    linker.define("spectest", "global_f32", gf32)?;
    linker.define("spectest", "global_f64", gf64)?;
    let table = Table::new(&mut *store, TableType::new(ValType::FuncRef, 10, Some(20)), Val::FuncRef(None))?;
    linker.define("spectest", "table", table)?;
    let memory = Memory::new(&mut *store, MemoryType::new(1, Some(2)))?;
    linker.define("spectest", "memory", memory)?;
    let engine = store.engine().clone();
    let shared = SharedMemory::new(&engine, MemoryType::shared(1, 1))?;
    linker.define("spectest", "shared_memory", shared)?;
    Ok(())
}
