//! Tables: untouched elements cost no memory and read as the table's
//! initial value; store limits cover tables.

use kiln::*;

/// The table bomb: 20 tables of 10,000,000 funcref elements each, in 131
/// bytes. Filled eagerly it took 1.6 GB of resident memory.
fn table_bomb() -> Vec<u8> {
    let tables = "(table 10000000 funcref)".repeat(20);
    wat::parse_str(format!("(module {tables})")).expect("valid module")
}

/// Set in the child process that measures the bomb's resident memory.
const CHILD_ENV: &str = "KILN_TEST_TABLE_BOMB_CHILD";

/// The process's peak resident set size in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM value")
}

/// What the child does: instantiate the bomb, create and grow more huge
/// tables (null, and a function as initial value), touch no element, and
/// report the peak resident memory.
fn bomb_child() {
    let engine = Engine::default();
    let bomb = Module::new(&engine, table_bomb()).expect("compile bomb");
    let mut store = Store::new(&engine, ());
    Instance::new(&mut store, &bomb, &[]).expect("instantiate bomb");
    let f = Func::wrap(&mut store, || 7i32);
    let funcs = |min| TableType::new(ValType::FuncRef, min, None);
    Table::new(&mut store, funcs(10_000_000), Val::FuncRef(Some(f))).expect("host table");
    let host = Table::new(&mut store, funcs(0), Val::FuncRef(Some(f))).expect("host table");
    assert_eq!(host.grow(&mut store, 10_000_000, Val::FuncRef(Some(f))).expect("grow"), 0);
    let others = Module::new(
        &engine,
        r#"(module
            (table 10000000 externref)
            (table $n 0 funcref)
            (table $e 0 externref)
            (func (export "grow") (result i32)
                (i32.add (table.grow $n (ref.null func) (i32.const 10000000))
                         (table.grow $e (ref.null extern) (i32.const 10000000)))))"#,
    )
    .expect("compile");
    let i = Instance::new(&mut store, &others, &[]).expect("instantiate");
    let grow = i.get_typed_func::<(), i32>(&mut store, "grow").expect("grow");
    assert_eq!(grow.call(&mut store, ()).expect("grow"), 0);
    println!("peak_rss_kib={}", peak_rss_kib());
}

/// 260 million untouched table elements (2 GB if written) keep the peak
/// resident memory of a process small. Measured in a child process that
/// runs only this test, so that no other test's memory counts.
#[test]
fn table_bomb_costs_no_resident_memory() {
    if std::env::var_os(CHILD_ENV).is_some() {
        bomb_child();
        return;
    }
    assert_eq!(table_bomb().len(), 131);
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["tables::table_bomb_costs_no_resident_memory", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let kib: u64 = stdout
        .lines()
        .find_map(|l| l.split_once("peak_rss_kib="))
        .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no measurement in: {stdout}"));
    println!("peak RSS with the table bomb instantiated: {kib} KiB");
    assert!(kib < 64 * 1024, "peak RSS {kib} KiB");
}

/// `table.copy`, `table.fill`, `table.init` and `table.get` over elements
/// nobody touched, in lazily initialized tables (from segments) and in
/// tables with a default value, within one table and across two, with
/// segments applied lazily and eagerly.
#[test]
fn bulk_operations_over_untouched_elements() -> Result<()> {
    for lazy in [true, false] {
        let mut config = Config::new();
        config.table_lazy_init(lazy);
        bulk_operations(&Engine::new(&config)?)?;
    }
    Ok(())
}

/// `$lazy` starts lazily initialized from a segment, `$dflt` (from the
/// host) with function `$c` (returning 3) in every element.
const BULK: &str = r#"(module
    (import "host" "dflt" (table $dflt 20 funcref))
    (type $r (func (result i32)))
    (func $a (result i32) i32.const 1)
    (func $b (result i32) i32.const 2)
    (table $lazy 20 funcref)
    (elem (table $lazy) (i32.const 2) func $a $b)
    (elem $passive func $b $a)
    (func (export "lazy") (param i32) (result i32)
        (if (result i32) (ref.is_null (table.get $lazy (local.get 0)))
            (then (i32.const 0)) (else (call_indirect $lazy (type $r) (local.get 0)))))
    (func (export "dflt") (param i32) (result i32)
        (if (result i32) (ref.is_null (table.get $dflt (local.get 0)))
            (then (i32.const 0)) (else (call_indirect $dflt (type $r) (local.get 0)))))
    (func (export "copy_lazy") (param i32 i32 i32) (table.copy $lazy $lazy (local.get 0) (local.get 1) (local.get 2)))
    (func (export "copy_dflt") (param i32 i32 i32) (table.copy $dflt $dflt (local.get 0) (local.get 1) (local.get 2)))
    (func (export "lazy_to_dflt") (param i32 i32 i32) (table.copy $dflt $lazy (local.get 0) (local.get 1) (local.get 2)))
    (func (export "dflt_to_lazy") (param i32 i32 i32) (table.copy $lazy $dflt (local.get 0) (local.get 1) (local.get 2)))
    (func (export "fill_dflt") (param i32 i32) (table.fill $dflt (local.get 0) (ref.func $a) (local.get 1)))
    (func (export "fill_lazy_null") (param i32 i32) (table.fill $lazy (local.get 0) (ref.null func) (local.get 1)))
    (func (export "init_dflt") (param i32) (table.init $dflt $passive (local.get 0) (i32.const 0) (i32.const 2))))"#;

