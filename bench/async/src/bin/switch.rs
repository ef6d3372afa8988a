//! `switch [ROUNDS] [N] [kiln|corosensei|ret|jmp]`: the cost of one round
//! trip into a fiber and back (a resume, then a suspend), for Kiln's
//! hand-written stack switch and for the `corosensei` crate.
//!
//! - `kiln`: `kiln::__private_testing::fiber_round_trips(N)`, which resumes
//!   a raw Kiln fiber (64 KiB stack) whose body loops on `suspend()`, N
//!   times. Kiln's `Fiber::resume` also swaps the thread's wasm state
//!   (activation chain, stack limit) in and out around the switch, as every
//!   async call does; that is part of its figure.
//! - `corosensei`: a `Coroutine` on a 64 KiB `DefaultStack` whose body
//!   loops on `yielder.suspend(..)`, resumed N times.
//!
//! Both are started (resumed once) before the clock starts. The two
//! alternate for ROUNDS rounds (default 15; which goes first alternates
//! too), N round trips each (default 10,000,000). Prints every round's
//! wall-clock ns per round trip and the medians.
//!
//! On x86-64 two bare switches written here (module `bare`) are measured
//! after that, as a diagnosis of the difference: `ret` is the shape of
//! Kiln's `fiber_switch` (push the callee-saved registers, store the stack
//! pointer, load the other one, pop, `ret`), and `jmp` is the same but
//! leaves with `pop rcx; jmp rcx` instead of `ret`. Each side's `ret`
//! returns to an address that the other stack's call pushed, which the
//! processor's return prediction gets wrong every time; the indirect jump
//! is predicted from its history.
//!
//! Naming one of the four runs only that one, ROUNDS times (for
//! `perf stat`).

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Kiln's fiber: `n` round trips.
fn kiln(n: u64) -> Duration {
    kiln::__private_testing::fiber_round_trips(n)
}

/// corosensei: `n` round trips, timed the same way.
fn corosensei(n: u64) -> Duration {
    let stack = DefaultStack::new(64 << 10).expect("a corosensei stack");
    // The body counts its suspends, so that the run can check that every
    // resume really ran it (the count costs an add per round trip).
    let mut co: Coroutine<(), u64, (), DefaultStack> = Coroutine::with_stack(stack, |yielder, ()| {
        let mut suspends = 0u64;
        loop {
            suspends += 1;
            yielder.suspend(suspends);
        }
    });
    // Start it: runs the body to its first suspend.
    assert!(matches!(co.resume(()), CoroutineResult::Yield(1)));
    let mut last = 0;
    let start = Instant::now();
    for _ in 0..n {
        if let CoroutineResult::Yield(s) = co.resume(black_box(())) {
            last = s;
        }
    }
    let t = start.elapsed();
    assert_eq!(last, n + 1, "corosensei: a resume did not run the body");
    // Dropping a suspended coroutine unwinds its stack (outside the timing).
    drop(co);
    t
}

/// Two minimal stack switches, for telling what Kiln's costs (x86-64).
#[cfg(target_arch = "x86_64")]
mod bare {
    use std::time::{Duration, Instant};

    /// What both sides of a bare fiber share: each one's saved stack
    /// pointer while the other runs.
    #[repr(C)]
    struct Ctx {
        main_sp: usize,
        fiber_sp: usize,
        /// Round trips the fiber's body made.
        trips: u64,
    }

    /// Kiln's switch shape: pushes rbp, rbx, r12-r15, stores rsp at
    /// `save`, loads `to`, pops the other side's six, `ret`.
    #[unsafe(naked)]
    unsafe extern "C" fn switch_ret(_save: *mut usize, _to: usize) {
        core::arch::naked_asm!(
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "mov [rdi], rsp",
            "mov rsp, rsi",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
        )
    }

    /// The same, leaving by an indirect jump to the popped address.
    #[unsafe(naked)]
    unsafe extern "C" fn switch_jmp(_save: *mut usize, _to: usize) {
        core::arch::naked_asm!(
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "mov [rdi], rsp",
            "mov rsp, rsi",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
        )
    }

    /// A fiber body: counts a round trip, switches back, forever.
    macro_rules! body {
        ($name:ident, $switch:ident) => {
            extern "C" fn $name(ctx: *mut Ctx) -> ! {
                loop {
                    // SAFETY: `ctx` outlives the fiber (see `round_trips`);
                    // only one side runs at a time.
                    unsafe {
                        (*ctx).trips += 1;
                        $switch(&raw mut (*ctx).fiber_sp, (*ctx).main_sp);
                    }
                }
            }
        };
    }
    body!(body_ret, switch_ret);
    body!(body_jmp, switch_jmp);

