//! Checks the x86-64 encoder against the system disassembler (`objdump`): every
//! method is emitted with a spread of registers, memory operands and sizes, and
//! each instruction's disassembly is compared with the Intel text expected.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use kiln_test_data::DataError;
use libtest_mimic::{Arguments, Failed, Trial};

use kiln_baseline::x64::asm::{Alu, Assembler, Cond, FSize, Label, Mem, Reg, Shift, Size, SseOp, Xmm};

const REGS: [Reg; 16] = [
    Reg::Rax,
    Reg::Rcx,
    Reg::Rdx,
    Reg::Rbx,
    Reg::Rsp,
    Reg::Rbp,
    Reg::Rsi,
    Reg::Rdi,
    Reg::R8,
    Reg::R9,
    Reg::R10,
    Reg::R11,
    Reg::R12,
    Reg::R13,
    Reg::R14,
    Reg::R15,
];

const CONDS: [Cond; 16] = [
    Cond::O,
    Cond::No,
    Cond::B,
    Cond::Ae,
    Cond::E,
    Cond::Ne,
    Cond::Be,
    Cond::A,
    Cond::S,
    Cond::Ns,
    Cond::P,
    Cond::Np,
    Cond::L,
    Cond::Ge,
    Cond::Le,
    Cond::G,
];

const COND_NAMES: [&str; 16] = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

const SIZES: [Size; 2] = [Size::S32, Size::S64];
const FSIZES: [FSize; 2] = [FSize::F32, FSize::F64];

/// Every register paired with a different register, each appearing once on each side.
fn pairs() -> impl Iterator<Item = (Reg, Reg)> {
    (0..16).map(|i| (REGS[i], REGS[(i * 5 + 3) % 16]))
}

/// Xmm pairs covering xmm0, xmm8 and xmm15 on both sides.
fn xmm_pairs() -> [(Xmm, Xmm); 6] {
    [(Xmm(0), Xmm(1)), (Xmm(8), Xmm(0)), (Xmm(15), Xmm(8)), (Xmm(3), Xmm(15)), (Xmm(7), Xmm(9)), (Xmm(12), Xmm(4))]
}

fn r64(r: Reg) -> String {
    ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
        [r as usize]
        .to_string()
}

fn r32(r: Reg) -> String {
    match r as usize {
        0..8 => format!("e{}", &r64(r)[1..]),
        n => format!("r{n}d"),
    }
}

fn r16(r: Reg) -> String {
    match r as usize {
        0..8 => r64(r)[1..].to_string(),
        n => format!("r{n}w"),
    }
}

fn r8(r: Reg) -> String {
    ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"]
        .get(r as usize)
        .map_or_else(|| format!("r{}b", r as usize), |s| s.to_string())
}

fn rs(s: Size, r: Reg) -> String {
    match s {
        Size::S32 => r32(r),
        Size::S64 => r64(r),
    }
}

fn ptr(s: Size) -> &'static str {
    match s {
        Size::S32 => "DWORD PTR ",
        Size::S64 => "QWORD PTR ",
    }
}

fn fptr(f: FSize) -> &'static str {
    match f {
        FSize::F32 => "DWORD PTR ",
        FSize::F64 => "QWORD PTR ",
    }
}

fn hex(v: i64) -> String {
    if v < 0 { format!("-0x{:x}", v.unsigned_abs()) } else { format!("+0x{v:x}") }
}

/// objdump's spelling of a memory operand.
fn mem(m: Mem) -> String {
    let mut s = format!("[{}", r64(m.base));
    if let Some((i, scale)) = m.index {
        write!(s, "+{}*{scale}", r64(i)).unwrap();
    }
    // rbp/r13 as base always carry a displacement, even 0.
    if m.disp != 0 || matches!(m.base, Reg::Rbp | Reg::R13) {
        s += &hex(i64::from(m.disp));
    }
    s + "]"
}

