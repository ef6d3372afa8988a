//! The operator loop: reads a function body once and emits its machine
//! code as it goes (see the crate docs and `frame.rs` for the frame).
//!
//! The compiler *declines* a function it cannot compile (an operator,
//! type or signature it does not handle, or settings whose
//! instrumentation it does not emit): [`compile_function`] then returns
//! [`Declined`] and the caller compiles the function with Cranelift.
//! Functions arrive validated (a module is validated whole before any of
//! its code is compiled), so the compiler trusts the operand types it
//! tracks; an operator sequence that contradicts them declines rather
//! than panics.

use crate::abi::Loc;
use crate::control::{Control, Frame, FrameKind};
use crate::frame::{Layout, SAVED_RBX, VMCTX, ValType, saved_local_reg};
use crate::memory::width;
use crate::x64::asm::{Alu, Assembler, Cond, FSize, Label, Mem, Reg, Size};
use kiln_environ::{
    CompiledFunction, FuncIndex, LocalUses, ModuleInfo, Relocation, TrapCode, Tunables, VMOffsets, vmoffsets,
};
use wasmparser::{BlockType, FunctionBody, Operator};

/// Why the baseline compiler left a function to Cranelift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declined(pub String);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "baseline compiler declined: {}", self.0)
    }
}

impl std::error::Error for Declined {}

pub(crate) fn decline<T>(why: impl Into<String>) -> Result<T, Declined> {
    Err(Declined(why.into()))
}

/// The processor features some operators need, found once.
#[derive(Clone, Copy, Debug)]
pub struct CpuFeatures {
    /// `lzcnt` (`clz`).
    pub lzcnt: bool,
    /// `tzcnt` (`ctz`).
    pub bmi1: bool,
    /// `popcnt`.
    pub popcnt: bool,
    /// `roundss`/`roundsd` (`ceil`, `floor`, `trunc`, `nearest`).
    pub sse41: bool,
}

impl CpuFeatures {
    /// The features of the processor this runs on.
    pub fn detect() -> CpuFeatures {
        CpuFeatures {
            lzcnt: std::is_x86_feature_detected!("lzcnt"),
            bmi1: std::is_x86_feature_detected!("bmi1"),
            popcnt: std::is_x86_feature_detected!("popcnt"),
            sse41: std::is_x86_feature_detected!("sse4.1"),
        }
    }
}

/// Converts a signature, declining types the compiler does not handle.
pub(crate) fn signature(ty: &kiln_environ::FuncType) -> Result<(Vec<ValType>, Vec<ValType>), Declined> {
    let conv = |ts: &[kiln_environ::WasmValType]| -> Result<Vec<ValType>, Declined> {
        ts.iter().map(|t| ValType::from_wasm(*t).ok_or_else(|| Declined(format!("value type {t:?}")))).collect()
    };
    let (p, r) = (conv(ty.params())?, conv(ty.results())?);
    crate::abi::results(&r)?;
    Ok((p, r))
}

/// How to compile.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Whether loops count iterations down in the entry counter too, and
    /// when it runs out ask the runtime for optimized code to take the
    /// activation over (`BuiltinFunctionIndex::osr_entry` with the loop's
    /// index), which also tells it the function is hot: on when the code
    /// is to be replaced by optimized code (tiering). Needs
    /// `entry_counter`.
    pub osr: bool,
    /// The address of an `i32` that every call of the function counts
    /// down (and with `osr` every iteration of its loops); when it is 0
    /// or less the call sets it to [`HOT_COUNT`] and tells the runtime
    /// (`BuiltinFunctionIndex::osr_entry` with loop index
    /// `OSR_HOT_CALLS`), which optimizes the function sooner. A function
    /// is hot by the work its activations do, called often or looping
    /// long, even when no single activation loops long (an interpreter's
    /// step function called per row, say). The count is not atomic:
    /// threads running the function at the same time may lose
    /// decrements, which only delays the report. The address is built
    /// into the code, so the code must not outlive the counter (baseline
    /// code is never cached).
    ///
    /// With `osr`, the `i32` right after it counts the activations running
    /// this code: one more at entry, one less at every return (a trap or
    /// an exception unwinding past the frame leaves it counted; so may
    /// threads racing, as above). The runtime compiles a loop's
    /// on-stack-replacement entry only while some activation could take
    /// it.
    pub entry_counter: Option<u64>,
    /// The locals to keep in registers, if chosen ahead (from uses counted
    /// while the body was validated, [`RegisterLocals::choose`]); `None`
    /// reads the body once more to choose them.
    pub register_locals: Option<RegisterLocals>,
}

/// The integer locals that live in [`LOCAL_REGS`] for a whole function,
/// in that order: the most used, by their loop-weighted uses
/// ([`kiln_environ::LocalUses`]), as long as they are used at least
/// [`LOCAL_REG_MIN_USES`] times that way (each register costs a save and
/// a restore per call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegisterLocals([Option<u32>; LOCAL_REGS.len()]);

impl RegisterLocals {
    /// Chooses by `uses`.
    pub fn choose(uses: &LocalUses) -> RegisterLocals {
        let counts = uses.counts();
        let mut ranked: Vec<u32> = (0..counts.len() as u32)
            .filter(|&i| counts[i as usize] >= LOCAL_REG_MIN_USES && uses.is_integer(i))
            .collect();
        ranked.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
        let mut chosen = [None; LOCAL_REGS.len()];
        for (slot, i) in chosen.iter_mut().zip(ranked) {
            *slot = Some(i);
        }
        RegisterLocals(chosen)
    }

    /// The chosen locals' indices, in the order of the registers they get
    /// (`None` for a register no local gets).
    pub fn in_order(&self) -> &[Option<u32>] {
        &self.0
    }

