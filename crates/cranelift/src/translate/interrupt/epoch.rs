//! Epoch checks: polling the store's interrupt flag.
//!
//! Where checks go (`mod.rs`), the store context's `epoch_interrupt` flag
//! is loaded and, when raised, calls `new_epoch`, which rechecks the
//! deadline and traps, clears a stale flag, or stores a new deadline. The
//! flag is raised by whoever advances the engine's epoch (kiln's
//! `vm/epoch.rs`), so the check is one load off the store context and a
//! branch; without fuel, the store context itself sits in the pinned
//! register. With `Tunables::epoch_signals` there are no epoch checks at
//! all: the thread advancing the epoch signals the thread running the
//! store, whose handler makes the wasm call `new_epoch` where it was
//! interrupted (kiln's `vm/traphandlers.rs`); only builtin calls poll.

use super::fuel::Fuel;
use crate::translate::emitter::Emitter;
use crate::translate::memory::state_flags;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, types};
use cranelift_codegen::isa::TargetIsa;
use kiln_environ::vmoffsets::{store_context, vmctx_header};
use kiln_environ::{BuiltinFunctionIndex, Tunables};

/// How the function being translated notices a new epoch.
pub(super) struct Epochs {
    /// Checks poll the flag (epochs on, without signals).
    polled: bool,
    /// Builtin calls poll the flag after they return (epochs by signal).
    after_builtins: bool,
    /// The pinned register holds the store context (it does whenever it
    /// is on without fuel: only for polled epochs).
    store_context_pinned: bool,
}

impl Epochs {
    /// The epoch handling `tunables` ask for on `isa`.
    pub(super) fn new(tunables: &Tunables, isa: &dyn TargetIsa) -> Epochs {
        Epochs {
            polled: tunables.epoch_interruption && !tunables.epoch_signals,
            after_builtins: tunables.epoch_signals,
            store_context_pinned: !tunables.consume_fuel && isa.flags().enable_pinned_reg(),
        }
    }

    /// Whether checks poll the flag.
    pub(super) fn polled(&self) -> bool {
        self.polled
    }

    /// Branches to `new_epoch` when the store's interrupt flag is raised.
    ///
    /// The check must not cost the loop around it a register: in a tight
    /// loop, a cached pointer or deadline pushes some other value onto the
    /// stack. With epoch interruption on, the entry trampoline puts the
    /// store context in Cranelift's pinned register (r15 on x86-64, x21 on
    /// aarch64), which no other code allocates and which stays valid for
    /// the whole activation (all of its functions belong to one store). A
    /// check is then one load off that register and a branch (on x86-64 a
    /// `cmp [r15+48], 0`). The load is never merged with the previous
    /// iteration's: the flag is written by other threads, and the cold
    /// path's call is a barrier to Cranelift's alias analysis anyway.
    pub(super) fn check(&self, e: &mut Emitter<'_, '_>, fuel: &mut Fuel) {
        // With signals, the runtime stops the code where it runs
        // (`vm/traphandlers.rs`); nothing to poll.
        if self.polled {
            self.poll(e, fuel);
        }
    }

    /// With epoch signals: after a builtin call returns. A signal that
    /// arrived while the builtin ran found no wasm to stop (a loop around
    /// `memory.copy` spends most of its time in the builtin), so the flag
    /// is polled here, once per call of a builtin that does real work.
    pub(super) fn after_builtin(&self, e: &mut Emitter<'_, '_>, fuel: &mut Fuel, index: BuiltinFunctionIndex) {
        if self.after_builtins && index != BuiltinFunctionIndex::new_epoch {
            self.poll(e, fuel);
        }
    }

    /// At the start of a catch block: the runtime's throw path ran Rust
    /// code, which may have used the pinned register, so the store
    /// context is put back there when it lives in it.
    pub(super) fn on_handler_entry(&self, e: &mut Emitter<'_, '_>) {
        if self.store_context_pinned {
            let ctx = e.builder.ins().load(
                types::I64,
                MemFlagsData::trusted().with_readonly(),
                e.vmctx,
                vmctx_header::STORE_CONTEXT as i32,
            );
            e.builder.ins().set_pinned_reg(ctx);
        }
    }

    /// Loads the store's interrupt flag and calls `new_epoch` when raised.
    fn poll(&self, e: &mut Emitter<'_, '_>, fuel: &mut Fuel) {
        let pointer = MemFlagsData::trusted().with_readonly();
        let ctx = if self.store_context_pinned {
            e.builder.ins().get_pinned_reg(types::I64)
        } else {
            e.builder.ins().load(types::I64, pointer, e.vmctx, vmctx_header::STORE_CONTEXT as i32)
        };
        // The thread advancing the epoch raises this flag when the store's
        // deadline is reached (see kiln's `vm/epoch.rs`): one load, no
        // comparison of epochs here.
        let reached =
            e.builder.ins().load(types::I64, state_flags(e.regions), ctx, store_context::EPOCH_INTERRUPT as i32);
        let out = e.builder.create_block();
        let cont = e.builder.create_block();
        e.builder.set_cold_block(out);
        e.builder.ins().brif(reached, out, &[], cont, &[]);
        e.builder.switch_to_block(out);
        // `new_epoch` may trap or refuel: the counter goes to the store
        // and comes back from it.
        fuel.save(e);
        e.call_builtin(BuiltinFunctionIndex::new_epoch, &[e.vmctx]);
        fuel.reload(e);
        e.builder.ins().jump(cont, &[]);
        e.builder.seal_block(out);
        e.builder.seal_block(cont);
        e.builder.switch_to_block(cont);
    }
}
