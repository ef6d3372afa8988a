//! The `kiln` command-line tool.
//!
//! Exit status: the program's own status for `run` (0 when `--invoke`
//! succeeds); 1 for errors (unreadable, invalid or unlinkable modules, bad
//! arguments); 134 when wasm traps (like a process killed by SIGABRT, as
//! `wasmtime run` does); for `wast`, 1 when any directive failed.

mod cache_cmd;
mod cache_config;
mod cache_fill;
mod codegen_flags;
mod compile_cmd;
mod engine_flags;
mod load;
mod opt_group;
mod options;
mod progress;
mod run;
mod timings_report;
mod unknown_imports;
mod wasi_flags;
mod wasm_flags;
mod wast_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Kiln: a WebAssembly runtime.
#[derive(Parser)]
#[command(name = "kiln", version, about = "Run and test WebAssembly with the Kiln runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a WebAssembly module (.wasm or .wat).
    Run(Box<run::RunCommand>),
    /// Runs WebAssembly spec test scripts (.wast).
    Wast(wast_cmd::WastCommand),
    /// Compiles a module ahead of time into a .cwasm artifact.
    Compile(compile_cmd::CompileCommand),
    /// Inspects or clears the compilation cache.
    Cache(cache_cmd::CacheCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(cmd) => cmd.execute(),
        Command::Wast(cmd) => cmd.execute(),
        Command::Compile(cmd) => cmd.execute(),
        Command::Cache(cmd) => cmd.execute(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
