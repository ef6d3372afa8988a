//! `kiln cache`.

use crate::options::CacheFlags;
use anyhow::Result;
use clap::{Args, Subcommand};
use kiln::DirectoryCache;
use std::process::ExitCode;

/// `kiln cache dir|stats|clear`: the on-disk compilation cache.
#[derive(Args)]
pub struct CacheCommand {
    #[command(subcommand)]
    action: CacheAction,

    #[command(flatten)]
    cache: CacheFlags,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Prints the cache directory.
    Dir,
    /// Prints the number and size of cached modules and function packs.
    Stats,
    /// Removes every cached entry (after waiting, two minutes at most,
    /// for a cache filler left by a tiered run to finish).
    Clear,
}

impl CacheCommand {
    pub fn execute(self) -> Result<ExitCode> {
        let dir = self.cache.dir()?;
        match self.action {
            CacheAction::Dir => println!("{}", dir.display()),
            CacheAction::Stats => {
                let count = |sub: &str| -> (usize, u64) {
                    let mut n = 0;
                    let mut bytes = 0;
                    let mut stack = vec![dir.join(sub)];
                    while let Some(d) = stack.pop() {
                        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                            match e.metadata() {
                                Ok(m) if m.is_dir() => stack.push(e.path()),
                                Ok(m) => {
                                    n += 1;
                                    bytes += m.len();
                                }
                                Err(_) => {}
                            }
                        }
                    }
                    (n, bytes)
                };
                let (m, mb) = count("modules");
                let (f, fb) = count("functions");
                println!("cache directory: {}", dir.display());
                println!("modules:   {m} entries, {:.1} MiB", mb as f64 / 1048576.0);
                println!("functions: {f} packs, {:.1} MiB", fb as f64 / 1048576.0);
            }
            CacheAction::Clear => {
                // A filler at work would store its module after the
                // clear: let it finish first.
                if crate::cache_fill::busy_fillers() > 0 {
                    eprintln!("waiting for a cache filler to finish (a tiered run left it compiling a module)");
                    let left = crate::cache_fill::wait_for_fillers(std::time::Duration::from_secs(120));
                    if left > 0 {
                        eprintln!(
                            "warning: {left} cache filler(s) still running after two minutes; \
                             what they compile may land in the cache after this clear"
                        );
                    }
                }
                if dir.exists() {
                    DirectoryCache::new(&dir)?.clear()?;
                }
                println!("cleared {}", dir.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
