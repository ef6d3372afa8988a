//! What the CLI shows while it compiles: a progress bar on a terminal when
//! compiling takes a while, and the timings behind `--timings`.

use crate::options::parse_duration;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln::{CompileObserver, CompilePhase, CompileTimings, FunctionReport};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long compiling runs before the bar appears; `KILN_PROGRESS_AFTER`
/// (a duration such as `0s`) changes it.
const DEFAULT_DELAY: Duration = Duration::from_secs(1);

/// Watches one compilation for the CLI.
pub struct CompileProgress {
    /// Only when standard error is a terminal; hidden until `delay` passed.
    bar: Option<ProgressBar>,
    shown: AtomicBool,
    started: Instant,
    delay: Duration,
    /// Kept for `--timings`.
    timings: Option<CompileTimings>,
}

impl CompileProgress {
    /// A watcher for compiling `what` (shown by its file name), keeping
    /// timings if `timings` is set.
    pub fn new(what: &std::path::Path, timings: bool) -> CompileProgress {
        let delay =
            std::env::var("KILN_PROGRESS_AFTER").ok().and_then(|v| parse_duration(&v).ok()).unwrap_or(DEFAULT_DELAY);
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template("compiling {msg} [{wide_bar}] {pos}/{len} functions ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()).with_style(style);
            bar.set_message(what.file_name().unwrap_or(what.as_os_str()).to_string_lossy().into_owned());
            bar
        });
        CompileProgress {
            bar,
            shown: AtomicBool::new(false),
            started: Instant::now(),
            delay,
            timings: timings.then(CompileTimings::new),
        }
    }

    /// Shows the bar once compiling has taken longer than the delay.
    fn show_if_slow(&self, bar: &ProgressBar) {
        if !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() >= self.delay
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Removes the bar, if it was drawn.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// The timings kept, if `--timings` asked for them.
    pub fn timings(&self) -> Option<&CompileTimings> {
        self.timings.as_ref()
    }

    /// Time since the watcher was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl CompileObserver for CompileProgress {
    fn loaded_from_cache(&self) {
        if let Some(t) = &self.timings {
            t.loaded_from_cache();
        }
    }

    fn functions_started(&self, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            self.show_if_slow(bar);
        }
        if let Some(t) = &self.timings {
            t.functions_started(total);
        }
    }

    fn function_done(&self, f: &FunctionReport<'_>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            self.show_if_slow(bar);
        }
        if let Some(t) = &self.timings {
            t.function_done(f);
        }
    }

    fn phase_done(&self, phase: CompilePhase, elapsed: Duration) {
        if let Some(t) = &self.timings {
            t.phase_done(phase, elapsed);
        }
    }
}
