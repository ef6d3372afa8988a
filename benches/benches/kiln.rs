//! `cargo bench -p kiln-benches`: host<->wasm call overhead, fib(30),
//! compilation and instantiation, each in units a user can read
//! (ns per call, ms per fib, MB/s compiled, µs per instance).
//!
//! `instantiate_large` also covers a large real wasm32-wasi program when
//! `KILN_BENCH_LARGE_WASI=$(benches/fetch-yosys.sh)` is set; the
//! `instantiate-bench` binary prints the same numbers next to Wasmtime's.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::{Config, Engine, Instance, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store};
use kiln_benches::{CALLS_WAT, FIB_WAT, bigtable_wat};
use std::hint::black_box;

fn engine() -> Engine {
    let mut config = Config::new();
    config.cranelift_debug_verifier(false);
    Engine::new(&config).expect("engine")
}

fn calls(c: &mut Criterion) {
    let engine = engine();
    let module = Module::new(&engine, CALLS_WAT).expect("module");
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "nop", || {}).expect("define");
    let instance = linker.instantiate(&mut store, &module).expect("instance");
    let nop = instance.get_typed_func::<(), ()>(&mut store, "nop").expect("nop");
    let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").expect("add");
    let nop_untyped = instance.get_func(&mut store, "nop").expect("nop");
    let call_host = instance.get_typed_func::<i32, ()>(&mut store, "call_host").expect("call_host");

    let mut g = c.benchmark_group("call");
    g.bench_function("host_to_wasm_typed_nop", |b| b.iter(|| nop.call(&mut store, ()).expect("call")));
    g.bench_function("host_to_wasm_typed_add", |b| {
        b.iter(|| add.call(&mut store, (black_box(1), black_box(2))).expect("call"))
    });
    g.bench_function("host_to_wasm_untyped_nop", |b| {
        b.iter(|| nop_untyped.call(&mut store, &[], &mut []).expect("call"))
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("wasm_to_host_nop_x1000", |b| b.iter(|| call_host.call(&mut store, 1000).expect("call")));
    g.finish();
}

fn fib(c: &mut Criterion) {
    let engine = engine();
    let module = Module::new(&engine, FIB_WAT).expect("module");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instance");
    let fib = instance.get_typed_func::<i32, i32>(&mut store, "fib").expect("fib");
    let mut g = c.benchmark_group("fib");
    g.sample_size(20);
    g.bench_function("fib_30", |b| b.iter(|| assert_eq!(fib.call(&mut store, black_box(30)).expect("call"), 832040)));
    g.finish();
}

fn compile(c: &mut Criterion) {
    let engine = engine();
    let wasm = kiln_benches_wat(&bigtable_wat(10_000, 1 << 20));
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(wasm.len() as u64));
    g.bench_function("bigtable_10k_funcs", |b| b.iter(|| Module::from_binary(&engine, &wasm).expect("compile")));
    g.finish();
}

fn instantiate(c: &mut Criterion) {
    let engine = engine();
    let small = Module::new(&engine, FIB_WAT).expect("module");
    let big = Module::from_binary(&engine, &kiln_benches_wat(&bigtable_wat(10_000, 1 << 20))).expect("module");
    let mut g = c.benchmark_group("instantiate");
    g.bench_function("small_with_store", |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            Instance::new(&mut store, &small, &[]).expect("instance");
        })
    });
    g.bench_function("bigtable_with_store", |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            Instance::new(&mut store, &big, &[]).expect("instance");
        })
    });
    let pre = Linker::new(&engine).instantiate_pre(&big).expect("pre");
    g.bench_function("bigtable_instance_pre", |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            pre.instantiate(&mut store).expect("instance");
        })
    });
    let mut pool = PoolingAllocationConfig::new();
    pool.table_elements(20_000);
    let mut config = Config::new();
    config.cranelift_debug_verifier(false).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let pooled = Engine::new(&config).expect("pooling engine");
    let big_pooled = Module::from_binary(&pooled, &kiln_benches_wat(&bigtable_wat(10_000, 1 << 20))).expect("module");
    let pre = Linker::new(&pooled).instantiate_pre(&big_pooled).expect("pre");
    g.bench_function("bigtable_pooling_instance_pre", |b| {
        b.iter(|| {
            let mut store = Store::new(&pooled, ());
            pre.instantiate(&mut store).expect("instance");
        })
    });
    g.finish();
}

/// Instantiation of module (a) (30,000 functions, a 7,500-element table
/// filled by element segments, 1 MiB data) and, when
/// `KILN_BENCH_LARGE_WASI` names a wasm32-wasi program (see
/// `benches/fetch-yosys.sh`), of that program: default and pooling
/// allocators, on one thread and on two (time per instance is then wall
/// time / instances).
fn instantiate_large(c: &mut Criterion) {
    use kiln_benches::instantiation::{Allocation, Prepared, engine, module_a};
    let mut modules = vec![("a_30k_funcs", module_a())];
    if let Some(path) = std::env::var_os("KILN_BENCH_LARGE_WASI") {
        match std::fs::read(&path) {
            Ok(bytes) => modules.push(("b_large_wasi", bytes)),
            Err(e) => eprintln!("KILN_BENCH_LARGE_WASI: {}: {e}", std::path::Path::new(&path).display()),
        }
    }
    let mut g = c.benchmark_group("instantiate_large");
    g.throughput(Throughput::Elements(1));
    for (name, wasm) in &modules {
        for (alloc_name, allocation) in [("default", Allocation::OnDemand), ("pooling", Allocation::Pooling)] {
            let engine = engine(allocation).expect("engine");
            let prepared = Prepared::new(&engine, wasm).expect("module");
            for threads in [1, 2] {
                g.bench_function(format!("{name}/{alloc_name}/{threads}_thread"), |b| {
                    b.iter_custom(|iters| prepared.run(iters, threads).expect("instantiate"))
                });
            }
        }
    }
    g.finish();
}

/// Encodes text to binary up front, so compile benches measure only compilation.
fn kiln_benches_wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

criterion_group!(benches, calls, fib, compile, instantiate, instantiate_large);
criterion_main!(benches);
