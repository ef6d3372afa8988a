//! Watching a compilation: progress and where the time goes
//! ([`CompileObserver`], and [`CompileTimings`], an observer that keeps
//! everything it is told).

use std::sync::Mutex;
use std::time::Duration;

/// A step of compiling a module, reported to
/// [`CompileObserver::phase_done`] when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompilePhase {
    /// Converting the text format (WAT) to the binary format (only for
    /// text input).
    Text,
    /// Hashing the module's bytes and looking the module up in the
    /// engine's cache, including loading what was found (only with a
    /// cache: [`Config::cache`](crate::Config::cache)).
    CacheLookup,
    /// Parsing the module and validating everything but the function
    /// bodies (which are validated as they are translated).
    Parse,
    /// Compiling every function body, on all compiler threads at once
    /// (wall time; [`FunctionReport`]s say how long each function took,
    /// and lookups in the function cache are included).
    Functions,
    /// Compiling trampolines, laying the functions out in one block of
    /// code, and mapping it executable.
    Link,
    /// Encoding the compiled module and handing it to the cache (which may
    /// finish writing it in the background).
    CacheStore,
}

impl CompilePhase {
    /// A short lowercase name: `text`, `cache lookup`, `parse`,
    /// `functions`, `link`, `cache store`.
    pub fn name(self) -> &'static str {
        match self {
            CompilePhase::Text => "text",
            CompilePhase::CacheLookup => "cache lookup",
            CompilePhase::Parse => "parse",
            CompilePhase::Functions => "functions",
            CompilePhase::Link => "link",
            CompilePhase::CacheStore => "cache store",
        }
    }
}

/// Where a function's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FunctionOutcome {
    /// Translated and compiled now.
    Compiled,
    /// Found in the function cache (the body was still validated).
    Cached,
    /// The same body as another function of the module, whose code it
    /// shares (it was only validated).
    Duplicate,
}

/// One function body done, as reported to
/// [`CompileObserver::function_done`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct FunctionReport<'a> {
    /// The function's index in the module (imported functions come first).
    pub index: u32,
    /// Its name from the module's name section, if any.
    pub name: Option<&'a str>,
    /// Where its code came from.
    pub outcome: FunctionOutcome,
    /// Validating and translating it to Cranelift's IR (zero unless
    /// [`FunctionOutcome::Compiled`]).
    pub translate: Duration,
    /// Cranelift: optimizing, allocating registers, emitting machine code
    /// (zero unless [`FunctionOutcome::Compiled`]).
    pub codegen: Duration,
}

/// Watches one compilation: for a progress bar (functions done out of the
/// total) and for reports of where the time went (each phase, each
/// function). Pass one to [`Module::new_with_observer`](crate::Module::new_with_observer)
/// or [`Module::from_binary_with_observer`](crate::Module::from_binary_with_observer).
///
/// Every method does nothing by default, so an implementation overrides
/// only what it needs. Compiling without an observer measures nothing
/// extra. [`CompileObserver::function_done`] is called from the compiler's
/// worker threads, several at once: keep it cheap and thread-safe (an
/// atomic counter, a short lock).
///
/// ```
/// use kiln::{CompileObserver, Engine, FunctionReport, Module};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Default)]
/// struct Count { total: AtomicUsize, done: AtomicUsize }
///
/// impl CompileObserver for Count {
///     fn functions_started(&self, total: usize) {
///         self.total.store(total, Ordering::Relaxed);
///     }
///     fn function_done(&self, _: &FunctionReport<'_>) {
///         self.done.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// let count = Count::default();
/// let engine = Engine::default();
/// Module::new_with_observer(&engine, "(module (func) (func))", &count)?;
/// assert_eq!((count.total.into_inner(), count.done.into_inner()), (2, 2));
/// # Ok(())
/// # }
/// ```
pub trait CompileObserver: Sync {
    /// The engine's cache held the whole compiled module: nothing is
    /// compiled, and only [`CompilePhase::CacheLookup`] (and
    /// [`CompilePhase::Text`]) are reported.
    fn loaded_from_cache(&self) {}

    /// `total` function bodies are about to be compiled (or taken from the
    /// function cache); [`CompileObserver::function_done`] follows once for
    /// each of them, in any order, unless compilation fails.
    fn functions_started(&self, total: usize) {
        let _ = total;
    }

