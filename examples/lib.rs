//! Examples of Kiln's embedding API, one file each beside this one; run
//! one with `cargo run --example NAME`. Each example's `run` function
//! returns what it prints, and its test (run by `cargo test -p
//! kiln-examples`) checks that output.
//!
//! | example | shows |
//! | --- | --- |
//! | `hello` | a host function, called by the guest, that reads guest memory through `Caller` |
//! | `gcd` | compiling WAT and calling a typed export |
//! | `memory` | reading and writing a guest's memory from the host, and growing it |
//! | `linking` | one module importing another's exports through a `Linker` |
//! | `wasi` | WASI with a preopened directory and captured standard output |
//! | `fuel` | deterministic limits: fuel, and the trap when it runs out |
//! | `exceptions` | wasm exceptions: caught in wasm, uncaught and inspected by the host, thrown by a host function |
//! | `interrupt` | epoch interruption of an endless loop from another thread |
//! | `serialize` | reusing compiled code: the safe `Config::cache`, and unsafe `Module::deserialize` |
//! | `threads` | one `InstancePre`, instantiated on several threads |
//! | `shared_cache` | one cache shared by engines of different configurations |
