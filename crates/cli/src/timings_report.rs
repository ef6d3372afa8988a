//! The `--timings` report: where compiling a module spent its time.

use kiln::{CompilePhase, CompileTimings, FunctionOutcome, FunctionTiming};
use std::fmt::Write;
use std::time::Duration;

/// How many functions the report lists.
const SLOWEST: usize = 10;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A function as the report names it: its name-section name, else its index.
fn label(f: &FunctionTiming) -> String {
    match &f.name {
        Some(name) => format!("{name} (function {})", f.index),
        None => format!("function {}", f.index),
    }
}

/// The report for `timings`; `write` is the time spent writing an output
/// file (for `kiln compile`), `total` the wall time of the whole load.
pub fn format(timings: &CompileTimings, write: Option<Duration>, total: Duration) -> String {
    let mut out = String::from("compile timings:\n");
    let mut row = |name: &str, d: Duration, note: &str| {
        let _ = writeln!(out, "  {name:<15}{:>12}{}{note}", ms(d), if note.is_empty() { "" } else { "  " });
    };
    let cache = timings.phase(CompilePhase::CacheLookup) + timings.phase(CompilePhase::CacheStore);
    if timings.phases().is_empty() {
        row("load", total, "a precompiled artifact: nothing compiled");
        return out;
    }
    if timings.from_cache() {
        row("cache", cache, "module found in the cache: nothing compiled");
    } else {
        let functions = timings.functions();
        let count = |o: FunctionOutcome| functions.iter().filter(|f| f.outcome == o).count();
        let compiled = count(FunctionOutcome::Compiled);
        let (translate, codegen) = timings.function_totals();
        row(
            "parse/validate",
            timings.phase(CompilePhase::Text) + timings.phase(CompilePhase::Parse),
            "text format, module sections",
        );
        row("translate", translate, &format!("wasm to Cranelift IR, summed over {compiled} compiled function(s)"));
        row("cranelift", codegen, "IR to machine code, summed over the same");
        let reused = format!(
            "wall time on all threads; {} from the function cache, {} duplicates",
            count(FunctionOutcome::Cached),
            count(FunctionOutcome::Duplicate)
        );
        row("functions", timings.phase(CompilePhase::Functions), &reused);
        row("link", timings.phase(CompilePhase::Link), "trampolines, layout, mapping");
        row("cache", cache, "lookup and store");
    }
    if let Some(w) = write {
        row("write", w, "the output file");
    }
    row("total", total, "");
    let slowest: Vec<FunctionTiming> =
        timings.slowest(SLOWEST).into_iter().filter(|f| f.outcome == FunctionOutcome::Compiled).collect();
    if !slowest.is_empty() {
        let _ = writeln!(out, "slowest functions (translate + cranelift):");
        for f in &slowest {
            let _ = writeln!(out, "  {:>12}  {}", ms(f.total()), label(f));
        }
    }
    out
}