    /// A function body is done. Called from compiler threads.
    fn function_done(&self, function: &FunctionReport<'_>) {
        let _ = function;
    }

    /// A phase ended after `elapsed`.
    fn phase_done(&self, phase: CompilePhase, elapsed: Duration) {
        let _ = (phase, elapsed);
    }
}

/// A [`CompileObserver`] that keeps what it is told: the time of each
/// phase and of each function, for a report after compiling.
///
/// ```
/// use kiln::{CompilePhase, CompileTimings, Engine, Module};
///
/// # fn main() -> anyhow::Result<()> {
/// let timings = CompileTimings::new();
/// let engine = Engine::default();
/// let wat = r#"(module (func $slow (export "f") (result i32) i32.const 1) (func $other))"#;
/// Module::new_with_observer(&engine, wat, &timings)?;
/// assert!(!timings.from_cache());
/// assert!(timings.phase(CompilePhase::Parse) > std::time::Duration::ZERO);
/// let slowest = timings.slowest(10);
/// assert_eq!(slowest.len(), 2);
/// assert!(slowest.iter().any(|f| f.name.as_deref() == Some("slow")));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct CompileTimings {
    inner: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    cache_hit: bool,
    phases: Vec<(CompilePhase, Duration)>,
    functions: Vec<FunctionTiming>,
}

/// One function's line in [`CompileTimings`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionTiming {
    /// The function's index in the module.
    pub index: u32,
    /// Its name from the module's name section, if any.
    pub name: Option<String>,
    /// Where its code came from.
    pub outcome: FunctionOutcome,
    /// Validating and translating it to Cranelift's IR.
    pub translate: Duration,
    /// Cranelift's part.
    pub codegen: Duration,
}

impl FunctionTiming {
    /// Translation and code generation together.
    pub fn total(&self) -> Duration {
        self.translate + self.codegen
    }
}

impl CompileTimings {
    /// Nothing recorded yet.
    pub fn new() -> CompileTimings {
        CompileTimings::default()
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A panic while holding the lock leaves plain data behind: keep it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the whole module came from the engine's cache.
    pub fn from_cache(&self) -> bool {
        self.recorded().cache_hit
    }

    /// The time spent in `phase` (zero if it did not happen).
    pub fn phase(&self, phase: CompilePhase) -> Duration {
        self.recorded().phases.iter().filter(|(p, _)| *p == phase).map(|(_, d)| *d).sum()
    }

    /// The phases in the order they ended, with their times.
    pub fn phases(&self) -> Vec<(CompilePhase, Duration)> {
        self.recorded().phases.clone()
    }

    /// Every function body, in the order they finished.
    pub fn functions(&self) -> Vec<FunctionTiming> {
        self.recorded().functions.clone()
    }

    /// Translation and code generation summed over all functions (CPU
    /// time on all compiler threads, so it can exceed the
    /// [`CompilePhase::Functions`] wall time): `(translate, codegen)`.
    pub fn function_totals(&self) -> (Duration, Duration) {
        let r = self.recorded();
        (r.functions.iter().map(|f| f.translate).sum(), r.functions.iter().map(|f| f.codegen).sum())
    }

    /// The `n` functions that took longest to compile, slowest first (ties
    /// by index).
    pub fn slowest(&self, n: usize) -> Vec<FunctionTiming> {
        let mut all = self.functions();
        all.sort_by(|a, b| b.total().cmp(&a.total()).then(a.index.cmp(&b.index)));
        all.truncate(n);
        all
    }
}

impl CompileObserver for CompileTimings {
    fn loaded_from_cache(&self) {
        self.recorded().cache_hit = true;
    }

    fn functions_started(&self, total: usize) {
        self.recorded().functions.reserve(total);
    }

    fn function_done(&self, f: &FunctionReport<'_>) {
        let timing = FunctionTiming {
            index: f.index,
            name: f.name.map(str::to_string),
            outcome: f.outcome,
            translate: f.translate,
            codegen: f.codegen,
        };
        self.recorded().functions.push(timing);
    }

    fn phase_done(&self, phase: CompilePhase, elapsed: Duration) {
        self.recorded().phases.push((phase, elapsed));
    }
}
