//! The `.json` expectations of ../shared/wasi-testsuite programs, shared by
//! the preview 1 and the wasi-threads runners.

use std::path::Path;

/// What a test expects (the `.json` beside the `.wasm`; every field optional).
pub struct Expectation {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub exit_code: i32,
    /// Compared only when the expectation gives it (as the reference runner does).
    pub stdout: Option<String>,
    /// The directory to preopen as the guest's `/`, if any.
    pub root: Option<String>,
}

/// Reads the expectation of `wasm` (defaults when it has no `.json`).
pub fn expectation(wasm: &Path) -> Result<Expectation, String> {
    let mut e = Expectation { args: Vec::new(), env: Vec::new(), exit_code: 0, stdout: None, root: None };
    let json = wasm.with_extension("json");
    if !json.exists() {
        return Ok(e);
    }
    let text = std::fs::read_to_string(&json).map_err(|err| format!("{}: {err}", json.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|err| format!("{}: {err}", json.display()))?;
    if let Some(args) = v.get("args").and_then(|a| a.as_array()) {
        e.args = args.iter().filter_map(|a| a.as_str().map(String::from)).collect();
    }
    if let Some(env) = v.get("env").and_then(|a| a.as_object()) {
        e.env = env.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
    }
    if let Some(code) = v.get("exit_code").and_then(|c| c.as_i64()) {
        e.exit_code = code as i32;
    }
    if let Some(out) = v.get("stdout").and_then(|s| s.as_str()) {
        e.stdout = Some(out.to_string());
    }
    e.root = v.get("root").and_then(|r| r.as_str()).map(String::from);
    Ok(e)
}
