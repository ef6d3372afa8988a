//! Which memory faults are wasm traps: an out-of-bounds access of any kind
//! of memory (guard region, explicit bounds check, shared, imported, host
//! created; both allocators) is a `MemoryOutOfBounds` trap, but a fault at
//! the same trap site whose address lies outside every memory of the store
//! (a bounds-check bug) kills the process instead of passing for a trap.

use kiln::*;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// SIGSEGV's number on Linux, on every architecture Kiln supports.
const SIGSEGV: i32 = 11;

/// Environment variable naming the scenario a child process runs (see
/// `fault_outside_every_memory_kills_the_process`).
const SCENARIO_VAR: &str = "KILN_TEST_MEMORY_FAULT_SCENARIO";

const LOAD_WAT: &str = r#"(module
    (memory (export "m") 1)
    (func (export "load") (param i32) (result i32) local.get 0 i32.load))"#;

/// An engine of `config` with the given allocator (a few pooling slots).
fn make_engine(mut config: Config, pooling: bool) -> Engine {
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(8).total_memories(8).total_tables(8).table_elements(100);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).expect("engine")
}

/// The trap code of an error, if it is a trap.
fn code(r: Result<impl std::fmt::Debug>) -> Option<TrapCode> {
    r.expect_err("should trap").downcast_ref::<Trap>().map(|t| t.code())
}

const OOB: Option<TrapCode> = Some(TrapCode::MemoryOutOfBounds);

#[test]
fn out_of_bounds_in_the_guard_region_is_a_trap() {
    for pooling in [false, true] {
        let engine = make_engine(Config::new(), pooling);
        let module = Module::new(
            &engine,
            r#"(module (memory 1)
            (func (export "load") (param i32) (result i32) local.get 0 i32.load)
            (func (export "far") (param i32) (result i32) local.get 0 i32.load offset=0xffffffff)
            (func (export "store") (param i32) local.get 0 i64.const 1 i64.store))"#,
        )
        .unwrap();
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
        let far = i.get_typed_func::<i32, i32>(&mut store, "far").unwrap();
        let st = i.get_typed_func::<i32, ()>(&mut store, "store").unwrap();
        for addr in [65536, 65533, -1] {
            assert_eq!(code(load.call(&mut store, addr)), OOB, "pooling {pooling}: load {addr}");
        }
        assert_eq!(code(far.call(&mut store, -1)), OOB, "pooling {pooling}");
        assert_eq!(code(st.call(&mut store, 65529)), OOB, "pooling {pooling}");
        assert_eq!(load.call(&mut store, 65532).unwrap(), 0, "pooling {pooling}: the store is usable afterwards");
    }
}

#[test]
fn out_of_bounds_with_explicit_checks_is_a_trap() {
    // A small reservation (32-bit) and memory64 both compare against the
    // memory's length; the loads still carry the trap code.
    let mut small = Config::new();
    small.memory_reservation(1 << 20);
    let mut mem64 = Config::new();
    mem64.wasm_memory64(true);
    for pooling in [false, true] {
        let engine = make_engine(small.clone(), pooling);
        let module = Module::new(&engine, LOAD_WAT).unwrap();
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
        assert_eq!(load.call(&mut store, 65532).unwrap(), 0);
        for addr in [65533, 1 << 20, -1] {
            assert_eq!(code(load.call(&mut store, addr)), OOB, "pooling {pooling}: small reservation, load {addr}");
        }

        let engine = make_engine(mem64.clone(), pooling);
        let module = Module::new(
            &engine,
            r#"(module (memory i64 1)
            (func (export "load") (param i64) (result i64) local.get 0 i64.load)
            (func (export "far") (param i64) (result i64) local.get 0 i64.load offset=0x100000000))"#,
        )
        .unwrap();
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let load = i.get_typed_func::<i64, i64>(&mut store, "load").unwrap();
        let far = i.get_typed_func::<i64, i64>(&mut store, "far").unwrap();
        assert_eq!(load.call(&mut store, 65528).unwrap(), 0);
        for addr in [65529, 1 << 32, -1, i64::MAX] {
            assert_eq!(code(load.call(&mut store, addr)), OOB, "pooling {pooling}: memory64, load {addr}");
        }
        assert_eq!(code(far.call(&mut store, 0)), OOB, "pooling {pooling}: memory64, offset");
    }
}

