//! `kiln-wast`: runs WebAssembly `.wast` spec scripts against Kiln.
//!
//! Every directive counts as one check: module definitions, registrations,
//! invocations and assertions. [`WastContext::run_buffer`] returns the
//! counts and a message for each failure, naming the file, line and column.
//!
//! With [`WastContext::with_async_calls`], every call into wasm and every
//! instantiation goes through Kiln's async API instead (`call_async`,
//! `instantiate_async`), each future driven to completion on the calling
//! thread; scripts must give the same results either way.

#![deny(missing_docs)]

mod legacy_syntax;
mod spectest;

pub use legacy_syntax::unfold_legacy_try;
mod values;

use anyhow::{Context as _, Result, anyhow, bail};
use kiln::{Config, Engine, Extern, Instance, Linker, Module, Store, Trap, TrapCode, Val};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::task::{Context, Poll, Waker};
use wast::core::{WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

/// The result of running one script.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Directives that behaved as the script expects.
    pub passed: usize,
    /// Directives that did not, with a message each.
    pub failures: Vec<String>,
}

impl Outcome {
    /// Number of failed directives.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }
}

/// State for running wast scripts: a store, the registered modules, and
/// the `spectest` host module.
pub struct WastContext {
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    current: Option<Instance>,
    instances: HashMap<String, Instance>,
    /// Instances of the parent script visible to a `thread` through its
    /// `(shared (module $M))` clause: their shareable exports.
    shared_instances: HashMap<String, Vec<(String, Extern)>>,
    definitions: HashMap<String, Module>,
    /// Call and instantiate through the async API (see
    /// [`WastContext::with_async_calls`]).
    async_calls: bool,
}

impl WastContext {
    /// A fresh context with `config` and the `spectest` module registered.
    ///
    /// # Errors
    ///
    /// The engine cannot be created for this host.
    pub fn new(config: &Config) -> Result<WastContext> {
        let engine = Engine::new(config)?;
        let mut store = Store::new(&engine, ());
        // With fuel or epochs configured, scripts run with effectively
        // unlimited budgets (errors only mean the feature is off).
        let _ = store.set_fuel(u64::MAX / 2);
        store.set_epoch_deadline(u64::MAX / 2);
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        spectest::define(&mut linker, &mut store)?;
        Ok(WastContext {
            engine,
            store,
            linker,
            current: None,
            instances: HashMap::new(),
            shared_instances: HashMap::new(),
            definitions: HashMap::new(),
            async_calls: false,
        })
    }

    /// With `true`, every call into wasm (`invoke` actions and the
    /// invocations of assertions) goes through [`kiln::Func::call_async`],
    /// and every instantiation (`module` and `module instance` directives
    /// with their start functions, the modules of `assert_trap` and
    /// `assert_unlinkable`) through [`Linker::instantiate_async`], each
    /// future polled to completion on the calling thread, wasm running on
    /// the store's async stack; the contexts of `thread` directives inherit
    /// the setting. (`register` calls no wasm: it links the exports of an
    /// instance made already.) With `false` (the default), the synchronous
    /// `Func::call` and `Linker::instantiate`. Async calls run on a fiber
    /// even though no module here can wait (Kiln runs them directly
    /// otherwise), so the suite tests the fiber path.
    #[must_use]
    pub fn with_async_calls(mut self, async_calls: bool) -> WastContext {
        self.async_calls = async_calls;
        if async_calls {
            kiln::__private_testing::force_fibers(&mut self.store);
        }
        self
    }

    /// A context for a `thread` directive: same engine, its own store, and
    /// the shared memories of `shared` (an instance of this context).
    fn for_thread(&mut self, shared: Option<&str>) -> Result<WastContext> {
        let mut cx = WastContext::new(self.engine.config())?;
        cx.engine = self.engine.clone();
        cx.async_calls = self.async_calls;
        // Rebuild the store and spectest on the parent's engine, so shared
        // memories (which belong to an engine) can be imported.
        cx.store = Store::new(&self.engine, ());
        if cx.async_calls {
            kiln::__private_testing::force_fibers(&mut cx.store);
        }
        let _ = cx.store.set_fuel(u64::MAX / 2);
        cx.store.set_epoch_deadline(u64::MAX / 2);
        cx.linker = Linker::new(&self.engine);
        cx.linker.allow_shadowing(true);
        spectest::define(&mut cx.linker, &mut cx.store)?;
        if let Some(name) = shared {
            let exports = match self.shared_instances.get(name) {
                // A module this thread itself received from its parent.
                Some(exports) => exports.clone(),
                None => self
                    .get_instance(Some(name))?
                    .exports(&mut self.store)
                    .into_iter()
                    .filter(|(_, e)| matches!(e, Extern::SharedMemory(_)))
                    .collect(),
            };
            cx.shared_instances.insert(name.to_string(), exports);
        }
        Ok(cx)
    }