    /// The register of each local, or `None` if a chosen local is out of
    /// range, not an integer, or chosen twice.
    fn registers(&self, locals: &[ValType]) -> Option<Vec<Option<Reg>>> {
        let mut regs = vec![None; locals.len()];
        for (&i, &r) in self.0.iter().zip(LOCAL_REGS.iter()) {
            let Some(i) = i else { continue };
            let i = i as usize;
            if !matches!(locals.get(i), Some(ValType::I32 | ValType::I64)) || regs[i].is_some() {
                return None;
            }
            regs[i] = Some(r);
        }
        Some(regs)
    }
}

/// A value on the operand stack that is not in its slot yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deferred {
    /// The current value of this local.
    Local(u32),
    /// These bits (an `i32` zero-extended; float bits as they are).
    Const(i64),
    /// The value is in this one of [`RESULT_REGS`] (its 8 bytes as its
    /// slot would hold them). No two entries share one, and no operator
    /// uses those registers for anything else.
    Reg(Reg),
    /// An integer comparison's `i32` result, in the flags: 1 when this
    /// condition holds. Only ever the top entry, pushed by the comparison
    /// itself: `if` and `br_if` branch on it directly and `eqz` inverts
    /// it; before any other operator emits code, it becomes a
    /// [`Deferred::Reg`] ([`Codegen::materialize_flags`]).
    Flags(Cond),
}

/// Where operators leave their integer results instead of storing
/// them, for the operators after to take from there (see
/// [`Codegen::push_reg`]): registers no operator uses as scratch. Calls
/// clobber them, and every operator that calls flushes the stack first.
/// More than one, so that an operator's two operands computed one after
/// the other (two loads before a comparison, say) both stay in registers:
/// with one, the first went to its slot and was read back at once, and
/// that store-to-load round trip set the pace of interpreter loops (PCRE2's
/// `match`, bench/LAZY.md, tenth session).
pub(crate) const RESULT_REGS: [Reg; 3] = [Reg::R10, Reg::R11, Reg::R9];

/// Where memory 0's base is kept from the prologue on, in a function of a
/// module with a 32-bit memory 0: rbx, callee-saved (the caller's value
/// waits in `frame::SAVED_RBX`). A memory's base never moves, so one
/// load serves the whole activation. A function that accesses no memory
/// gets the save, the load and the restores erased (`heap_base_code`).
pub(crate) const HEAP_BASE: Reg = Reg::Rbx;

/// Where a function's most used integer locals live instead of their
/// slots (see [`choose_local_regs`]): callee-saved in the `tail`
/// convention, so calls keep them; the prologue saves the caller's values
/// (`frame::saved_local_reg`) and every return restores them. No
/// operator uses them for anything else. Every write of an `i32` local's
/// register is a 32-bit one, so its upper half is zero and an address
/// can use the register as it is (`memory.rs`).
pub(crate) const LOCAL_REGS: [Reg; 4] = [Reg::R12, Reg::R13, Reg::R14, Reg::R15];

/// Where an operand is: a slot (a depth's or a local's), or a register
/// (one of [`RESULT_REGS`], or of [`LOCAL_REGS`] for a local living there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    /// In memory.
    Mem(Mem),
    /// In this register.
    Reg(Reg),
}

/// Calls and loop iterations between two reports of a function's entry
/// counter ([`Options::entry_counter`]).
pub const HOT_COUNT: i32 = 1000;

/// Everything one function's compilation reads and builds.
pub(crate) struct Codegen<'m> {
    pub(crate) module: &'m ModuleInfo,
    pub(crate) offsets: &'m VMOffsets,
    pub(crate) tunables: &'m Tunables,
    pub(crate) cpu: CpuFeatures,
    pub(crate) asm: Assembler,
    pub(crate) layout: Layout,
    /// Types of the locals, parameters first.
    pub(crate) locals: Vec<ValType>,
    /// The register each local lives in, if any (one of [`LOCAL_REGS`];
    /// the others live in their slots).
    pub(crate) local_regs: Vec<Option<Reg>>,
    /// The registers of [`LOCAL_REGS`] that hold locals, in that order:
    /// saved by the prologue and restored by every return.
    pub(crate) used_local_regs: Vec<Reg>,
    /// Types of the operand stack, bottom first.
    pub(crate) stack: Vec<ValType>,
    /// Operand-stack entries not yet stored in their depth's slot, lowest
    /// first: pushed by `local.get`, a constant, an integer operator that
    /// left its result in one of [`RESULT_REGS`], or a comparison that left it in
    /// the flags (see [`Deferred`]). A deferred local is read from the
    /// local's slot or register, a constant can be an immediate and a result in
    /// such a register is read from there (see [`Codegen::pop`],
    /// [`Codegen::pop_imm`], [`Codegen::pop_src`]) unless an operator that
    /// sees the stack in its slots comes first; [`Codegen::flush`] then
    /// stores them.
    pub(crate) deferred: Vec<(usize, Deferred)>,
    pub(crate) max_depth: usize,
    /// The largest stack argument area of any call made.
    pub(crate) max_outgoing: u32,
    pub(crate) control: Control,
    pub(crate) results: Vec<ValType>,
    /// Bytes of this function's stack arguments, popped when it returns.
    pub(crate) incoming_stack_bytes: u32,
    pub(crate) relocations: Vec<Relocation>,
    pub(crate) traps: Vec<(u32, TrapCode)>,
    pub(crate) address_map: Vec<(u32, u32)>,
    /// Out-of-line traps: their label, code and wasm offset.
    pub(crate) trap_stubs: Vec<(Label, TrapCode, u32)>,
    /// The wasm offset (from the body's start) of the operator being compiled.
    pub(crate) wasm_offset: u32,
    pub(crate) options: Options,
    /// The defined index of the function (for on-stack replacement).
    pub(crate) defined_index: u32,
    /// `loop` operators seen so far, reachable or not: the next one's
    /// index for on-stack replacement.
    pub(crate) loops_seen: u32,
    /// Whether the prologue loads memory 0's base into [`HEAP_BASE`].
    pub(crate) heap_base: bool,
    /// Whether an access used [`HEAP_BASE`].
    pub(crate) heap_base_used: bool,
    /// The code ranges that save, load and restore [`HEAP_BASE`], erased
    /// (made `nop`s) when no access used it.
    pub(crate) heap_base_code: Vec<(u32, u32)>,
}

