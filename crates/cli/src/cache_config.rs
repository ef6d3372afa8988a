//! Wasmtime's cache configuration file (`-C cache-config=FILE`): the
//! `[cache]` table of a TOML file. Kiln uses `directory` and
//! `files-total-size-soft-limit`; Wasmtime's other settings tune its own
//! cache worker (compression, cleanup intervals, file counts), have no
//! counterpart here and are ignored. Only the plain `key = value` lines
//! such files consist of are read.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// What Kiln takes from a cache configuration file.
#[derive(Debug, Default, PartialEq)]
pub struct CacheConfig {
    /// `directory`: where the cache lives.
    pub directory: Option<PathBuf>,
    /// `files-total-size-soft-limit`: the cache's size cap, in bytes.
    pub max_bytes: Option<u64>,
}

/// Wasmtime settings with no counterpart in Kiln's cache.
const IGNORED: &[&str] = &[
    "worker-event-queue-size",
    "baseline-compression-level",
    "optimized-compression-level",
    "optimized-compression-usage-counter-threshold",
    "cleanup-interval",
    "optimizing-compression-task-timeout",
    "allowed-clock-drift-for-files-from-future",
    "file-count-soft-limit",
    "file-count-limit-percent-if-deleting",
    "files-total-size-limit-percent-if-deleting",
];

/// Reads the cache configuration file at `path`.
///
/// # Errors
///
/// The file cannot be read, or does not parse (the message names the line).
pub fn read(path: &Path) -> Result<CacheConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read cache configuration {}", path.display()))?;
    parse(&text).with_context(|| format!("in cache configuration {}", path.display()))
}

/// Parses the text of a cache configuration file.
///
/// # Errors
///
/// A line that is not a table header, a `key = value` pair or a comment;
/// a key outside `[cache]`, or one Wasmtime does not have; a bad value.
pub fn parse(text: &str) -> Result<CacheConfig> {
    let mut config = CacheConfig::default();
    let mut in_cache = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("line {}: `{line}`", n + 1);
        if let Some(table) = line.strip_prefix('[') {
            let name = table.split(']').next().unwrap_or_default().trim();
            in_cache = name == "cache";
            if !in_cache {
                bail!("{}: only a [cache] table is allowed", at());
            }
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| anyhow!("{}: expected `key = value`", at()))?;
        let key = key.trim().trim_matches('"');
        if !in_cache {
            bail!("{}: settings belong in the [cache] table", at());
        }
        match key {
            "directory" => {
                let dir = PathBuf::from(string(value).with_context(at)?);
                if !dir.is_absolute() {
                    bail!("{}: the directory must be an absolute path", at());
                }
                config.directory = Some(dir);
            }
            "files-total-size-soft-limit" => {
                config.max_bytes = Some(disk_space(&string(value).with_context(at)?).with_context(at)?)
            }
            k if IGNORED.contains(&k) => {}
            other => bail!("{}: unknown setting `{other}`", at()),
        }
    }
    Ok(config)
}

/// A TOML string value (`"..."` with `\\` and `\"` escapes, or `'...'`),
/// optionally followed by a comment.
fn string(value: &str) -> Result<String> {
    let v = value.trim();
    let (body, rest) = if let Some(lit) = v.strip_prefix('\'') {
        let end = lit.find('\'').ok_or_else(|| anyhow!("unterminated string"))?;
        (lit[..end].to_string(), &lit[end + 1..])
    } else if let Some(basic) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = basic.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c @ ('\\' | '"'))) => out.push(c),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c)) => bail!("unsupported escape `\\{c}`"),
                    None => bail!("unterminated string"),
                },
                Some((_, c)) => out.push(c),
                None => bail!("unterminated string"),
            }
        };
        (out, &basic[end + 1..])
    } else {
        bail!("expected a quoted string");
    };
    let rest = rest.trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        bail!("unexpected `{rest}` after the value");
    }
    Ok(body)
}

/// Wasmtime's disk-space format: an integer and an optional unit, `K`,
/// `M`, `G`, `T`, `P` (powers of 1000) or `Ki` ... `Pi` (powers of 1024).
fn disk_space(s: &str) -> Result<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow!("`{s}` is not a size like 512Mi"))?;
    let mult: u64 = match unit {
        "" => 1,
        "K" => 1_000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        "T" => 1_000_000_000_000,
        "Ti" => 1 << 40,
        "P" => 1_000_000_000_000_000,
        "Pi" => 1 << 50,
        other => bail!("unknown unit `{other}` in `{s}` (K, Ki, M, Mi, G, Gi, T, Ti, P, Pi)"),
    };
    n.checked_mul(mult).ok_or_else(|| anyhow!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wasmtimes_example() -> Result<()> {
        let c = parse(
            "# comment\n[cache]\ndirectory = \"/nfs-share/wasmtime-cache/\"\ncleanup-interval = \"30m\"\n\
             files-total-size-soft-limit = \"1Gi\" # one GiB\n",
        )?;
        assert_eq!(c, CacheConfig { directory: Some("/nfs-share/wasmtime-cache/".into()), max_bytes: Some(1 << 30) });
        Ok(())
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let err = |t: &str| parse(t).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err("directory = \"/x\"").contains("[cache] table"));
        assert!(err("[cache]\ndirectory = \"relative\"").contains("absolute"));
        assert!(err("[cache]\nsize = \"1\"").contains("unknown setting `size`"));
        assert!(err("[cache]\nfiles-total-size-soft-limit = \"1Q\"").contains("unknown unit"));
        assert!(err("[other]").contains("only a [cache] table"));
        assert_eq!(parse("[cache]\nfiles-total-size-soft-limit = '5K'").ok().and_then(|c| c.max_bytes), Some(5000));
    }
}
