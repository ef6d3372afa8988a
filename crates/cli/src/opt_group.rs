//! The option groups written Wasmtime's way: `-W KEY[=VAL][,KEY[=VAL]...]`
//! (and `-S`, `-C`): splitting, yes/no values, and `-X help`.

use anyhow::{Result, anyhow, bail};

/// One key of an option group, for `-X help`.
pub struct OptionHelp {
    /// The key, as written on the command line.
    pub key: &'static str,
    /// What may follow it: `[=y|n]`, `=N`, ...
    pub value: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// One `KEY[=VAL]` of an option group.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    /// The flag it came with (`W`, `S`, `C`), for messages.
    pub flag: char,
    /// The key.
    pub key: &'a str,
    /// The value after `=`, if any.
    pub value: Option<&'a str>,
}

impl<'a> Item<'a> {
    /// The value as a yes/no switch: nothing, `y`, `yes`, `true`, `on` are
    /// yes; `n`, `no`, `false`, `off` are no.
    ///
    /// # Errors
    ///
    /// Any other value.
    pub fn bool(&self) -> Result<bool> {
        match self.value {
            None | Some("y" | "yes" | "true" | "on") => Ok(true),
            Some("n" | "no" | "false" | "off") => Ok(false),
            Some(other) => bail!("`{other}` is not y or n in `-{} {}={other}`", self.flag, self.key),
        }
    }

    /// The value, which must be present.
    ///
    /// # Errors
    ///
    /// No `=VALUE` was given.
    pub fn value(&self) -> Result<&'a str> {
        self.value
            .ok_or_else(|| anyhow!("`-{} {}` needs a value: `-{} {}=VALUE`", self.flag, self.key, self.flag, self.key))
    }

    /// The value parsed by `parse`, with the option named in the error.
    ///
    /// # Errors
    ///
    /// No value, or `parse` refused it.
    pub fn parsed<T>(&self, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        let v = self.value()?;
        parse(v).map_err(|e| anyhow!("`-{} {}={v}`: {e:#}", self.flag, self.key))
    }

    /// The error for a key the group does not know; `what` names the kind
    /// of option ("WASI option").
    pub fn unknown(&self, what: &str) -> anyhow::Error {
        let (flag, key) = (self.flag, self.key);
        anyhow!("unknown {what} `{key}` in `-{flag} {key}` (`-{flag} help` lists the known ones)")
    }
}

/// Splits every `-X` argument at commas into its items, in order.
pub fn items(flag: char, specs: &[String]) -> impl Iterator<Item = Item<'_>> {
    specs.iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()).map(move |s| match s.split_once('=') {
        Some((key, value)) => Item { flag, key, value: Some(value) },
        None => Item { flag, key: s, value: None },
    })
}

/// The value parser of an option group's flag: returns the argument, or
/// for `help` prints `help` and ends the process (as Wasmtime does, so that
/// `kiln run -W help` needs no FILE).
///
/// # Errors
///
/// None; the signature is clap's.
pub fn spec_or_help(arg: &str, help: impl FnOnce() -> String) -> Result<String> {
    if arg == "help" {
        print!("{}", help());
        std::process::exit(0);
    }
    Ok(arg.to_string())
}

/// The text of `-X help`: every key with its value and help.
pub fn help_text(flag: char, long: &str, groups: &[(&str, &[OptionHelp])]) -> String {
    let width = groups.iter().flat_map(|(_, o)| o.iter()).map(|o| o.key.len() + o.value.len()).max().unwrap_or(0);
    let mut out = format!("-{flag} / --{long} options (comma-separated, repeatable):\n");
    for (title, options) in groups {
        out.push_str(&format!("\n{title}:\n"));
        for o in *options {
            let spelled = format!("{}{}", o.key, o.value);
            out.push_str(&format!("  -{flag} {spelled:<width$}  {}\n", o.help));
        }
    }
    out
}