/// Compiles defined function `func` with the baseline compiler.
///
/// # Errors
///
/// [`Declined`] when the function uses something the baseline compiler
/// does not handle (the caller then uses Cranelift), including a body it
/// cannot read.
pub fn compile_function(
    tunables: &Tunables,
    cpu: CpuFeatures,
    options: Options,
    module: &ModuleInfo,
    offsets: &VMOffsets,
    func: FuncIndex,
    body: &FunctionBody<'_>,
) -> Result<CompiledFunction, Declined> {
    if tunables.consume_fuel {
        return decline("fuel metering");
    }
    if tunables.epoch_interruption && !tunables.epoch_signals {
        return decline("polled epoch interruption");
    }
    if tunables.nan_canonicalization {
        return decline("NaN canonicalization");
    }
    let (params, results) = signature(module.func_type(func))?;
    let mut locals = params.clone();
    let mut reader = body.get_locals_reader().map_err(|e| Declined(e.to_string()))?;
    for _ in 0..reader.get_count() {
        let (count, t) = reader.read().map_err(|e| Declined(e.to_string()))?;
        let t = ValType::from_parser(t).ok_or_else(|| Declined(format!("local of type {t:?}")))?;
        if locals.len() as u64 + u64::from(count) > 50_000 {
            return decline("more than 50,000 locals");
        }
        locals.extend(std::iter::repeat_n(t, count as usize));
    }
    let layout = Layout { locals: locals.len() as u32 };
    let local_regs = choose_local_regs(&options, body, &locals)?;
    let used_local_regs = LOCAL_REGS.iter().copied().filter(|r| local_regs.contains(&Some(*r))).collect();
    let body_start = body.range().start;
    let mut g = Codegen {
        module,
        offsets,
        tunables,
        cpu,
        asm: Assembler::with_capacity(((body.range().end - body.range().start) as usize).saturating_mul(8) + 64),
        layout,
        locals,
        local_regs,
        used_local_regs,
        stack: Vec::new(),
        deferred: Vec::new(),
        max_depth: 0,
        max_outgoing: 0,
        control: Control::default(),
        results: results.clone(),
        incoming_stack_bytes: 0,
        relocations: Vec::new(),
        traps: Vec::new(),
        address_map: Vec::new(),
        trap_stubs: Vec::new(),
        wasm_offset: 0,
        options,
        defined_index: match module.defined_func_index(func) {
            Some(d) => d.as_u32(),
            None => return decline("an imported function"),
        },
        loops_seen: 0,
        heap_base: module.memories.first().is_some_and(|m| !m.memory64),
        heap_base_used: false,
        heap_base_code: Vec::new(),
    };
    let frame_patch = g.prologue(&params)?;
    let end = g.asm.new_label();
    g.control.push(Frame { kind: FrameKind::Function, height: 0, params: Vec::new(), results, end, head: None });
    let mut ops = body.get_operators_reader().map_err(|e| Declined(e.to_string()))?;
    while !ops.eof() {
        let pos = ops.original_position();
        let op = ops.read().map_err(|e| Declined(e.to_string()))?;
        g.wasm_offset = (pos - body_start) as u32;
        if g.control.is_empty() {
            return decline("operators after the function's end");
        }
        g.operator(op)?;
    }
    if !g.control.is_empty() {
        return decline("a body without its final end");
    }
    g.finish(frame_patch)
}

/// The register of each local ([`RegisterLocals`]): as chosen ahead in
/// `options`, or chosen now from the uses counted by reading the body
/// once more.
fn choose_local_regs(
    options: &Options,
    body: &FunctionBody<'_>,
    locals: &[ValType],
) -> Result<Vec<Option<Reg>>, Declined> {
    let scan = || {
        let mut uses = LocalUses::default();
        uses.count(body, locals.len() as u32, |i| matches!(locals.get(i as usize), Some(ValType::I32 | ValType::I64)))
            .map_err(|e| Declined(e.to_string()))?;
        Ok::<_, Declined>(RegisterLocals::choose(&uses))
    };
    if let Some(chosen) = options.register_locals
        && let Some(regs) = chosen.registers(locals)
    {
        // Tests run debug builds: the choice made ahead is the one
        // reading the body makes.
        debug_assert_eq!(Some(chosen), scan().ok(), "locals chosen ahead differ from the body's");
        return Ok(regs);
    }
    scan()?.registers(locals).ok_or_else(|| Declined("internal: locals chosen for registers".into()))
}

/// The fewest (loop-weighted) uses for which a local gets a register
/// (see [`RegisterLocals`]).
const LOCAL_REG_MIN_USES: u64 = 4;