#[test]
fn out_of_bounds_in_shared_memories_is_a_trap() {
    let wat_defined = r#"(module (memory 1 2 shared)
        (func (export "load") (param i32) (result i32) local.get 0 i32.load)
        (func (export "atomic") (param i32) (result i32) local.get 0 i32.atomic.load))"#;
    let wat_imported = r#"(module (import "" "m" (memory 1 2 shared))
        (func (export "load") (param i32) (result i32) local.get 0 i32.load)
        (func (export "atomic") (param i32) (result i32) local.get 0 i32.atomic.load))"#;
    for pooling in [false, true] {
        let engine = make_engine(Config::new(), pooling);
        let shared = SharedMemory::new(&engine, MemoryType::shared(1, 2)).unwrap();
        for (what, wat) in [("defined", wat_defined), ("imported", wat_imported)] {
            let module = Module::new(&engine, wat).unwrap();
            let mut store = Store::new(&engine, ());
            let imports: Vec<Extern> = if what == "imported" { vec![shared.clone().into()] } else { vec![] };
            let i = Instance::new(&mut store, &module, &imports).unwrap();
            for f in ["load", "atomic"] {
                let f = i.get_typed_func::<i32, i32>(&mut store, f).unwrap();
                assert_eq!(f.call(&mut store, 65532).unwrap(), 0);
                for addr in [65536, -4] {
                    assert_eq!(code(f.call(&mut store, addr)), OOB, "pooling {pooling}: {what} shared memory, {addr}");
                }
            }
        }
    }
}

#[test]
fn out_of_bounds_in_imported_memories_is_a_trap() {
    let importer_wat = r#"(module (import "" "m" (memory 1))
        (func (export "load") (param i32) (result i32) local.get 0 i32.load))"#;
    for pooling in [false, true] {
        let engine = make_engine(Config::new(), pooling);
        let exporter = Module::new(&engine, LOAD_WAT).unwrap();
        let importer = Module::new(&engine, importer_wat).unwrap();
        let mut store = Store::new(&engine, ());
        // A memory defined by another instance of the same store, and one
        // created by the host.
        let other = Instance::new(&mut store, &exporter, &[]).unwrap();
        let defined = other.get_memory(&mut store, "m").unwrap();
        let host = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
        for (what, m) in [("instance", defined), ("host", host)] {
            let i = Instance::new(&mut store, &importer, &[m.into()]).unwrap();
            let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
            assert_eq!(load.call(&mut store, 65532).unwrap(), 0);
            for addr in [65536, -1] {
                assert_eq!(code(load.call(&mut store, addr)), OOB, "pooling {pooling}: {what} memory, {addr}");
            }
        }
    }
}