/// Memory operands: every base, with and without index, disp 0 / 8-bit / 32-bit / negative.
fn mems() -> Vec<Mem> {
    let disps = [0, 8, -8, 0x7f, -0x80, 0x80, -0x81, 0x1234_5678, i32::MIN, i32::MAX];
    let mut v = Vec::new();
    for (i, &base) in REGS.iter().enumerate() {
        v.push(Mem::base_disp(base, disps[i % disps.len()]));
        let index = REGS[(i * 7 + 5) % 16];
        let index = if index == Reg::Rsp { Reg::R12 } else { index };
        v.push(Mem::base_index(base, index, [1, 2, 4, 8][i % 4], disps[(i + 3) % disps.len()]));
    }
    for d in [0, 1, -1, 0x100, -0x100] {
        v.push(Mem::base_disp(Reg::Rsp, d));
        v.push(Mem::base_disp(Reg::Rbp, d));
        v.push(Mem::base_disp(Reg::R12, d));
        v.push(Mem::base_disp(Reg::R13, d));
        v.push(Mem::base_index(Reg::R13, Reg::R12, 8, d));
        v.push(Mem::base_index(Reg::Rsp, Reg::Rbp, 1, d));
    }
    v
}

fn x(r: Xmm) -> String {
    format!("xmm{}", r.0)
}

fn ss_sd(f: FSize) -> &'static str {
    match f {
        FSize::F32 => "ss",
        FSize::F64 => "sd",
    }
}

fn ps_pd(f: FSize) -> &'static str {
    match f {
        FSize::F32 => "ps",
        FSize::F64 => "pd",
    }
}

/// Instructions emitted so far, each with the text objdump should print for it.
struct Cases {
    asm: Assembler,
    expect: Vec<(u32, u32, String)>,
}

impl Cases {
    fn new() -> Cases {
        Cases { asm: Assembler::new(), expect: Vec::new() }
    }

    fn case(&mut self, want: impl Into<String>, emit: impl FnOnce(&mut Assembler)) {
        let start = self.asm.offset();
        emit(&mut self.asm);
        self.expect.push((start, self.asm.offset(), want.into()));
    }
}