impl Codegen<'_> {
    /// Emits the prologue: frame, stack-limit check, parameters and
    /// zeroed locals into their slots. Returns where the frame size goes
    /// once known (the displacement of the check's `lea` and the
    /// immediate of the `sub`).
    fn prologue(&mut self, params: &[ValType]) -> Result<(u32, u32), Declined> {
        let a = &mut self.asm;
        a.push(Reg::Rbp);
        a.mov_rr(Size::S64, Reg::Rbp, Reg::Rsp);
        // Stack limit: vmctx -> store context -> limit; the new stack
        // pointer must not go below it.
        a.load(Size::S64, Reg::Rax, Mem::base_disp(Reg::Rdi, vmoffsets::vmctx_header::STORE_CONTEXT as i32));
        // `lea r11, [rsp - frame]` with a 32-bit displacement patched later.
        a.lea(Reg::R11, Mem::base_disp(Reg::Rsp, i32::MIN / 2));
        let lea_patch = a.offset() - 4;
        a.alu_rm(Alu::Cmp, Size::S64, Reg::R11, Mem::base_disp(Reg::Rax, vmoffsets::store_context::STACK_LIMIT as i32));
        let overflow = a.new_label();
        a.jcc(Cond::B, overflow);
        self.trap_stubs.push((overflow, TrapCode::StackOverflow, 0));
        let a = &mut self.asm;
        a.alu_ri(Alu::Sub, Size::S64, Reg::Rsp, i32::MAX / 2);
        let sub_patch = a.offset() - 4;
        a.store(Size::S64, VMCTX, Reg::Rdi);
        for (k, &r) in LOCAL_REGS.iter().enumerate() {
            if self.used_local_regs.contains(&r) {
                self.asm.store(Size::S64, saved_local_reg(k), r);
            }
        }
        let args = crate::abi::args(params)?;
        self.incoming_stack_bytes = args.stack_bytes;
        for (i, loc) in args.locs.iter().enumerate() {
            let slot = self.layout.local(i as u32);
            match (*loc, self.local_regs[i]) {
                (Loc::Float(x), _) => self.asm.movs_store(FSize::F64, slot, x),
                (Loc::Int(r), Some(to)) => self.asm.mov_rr(width(self.locals[i]), to, r),
                (Loc::Int(r), None) => self.asm.store(Size::S64, slot, r),
                (Loc::Stack(off), Some(to)) => {
                    self.asm.load(width(self.locals[i]), to, Mem::base_disp(Reg::Rbp, 16 + off))
                }
                (Loc::Stack(off), None) => {
                    self.asm.load(Size::S64, Reg::Rax, Mem::base_disp(Reg::Rbp, 16 + off));
                    self.asm.store(Size::S64, slot, Reg::Rax);
                }
            }
        }
        if self.locals.len() > params.len() {
            self.asm.alu_rr(Alu::Xor, Size::S32, Reg::Rax, Reg::Rax);
            for i in params.len()..self.locals.len() {
                match self.local_regs[i] {
                    Some(r) => self.asm.alu_rr(Alu::Xor, Size::S32, r, r),
                    None => self.asm.store(Size::S64, self.layout.local(i as u32), Reg::Rax),
                }
            }
        }
        if self.heap_base {
            // After the arguments are in their slots: this uses rdx.
            let start = self.asm.offset();
            self.asm.store(Size::S64, SAVED_RBX, HEAP_BASE);
            let (def, off) = self.memory_definition(0)?;
            self.asm.load(Size::S64, HEAP_BASE, Mem::base_disp(def, off + vmoffsets::definition::BASE as i32));
            self.heap_base_code.push((start, self.asm.offset()));
        }
        if let Some(counter) = self.options.entry_counter {
            if self.options.osr {
                self.count_running(counter, 1);
            }
            self.count_entry(counter);
        }
        Ok((lea_patch, sub_patch))
    }

    /// Loads the function's results, from depth `first` up, into the
    /// result registers and returns.
    pub(crate) fn epilogue_from(&mut self, first: usize) -> Result<(), Declined> {
        let locs = crate::abi::results(&self.results)?;
        for (i, loc) in locs.iter().enumerate() {
            let slot = self.layout.depth(first + i);
            match *loc {
                Loc::Float(x) => self.asm.movs_load(FSize::F64, x, slot),
                Loc::Int(r) => self.asm.load(Size::S64, r, slot),
                Loc::Stack(_) => return decline("results returned through memory"),
            }
        }
        self.leave();
        Ok(())
    }

    /// Pops the frame and returns (popping the stack arguments), the
    /// results being in their registers already.
    pub(crate) fn leave(&mut self) {
        if let (true, Some(counter)) = (self.options.osr, self.options.entry_counter) {
            self.count_running(counter, -1);
        }
        for (k, &r) in LOCAL_REGS.iter().enumerate() {
            if self.used_local_regs.contains(&r) {
                self.asm.load(Size::S64, r, saved_local_reg(k));
            }
        }
        if self.heap_base {
            let start = self.asm.offset();
            self.asm.load(Size::S64, HEAP_BASE, SAVED_RBX);
            self.heap_base_code.push((start, self.asm.offset()));
        }
        self.asm.mov_rr(Size::S64, Reg::Rsp, Reg::Rbp);
        self.asm.pop(Reg::Rbp);
        match self.incoming_stack_bytes {
            0 => self.asm.ret(),
            n => {
                let [lo, hi, ..] = n.to_le_bytes();
                // `ret imm16`: also pops the stack arguments.
                self.asm.bytes(&[0xc2, lo, hi]);
            }
        }
    }

    fn finish(mut self, (lea_patch, sub_patch): (u32, u32)) -> Result<CompiledFunction, Declined> {
        let stubs = std::mem::take(&mut self.trap_stubs);
        for (label, code, wasm_offset) in stubs {
            self.asm.bind(label);
            let at = self.asm.offset();
            self.address_map.push((at, wasm_offset));
            self.traps.push((at, code));
            self.asm.ud2();
        }
        if !Layout::fits(u64::from(self.layout.locals), self.max_depth) {
            return decline("a frame too large");
        }
        let frame = self.layout.frame_bytes(self.max_depth);
        let mut code = self.asm.finish().map_err(|l| Declined(format!("internal: label {l} never bound")))?;
        let patch = |code: &mut Vec<u8>, at: u32, v: i32| {
            let at = at as usize;
            code[at..at + 4].copy_from_slice(&v.to_le_bytes());
        };
        // The check covers the frame and the largest outgoing argument area.
        patch(&mut code, lea_patch, -(frame as i32) - self.max_outgoing as i32);
        patch(&mut code, sub_patch, frame as i32);
        if !self.heap_base_used {
            for &(start, end) in &self.heap_base_code {
                code[start as usize..end as usize].fill(0x90);
            }
        }
        self.traps.sort_by_key(|t| t.0);
        self.address_map.sort_by_key(|e| e.0);
        self.address_map.dedup_by_key(|e| e.0);
        Ok(CompiledFunction {
            code,
            alignment: 16,
            relocations: self.relocations,
            traps: self.traps,
            address_map: self.address_map,
            exn_sites: Vec::new(),
            stack_maps: Vec::new(),
        })
    }

    /// Records that the code from here on comes from the current operator.
    pub(crate) fn mark(&mut self) {
        let at = self.asm.offset();
        match self.address_map.last_mut() {
            Some(last) if last.0 == at => last.1 = self.wasm_offset,
            _ => self.address_map.push((at, self.wasm_offset)),
        }
    }

    /// A new out-of-line trap for the current operator: jump to the label
    /// to trap with `code`.
    pub(crate) fn trap_label(&mut self, code: TrapCode) -> Label {
        let l = self.asm.new_label();
        self.trap_stubs.push((l, code, self.wasm_offset));
        l
    }

    /// Records that the instruction about to be emitted may fault with `code`.
    pub(crate) fn trap_here(&mut self, code: TrapCode) {
        let at = self.asm.offset();
        self.traps.push((at, code));
    }

    /// Pops a value of type `t`, returning where to read it: its depth's
    /// slot, or for a deferred `local.get` the local's slot (valid until
    /// the next local write).
    pub(crate) fn pop(&mut self, t: ValType) -> Result<Mem, Declined> {
        match self.pop_any()? {
            (m, have) if have == t => Ok(m),
            (_, have) => decline(format!("operand of type {have:?} where {t:?} was expected")),
        }
    }

    /// Pops any value (see [`Codegen::pop`]). A deferred constant, or a
    /// value in one of [`RESULT_REGS`], is stored in its slot first, with no other
    /// register changed (operators pop their operands before they use
    /// registers, but not always all).
    pub(crate) fn pop_any(&mut self) -> Result<(Mem, ValType), Declined> {
        let Some(t) = self.stack.pop() else { return decline("operand stack underflow") };
        let depth = self.stack.len();
        match self.deferred.last() {
            Some(&(d, what)) if d == depth => {
                self.deferred.pop();
                let slot = self.layout.depth(depth);
                match what {
                    Deferred::Local(local) => match self.local_regs[local as usize] {
                        Some(r) => {
                            self.asm.store(Size::S64, slot, r);
                            Ok((slot, t))
                        }
                        None => Ok((self.layout.local(local), t)),
                    },
                    Deferred::Const(bits) => {
                        self.store_const(slot, bits);
                        Ok((slot, t))
                    }
                    Deferred::Reg(r) => {
                        self.asm.store(Size::S64, slot, r);
                        Ok((slot, t))
                    }
                    Deferred::Flags(c) => {
                        self.store_flags(slot, c);
                        Ok((slot, t))
                    }
                }
            }
            _ => Ok((self.layout.depth(depth), t)),
        }
    }

    /// Pops a value of type `t` for an operator that can read it from a
    /// register: like [`Codegen::pop`], but a value in one of [`RESULT_REGS`]
    /// stays there (valid until the operator pushes its result), and a
    /// read of a local living in a register is that register.
    pub(crate) fn pop_src(&mut self, t: ValType) -> Result<Src, Declined> {
        let top = self.stack.len().checked_sub(1);
        let reg = match (top, self.deferred.last()) {
            (Some(d), Some(&(e, Deferred::Reg(r)))) if d == e => r,
            (Some(d), Some(&(e, Deferred::Local(i)))) if d == e => match self.local_regs[i as usize] {
                Some(r) => r,
                None => return self.pop(t).map(Src::Mem),
            },
            _ => return self.pop(t).map(Src::Mem),
        };
        match self.stack.pop() {
            Some(have) if have == t => {
                self.deferred.pop();
                Ok(Src::Reg(reg))
            }
            have => decline(format!("operand of type {have:?} where {t:?} was expected")),
        }
    }

    /// Pops a value of type `t` like [`Codegen::pop_src`], but loads a
    /// deferred constant into `scratch` and returns that (instead of
    /// storing it in its slot to be read back).
    pub(crate) fn pop_src_or_const(&mut self, t: ValType, scratch: Reg) -> Result<Src, Declined> {
        let top = self.stack.len().checked_sub(1);
        if let (Some(d), Some(&(e, Deferred::Const(bits)))) = (top, self.deferred.last())
            && d == e
            && self.stack[d] == t
        {
            self.stack.pop();
            self.deferred.pop();
            self.asm.mov_ri(Size::S64, scratch, bits);
            return Ok(Src::Reg(scratch));
        }
        self.pop_src(t)
    }

    /// Pushes an integer comparison's result, which the flags hold as
    /// condition `c` (see [`Deferred::Flags`]).
    pub(crate) fn push_flags(&mut self, c: Cond) {
        let depth = self.stack.len();
        self.push(ValType::I32);
        self.deferred.push((depth, Deferred::Flags(c)));
    }

    /// Pops the top value if it is a comparison's result still in the
    /// flags, returning its condition.
    pub(crate) fn pop_flags(&mut self) -> Option<Cond> {
        let depth = self.stack.len().checked_sub(1)?;
        let (d, Deferred::Flags(c)) = *self.deferred.last()? else { return None };
        if d != depth {
            return None;
        }
        self.stack.pop();
        self.deferred.pop();
        Some(c)
    }

    /// Turns a comparison's result in the flags into a value in
    /// one of [`RESULT_REGS`] (see [`Codegen::push_reg`]). Changes no
    /// register but rax and that one, and must run before anything
    /// changes the flags.
    pub(crate) fn materialize_flags(&mut self) {
        if let Some(c) = self.pop_flags() {
            self.flags_into_rax(c);
            self.push_reg(ValType::I32, Reg::Rax);
        }
    }

    /// Drops the top value, with no code for one not in its slot yet.
    pub(crate) fn drop_top(&mut self) -> Result<(), Declined> {
        if self.stack.pop().is_none() {
            return decline("operand stack underflow");
        }
        if self.deferred.last().is_some_and(|&(d, _)| d == self.stack.len()) {
            self.deferred.pop();
        }
        Ok(())
    }

    /// Loads `src` into `dst` (`s` bytes; a 4-byte load zero-extends).
    pub(crate) fn load_src(&mut self, s: Size, dst: Reg, src: Src) {
        match src {
            Src::Mem(m) => self.asm.load(s, dst, m),
            Src::Reg(r) if r == dst => {}
            Src::Reg(r) => self.asm.mov_rr(s, dst, r),
        }
    }

    /// A register holding `src`: its own, or `scratch` loaded with it
    /// (`s` bytes). For operators that only read the value.
    pub(crate) fn in_reg(&mut self, s: Size, scratch: Reg, src: Src) -> Reg {
        match src {
            Src::Reg(r) => r,
            Src::Mem(m) => {
                self.asm.load(s, scratch, m);
                scratch
            }
        }
    }

    /// `dst = dst <op> src`.
    pub(crate) fn alu_src(&mut self, op: Alu, s: Size, dst: Reg, src: Src) {
        match src {
            Src::Mem(m) => self.asm.alu_rm(op, s, dst, m),
            Src::Reg(r) => self.asm.alu_rr(op, s, dst, r),
        }
    }

    /// Pushes an integer result of type `t` held in `r`, leaving it in
    /// one of [`RESULT_REGS`] instead of its slot: the next operator
    /// usually takes it from there ([`Codegen::pop_src`]); anything else
    /// stores it first. `r` itself if it is one no other entry holds,
    /// else one of [`Codegen::free_result_reg`].
    pub(crate) fn push_reg(&mut self, t: ValType, r: Reg) {
        let target = if RESULT_REGS.contains(&r) && !self.holds(r) { r } else { self.free_result_reg() };
        if r != target {
            self.asm.mov_rr(Size::S64, target, r);
        }
        let depth = self.stack.len();
        self.push(t);
        self.deferred.push((depth, Deferred::Reg(target)));
    }

    /// Whether a deferred entry holds register `r`.
    fn holds(&self, r: Reg) -> bool {
        self.deferred.iter().any(|&(_, w)| w == Deferred::Reg(r))
    }

    /// One of [`RESULT_REGS`] that no entry holds, for an operator to
    /// compute its result in and then [`Codegen::push_reg`] it: with none
    /// free, the deepest value held in one is stored in its slot (no
    /// other register changes). An operator calls it only once it has
    /// popped its operands and no longer needs any of them in a register
    /// (a popped operand's register counts as free).
    pub(crate) fn free_result_reg(&mut self) -> Reg {
        if let Some(r) = RESULT_REGS.iter().copied().find(|&r| !self.holds(r)) {
            return r;
        }
        // The deferred entries are lowest first.
        let i = self.deferred.iter().position(|&(_, w)| matches!(w, Deferred::Reg(_)));
        match i.map(|i| self.deferred.remove(i)) {
            Some((d, Deferred::Reg(r))) => {
                self.asm.store(Size::S64, self.layout.depth(d), r);
                r
            }
            // Unreachable: with none free, an entry holds each.
            _ => RESULT_REGS[0],
        }
    }

    /// Whether `src` is a value in one of [`RESULT_REGS`] (popped, so an
    /// operator may compute its result there in place).
    pub(crate) fn result_reg_of(src: Src) -> Option<Reg> {
        match src {
            Src::Reg(r) if RESULT_REGS.contains(&r) => Some(r),
            _ => None,
        }
    }

    /// Stores the deferred reads of local `i` in their slots, before the
    /// local changes (no register but rax changes).
    fn flush_reads_of(&mut self, i: u32) {
        let mut k = 0;
        while k < self.deferred.len() {
            let (depth, what) = self.deferred[k];
            if what == Deferred::Local(i) {
                self.deferred.remove(k);
                self.store_local_copy(self.layout.depth(depth), i);
            } else {
                k += 1;
            }
        }
    }

    /// Pops the top value if it is a deferred constant of type `t` that
    /// an instruction can take as a sign-extended 32-bit immediate,
    /// returning the immediate; otherwise leaves the stack alone.
    pub(crate) fn pop_imm(&mut self, t: ValType) -> Option<i32> {
        let depth = self.stack.len().checked_sub(1)?;
        let (d, Deferred::Const(bits)) = *self.deferred.last()? else { return None };
        let imm = match t {
            ValType::I32 => bits as u32 as i32,
            ValType::I64 => i32::try_from(bits).ok()?,
            _ => return None,
        };
        if d != depth || self.stack[depth] != t {
            return None;
        }
        self.stack.pop();
        self.deferred.pop();
        Some(imm)
    }

    /// Writes 8 bytes of constant bits to a slot, with no register.
    fn store_const(&mut self, slot: Mem, bits: i64) {
        match i32::try_from(bits) {
            Ok(v) => self.asm.store_imm(Size::S64, slot, v),
            Err(_) => {
                self.asm.store_imm(Size::S32, slot, bits as i32);
                self.asm.store_imm(Size::S32, Mem { disp: slot.disp + 4, ..slot }, (bits >> 32) as i32);
            }
        }
    }

    /// Stores every deferred value in its depth's slot, so that the whole
    /// operand stack is in the depth slots, where the operators that see
    /// the stack read it.
    pub(crate) fn flush(&mut self) {
        for (depth, what) in std::mem::take(&mut self.deferred) {
            let slot = self.layout.depth(depth);
            match what {
                Deferred::Local(local) => self.store_local_copy(slot, local),
                Deferred::Const(bits) => self.store_const(slot, bits),
                Deferred::Reg(r) => self.asm.store(Size::S64, slot, r),
                Deferred::Flags(c) => self.store_flags(slot, c),
            }
        }
    }

    /// Stores local `i`'s value in `slot` (through rax for a local in its
    /// slot).
    fn store_local_copy(&mut self, slot: Mem, i: u32) {
        match self.local_regs[i as usize] {
            Some(r) => self.asm.store(Size::S64, slot, r),
            None => {
                self.asm.load(Size::S64, Reg::Rax, self.layout.local(i));
                self.asm.store(Size::S64, slot, Reg::Rax);
            }
        }
    }

    /// Stores the locals living in registers in their slots, where
    /// optimized code taking the activation over reads them (no register
    /// changes).
    pub(crate) fn spill_local_regs(&mut self) {
        for i in 0..self.local_regs.len() {
            if let Some(r) = self.local_regs[i] {
                self.asm.store(Size::S64, self.layout.local(i as u32), r);
            }
        }
    }

    /// Stores a comparison's result (condition `c` of the flags) in
    /// `slot`, through rax.
    fn store_flags(&mut self, slot: Mem, c: Cond) {
        self.flags_into_rax(c);
        self.asm.store(Size::S64, slot, Reg::Rax);
    }

    /// rax = 1 if the flags show condition `c`, else 0 (`mov` and `setcc`
    /// leave the flags alone).
    fn flags_into_rax(&mut self, c: Cond) {
        self.asm.mov_ri(Size::S32, Reg::Rax, 0);
        self.asm.setcc(c, Reg::Rax);
    }

    /// Pushes a value of type `t`, returning its slot.
    pub(crate) fn push(&mut self, t: ValType) -> Mem {
        let slot = self.layout.depth(self.stack.len());
        self.stack.push(t);
        self.max_depth = self.max_depth.max(self.stack.len());
        slot
    }

    /// The parameters and results of a block type.
    pub(crate) fn block_type(&self, bt: BlockType) -> Result<(Vec<ValType>, Vec<ValType>), Declined> {
        match bt {
            BlockType::Empty => Ok((Vec::new(), Vec::new())),
            BlockType::Type(t) => {
                Ok((Vec::new(), vec![ValType::from_parser(t).ok_or_else(|| Declined(format!("block of {t:?}")))?]))
            }
            BlockType::FuncType(i) => {
                let idx = kiln_environ::TypeIndex::from_u32(i);
                if i as usize >= self.module.types.len() {
                    return decline("block type index out of range");
                }
                let ty = self.module.func_type_at(idx);
                let conv = |ts: &[kiln_environ::WasmValType]| -> Result<Vec<ValType>, Declined> {
                    ts.iter()
                        .map(|t| ValType::from_wasm(*t).ok_or_else(|| Declined(format!("block of {t:?}"))))
                        .collect()
                };
                Ok((conv(ty.params())?, conv(ty.results())?))
            }
        }
    }

    /// Compiles one operator.
    fn operator(&mut self, op: Operator<'_>) -> Result<(), Declined> {
        if let Operator::Loop { .. } = op {
            self.loops_seen += 1;
        }
        if !self.control.reachable() {
            return self.unreachable_operator(op);
        }
        self.mark();
        if !matches!(op, Operator::If { .. } | Operator::BrIf { .. } | Operator::I32Eqz) {
            self.materialize_flags();
        }
        // Control, calls and `memory.grow` see the operand stack in its
        // slots (they copy it or pass it; calls clobber `RESULT_REGS`).
        // `if`, `br_if` and `br_table` pop their condition or index first
        // and then flush the rest themselves. Every other operator reads its operands through
        // `pop` or `pop_src` (numeric.rs and memory.rs touch no slot
        // otherwise) and writes no local but by `local.set` and
        // `local.tee`, which store the deferred reads of what they change.
        let sees_slots = matches!(
            op,
            Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::Else
                | Operator::End
                | Operator::Br { .. }
                | Operator::Return
                | Operator::Call { .. }
                | Operator::CallIndirect { .. }
                | Operator::MemoryGrow { .. }
                | Operator::Unreachable
        );
        if sees_slots {
            self.flush();
        }
        match op {
            Operator::Nop => Ok(()),
            Operator::Unreachable => {
                self.trap_here(TrapCode::UnreachableCodeReached);
                self.asm.ud2();
                self.control.set_unreachable();
                Ok(())
            }
            Operator::Block { blockty } => self.block(blockty, false),
            Operator::Loop { blockty } => self.block(blockty, true),
            Operator::If { blockty } => self.if_(blockty),
            Operator::Else => self.else_(),
            Operator::End => self.end(),
            Operator::Br { relative_depth } => {
                self.branch(relative_depth)?;
                self.control.set_unreachable();
                Ok(())
            }
            Operator::BrIf { relative_depth } => self.br_if(relative_depth),
            Operator::BrTable { targets } => self.br_table(&targets),
            Operator::Return => {
                let n = self.results.len();
                let first = match self.stack.len().checked_sub(n) {
                    Some(f) => f,
                    None => return decline("operand stack underflow"),
                };
                self.epilogue_from(first)?;
                self.control.set_unreachable();
                Ok(())
            }
            Operator::Call { function_index } => self.call(function_index),
            Operator::CallIndirect { type_index, table_index } => self.call_indirect(type_index, table_index),
            Operator::MemoryGrow { mem } => self.memory_grow(mem),
            Operator::Drop => self.drop_top(),
            Operator::Select => self.select(None),
            Operator::TypedSelect { ty } => {
                self.select(Some(ValType::from_parser(ty).ok_or_else(|| Declined(format!("select of {ty:?}")))?))
            }
            Operator::LocalGet { local_index } => self.local_get(local_index),
            Operator::LocalSet { local_index } => self.local_set(local_index, false),
            Operator::LocalTee { local_index } => self.local_set(local_index, true),
            Operator::GlobalGet { global_index } => self.global_get(global_index),
            Operator::GlobalSet { global_index } => self.global_set(global_index),
            op => self.numeric_or_memory(op),
        }
    }

    /// An operator in unreachable code: only the block structure matters.
    fn unreachable_operator(&mut self, op: Operator<'_>) -> Result<(), Declined> {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
                self.control.enter_dead();
                Ok(())
            }
            Operator::Else if self.control.dead_depth() == 0 => {
                self.mark();
                self.else_()
            }
            Operator::End if self.control.dead_depth() == 0 => {
                self.mark();
                self.end()
            }
            Operator::End => {
                self.control.leave_dead();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Pushes local `i` without copying it: the value is read from the
    /// local's slot (see [`Codegen::deferred`]).
    fn local_get(&mut self, i: u32) -> Result<(), Declined> {
        let Some(&t) = self.locals.get(i as usize) else { return decline("local index out of range") };
        let depth = self.stack.len();
        self.push(t);
        self.deferred.push((depth, Deferred::Local(i)));
        Ok(())
    }

    /// `local.set` and `local.tee`: a constant is stored as an
    /// immediate, a value in one of [`RESULT_REGS`] straight from there (and
    /// `local.tee` leaves it there), anything else is copied.
    fn local_set(&mut self, i: u32, tee: bool) -> Result<(), Declined> {
        let Some(&t) = self.locals.get(i as usize) else { return decline("local index out of range") };
        if self.stack.last() != Some(&t) {
            return decline("local.set of a value of another type");
        }
        let imm = if tee { None } else { self.pop_imm(t) };
        let from = match imm {
            Some(_) => None,
            // (A wide constant in rax: the flush below changes only rax
            // to store reads of a slot local, and this local is in a
            // register then.)
            None if !tee && self.local_regs[i as usize].is_some() => Some(self.pop_src_or_const(t, Reg::Rax)?),
            None => Some(self.pop_src(t)?),
        };
        // Deferred reads of the local below must see its old value.
        self.flush_reads_of(i);
        let to = self.layout.local(i);
        let w = width(t);
        match (from, self.local_regs[i as usize]) {
            (Some(Src::Reg(r)), Some(dst)) if r == dst => {}
            (Some(Src::Reg(r)), Some(dst)) => self.asm.mov_rr(w, dst, r),
            (Some(Src::Mem(from)), Some(dst)) => self.asm.load(w, dst, from),
            (None, Some(dst)) => self.asm.mov_ri(w, dst, i64::from(imm.unwrap_or_default())),
            (Some(Src::Reg(r)), None) => self.asm.store(Size::S64, to, r),
            (Some(Src::Mem(from)), None) => {
                self.asm.load(Size::S64, Reg::Rax, from);
                self.asm.store(Size::S64, to, Reg::Rax);
            }
            (None, None) => self.asm.store_imm(Size::S64, to, imm.unwrap_or_default()),
        }
        if tee {
            match from {
                // Still there; the local's new value is its copy.
                Some(Src::Reg(r)) => self.push_reg(t, r),
                // Its copy in the local is what it was.
                _ => self.local_get(i)?,
            }
        }
        Ok(())
    }

    /// `select`: the operands from where they are (bits, whatever the
    /// type), the result in the result register (a float's bits too, as
    /// a load leaves them).
    fn select(&mut self, ty: Option<ValType>) -> Result<(), Declined> {
        let n = self.stack.len();
        if n < 3 {
            return decline("operand stack underflow");
        }
        let (ta, tb) = (self.stack[n - 3], self.stack[n - 2]);
        if ta != tb || ty.is_some_and(|t| t != ta) {
            return decline("select of mismatched types");
        }
        let c = self.pop_src(ValType::I32)?;
        let b = self.pop_src(tb)?;
        let a = self.pop_src(ta)?;
        self.load_src(Size::S64, Reg::Rax, a);
        let b = self.in_reg(Size::S64, Reg::Rcx, b);
        let c = self.in_reg(Size::S32, Reg::Rdx, c);
        self.asm.test_rr(Size::S32, c, c);
        self.asm.cmovcc(Cond::E, Size::S64, Reg::Rax, b);
        self.push_reg(ta, Reg::Rax);
        Ok(())
    }
}
