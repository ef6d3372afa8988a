//! Structured control flow: the stack of open blocks, branches (which copy
//! the values they carry down to the target's depth) and `br_table`'s jump
//! table.

use crate::compiler::{Codegen, Declined, decline};
use crate::frame::ValType;
use crate::x64::asm::{Alu, Cond, Label, Mem, Reg, Size};
use wasmparser::{BlockType, BrTable};

/// What kind of block a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The function body.
    Function,
    /// `block`.
    Block,
    /// `loop`: branches go to its head.
    Loop,
    /// `if`: its `else` label, until `else` binds it.
    If(Option<Label>),
}

/// An open block.
#[derive(Clone, Debug)]
pub struct Frame {
    /// What it is.
    pub kind: FrameKind,
    /// The operand-stack depth below its parameters.
    pub height: usize,
    /// Its parameter types.
    pub params: Vec<ValType>,
    /// Its result types.
    pub results: Vec<ValType>,
    /// Its end.
    pub end: Label,
    /// A loop's head.
    pub head: Option<Label>,
}

impl Frame {
    /// The types a branch to this frame carries.
    fn branch_types(&self) -> &[ValType] {
        if self.kind == FrameKind::Loop { &self.params } else { &self.results }
    }

    /// Where a branch to this frame goes.
    fn target(&self) -> Label {
        self.head.unwrap_or(self.end)
    }
}

/// The open blocks, and whether the code being compiled is reachable.
#[derive(Default)]
pub struct Control {
    frames: Vec<Frame>,
    /// False after an unconditional branch, until the block's end or else.
    unreachable: bool,
    /// Blocks opened inside unreachable code (skipped whole).
    dead: u32,
}

impl Control {
    /// Opens a block.
    pub fn push(&mut self, f: Frame) {
        self.frames.push(f);
    }

    /// Whether no block is open (the function's end was seen).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether code here can run.
    pub fn reachable(&self) -> bool {
        !self.unreachable
    }

    /// Marks the code from here to the block's end unreachable.
    pub fn set_unreachable(&mut self) {
        self.unreachable = true;
    }

    /// A block opened in unreachable code.
    pub fn enter_dead(&mut self) {
        self.dead += 1;
    }

    /// The end of a block opened in unreachable code.
    pub fn leave_dead(&mut self) {
        self.dead = self.dead.saturating_sub(1);
    }

    /// How many blocks opened in unreachable code are still open.
    pub fn dead_depth(&self) -> u32 {
        self.dead
    }

    fn frame(&self, relative_depth: u32) -> Result<&Frame, Declined> {
        match self.frames.len().checked_sub(relative_depth as usize + 1) {
            Some(i) => Ok(&self.frames[i]),
            None => decline("branch depth out of range"),
        }
    }
}

