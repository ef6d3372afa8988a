//! Integration tests of the embedding API, one binary with a module per area.

mod api;
mod async_calls;
mod c_programs;
mod cache;
mod cache_security;
mod counted_loops;
mod custom_page_sizes;
mod exceptions;
mod fuel_prepay;
mod func_refs;
mod gc_collect;
mod gc_limits;
mod gc_objects;
mod host_calls;
mod instantiate;
mod interrupt;
mod malformed;
mod memory64;
mod memory_faults;
mod rec_groups;
mod scratch;
mod tables;
mod tags;
mod threads;
mod traps;
mod typed_calls;
