//! The runtime's raw layer: the only place in Kiln where raw pointers are
//! dereferenced. Everything here is exposed to the rest of the crate as
//! safe functions whose invariants are upheld by construction (objects live
//! as long as their store, and the store serializes access).

pub mod allocator;
pub mod arch;
pub mod async_call;
mod backtrace;
pub mod code_memory;
pub mod epoch;
pub mod exn;
pub mod externref;
pub mod fiber;
pub mod gc_compact;
pub mod gc_copy;
pub mod gc_heap;
pub mod gc_roots;
pub mod global;
pub mod host_func;
pub mod host_roots;
mod idle_list;
pub mod instance;
pub mod invoke;
pub mod lazy_code;
pub mod libcalls;
pub mod memory;
pub mod memory_image;
pub mod mmap;
pub mod module_runtime;
pub mod nh;
pub mod parking;
pub mod pool;
pub mod send_sync_ptr;
pub mod signals;
pub mod stack_scan;
pub mod store;
pub mod store_hooks;
pub mod store_ids;
pub mod table;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod throw;
pub mod traphandlers;
pub mod type_displays;
pub mod vmcontext;

pub use invoke::{MAX_STACK_VALUES, with_stack_values};