/// Calls export `name` of `i` with i32 arguments; its i32 result, or 0.
fn call(store: &mut Store<()>, i: &Instance, name: &str, args: &[i32]) -> Result<i32> {
    let f = i.get_func(&mut *store, name).expect("export");
    let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
    let mut results = vec![Val::I32(0); f.ty(&*store).results().len()];
    f.call(&mut *store, &params, &mut results)?;
    Ok(results.first().and_then(Val::i32).unwrap_or(0))
}

/// What each element of table `which` ("lazy" or "dflt") of `i` calls:
/// 1 for $a, 2 for $b, 3 for $c, 0 for null.
fn contents(store: &mut Store<()>, i: &Instance, which: &str) -> Result<Vec<i32>> {
    (0..20).map(|k| call(store, i, which, &[k])).collect()
}

/// `base` with the elements from `at` on replaced by `values`.
fn with(base: &[i32], at: usize, values: &[i32]) -> Vec<i32> {
    let mut v = base.to_vec();
    v[at..at + values.len()].copy_from_slice(values);
    v
}

fn bulk_operations(engine: &Engine) -> Result<()> {
    let module = Module::new(engine, BULK)?;
    let mut store = Store::new(engine, ());
    let fresh = |store: &mut Store<()>| {
        let c = Func::wrap(&mut *store, || 3i32);
        let dflt = Table::new(&mut *store, TableType::new(ValType::FuncRef, 20, None), Val::FuncRef(Some(c)))?;
        Instance::new(store, &module, &[dflt.into()])
    };
    let lazy0 = with(&[0; 20], 2, &[1, 2]);
    let dflt0 = [3; 20];

    // Overlapping copies within $lazy over untouched elements, backwards
    // (destination after source) and forwards.
    let i = fresh(&mut store)?;
    call(&mut store, &i, "copy_lazy", &[3, 1, 4])?;
    assert_eq!(contents(&mut store, &i, "lazy")?, with(&lazy0, 3, &[0, 1, 2, 0]));
    let i = fresh(&mut store)?;
    call(&mut store, &i, "copy_lazy", &[0, 1, 4])?;
    assert_eq!(contents(&mut store, &i, "lazy")?, with(&lazy0, 0, &[0, 1, 2, 0]));

    // $dflt: everything reads as $c until written.
    let i = fresh(&mut store)?;
    call(&mut store, &i, "copy_dflt", &[5, 3, 10])?;
    assert_eq!(contents(&mut store, &i, "dflt")?, dflt0);
    call(&mut store, &i, "fill_dflt", &[4, 2])?;
    call(&mut store, &i, "copy_dflt", &[5, 3, 4])?;
    call(&mut store, &i, "init_dflt", &[15])?;
    let want = with(&with(&dflt0, 4, &[1, 3, 1, 1, 3]), 15, &[2, 1]);
    assert_eq!(contents(&mut store, &i, "dflt")?, want);

    // Across tables: untouched elements carry the source table's values.
    let i = fresh(&mut store)?;
    call(&mut store, &i, "lazy_to_dflt", &[0, 1, 4])?;
    call(&mut store, &i, "dflt_to_lazy", &[10, 10, 2])?;
    call(&mut store, &i, "fill_lazy_null", &[3, 1])?;
    assert_eq!(contents(&mut store, &i, "dflt")?, with(&dflt0, 0, &[0, 1, 2, 0]));
    assert_eq!(contents(&mut store, &i, "lazy")?, with(&with(&lazy0, 3, &[0]), 10, &[3, 3]));
    let i = fresh(&mut store)?;
    call(&mut store, &i, "dflt_to_lazy", &[1, 0, 2])?;
    assert_eq!(contents(&mut store, &i, "lazy")?, with(&lazy0, 1, &[3, 3]));

    // Out of bounds: a trap, nothing copied.
    let i = fresh(&mut store)?;
    assert!(call(&mut store, &i, "lazy_to_dflt", &[0, 10, 11]).is_err());
    assert!(call(&mut store, &i, "dflt_to_lazy", &[10, 0, 11]).is_err());
    assert_eq!(contents(&mut store, &i, "lazy")?, lazy0);
    assert_eq!(contents(&mut store, &i, "dflt")?, dflt0);
    Ok(())
}