/// A host function of store A runs wasm of store B that traps: the trap is
/// B's (its memory is B's), and A's own out-of-bounds access afterwards is
/// A's.
#[test]
fn out_of_bounds_in_a_nested_store_is_a_trap() {
    let engine = Engine::default();
    let inner_module = Module::new(&engine, LOAD_WAT).unwrap();
    let outer_module = Module::new(
        &engine,
        r#"(module
        (import "" "inner" (func $inner (param i32) (result i32)))
        (memory 1)
        (func (export "run") (param i32) (result i32)
            local.get 0 call $inner drop
            local.get 0 i32.load))"#,
    )
    .unwrap();
    let mut inner_store = Store::new(&engine, ());
    let i = Instance::new(&mut inner_store, &inner_module, &[]).unwrap();
    let inner_load = i.get_typed_func::<i32, i32>(&mut inner_store, "load").unwrap();
    let mut store = Store::new(&engine, (inner_store, inner_load, Vec::new()));
    type Data = (Store<()>, TypedFunc<i32, i32>, Vec<Option<TrapCode>>);
    let inner = Func::wrap(&mut store, |mut caller: Caller<'_, Data>, addr: i32| -> i32 {
        let (s, f, seen) = caller.data_mut();
        let r = f.call(&mut *s, addr);
        seen.push(r.err().and_then(|e| e.downcast_ref::<Trap>().map(|t| t.code())));
        0
    });
    let i = Instance::new(&mut store, &outer_module, &[inner.into()]).unwrap();
    let run = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 8).unwrap(), 0);
    assert_eq!(code(run.call(&mut store, 65536)), OOB);
    assert_eq!(store.data().2, [None, OOB]);
}

/// Runs `scenario` (see below) and prints its outcome. Returns only if the
/// call came back: for a fault outside every memory it must not.
fn run_scenario(scenario: &str) {
    let (pooling, target) = scenario.split_once(':').expect("allocator:target");
    let engine = make_engine(Config::new(), pooling == "pooling");
    let module = Module::new(&engine, LOAD_WAT).unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
    let memory = i.get_memory(&mut store, "m").unwrap();
    // Another store's memory, kept alive (and its guard region mapped
    // inaccessible) until the end.
    let mut other_store = Store::new(&engine, ());
    let other = Instance::new(&mut other_store, &module, &[]).unwrap();
    let other_memory = other.get_memory(&mut other_store, "m").unwrap();
    // Addresses 1 MiB into a memory of one page: inaccessible, inside the
    // reservation.
    let base = match target {
        // Inside this store's memory: an out-of-bounds access, still a trap
        // (the control: the redirected load faults at a trap site).
        "own" => memory.data(&store).as_ptr().wrapping_add(1 << 20),
        // Inside a memory of another store: no memory of this store.
        "other_store" => other_memory.data(&other_store).as_ptr().wrapping_add(1 << 20),
        // The null page, which is never mapped: no memory at all.
        "null_page" => std::ptr::null::<u8>().wrapping_add(0x100),
        _ => panic!("unknown scenario {scenario}"),
    };
    // SAFETY: the only access wasm makes to `memory` afterwards is
    // `load(0)`, which reads `base`: unmapped (the null page) or an
    // inaccessible page of a live memory's reservation, so it faults.
    unsafe { __private_testing::set_memory_base(&mut store, memory, base.cast_mut()) };
    let r = load.call(&mut store, 0);
    println!("{scenario}: the load returned {r:?}");
    drop(other_store);
}

/// A load at a trap site that faults outside every memory of the store
/// kills the process with SIGSEGV (the fault is passed on, and the default
/// action runs) instead of coming back as an out-of-bounds trap. Each
/// scenario runs in a child process: this test binary, run again for this
/// test alone with `SCENARIO_VAR` set.
#[test]
fn fault_outside_every_memory_kills_the_process() {
    if let Ok(scenario) = std::env::var(SCENARIO_VAR) {
        run_scenario(&scenario);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for pooling in ["on_demand", "pooling"] {
        for target in ["own", "other_store", "null_page"] {
            let scenario = format!("{pooling}:{target}");
            let out = Command::new(&exe)
                .args([
                    "--exact",
                    "memory_faults::fault_outside_every_memory_kills_the_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(SCENARIO_VAR, &scenario)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let context = format!("{scenario}: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
            let trapped =
                stdout.contains("out of bounds memory access") || stderr.contains("out of bounds memory access");
            if target == "own" {
                assert!(out.status.success() && trapped, "{context}");
            } else {
                assert_eq!(out.status.signal(), Some(SIGSEGV), "{context}");
                assert!(!trapped, "{context}");
            }
        }
    }
}