/// Disassembles `code` with objdump (whose presence `objdump_missing`
/// checked first).
fn objdump(name: &str, code: &[u8]) -> BTreeMap<u32, String> {
    let path: PathBuf = std::env::temp_dir().join(format!("kiln-baseline-asm-{}-{name}.bin", std::process::id()));
    std::fs::write(&path, code).expect("write temp file");
    let out = Command::new("objdump")
        .args(["-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", "--no-show-raw-insn"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.expect("run objdump");
    assert!(out.status.success(), "objdump failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut insns = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((addr, text)) = line.split_once(":\t") else { continue };
        let Ok(addr) = u32::from_str_radix(addr.trim(), 16) else { continue };
        insns.insert(addr, normalize(text));
    }
    insns
}

/// Why the checks against objdump cannot run here, if they cannot.
fn objdump_missing() -> Option<DataError> {
    match Command::new("objdump").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(DataError::Missing(format!(
            "the checks against the disassembler need objdump (binutils), and `objdump --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Some(DataError::Missing(format!(
            "the checks against the disassembler need objdump (binutils), not found: {e}"
        ))),
    }
}

/// Collapses whitespace runs to one space, and trims.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compares each expected instruction with objdump's, including where it ends.
fn check(name: &str, code: &[u8], expect: &[(u32, u32, String)]) {
    let insns = objdump(name, code);
    let mut failures = String::new();
    for (start, end, want) in expect {
        let got = insns.get(start).map_or("<no instruction starts here>", |s| s.as_str());
        let next = insns.range(start + 1..).next().map_or(code.len() as u32, |(&a, _)| a);
        if normalize(want) != got || next != *end {
            let bytes: Vec<String> = code[*start as usize..*end as usize].iter().map(|b| format!("{b:02x}")).collect();
            writeln!(
                failures,
                "at {start:#x} [{}]: want `{want}`, objdump `{got}` (ends at {next:#x})",
                bytes.join(" ")
            )
            .unwrap();
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{failures}", failures.lines().count());
    eprintln!("{name}: {} instructions match objdump", expect.len());
}

fn emit_all(c: &mut Cases) {
    let mems = mems();
    let mem_regs = || mems.iter().copied().zip(REGS.iter().copied().cycle());

    // ---- moves ----
    for s in SIZES {
        for (d, r) in pairs() {
            c.case(format!("mov {},{}", rs(s, d), rs(s, r)), |a| a.mov_rr(s, d, r));
        }
    }
    let imms =
        [0, 1, -1, -2, 0x7f, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, -0x8000_0000, 0x1_0000_0000, i64::MIN, i64::MAX];
    for (i, &imm) in imms.iter().enumerate() {
        for d in [REGS[i % 16], REGS[(i + 4) % 16], REGS[(i + 12) % 16]] {
            c.case(format!("mov {},0x{:x}", r32(d), imm as u32), |a| a.mov_ri(Size::S32, d, imm));
            let want = if u32::try_from(imm).is_ok() {
                format!("mov {},0x{:x}", r32(d), imm)
            } else if i32::try_from(imm).is_ok() {
                format!("mov {},0x{:x}", r64(d), imm as u64)
            } else {
                format!("movabs {},0x{:x}", r64(d), imm as u64)
            };
            c.case(want, |a| a.mov_ri(Size::S64, d, imm));
        }
    }
    for s in SIZES {
        for (m, r) in mem_regs() {
            c.case(format!("mov {},{}{}", rs(s, r), ptr(s), mem(m)), |a| a.load(s, r, m));
            c.case(format!("mov {}{},{}", ptr(s), mem(m), rs(s, r)), |a| a.store(s, m, r));
            c.case(format!("{} {},{}{}", "add", rs(s, r), ptr(s), mem(m)), |a| a.alu_rm(Alu::Add, s, r, m));
            c.case(format!("movsx {},BYTE PTR {}", rs(s, r), mem(m)), |a| a.load_sx8(s, r, m));
            c.case(format!("movsx {},WORD PTR {}", rs(s, r), mem(m)), |a| a.load_sx16(s, r, m));
        }
        for (i, imm) in [0, 5, -1, 0x1234_5678, i32::MIN].into_iter().enumerate() {
            let m = mems[i * 7 % mems.len()];
            let shown = match s {
                Size::S32 => format!("0x{:x}", imm as u32),
                Size::S64 => format!("0x{:x}", i64::from(imm) as u64),
            };
            c.case(format!("mov {}{},{shown}", ptr(s), mem(m)), |a| a.store_imm(s, m, imm));
        }
    }
    for (m, r) in mem_regs() {
        c.case(format!("movzx {},BYTE PTR {}", r32(r), mem(m)), |a| a.load_zx8(r, m));
        c.case(format!("movzx {},WORD PTR {}", r32(r), mem(m)), |a| a.load_zx16(r, m));
        c.case(format!("movsxd {},DWORD PTR {}", r64(r), mem(m)), |a| a.load_sx32(r, m));
        c.case(format!("mov BYTE PTR {},{}", mem(m), r8(r)), |a| a.store8(m, r));
        c.case(format!("mov WORD PTR {},{}", mem(m), r16(r)), |a| a.store16(m, r));
        c.case(format!("lea {},{}", r64(r), mem(m)), |a| a.lea(r, m));
        c.case(format!("jmp QWORD PTR {}", mem(m)), |a| a.jmp_mem(m));
        c.case(format!("call QWORD PTR {}", mem(m)), |a| a.call_mem(m));
    }
    for (d, r) in pairs() {
        c.case(format!("movzx {},{}", r32(d), r8(r)), |a| a.movzx8_rr(d, r));
        c.case(format!("movzx {},{}", r32(d), r16(r)), |a| a.movzx16_rr(d, r));
        c.case(format!("movsxd {},{}", r64(d), r32(r)), |a| a.movsxd_rr(d, r));
        for s in SIZES {
            c.case(format!("movsx {},{}", rs(s, d), r8(r)), |a| a.movsx8_rr(s, d, r));
            c.case(format!("movsx {},{}", rs(s, d), r16(r)), |a| a.movsx16_rr(s, d, r));
        }
    }

    // ---- integer ALU ----
    let alus = [
        (Alu::Add, "add"),
        (Alu::Or, "or"),
        (Alu::Adc, "adc"),
        (Alu::Sbb, "sbb"),
        (Alu::And, "and"),
        (Alu::Sub, "sub"),
        (Alu::Xor, "xor"),
        (Alu::Cmp, "cmp"),
    ];
    for s in SIZES {
        for (k, &(op, name)) in alus.iter().enumerate() {
            for (d, r) in pairs() {
                c.case(format!("{name} {},{}", rs(s, d), rs(s, r)), |a| a.alu_rr(op, s, d, r));
            }
            for (i, imm) in
                [0, 1, -1, 0x7f, -0x80, 0x80, -0x81, 0x1234_5678, i32::MIN, i32::MAX].into_iter().enumerate()
            {
                let d = REGS[(i + k * 3) % 16];
                let shown = match s {
                    Size::S32 => format!("0x{:x}", imm as u32),
                    Size::S64 => format!("0x{:x}", i64::from(imm) as u64),
                };
                c.case(format!("{name} {},{shown}", rs(s, d)), |a| a.alu_ri(op, s, d, imm));
            }
            let m = mems[k * 3 % mems.len()];
            let d = REGS[15 - k];
            c.case(format!("{name} {},{}{}", rs(s, d), ptr(s), mem(m)), |a| a.alu_rm(op, s, d, m));
            for (i, imm) in [1, -1, 0x7f, -0x80, 0x80, 0x1234_5678, i32::MIN].into_iter().enumerate() {
                let m = mems[(k * 3 + i + 1) % mems.len()];
                let shown = match s {
                    Size::S32 => format!("0x{:x}", imm as u32),
                    Size::S64 => format!("0x{:x}", i64::from(imm) as u64),
                };
                c.case(format!("{name} {}{},{shown}", ptr(s), mem(m)), |a| a.alu_mi(op, s, m, imm));
            }
        }
        for (d, r) in pairs() {
            c.case(format!("test {},{}", rs(s, d), rs(s, r)), |a| a.test_rr(s, d, r));
            c.case(format!("imul {},{}", rs(s, d), rs(s, r)), |a| a.imul_rr(s, d, r));
            c.case(format!("lzcnt {},{}", rs(s, d), rs(s, r)), |a| a.lzcnt(s, d, r));
            c.case(format!("tzcnt {},{}", rs(s, d), rs(s, r)), |a| a.tzcnt(s, d, r));
            c.case(format!("popcnt {},{}", rs(s, d), rs(s, r)), |a| a.popcnt(s, d, r));
            for (i, &cc) in CONDS.iter().enumerate() {
                if (i + d as usize).is_multiple_of(4) {
                    c.case(format!("cmov{} {},{}", COND_NAMES[i], rs(s, d), rs(s, r)), |a| a.cmovcc(cc, s, d, r));
                }
            }
        }
        for r in REGS {
            c.case(format!("neg {}", rs(s, r)), |a| a.neg(s, r));
            c.case(format!("not {}", rs(s, r)), |a| a.not(s, r));
            c.case(format!("div {}", rs(s, r)), |a| a.div(s, false, r));
            c.case(format!("idiv {}", rs(s, r)), |a| a.div(s, true, r));
            for (op, name) in [
                (Shift::Rol, "rol"),
                (Shift::Ror, "ror"),
                (Shift::Shl, "shl"),
                (Shift::Shr, "shr"),
                (Shift::Sar, "sar"),
            ] {
                c.case(format!("{name} {},cl", rs(s, r)), |a| a.shift_cl(op, s, r));
                let imm = (r as u8 * 3 + op as u8) % 64;
                c.case(format!("{name} {},0x{imm:x}", rs(s, r)), |a| a.shift_ri(op, s, r, imm));
            }
        }
    }
    c.case("cdq", |a| a.cdq_cqo(Size::S32));
    c.case("cqo", |a| a.cdq_cqo(Size::S64));
    for r in REGS {
        for (i, &cc) in CONDS.iter().enumerate() {
            c.case(format!("set{} {}", COND_NAMES[i], r8(r)), |a| a.setcc(cc, r));
        }
        c.case(format!("push {}", r64(r)), |a| a.push(r));
        c.case(format!("pop {}", r64(r)), |a| a.pop(r));
        c.case(format!("jmp {}", r64(r)), |a| a.jmp_reg(r));
        c.case(format!("call {}", r64(r)), |a| a.call_reg(r));
    }

    // ---- control ----
    let at = c.asm.offset();
    c.case(format!("call 0x{:x}", at + 5), |a| assert_eq!(a.call_rel32(), at + 1));
    c.case("ret", |a| a.ret());
    c.case("ud2", |a| a.ud2());
    c.case("int3", |a| a.int3());
    c.case("nop", |a| a.bytes(&[0x90]));

    // ---- SSE ----
    for f in FSIZES {
        let (ss, ps) = (ss_sd(f), ps_pd(f));
        for (d, r) in xmm_pairs() {
            c.case(format!("mova{ps} {},{}", x(d), x(r)), |a| a.movs_rr(f, d, r));
            for (op, name) in [
                (SseOp::Add, "add"),
                (SseOp::Sub, "sub"),
                (SseOp::Mul, "mul"),
                (SseOp::Div, "div"),
                (SseOp::Min, "min"),
                (SseOp::Max, "max"),
                (SseOp::Sqrt, "sqrt"),
            ] {
                c.case(format!("{name}{ss} {},{}", x(d), x(r)), |a| a.sse_op(op, f, d, r));
            }
            c.case(format!("ucomi{ss} {},{}", x(d), x(r)), |a| a.ucomis(f, d, r));
            let other = match f {
                FSize::F32 => "sd",
                FSize::F64 => "ss",
            };
            c.case(format!("cvt{ss}2{other} {},{}", x(d), x(r)), |a| a.cvts2s(f, d, r));
            for mode in [0, 1, 2, 3, 8, 11] {
                c.case(format!("round{ss} {},{},0x{mode:x}", x(d), x(r)), |a| a.rounds(f, d, r, mode));
            }
            c.case(format!("and{ps} {},{}", x(d), x(r)), |a| a.andp(f, d, r));
            c.case(format!("andn{ps} {},{}", x(d), x(r)), |a| a.andnp(f, d, r));
            c.case(format!("or{ps} {},{}", x(d), x(r)), |a| a.orp(f, d, r));
            c.case(format!("xor{ps} {},{}", x(d), x(r)), |a| a.xorp(f, d, r));
        }
        for (i, m) in mems.iter().copied().enumerate() {
            let r = xmm_pairs()[i % 6].0;
            c.case(format!("mov{ss} {},{}{}", x(r), fptr(f), mem(m)), |a| a.movs_load(f, r, m));
            c.case(format!("mov{ss} {}{},{}", fptr(f), mem(m), x(r)), |a| a.movs_store(f, m, r));
        }
        for s in SIZES {
            for (i, r) in REGS.into_iter().enumerate() {
                let v = xmm_pairs()[i % 6].0;
                c.case(format!("cvtsi2{ss} {},{}", x(v), rs(s, r)), |a| a.cvtsi2s(f, s, v, r));
                c.case(format!("cvtt{ss}2si {},{}", rs(s, r), x(v)), |a| a.cvtts2si(f, s, r, v));
            }
        }
    }
    for s in SIZES {
        let q = match s {
            Size::S32 => "movd",
            Size::S64 => "movq",
        };
        for (i, r) in REGS.into_iter().enumerate() {
            let v = xmm_pairs()[i % 6].1;
            c.case(format!("{q} {},{}", x(v), rs(s, r)), |a| a.movd_to_xmm(s, v, r));
            c.case(format!("{q} {},{}", rs(s, r), x(v)), |a| a.movd_from_xmm(s, r, v));
        }
    }
}

fn every_instruction_matches_objdump() {
    let mut c = Cases::new();
    emit_all(&mut c);
    let Cases { asm, expect } = c;
    let code = asm.finish().expect("no labels used");
    check("all", &code, &expect);
}

fn some_encodings_by_hand() {
    let mut a = Assembler::new();
    a.mov_rr(Size::S64, Reg::Rax, Reg::Rcx);
    a.load(Size::S32, Reg::Rax, Mem::base_disp(Reg::Rsp, 8));
    a.load(Size::S64, Reg::R8, Mem::base_disp(Reg::R13, 0));
    a.store8(Mem::base_disp(Reg::Rax, 0), Reg::Rsi);
    a.store8(Mem::base_disp(Reg::Rax, 0), Reg::Rbx);
    a.mov_ri(Size::S64, Reg::Rax, -1);
    a.mov_ri(Size::S64, Reg::R9, 0xffff_ffff);
    a.alu_ri(Alu::Sub, Size::S64, Reg::Rsp, 16);
    a.movs_load(FSize::F64, Xmm(8), Mem::base_index(Reg::R12, Reg::Rax, 8, -4));
    let want: &[u8] = &[
        0x48, 0x89, 0xC8, // mov rax, rcx
        0x8B, 0x44, 0x24, 0x08, // mov eax, [rsp+8]
        0x4D, 0x8B, 0x45, 0x00, // mov r8, [r13+0]
        0x40, 0x88, 0x30, // mov [rax], sil
        0x88, 0x18, // mov [rax], bl
        0x48, 0xC7, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, // mov rax, -1
        0x41, 0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov r9d, 0xffffffff
        0x48, 0x83, 0xEC, 0x10, // sub rsp, 16
        0xF2, 0x45, 0x0F, 0x10, 0x44, 0xC4, 0xFC, // movsd xmm8, [r12+rax*8-4]
    ];
    assert_eq!(a.finish().expect("no labels"), want);
}

/// Where the labels of `labels_resolve` ended up.
struct At {
    back: u32,
    fwd: u32,
    data: u32,
}

/// An instruction whose text depends on label offsets known only at the end: (start, end, text of (labels, end)).
type Pending = (u32, u32, Box<dyn Fn(&At, u32) -> String>);

fn pend(
    a: &mut Assembler,
    pending: &mut Vec<Pending>,
    emit: impl FnOnce(&mut Assembler),
    want: impl Fn(&At, u32) -> String + 'static,
) {
    let start = a.offset();
    emit(a);
    pending.push((start, a.offset(), Box::new(want)));
}

fn labels_resolve() {
    let mut a = Assembler::with_capacity(256);
    let back = a.new_label();
    let fwd = a.new_label();
    let table = a.new_label();
    let data = a.new_label();
    let unused = a.new_label();
    let mut p = Vec::new();
    let p = &mut p;

    let back_at = a.offset();
    a.bind(back);
    assert!(a.is_bound(back) && !a.is_bound(fwd) && !a.is_bound(unused));
    pend(&mut a, p, |a| a.bytes(&[0x90]), |_, _| "nop".into());
    pend(&mut a, p, |a| a.jmp(fwd), |at, _| format!("jmp 0x{:x}", at.fwd));
    pend(&mut a, p, |a| a.jcc(Cond::Ne, fwd), |at, _| format!("jne 0x{:x}", at.fwd));
    pend(&mut a, p, |a| a.jcc(Cond::L, back), |at, _| format!("jl 0x{:x}", at.back));
    pend(&mut a, p, |a| a.jmp(back), |at, _| format!("jmp 0x{:x}", at.back));
    for (i, r) in [Reg::Rax, Reg::R13, Reg::Rsp, Reg::R15].into_iter().enumerate() {
        let forward = i % 2 == 0;
        pend(
            &mut a,
            p,
            |a| a.lea_label(r, if forward { data } else { back }),
            move |at, end| {
                let target = if forward { at.data } else { at.back };
                let rel = i64::from(target) - i64::from(end);
                format!("lea {},[rip+0x{:x}] # 0x{target:x}", r64(r), rel as u64)
            },
        );
    }
    for cc in CONDS {
        pend(&mut a, p, |a| a.jcc(cc, fwd), move |at, _| format!("j{} 0x{:x}", COND_NAMES[cc as usize], at.fwd));
        pend(&mut a, p, |a| a.jcc(cc, back), move |at, _| format!("j{} 0x{:x}", COND_NAMES[cc as usize], at.back));
    }
    let fwd_at = a.offset();
    a.bind(fwd);
    assert!(a.is_bound(fwd));
    pend(&mut a, p, |a| a.jmp(fwd), |at, _| format!("jmp 0x{:x}", at.fwd));
    pend(&mut a, p, |a| a.jcc(Cond::G, fwd), |at, _| format!("jg 0x{:x}", at.fwd));
    pend(&mut a, p, |a| a.jmp(back), |at, _| format!("jmp 0x{:x}", at.back));
    let code_end = a.offset();
    a.align(16);
    let table_at = a.offset();
    assert_eq!(table_at % 16, 0);
    a.align(16);
    a.align(0);
    a.align(1);
    assert_eq!(a.offset(), table_at);
    a.bind(table);
    a.label_offset32(back, table);
    a.label_offset32(fwd, table);
    a.label_offset32(data, table);
    let data_at = a.offset();
    a.bind(data);
    a.bytes(&[1, 2, 3, 4]);

    let code = a.finish().expect("all jumped-to labels are bound");
    assert_eq!(code.len() as u32, data_at + 4);
    assert!(code[code_end as usize..table_at as usize].iter().all(|&b| b == 0xCC), "int3 padding");
    let entry = |i: usize| {
        let at = table_at as usize + 4 * i;
        i32::from_le_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]])
    };
    assert_eq!(entry(0), back_at as i32 - table_at as i32);
    assert_eq!(entry(1), fwd_at as i32 - table_at as i32);
    assert_eq!(entry(2), 12);
    let at = At { back: back_at, fwd: fwd_at, data: data_at };
    let expect: Vec<(u32, u32, String)> = p.iter().map(|(s, e, f)| (*s, *e, f(&at, *e))).collect();
    check("labels", &code[..code_end as usize], &expect);
}

