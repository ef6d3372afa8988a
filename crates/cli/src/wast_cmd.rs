//! `kiln wast`.

use anyhow::Result;
use clap::Args;
use crate::features::FeatureFlags;
use kiln_wast::WastContext;
use std::path::PathBuf;
use std::process::ExitCode;

/// `kiln wast FILE...`: runs each script in a fresh context, prints a line
/// per file and the failures, and ends with `N passed, M failed` counting
/// directives.
#[derive(Args)]
pub struct WastCommand {
    /// The .wast scripts.
    #[arg(required = true)]
    files: Vec<PathBuf>,

    #[command(flatten)]
    features: FeatureFlags,
}

impl WastCommand {
    pub fn execute(self) -> Result<ExitCode> {
        let config = self.features.config()?;
        let (mut passed, mut failed) = (0usize, 0usize);
        for file in &self.files {
            let outcome = WastContext::new(&config).and_then(|mut cx| cx.run_file(file));
            match outcome {
                Ok(o) => {
                    println!("{}: {} passed, {} failed", file.display(), o.passed, o.failed());
                    for f in &o.failures {
                        println!("  {f}");
                    }
                    passed += o.passed;
                    failed += o.failed();
                }
                Err(e) => {
                    println!("{}: error: {e:#}", file.display());
                    failed += 1;
                }
            }
        }
        println!("{passed} passed, {failed} failed");
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}