/// A host-created table with a non-null function as initial value, used
/// by wasm through an import, grown with null and with the function.
#[test]
fn host_table_with_a_function_as_initial_value() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let f = Func::wrap(&mut store, || 42i32);
    let t = Table::new(&mut store, TableType::new(ValType::FuncRef, 100_000, None), Val::FuncRef(Some(f)))?;
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "t" (table $t 1 funcref))
            (type $r (func (result i32)))
            (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0)))
            (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0)))))"#,
    )?;
    let i = Instance::new(&mut store, &module, &[t.into()])?;
    let call = i.get_typed_func::<i32, i32>(&mut store, "call")?;
    let is_null = i.get_typed_func::<i32, i32>(&mut store, "is_null")?;
    assert_eq!(call.call(&mut store, 0)?, 42);
    assert_eq!(call.call(&mut store, 99_999)?, 42);
    assert!(matches!(t.get(&mut store, 77_777), Some(Val::FuncRef(Some(_)))));

    assert_eq!(t.grow(&mut store, 5, Val::FuncRef(None))?, 100_000);
    assert_eq!(t.grow(&mut store, 5, Val::FuncRef(Some(f)))?, 100_005);
    assert_eq!(is_null.call(&mut store, 100_002)?, 1);
    assert_eq!(call.call(&mut store, 100_007)?, 42);
    assert!(call.call(&mut store, 100_010).is_err());
    Ok(())
}