    /// Runs the script in file `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not a well-formed wast script (a
    /// failing directive is not an error: it is counted in the outcome).
    pub fn run_file(&mut self, path: &Path) -> Result<Outcome> {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        self.run_buffer(&path.display().to_string(), &text)
    }

    /// Runs the script `text`; `filename` is used in failure messages.
    ///
    /// # Errors
    ///
    /// The text is not a well-formed wast script.
    ///
    /// Legacy exception handling's folded `try` (`(try (do ...) (catch
    /// ...))`), which the upstream legacy tests use, is accepted too (see
    /// [`unfold_legacy_try`]).
    pub fn run_buffer(&mut self, filename: &str, text: &str) -> Result<Outcome> {
        let unfolded;
        let text = if text.contains("(do") {
            unfolded = unfold_legacy_try(text);
            unfolded.as_str()
        } else {
            text
        };
        let mut lexer = wast::lexer::Lexer::new(text);
        lexer.allow_confusing_unicode(true);
        let buf = ParseBuffer::new_with_lexer(lexer).map_err(|e| anyhow!("{filename}: {e}"))?;
        let wast = parser::parse::<Wast>(&buf).map_err(|mut e| {
            e.set_path(Path::new(filename));
            e.set_text(text);
            anyhow!("{e}")
        })?;
        let mut outcome = Outcome::default();
        std::thread::scope(|scope| self.run_directives(scope, wast.directives, filename, text, &mut outcome));
        Ok(outcome)
    }

