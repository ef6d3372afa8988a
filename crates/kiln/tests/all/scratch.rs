//! Scratch directories for tests: fresh, private (mode 0700, as the
//! directory cache requires) and removed when the test is done with them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A fresh empty directory under the system temp dir, removed (with
/// everything in it) when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `kiln-{prefix}-{name}-{pid}-{thread}`, empty.
    pub fn new(prefix: &str, name: &str) -> ScratchDir {
        let d = std::env::temp_dir().join(format!(
            "kiln-{prefix}-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        ScratchDir(d)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Tests may have made parts read-only or unwritable by others;
        // give the owner write access back before removing.
        for e in walk(&self.0) {
            let _ = std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o700));
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every directory at or below `root` (not following symbolic links).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}
