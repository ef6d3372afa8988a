//! Traps: the error value of wasm execution that stopped abnormally.

use crate::vm::code_memory::frame_info;
use crate::vm::traphandlers::{TrapReason, TrapRecord};
use std::fmt;

pub use kiln_environ::TrapCode;

/// One frame of a wasm backtrace.
#[derive(Clone, Debug)]
pub struct FrameInfo {
    module_name: Option<String>,
    func_index: u32,
    func_name: Option<String>,
    module_offset: Option<u32>,
}

impl FrameInfo {
    /// The module's name (from its name section), if any.
    pub fn module_name(&self) -> Option<&str> {
        self.module_name.as_deref()
    }

    /// The function's index in its module.
    pub fn func_index(&self) -> u32 {
        self.func_index
    }

    /// The function's name (from the name section), if any.
    pub fn func_name(&self) -> Option<&str> {
        self.func_name.as_deref()
    }

    /// Byte offset, within the module's binary, of the wasm instruction
    /// executing in this frame (the call, for outer frames).
    pub fn module_offset(&self) -> Option<u32> {
        self.module_offset
    }
}

/// The wasm frames on the stack when a trap happened, innermost first.
#[derive(Clone, Debug, Default)]
pub struct WasmBacktrace {
    frames: Vec<FrameInfo>,
}

impl WasmBacktrace {
    fn from_pcs(pcs: &[usize]) -> WasmBacktrace {
        let frames = pcs
            .iter()
            .filter_map(|pc| {
                let (info, func, off) = frame_info(*pc)?;
                Some(FrameInfo {
                    module_name: info.module.name.clone(),
                    func_index: func.as_u32(),
                    func_name: info.module.func_name(func).map(str::to_string),
                    module_offset: off,
                })
            })
            .collect();
        WasmBacktrace { frames }
    }

    /// The wasm frames that called the host function `caller` runs in,
    /// innermost first (empty when it was called by the host, not wasm).
    /// A host function returning an error can say where wasm was with it.
    pub fn capture<T>(caller: &mut crate::Caller<'_, T>) -> WasmBacktrace {
        let pcs = crate::vm::traphandlers::host_caller_pcs(caller.store.opaque.vm_mut());
        WasmBacktrace::from_pcs(&pcs)
    }

    /// The frames, innermost first.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }
}

impl fmt::Display for WasmBacktrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wasm backtrace:")?;
        let mut i = 0;
        while i < self.frames.len() {
            let fr = &self.frames[i];
            // Collapse runs of identical frames (deep recursion).
            let run = self.frames[i..]
                .iter()
                .take_while(|g| {
                    g.func_index == fr.func_index
                        && g.module_offset == fr.module_offset
                        && g.module_name == fr.module_name
                })
                .count();
            write!(f, "  {i:>4}: ")?;
            match fr.module_offset {
                Some(o) => write!(f, "{o:#8x} - ")?,
                None => write!(f, "{:>8} - ", "?")?,
            }
            if let Some(m) = &fr.module_name {
                write!(f, "{m}!")?;
            }
            match &fr.func_name {
                Some(n) => writeln!(f, "{n}")?,
                None => writeln!(f, "<wasm function {}>", fr.func_index)?,
            }
            if run > 2 {
                writeln!(f, "        ... {} more frames like the one above", run - 1)?;
                i += run;
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}

/// A wasm trap: execution stopped because of `code`, with the wasm frames
/// that were on the stack. Returned (inside `anyhow::Error`) by calls into
/// wasm; downcast with `err.downcast_ref::<Trap>()`.
#[derive(Clone, Debug)]
pub struct Trap {
    code: TrapCode,
    backtrace: WasmBacktrace,
}

impl Trap {
    /// A trap with no backtrace.
    pub fn new(code: TrapCode) -> Trap {
        Trap { code, backtrace: WasmBacktrace::default() }
    }

    /// Why execution stopped.
    pub fn code(&self) -> TrapCode {
        self.code
    }

    /// The wasm frames at the trap.
    pub fn backtrace(&self) -> &WasmBacktrace {
        &self.backtrace
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.code.message())?;
        if !self.backtrace.frames.is_empty() {
            write!(f, "\n{}", self.backtrace)?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}

/// Converts a trap record into the error returned to the caller of wasm:
/// a [`Trap`] for wasm traps, the host's own error unchanged for host
/// errors, and a resumed panic for host panics.
#[allow(clippy::boxed_local, reason = "the record arrives boxed from the call path")]
pub(crate) fn from_record(record: Box<TrapRecord>) -> anyhow::Error {
    let TrapRecord { reason, pcs } = *record;
    match reason {
        TrapReason::Wasm(code) => anyhow::Error::new(Trap { code, backtrace: WasmBacktrace::from_pcs(&pcs) }),
        TrapReason::Host(e) => e,
        TrapReason::Panic(p) => std::panic::resume_unwind(p),
        TrapReason::Exception => anyhow::Error::new(crate::ThrownException),
    }
}