    /// Runs `directives`, spawning `thread` directives on `scope` and joining
    /// them at `wait` (or when the scope ends).
    fn run_directives<'scope, 'a: 'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        directives: Vec<WastDirective<'a>>,
        filename: &'scope str,
        text: &'scope str,
        outcome: &mut Outcome,
    ) {
        let mut threads: HashMap<String, std::thread::ScopedJoinHandle<'scope, Outcome>> = HashMap::new();
        for directive in directives {
            let span = directive.span();
            let (line, col) = span.linecol_in(text);
            let at = format!("{filename}:{}:{}", line + 1, col + 1);
            let result = match directive {
                WastDirective::Thread(t) => {
                    let name = t.name.name().to_string();
                    match self.for_thread(t.shared_module.map(|m| m.name())) {
                        Ok(mut cx) => {
                            let directives = t.directives;
                            let handle = std::thread::Builder::new().name(format!("wast thread {name}")).spawn_scoped(
                                scope,
                                move || {
                                    let mut out = Outcome::default();
                                    std::thread::scope(|inner| {
                                        cx.run_directives(inner, directives, filename, text, &mut out)
                                    });
                                    out
                                },
                            );
                            match handle {
                                Ok(h) => {
                                    threads.insert(name, h);
                                    Ok(())
                                }
                                Err(e) => Err(anyhow!("cannot start thread `{name}`: {e}")),
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
                WastDirective::Wait { thread, .. } => match threads.remove(thread.name()) {
                    Some(h) => match h.join() {
                        Ok(out) => {
                            outcome.passed += out.passed;
                            outcome.failures.extend(out.failures);
                            Ok(())
                        }
                        Err(_) => Err(anyhow!("thread `{}` panicked", thread.name())),
                    },
                    None => Err(anyhow!("no running thread `{}`", thread.name())),
                },
                d => self.directive(d),
            };
            match result {
                Ok(()) => outcome.passed += 1,
                Err(e) => outcome.failures.push(format!("{at}: {e:#}")),
            }
        }
        for (name, h) in threads {
            match h.join() {
                Ok(out) => {
                    outcome.passed += out.passed;
                    outcome.failures.extend(out.failures);
                }
                Err(_) => outcome.failures.push(format!("{filename}: thread `{name}` panicked")),
            }
        }
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance> {
        if self.async_calls {
            block_on(self.linker.instantiate_async(&mut self.store, module))
        } else {
            self.linker.instantiate(&mut self.store, module)
        }
    }

    fn compile_quote(&self, mut wat: QuoteWat<'_>) -> Result<Module> {
        let bytes = wat.encode().map_err(|e| anyhow!("{e}"))?;
        Module::new(&self.engine, &bytes)
    }

    fn directive(&mut self, d: WastDirective<'_>) -> Result<()> {
        match d {
            WastDirective::Module(wat) => {
                let name = wat.name().map(|n| n.name().to_string());
                let module = self.compile_quote(wat)?;
                let instance = self.instantiate(&module)?;
                if let Some(name) = name {
                    self.instances.insert(name, instance);
                }
                self.current = Some(instance);
                Ok(())
            }
            WastDirective::ModuleDefinition(wat) => {
                let name = wat.name().map(|n| n.name().to_string());
                let module = self.compile_quote(wat)?;
                if let Some(name) = name {
                    self.definitions.insert(name, module);
                }
                Ok(())
            }
            WastDirective::ModuleInstance { instance, module, .. } => {
                let def = module.map(|m| m.name().to_string()).unwrap_or_default();
                let module =
                    self.definitions.get(&def).cloned().ok_or_else(|| anyhow!("unknown module definition `{def}`"))?;
                let inst = self.instantiate(&module)?;
                if let Some(name) = instance {
                    self.instances.insert(name.name().to_string(), inst);
                }
                self.current = Some(inst);
                Ok(())
            }
            WastDirective::Register { name, module, .. } => {
                if let Some(exports) = module.and_then(|m| self.shared_instances.get(m.name())) {
                    for (field, item) in exports.clone() {
                        self.linker.define(name, &field, item)?;
                    }
                    return Ok(());
                }
                let inst = self.get_instance(module.map(|m| m.name()))?;
                self.linker.instance(&mut self.store, name, inst)?;
                Ok(())
            }
            WastDirective::Invoke(invoke) => {
                self.invoke(&invoke)?;
                Ok(())
            }
            WastDirective::AssertReturn { exec, results, .. } => {
                let got = self.execute(exec)?;
                values::check_results(&mut self.store, &got, &results)
            }
            WastDirective::AssertTrap { exec, message, .. } => match self.execute(exec) {
                Ok(vals) => bail!("expected trap `{message}`, got {vals:?}"),
                Err(e) => check_trap(&e, message),
            },
            WastDirective::AssertException { exec, .. } => match self.execute(exec) {
                Ok(vals) => bail!("expected an uncaught exception, got {vals:?}"),
                Err(e) if e.is::<kiln::ThrownException>() => match self.store.take_pending_exception() {
                    Some(_) => Ok(()),
                    None => bail!("an uncaught exception left no pending exception"),
                },
                Err(e) => bail!("expected an uncaught exception, got: {e:#}"),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Ok(vals) => bail!("expected exhaustion `{message}`, got {vals:?}"),
                Err(e) => match e.downcast_ref::<Trap>() {
                    Some(t) if t.code() == TrapCode::StackOverflow => Ok(()),
                    _ => bail!("expected stack exhaustion, got: {e:#}"),
                },
            },
            WastDirective::AssertInvalid { module, message, .. } => match self.compile_quote(module) {
                Ok(_) => bail!("expected invalid module (`{message}`), but it compiled"),
                Err(_) => Ok(()),
            },
            WastDirective::AssertMalformed { module, message, .. } => match self.compile_quote(module) {
                Ok(_) => bail!("expected malformed module (`{message}`), but it compiled"),
                Err(_) => Ok(()),
            },
            WastDirective::AssertUnlinkable { module, message, .. } => {
                let module = self.compile_quote(QuoteWat::Wat(module))?;
                match self.instantiate(&module) {
                    Ok(_) => bail!("expected unlinkable module (`{message}`), but it instantiated"),
                    Err(e) if e.downcast_ref::<Trap>().is_some() => bail!("expected a link error, got a trap: {e:#}"),
                    Err(_) => Ok(()),
                }
            }
            WastDirective::AssertInvalidCustom { .. } | WastDirective::AssertMalformedCustom { .. } => Ok(()),
            other => bail!("unsupported directive {:?}", std::mem::discriminant(&other)),
        }
    }

    fn get_instance(&self, name: Option<&str>) -> Result<Instance> {
        match name {
            Some(n) => self.instances.get(n).copied().ok_or_else(|| anyhow!("unknown module `{n}`")),
            None => self.current.ok_or_else(|| anyhow!("no module instantiated yet")),
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<Vec<Val>> {
        let inst = self.get_instance(invoke.module.map(|m| m.name()))?;
        let func = inst
            .get_func(&mut self.store, invoke.name)
            .ok_or_else(|| anyhow!("no function export `{}`", invoke.name))?;
        let args = invoke
            .args
            .iter()
            .map(|a| match a {
                WastArg::Core(c) => values::arg(&mut self.store, c),
                _ => Err(anyhow!("component arguments are not supported")),
            })
            .collect::<Result<Vec<_>>>()?;
        let ty = func.ty(&self.store);
        let mut results: Vec<Val> = ty.results().map(Val::default_for).collect();
        if self.async_calls {
            block_on(func.call_async(&mut self.store, &args, &mut results))?;
        } else {
            func.call(&mut self.store, &args, &mut results)?;
        }
        Ok(results)
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> Result<Vec<Val>> {
        match exec {
            WastExecute::Invoke(i) => self.invoke(&i),
            WastExecute::Wat(wat) => {
                let module = self.compile_quote(QuoteWat::Wat(wat))?;
                self.instantiate(&module)?;
                Ok(vec![])
            }
            WastExecute::Get { module, global, .. } => {
                let inst = self.get_instance(module.map(|m| m.name()))?;
                match inst.get_export(&mut self.store, global) {
                    Some(Extern::Global(g)) => Ok(vec![g.get(&mut self.store)]),
                    _ => bail!("no global export `{global}`"),
                }
            }
        }
    }
}

/// Polls `fut` until it is ready, with a waker that does nothing: the
/// harness defines no async host functions and no epoch yields, so Kiln's
/// futures are ready at the first poll, and a `Pending` (were wasm ever to
/// yield) only means "poll again".
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn check_trap(e: &anyhow::Error, expected: &str) -> Result<()> {
    let Some(t) = e.downcast_ref::<Trap>() else {
        bail!("expected trap `{expected}`, got error: {e:#}");
    };
    let msg = t.code().message();
    // Spec messages sometimes carry extra detail ("uninitialized element 2").
    let expected_head = expected.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ');
    if msg.contains(expected_head) || expected_head.contains(msg) {
        Ok(())
    } else {
        bail!("expected trap `{expected}`, got `{msg}`")
    }
}

#[allow(dead_code)]
fn unused(_: WastRet<'_>, _: WastRetCore<'_>, _: WastArgCore<'_>, _: Wat<'_>) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instantiation and a call on the main thread, and the same in a
    /// `thread` block, whose call exhausts the stack.
    const SCRIPT: &str = r#"
        (module (func (export "f") (result i32) (i32.const 1)))
        (assert_return (invoke "f") (i32.const 1))
        (thread $T
            (module (func $r (export "r") (call $r)))
            (assert_exhaustion (invoke "r") "call stack exhausted"))
        (wait $T)
    "#;

    #[test]
    fn async_calls_take_the_async_path_everywhere_threads_included() {
        // An async stack no larger than the wasm stack is an error of the
        // async entry points only: in async mode every instantiation,
        // the thread's too, must report it.
        let mut config = Config::new();
        config.max_wasm_stack(1 << 20).async_stack_size(1 << 20);
        let sync = WastContext::new(&config).unwrap().run_buffer("t.wast", SCRIPT).unwrap();
        assert!(sync.failures.is_empty(), "{:?}", sync.failures);
        let out = WastContext::new(&config).unwrap().with_async_calls(true).run_buffer("t.wast", SCRIPT).unwrap();
        let stack_errors = out.failures.iter().filter(|f| f.contains("async stack size")).count();
        assert_eq!(stack_errors, 2, "{:#?}", out.failures);
    }

    #[test]
    fn async_calls_pass_the_script_including_exhaustion_on_the_async_stack() {
        let out =
            WastContext::new(&Config::new()).unwrap().with_async_calls(true).run_buffer("t.wast", SCRIPT).unwrap();
        assert!(out.failures.is_empty(), "{:?}", out.failures);
        assert_eq!(out.passed, 6);
    }
}