    /// Where a new fiber starts: its initial frame left the context in
    /// rbx and the body in r12. Entered with the stack as after a call;
    /// realigns it for calling the body.
    #[unsafe(naked)]
    unsafe extern "C" fn start() -> ! {
        core::arch::naked_asm!("mov rdi, rbx", "sub rsp, 8", "call r12", "ud2")
    }

    /// `n` round trips between this stack and a fiber on a 64 KiB stack,
    /// with `switch_ret` (`jmp == false`) or `switch_jmp`.
    pub fn round_trips(n: u64, jmp: bool) -> Duration {
        let switch = if jmp { switch_jmp } else { switch_ret };
        let body: extern "C" fn(*mut Ctx) -> ! = if jmp { body_jmp } else { body_ret };
        let mut stack = vec![0u64; 8 << 10];
        let top = (stack.as_mut_ptr_range().end as usize) & !15;
        let mut ctx = Box::new(Ctx { main_sp: 0, fiber_sp: 0, trips: 0 });
        let ctx_ptr: *mut Ctx = &mut *ctx;
        // The frame the first switch pops: r15, r14, r13, r12 = body,
        // rbx = ctx, rbp = 0, then the return address `start`.
        let frame: [usize; 8] = [0, 0, 0, body as usize, ctx_ptr as usize, 0, start as *const () as usize, 0];
        let sp = top - 64;
        // SAFETY: `[sp, top)` lies in `stack`, which outlives the fiber;
        // the fiber only runs inside the `switch` calls below, and never
        // after this function (its frames own nothing, so abandoning it
        // suspended is fine). Both sides pass the saved stack pointers
        // of a live frame.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut usize, frame.len());
            (*ctx_ptr).fiber_sp = sp;
            switch(&raw mut (*ctx_ptr).main_sp, (*ctx_ptr).fiber_sp);
            let begin = Instant::now();
            for _ in 0..n {
                switch(&raw mut (*ctx_ptr).main_sp, (*ctx_ptr).fiber_sp);
            }
            let t = begin.elapsed();
            assert_eq!((*ctx_ptr).trips, n + 1, "the bare fiber did not run every time");
            drop(stack);
            t
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: switch [ROUNDS] [N] [kiln|corosensei|ret|jmp]";
    let rounds: usize = args.get(1).map_or(15, |s| s.parse().expect(usage));
    let n: u64 = args.get(2).map_or(10_000_000, |s| s.parse().expect(usage));
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    if let Some(which) = args.get(3) {
        let f: fn(u64) -> Duration = match which.as_str() {
            "kiln" => kiln,
            "corosensei" => corosensei,
            #[cfg(target_arch = "x86_64")]
            "ret" => |n| bare::round_trips(n, false),
            #[cfg(target_arch = "x86_64")]
            "jmp" => |n| bare::round_trips(n, true),
            _ => panic!("{usage}"),
        };
        let per: Vec<f64> = (0..rounds).map(|_| ns(f(n))).collect();
        println!("{which}: median {:.2} ns per round trip over {rounds} rounds of {n}", median(&per));
        return;
    }

    // Warm up both (page faults on the stacks, code in cache).
    kiln(n / 10);
    corosensei(n / 10);

    let (mut k, mut c) = (Vec::new(), Vec::new());
    println!("{rounds} rounds of {n} round trips each; ns per round trip (wall clock)");
    println!("round  kiln   corosensei  kiln/corosensei");
    for r in 0..rounds {
        let (kn, cn) = if r % 2 == 0 {
            let kn = ns(kiln(n));
            (kn, ns(corosensei(n)))
        } else {
            let cn = ns(corosensei(n));
            (ns(kiln(n)), cn)
        };
        println!("{r:>5}  {kn:5.2}  {cn:10.2}  {:15.3}", kn / cn);
        k.push(kn);
        c.push(cn);
    }
    let ratios: Vec<f64> = k.iter().zip(&c).map(|(a, b)| a / b).collect();
    println!(
        "median: kiln {:.2} ns, corosensei {:.2} ns, kiln/corosensei {:.3} (median of the per-round ratios)",
        median(&k),
        median(&c),
        median(&ratios)
    );

    #[cfg(target_arch = "x86_64")]
    {
        let (mut r, mut j) = (Vec::new(), Vec::new());
        for _ in 0..rounds.min(5) {
            r.push(ns(bare::round_trips(n, false)));
            j.push(ns(bare::round_trips(n, true)));
        }
        println!(
            "bare switches (x86-64, {} rounds): leaving by `ret` as Kiln's does {:.2} ns, by `pop; jmp` {:.2} ns",
            r.len(),
            median(&r),
            median(&j)
        );
    }
}