fn finish_reports_unbound_labels() {
    let mut a = Assembler::new();
    let bound = a.new_label();
    let unbound = a.new_label();
    a.bind(bound);
    a.jmp(bound);
    a.jcc(Cond::E, unbound);
    assert_eq!(a.finish(), Err(1));

    let mut a = Assembler::new();
    let l = a.new_label();
    a.lea_label(Reg::Rax, l);
    assert_eq!(a.finish(), Err(0));

    let mut a = Assembler::new();
    let base = a.new_label();
    let l = a.new_label();
    a.bind(base);
    a.label_offset32(l, base);
    assert_eq!(a.finish(), Err(1));

    // A label never jumped to need not be bound.
    let mut a = Assembler::new();
    let _unused: Label = a.new_label();
    a.ret();
    assert_eq!(a.finish(), Ok(vec![0xC3]));
}

fn cond_invert() {
    for (i, c) in CONDS.into_iter().enumerate() {
        assert_eq!(c.invert() as usize, i ^ 1);
        assert_eq!(c.invert().invert(), c);
    }
}

fn binding_twice_panics() {
    let mut a = Assembler::new();
    let l = a.new_label();
    a.bind(l);
    a.bind(l);
}

fn rsp_index_panics() {
    let _ = Mem::base_index(Reg::Rax, Reg::Rsp, 1, 0);
}

