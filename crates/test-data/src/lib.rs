//! Test data from outside the repository, for Kiln's own tests.
//!
//! Some tests run data the repository does not hold: the shared tree beside
//! the checkout (`../shared`: the WebAssembly/wasi-testsuite programs, the
//! newer upstream threads spec tests, the benchmark corpus sources), or
//! programs built from it with tools that may not be installed. Such a
//! test must never pass without running. When its data is missing it is
//! reported as *ignored*, with the reason and the path it looked for; when
//! `KILN_REQUIRE_TEST_DATA` is set (`.ci/run` sets it) it *fails* with the
//! same message instead, so a run that left it out cannot be green. Data
//! that is there but unusable (unreadable, empty, failing to build) always
//! fails.
//!
//! The test binaries that use this are `harness = false` ones built on
//! libtest-mimic: a missing data set becomes one [`Trial`] standing for
//! all the tests it would have given ([`DataError::into_trial`]).

#![deny(missing_docs)]

use libtest_mimic::{Completion, Failed, Trial};
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable that makes missing data a failure (set to
/// anything but empty or `0`).
pub const REQUIRE_VAR: &str = "KILN_REQUIRE_TEST_DATA";

/// Why outside test data cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataError {
    /// Not there, or a tool needed to build it is not installed: what it
    /// says names what is missing and where it was looked for. Ignored,
    /// or a failure under [`REQUIRE_VAR`].
    Missing(String),
    /// There but unusable (unreadable, empty, failing to build): always a
    /// failure.
    Broken(String),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Missing(what) | DataError::Broken(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for DataError {}

impl DataError {
    /// The trial standing for the tests this error keeps from running,
    /// named `name`: ignored with the reason when data is missing (failing
    /// under [`REQUIRE_VAR`]), failing when it is broken.
    pub fn into_trial(self, name: impl Into<String>) -> Trial {
        Trial::ignorable_test(name, move || self.outcome(required()))
    }

    /// What the trial reports, with missing data `required` or not.
    fn outcome(&self, required: bool) -> Result<Completion, Failed> {
        match self {
            DataError::Missing(what) if required => {
                Err(format!("{what} ({REQUIRE_VAR} is set: this data is required)").into())
            }
            DataError::Missing(what) => Ok(Completion::ignored_with(format!("not run: {what}"))),
            DataError::Broken(what) => Err(what.clone().into()),
        }
    }
}

/// Whether missing data is a failure: [`REQUIRE_VAR`] is set to anything
/// but empty or `0`.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The shared tree: `shared` beside the repository's checkout (the
/// directory holding this workspace), whether or not it exists.
pub fn shared_root() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap_or(repo);
    match repo.parent() {
        Some(parent) => parent.join("shared"),
        None => repo.join("../shared"),
    }
}

/// The directory `relative` (like `wasi-testsuite/tests`) of the shared tree.
///
/// # Errors
///
/// [`DataError::Missing`] naming `../shared/<relative>` and the absolute
/// path looked for, when that is not a directory.
pub fn shared_dir(relative: &str) -> Result<PathBuf, DataError> {
    let path = shared_root().join(relative);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(DataError::Missing(format!("../shared/{relative} not found (looked for {})", path.display())))
    }
}

/// The files named `*.<extension>` in the shared tree's directory
/// `relative`, sorted by name.
///
/// # Errors
///
/// [`DataError::Missing`] as [`shared_dir`]; [`DataError::Broken`] when the
/// directory cannot be read or holds no such file.
pub fn shared_files(relative: &str, extension: &str) -> Result<Vec<PathBuf>, DataError> {
    files_in(&shared_dir(relative)?, extension)
}

/// The files named `*.<extension>` in `dir`, sorted by name.
///
/// # Errors
///
/// [`DataError::Broken`] when `dir` cannot be read or holds no such file.
pub fn files_in(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::Broken(format!("reading {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::Broken(format!("reading {}: {e}", dir.display())))?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == extension) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(DataError::Broken(format!("{} holds no .{extension} file", dir.display())));
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_data_is_ignored_with_its_reason_or_fails_when_required() {
        let missing = shared_dir("no such directory, surely").unwrap_err();
        let looked_for = shared_root().join("no such directory, surely");
        assert!(missing.to_string().contains(&looked_for.display().to_string()), "{missing}");
        match missing.outcome(false) {
            Ok(Completion::Ignored { reason: Some(r) }) => assert!(r.contains("no such directory, surely"), "{r}"),
            _ => panic!("missing data must be ignored with a reason"),
        }
        let failed = missing.outcome(true).err().expect("required data that is missing fails");
        assert!(failed.message().is_some_and(|m| m.contains("no such directory, surely") && m.contains(REQUIRE_VAR)));
    }

    #[test]
    fn broken_data_always_fails() {
        let broken = DataError::Broken("it is broken".into());
        assert!(broken.outcome(false).is_err());
        assert!(broken.outcome(true).is_err());
    }

    #[test]
    fn an_empty_directory_is_broken_not_missing() {
        let dir = std::env::temp_dir().join(format!("kiln-test-data-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.wasm")).expect("temp dir");
        std::fs::write(dir.join("a.wat"), "").expect("temp file");
        assert!(matches!(files_in(&dir, "wasm"), Err(DataError::Broken(m)) if m.contains("holds no .wasm file")));
        std::fs::write(dir.join("b.wasm"), "").expect("temp file");
        std::fs::write(dir.join("a.wasm"), "").expect("temp file");
        assert_eq!(files_in(&dir, "wasm"), Ok(vec![dir.join("a.wasm"), dir.join("b.wasm")]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
