//! `-S KEY[=VAL]`: WASI options, Wasmtime's spelling (those that mean
//! something for Kiln's WASI preview 1).

use crate::opt_group::{self, OptionHelp};
use anyhow::Result;
use clap::Args;

/// The `-S` arguments.
#[derive(Args, Clone, Default)]
pub struct WasiFlags {
    /// WASI options: `-S threads` (wasi-threads: the `wasi::thread-spawn`
    /// import, and a new shared memory for each shared-memory import),
    /// `-S inherit-env`, `-S tcplisten=ADDR`, ... Comma-separated,
    /// repeatable, applied in order; `-S help` lists them.
    #[arg(short = 'S', long = "wasi", value_name = "KEY[=VAL][,..]", value_parser = wasi_spec, help_heading = "WASI")]
    wasi_specs: Vec<String>,
}

/// What the `-S` arguments say.
#[derive(Clone, Debug, PartialEq)]
pub struct WasiSettings {
    /// Link WASI at all (`-S cli=n` turns it off).
    pub cli: bool,
    /// wasi-threads.
    pub threads: bool,
    /// Pass the host's whole environment (before `--env`).
    pub inherit_env: bool,
    /// Listening sockets to preopen, after those of `--tcplisten`.
    pub tcplisten: Vec<String>,
    /// Standard streams shared with the host (otherwise empty input, and
    /// output that goes nowhere).
    pub inherit_stdin: bool,
    /// See `inherit_stdin`.
    pub inherit_stdout: bool,
    /// See `inherit_stdin`.
    pub inherit_stderr: bool,
    /// `-S inherit-network` was given: accepted, but preview 1 programs
    /// cannot open sockets, so it changes nothing.
    pub inherit_network: bool,
}

impl Default for WasiSettings {
    fn default() -> Self {
        WasiSettings {
            cli: true,
            threads: false,
            inherit_env: false,
            tcplisten: Vec::new(),
            inherit_stdin: true,
            inherit_stdout: true,
            inherit_stderr: true,
            inherit_network: false,
        }
    }
}

const OPTIONS: &[OptionHelp] = &[
    OptionHelp { key: "threads", value: "[=y|n]", help: "wasi-threads (thread-spawn, shared memories)" },
    OptionHelp {
        key: "inherit-env",
        value: "[=y|n]",
        help: "pass the host's whole environment (--env still adds or overrides)",
    },
    OptionHelp { key: "tcplisten", value: "=ADDR", help: "a listening socket for sock_accept; same as --tcplisten" },
    OptionHelp { key: "inherit-stdin", value: "[=y|n]", help: "standard input is the host's (default y; n: empty)" },
    OptionHelp {
        key: "inherit-stdout",
        value: "[=y|n]",
        help: "standard output is the host's (default y; n: discarded)",
    },
    OptionHelp {
        key: "inherit-stderr",
        value: "[=y|n]",
        help: "standard error is the host's (default y; n: discarded)",
    },
    OptionHelp { key: "cli", value: "[=y|n]", help: "provide WASI at all (default y)" },
    OptionHelp {
        key: "inherit-network",
        value: "[=y|n]",
        help: "accepted; WASI preview 1 cannot open sockets, so it has no effect (use tcplisten)",
    },
    OptionHelp { key: "preview2", value: "[=y|n]", help: "accepted, no effect: Kiln has one preview 1 implementation" },
];

impl WasiFlags {
    /// Parses the arguments.
    ///
    /// # Errors
    ///
    /// An unknown key or a bad value.
    pub fn parse(&self) -> Result<WasiSettings> {
        let mut s = WasiSettings::default();
        for item in opt_group::items('S', &self.wasi_specs) {
            match item.key {
                "threads" => s.threads = item.bool()?,
                "inherit-env" => s.inherit_env = item.bool()?,
                "tcplisten" => s.tcplisten.push(item.value()?.to_string()),
                "inherit-stdin" => s.inherit_stdin = item.bool()?,
                "inherit-stdout" => s.inherit_stdout = item.bool()?,
                "inherit-stderr" => s.inherit_stderr = item.bool()?,
                "cli" => s.cli = item.bool()?,
                "inherit-network" => s.inherit_network = item.bool()?,
                "preview2" => {
                    item.bool()?;
                }
                _ => return Err(item.unknown("WASI option")),
            }
        }
        Ok(s)
    }
}

/// `-S`'s value parser: the argument, or `help`.
fn wasi_spec(arg: &str) -> Result<String> {
    opt_group::spec_or_help(arg, || opt_group::help_text('S', "wasi", &[("WASI", OPTIONS)]))
}