fn rsp_index_in_literal_mem_panics() {
    let mut a = Assembler::new();
    a.load(Size::S64, Reg::Rax, Mem { base: Reg::Rax, index: Some((Reg::Rsp, 1)), disp: 0 });
}

/// objdump prints `[rax+0x8]` the same whether the displacement is encoded in 1 or 4 bytes, and
/// `add eax,0x5` the same in its imm8 and imm32 forms: check the lengths pick the short forms.
fn short_forms_are_chosen() {
    let len = |emit: &dyn Fn(&mut Assembler)| {
        let mut a = Assembler::new();
        emit(&mut a);
        a.offset()
    };
    let m = |base, disp| Mem::base_disp(base, disp);
    let mi = |base, disp| Mem::base_index(base, Reg::Rcx, 4, disp);
    let load = |mem: Mem| len(&move |a| a.load(Size::S32, Reg::Rax, mem));
    assert_eq!(load(m(Reg::Rax, 0)), 2);
    assert_eq!(load(m(Reg::Rax, 8)), 3);
    assert_eq!(load(m(Reg::Rax, -128)), 3);
    assert_eq!(load(m(Reg::Rax, 128)), 6);
    assert_eq!(load(m(Reg::Rax, -129)), 6);
    assert_eq!(load(m(Reg::Rsp, 0)), 3);
    assert_eq!(load(m(Reg::Rsp, 8)), 4);
    assert_eq!(load(m(Reg::Rbp, 0)), 3);
    assert_eq!(load(m(Reg::R12, 0)), 4);
    assert_eq!(load(m(Reg::R13, 0)), 4);
    assert_eq!(load(mi(Reg::Rax, 0)), 3);
    assert_eq!(load(mi(Reg::Rbp, 0)), 4);
    assert_eq!(load(mi(Reg::Rax, -8)), 4);
    assert_eq!(load(mi(Reg::Rax, 0x100)), 7);
    assert_eq!(len(&|a| a.alu_ri(Alu::Add, Size::S32, Reg::Rcx, 5)), 3);
    assert_eq!(len(&|a| a.alu_ri(Alu::Add, Size::S32, Reg::Rcx, -128)), 3);
    assert_eq!(len(&|a| a.alu_ri(Alu::Add, Size::S32, Reg::Rcx, 128)), 6);
    assert_eq!(len(&|a| a.alu_ri(Alu::Add, Size::S64, Reg::Rcx, 5)), 4);
    assert_eq!(len(&|a| a.mov_ri(Size::S64, Reg::Rcx, 5)), 5);
    assert_eq!(len(&|a| a.setcc(Cond::E, Reg::Rbx)), 3);
    assert_eq!(len(&|a| a.setcc(Cond::E, Reg::Rdi)), 4);
    assert_eq!(len(&|a| a.push(Reg::Rbp)), 1);
    assert_eq!(len(&|a| a.jmp_reg(Reg::Rax)), 2);
}