impl Codegen<'_> {
    /// `block` and `loop`.
    pub(crate) fn block(&mut self, bt: BlockType, is_loop: bool) -> Result<(), Declined> {
        let (params, results) = self.block_type(bt)?;
        let height = self.block_height(&params)?;
        let end = self.asm.new_label();
        let head = if is_loop {
            let h = self.asm.new_label();
            self.asm.bind(h);
            if let (true, Some(counter)) = (self.options.osr, self.options.entry_counter)
                && self.stack.is_empty()
                && params.is_empty()
            {
                self.osr_check(self.loops_seen - 1, counter)?;
            }
            Some(h)
        } else {
            None
        };
        let kind = if is_loop { FrameKind::Loop } else { FrameKind::Block };
        self.control.push(Frame { kind, height, params, results, end, head });
        Ok(())
    }

    /// The depth below a new block's parameters, which must be on top of
    /// the stack.
    fn block_height(&self, params: &[ValType]) -> Result<usize, Declined> {
        match self.stack.len().checked_sub(params.len()) {
            Some(h) if self.stack[h..] == *params => Ok(h),
            _ => decline("block parameters not on the stack"),
        }
    }

    /// `if`.
    pub(crate) fn if_(&mut self, bt: BlockType) -> Result<(), Declined> {
        let holds = self.condition()?;
        let (params, results) = self.block_type(bt)?;
        if !params.is_empty() {
            // The else arm would need the parameters the then arm consumed.
            return decline("if with parameters");
        }
        let height = self.block_height(&params)?;
        let else_label = self.asm.new_label();
        self.asm.jcc(holds.invert(), else_label);
        let end = self.asm.new_label();
        self.control.push(Frame { kind: FrameKind::If(Some(else_label)), height, params, results, end, head: None });
        Ok(())
    }

    /// `else`.
    pub(crate) fn else_(&mut self) -> Result<(), Declined> {
        let Some(f) = self.control.frames.last_mut() else { return decline("else outside a block") };
        let FrameKind::If(Some(else_label)) = f.kind else { return decline("else without its if") };
        f.kind = FrameKind::If(None);
        let (end, height, params) = (f.end, f.height, f.params.clone());
        if self.control.reachable() {
            self.asm.jmp(end);
        }
        self.asm.bind(else_label);
        self.stack.truncate(height);
        self.stack.extend(params);
        self.control.unreachable = false;
        Ok(())
    }

    /// `end`.
    pub(crate) fn end(&mut self) -> Result<(), Declined> {
        let Some(f) = self.control.frames.pop() else { return decline("end outside a block") };
        if let FrameKind::If(Some(else_label)) = f.kind {
            // No else: the false path falls through to the end with the
            // parameters, which equal the results.
            self.asm.bind(else_label);
        }
        if f.kind == FrameKind::Function {
            self.asm.bind(f.end);
            self.stack.truncate(f.height);
            self.stack.extend(f.results.iter().copied());
            // Also when the end is unreachable by falling through: a branch
            // to the function's body lands here.
            self.epilogue_from(f.height)?;
            self.control.unreachable = false;
            return Ok(());
        }
        self.asm.bind(f.end);
        self.stack.truncate(f.height);
        self.stack.extend(f.results.iter().copied());
        self.max_depth = self.max_depth.max(self.stack.len());
        self.control.unreachable = false;
        Ok(())
    }

    /// Copies the values a branch to `relative_depth` carries to the
    /// target's depth and jumps there.
    pub(crate) fn branch(&mut self, relative_depth: u32) -> Result<(), Declined> {
        let (target, height, n) = self.branch_target(relative_depth)?;
        self.copy_down(n, height);
        self.asm.jmp(target);
        Ok(())
    }

    /// The label a branch to `relative_depth` jumps to, the depth its
    /// values go to, and how many it carries.
    fn branch_target(&self, relative_depth: u32) -> Result<(Label, usize, usize), Declined> {
        let f = self.control.frame(relative_depth)?;
        let types = f.branch_types();
        let n = types.len();
        match self.stack.len().checked_sub(n) {
            Some(from) if self.stack[from..] == *types => {}
            _ => return decline("branch values not on the stack"),
        }
        if f.kind == FrameKind::Function {
            // A branch to the function's body is a return: it goes to the
            // end, whose epilogue reads the results from the bottom.
        }
        Ok((f.target(), f.height, n))
    }

    /// Copies the top `n` values to depths `height..height + n`.
    fn copy_down(&mut self, n: usize, height: usize) {
        let from = self.stack.len() - n;
        if from == height {
            return;
        }
        for i in 0..n {
            self.asm.load(Size::S64, Reg::Rax, self.layout.depth(from + i));
            self.asm.store(Size::S64, self.layout.depth(height + i), Reg::Rax);
        }
    }

    /// `br_if`.
    pub(crate) fn br_if(&mut self, relative_depth: u32) -> Result<(), Declined> {
        let holds = self.condition()?;
        let (target, height, n) = self.branch_target(relative_depth)?;
        if self.stack.len() - n == height {
            self.asm.jcc(holds, target);
        } else {
            let skip = self.asm.new_label();
            self.asm.jcc(holds.invert(), skip);
            self.copy_down(n, height);
            self.asm.jmp(target);
            self.asm.bind(skip);
        }
        Ok(())
    }

    /// Pops the `i32` condition of `if` or `br_if`, stores the rest of
    /// the operand stack in its slots (where the branch's target reads
    /// it), and returns the flags' condition that holds when the
    /// condition is true: a comparison's own (its result never left the
    /// flags), or nonzero. The stores change no flag and no register but
    /// rax.
    fn condition(&mut self) -> Result<Cond, Declined> {
        if let Some(c) = self.pop_flags() {
            self.flush();
            return Ok(c);
        }
        let c = self.pop_src(ValType::I32)?;
        let c = self.in_reg(Size::S32, Reg::Rcx, c);
        self.flush();
        self.asm.test_rr(Size::S32, c, c);
        Ok(Cond::Ne)
    }

    /// `br_table`: a bounds check and a jump table of 32-bit offsets;
    /// targets whose values must move first get a stub that copies and
    /// jumps.
    pub(crate) fn br_table(&mut self, targets: &BrTable<'_>) -> Result<(), Declined> {
        // The index from where it is, then the rest of the stack into its
        // slots (which changes no register but rax).
        let index = self.pop_src(ValType::I32)?;
        let index = self.in_reg(Size::S32, Reg::Rcx, index);
        self.flush();
        let mut depths = Vec::with_capacity(targets.len() as usize + 1);
        for t in targets.targets() {
            depths.push(t.map_err(|e| Declined(e.to_string()))?);
        }
        let default = targets.default();
        // Each distinct depth's entry: its target, or a copying stub.
        let mut entries: Vec<(u32, Label, Option<Label>)> = Vec::new();
        let mut entry_for = |g: &mut Self, depth: u32| -> Result<Label, Declined> {
            if let Some(e) = entries.iter().find(|e| e.0 == depth) {
                return Ok(e.2.unwrap_or(e.1));
            }
            let (target, height, n) = g.branch_target(depth)?;
            let stub = (g.stack.len() - n != height).then(|| g.asm.new_label());
            entries.push((depth, target, stub));
            Ok(stub.unwrap_or(target))
        };
        let default_entry = entry_for(self, default)?;
        let mut table = Vec::with_capacity(depths.len());
        for d in &depths {
            table.push(entry_for(self, *d)?);
        }
        self.asm.mov_rr(Size::S32, Reg::Rax, index);
        self.asm.alu_ri(Alu::Cmp, Size::S32, Reg::Rax, i32::try_from(table.len()).unwrap_or(i32::MAX));
        self.asm.jcc(Cond::Ae, default_entry);
        let base = self.asm.new_label();
        self.asm.lea_label(Reg::Rcx, base);
        self.asm.load_sx32(Reg::Rax, Mem::base_index(Reg::Rcx, Reg::Rax, 4, 0));
        self.asm.alu_rr(Alu::Add, Size::S64, Reg::Rax, Reg::Rcx);
        self.asm.jmp_reg(Reg::Rax);
        self.asm.align(4);
        self.asm.bind(base);
        for l in &table {
            self.asm.label_offset32(*l, base);
        }
        for (depth, target, stub) in entries {
            if let Some(stub) = stub {
                self.asm.bind(stub);
                let (_, height, n) = self.branch_target(depth)?;
                self.copy_down(n, height);
                self.asm.jmp(target);
            }
        }
        self.control.set_unreachable();
        Ok(())
    }
}