/// A host-created externref table with a non-null initial value holds it
/// in every element, and the collector sees it there.
#[test]
fn externref_initial_values_survive_collection() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let tracker = std::sync::Arc::new(());
    let init = Val::ExternRef(Some(ExternRef::new(tracker.clone())));
    let t = Table::new(&mut store, TableType::new(ValType::ExternRef, 1000, None), init)?;
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "t" (table $t 1 externref))
            (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
            (func (export "grow_null") (param i32) (result i32) (table.grow $t (ref.null extern) (local.get 0))))"#,
    )?;
    let i = Instance::new(&mut store, &module, &[t.into()])?;
    let is_null = i.get_typed_func::<i32, i32>(&mut store, "is_null")?;
    let grow_null = i.get_typed_func::<i32, i32>(&mut store, "grow_null")?;
    // Its elements are the only references left to the value: the
    // collector keeps it alive until they are gone.
    store.gc();
    assert_eq!(std::sync::Arc::strong_count(&tracker), 2);
    assert_eq!(is_null.call(&mut store, 0)?, 0);
    assert_eq!(is_null.call(&mut store, 999)?, 0);
    assert!(matches!(t.get(&mut store, 500), Some(Val::ExternRef(Some(_)))));
    assert_eq!(grow_null.call(&mut store, 3)?, 1000);
    assert_eq!(is_null.call(&mut store, 1001)?, 1);
    let grown = Val::ExternRef(Some(ExternRef::new("grown".to_string())));
    assert_eq!(t.grow(&mut store, 2, grown)?, 1003);
    for k in 0..1000 {
        t.set(&mut store, k, Val::ExternRef(None))?;
    }
    store.gc();
    assert_eq!(std::sync::Arc::strong_count(&tracker), 1);
    match t.get(&mut store, 1004) {
        Some(Val::ExternRef(Some(r))) => {
            assert_eq!(r.data().downcast_ref::<String>().map(String::as_str), Some("grown"))
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn table_limit_refuses_the_bomb_naming_table_and_limit() {
    let engine = Engine::default();
    let limited = || {
        let mut store = Store::new(&engine, StoreLimitsBuilder::new().table_elements(1_000_000).build());
        store.limiter(|l| l);
        store
    };
    let bomb = Module::new(&engine, table_bomb()).unwrap();
    let err = Instance::new(&mut limited(), &bomb, &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("table 0 ") && msg.contains("10000000") && msg.contains("limit is 1000000"), "{msg}");
    let exceeded = err.downcast_ref::<LimitExceeded>().expect("a LimitExceeded");
    assert_eq!((exceeded.what, exceeded.desired, exceeded.limit), ("table", 10_000_000, 1_000_000));

    // The export name, when there is one.
    let exported =
        Module::new(&engine, r#"(module (table 1 funcref) (table (export "big") 2000000 funcref))"#).unwrap();
    let msg = format!("{:#}", Instance::new(&mut limited(), &exported, &[]).unwrap_err());
    assert!(msg.contains(r#"table 1 (export "big")"#) && msg.contains("limit is 1000000"), "{msg}");

    // At the limit is fine.
    let fits = Module::new(&engine, "(module (table 1000000 funcref))").unwrap();
    Instance::new(&mut limited(), &fits, &[]).unwrap();

    // A limiter that states no limit still names the table.
    struct Deny;
    impl ResourceLimiter for Deny {
        fn memory_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> Result<bool> {
            Ok(true)
        }
        fn table_growing(&mut self, _: usize, desired: usize, _: Option<usize>) -> Result<bool> {
            Ok(desired <= 10)
        }
    }
    let mut store = Store::new(&engine, Deny);
    store.limiter(|l| l);
    let msg = format!("{:#}", Instance::new(&mut store, &exported, &[]).unwrap_err());
    assert!(msg.contains(r#"table 1 (export "big") of 2000000 elements exceeds the store's limits"#), "{msg}");
}

#[test]
fn table_limit_covers_host_tables_and_growth() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, StoreLimitsBuilder::new().table_elements(1000).build());
    store.limiter(|l| l);
    let err = Table::new(&mut store, TableType::new(ValType::FuncRef, 1001, None), Val::FuncRef(None)).unwrap_err();
    assert!(err.downcast_ref::<LimitExceeded>().is_some(), "{err:#}");
    assert!(format!("{err:#}").contains("limit is 1000"), "{err:#}");
    let t = Table::new(&mut store, TableType::new(ValType::FuncRef, 1000, None), Val::FuncRef(None))?;
    assert!(t.grow(&mut store, 1, Val::FuncRef(None)).is_err());

    let module = Module::new(
        &engine,
        r#"(module (table $t 10 funcref)
            (func (export "grow") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0))))"#,
    )?;
    let i = Instance::new(&mut store, &module, &[])?;
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow")?;
    assert_eq!(grow.call(&mut store, 991)?, -1);
    assert_eq!(grow.call(&mut store, 990)?, 10);

    // Memories created by the host are covered too.
    let mut store = Store::new(&engine, StoreLimitsBuilder::new().memory_size(1 << 16).build());
    store.limiter(|l| l);
    assert!(Memory::new(&mut store, MemoryType::new(2, None)).is_err());
    Memory::new(&mut store, MemoryType::new(1, None))?;
    Ok(())
}