/// A trial of `f`, which must panic with a message containing `expected`.
fn should_panic(name: &str, expected: &'static str, f: fn()) -> Trial {
    Trial::test(name, move || {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(f);
        std::panic::set_hook(hook);
        let Err(payload) = result else { return Err(Failed::from("did not panic")) };
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        if message.contains(expected) {
            Ok(())
        } else {
            Err(format!("panicked with `{message}`, expected `{expected}`").into())
        }
    })
}

fn main() {
    let args = Arguments::from_args();
    let plain = |name: &str, f: fn()| {
        Trial::test(name, move || {
            f();
            Ok(())
        })
    };
    let against_objdump = |name: &str, f: fn()| match objdump_missing() {
        None => plain(name, f),
        Some(why) => why.into_trial(name),
    };
    let trials = vec![
        against_objdump("every_instruction_matches_objdump", every_instruction_matches_objdump),
        plain("some_encodings_by_hand", some_encodings_by_hand),
        against_objdump("labels_resolve", labels_resolve),
        plain("finish_reports_unbound_labels", finish_reports_unbound_labels),
        plain("cond_invert", cond_invert),
        should_panic("binding_twice_panics", "bound twice", binding_twice_panics),
        should_panic("rsp_index_panics", "rsp cannot be an index", rsp_index_panics),
        should_panic("rsp_index_in_literal_mem_panics", "rsp cannot be an index", rsp_index_in_literal_mem_panics),
        plain("short_forms_are_chosen", short_forms_are_chosen),
    ];
    libtest_mimic::run(&args, trials).exit();
}
