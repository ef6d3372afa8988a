/*
 * kiln.h -- Kiln's extensions to the WebAssembly C API (wasm.h).
 *
 * Error convention: functions returning `kiln_error_t*` return NULL on
 * success, else an owned error (kiln_error_message, kiln_error_delete).
 * Any function of libkiln that fails (also the standard ones returning
 * NULL or false) records why; kiln_last_error_message gives the last such
 * message of the calling thread.
 */

#ifndef KILN_H
#define KILN_H

#include "wasm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define own

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

typedef struct kiln_error_t kiln_error_t;

/* The message, NUL-terminated (the NUL counted in size). */
WASM_API_EXTERN void kiln_error_message(const kiln_error_t*, own wasm_name_t* out);
WASM_API_EXTERN void kiln_error_delete(own kiln_error_t*);

/* The last failure's message on this thread (NUL-terminated) into out;
 * false and an empty vector if there was none. */
WASM_API_EXTERN bool kiln_last_error_message(own wasm_name_t* out);
WASM_API_EXTERN void kiln_last_error_clear(void);

/* ------------------------------------------------------------------------
 * Value kinds the standard has no name for (what Kiln reports for
 * functions whose types use them; values of these kinds cannot be passed
 * through the C API)
 * --------------------------------------------------------------------- */

#define KILN_V128 4
#define KILN_EXNREF 130
#define KILN_ANYREF 131

/* ------------------------------------------------------------------------
 * Config settings (before wasm_engine_new_with_config)
 * --------------------------------------------------------------------- */

/* Turns a WebAssembly feature on or off by the name `kiln run -W` uses
 * ("simd", "threads", "gc", "exceptions", "memory64", ...); false for an
 * unknown name. */
WASM_API_EXTERN bool kiln_config_wasm_feature_set(wasm_config_t*, const char* name, bool enable);

/* Caches compiled code in a directory (made if missing; it must belong to
 * the user and be writable by nobody else). */
WASM_API_EXTERN own kiln_error_t* kiln_config_cache_dir_set(wasm_config_t*, const char* path);

/* Fuel: wasm consumes fuel as it runs and traps (KILN_TRAP_OUT_OF_FUEL)
 * when its store has none left; see kiln_store_set_fuel. */
WASM_API_EXTERN void kiln_config_consume_fuel_set(wasm_config_t*, bool enable);

/* Epoch interruption: wasm traps (KILN_TRAP_INTERRUPT) once the engine's
 * epoch reaches its store's deadline; see kiln_engine_increment_epoch and
 * kiln_store_set_epoch_deadline. */
WASM_API_EXTERN void kiln_config_epoch_interruption_set(wasm_config_t*, bool enable);

/* Bytes of native stack wasm may use before trapping. */
WASM_API_EXTERN void kiln_config_max_wasm_stack_set(wasm_config_t*, size_t bytes);

/* Address space reserved per 32-bit memory, and guard bytes after it
 * (defaults: 4 GiB and 2 GiB, so that accesses need no bounds checks). */
WASM_API_EXTERN void kiln_config_memory_reservation_set(wasm_config_t*, uint64_t bytes);
WASM_API_EXTERN void kiln_config_memory_guard_size_set(wasm_config_t*, uint64_t bytes);

/* Compile a module's functions on several threads (default) or one. */
WASM_API_EXTERN void kiln_config_parallel_compilation_set(wasm_config_t*, bool enable);

/* The pooling allocator: instances, memories and tables come from pools
 * reserved when the engine is made (0: that pool's default size, 1000);
 * instantiation fails once a pool is used up. */
WASM_API_EXTERN void kiln_config_pooling_allocation_set(
  wasm_config_t*, uint32_t total_core_instances, uint32_t total_memories,
  uint32_t total_tables);

/* ------------------------------------------------------------------------
 * Fuel and epochs
 * --------------------------------------------------------------------- */

/* Sets or reads the fuel left in a store (from a host callback: what the
 * calling wasm continues with). Errors unless the engine consumes fuel. */
WASM_API_EXTERN own kiln_error_t* kiln_store_set_fuel(wasm_store_t*, uint64_t fuel);
WASM_API_EXTERN own kiln_error_t* kiln_store_get_fuel(wasm_store_t*, uint64_t* fuel);

/* Wasm in the store traps once the engine's epoch is `ticks` beyond its
 * current value. Not from inside a host callback. */
WASM_API_EXTERN own kiln_error_t* kiln_store_set_epoch_deadline(wasm_store_t*, uint64_t ticks);

/* Advances the engine's epoch by one; may be called from any thread. */
WASM_API_EXTERN void kiln_engine_increment_epoch(const wasm_engine_t*);

/* ------------------------------------------------------------------------
 * Modules
 * --------------------------------------------------------------------- */

/* Compiles a module from its binary or text (.wat) form; the error says
 * what is wrong with an invalid one. */
WASM_API_EXTERN own kiln_error_t* kiln_module_new(
  const wasm_engine_t*, const wasm_byte_vec_t* bytes, own wasm_module_t** out);

/* The compiled module's native code and metadata as bytes. */
WASM_API_EXTERN own kiln_error_t* kiln_module_serialize(const wasm_module_t*, own wasm_byte_vec_t* out);

/* UNSAFE: loads bytes from kiln_module_serialize / wasm_module_serialize.
 * They are native code that is run as it is, unchecked: pass only bytes
 * this same build of libkiln serialized and that nobody else could
 * modify. Bytes from another build or settings are refused with an error;
 * altered bytes can do anything. */
WASM_API_EXTERN own kiln_error_t* kiln_module_deserialize(
  const wasm_engine_t*, const wasm_byte_vec_t* bytes, own wasm_module_t** out);

/* ------------------------------------------------------------------------
 * Traps
 * --------------------------------------------------------------------- */

/* Why wasm trapped (kiln_trap_code; false for traps made by the host). */
#define KILN_TRAP_STACK_OVERFLOW 0
#define KILN_TRAP_MEMORY_OUT_OF_BOUNDS 1
#define KILN_TRAP_HEAP_MISALIGNED 2
#define KILN_TRAP_TABLE_OUT_OF_BOUNDS 3
#define KILN_TRAP_INDIRECT_CALL_TO_NULL 4
#define KILN_TRAP_BAD_SIGNATURE 5
#define KILN_TRAP_INTEGER_OVERFLOW 6
#define KILN_TRAP_INTEGER_DIVISION_BY_ZERO 7
#define KILN_TRAP_BAD_CONVERSION_TO_INTEGER 8
#define KILN_TRAP_UNREACHABLE 9
#define KILN_TRAP_INTERRUPT 10
#define KILN_TRAP_OUT_OF_FUEL 11

WASM_API_EXTERN bool kiln_trap_code(const wasm_trap_t*, uint8_t* code);

/* The exit status of a WASI proc_exit that ended the call (false for any
 * other trap). */
WASM_API_EXTERN bool kiln_trap_exit_status(const wasm_trap_t*, int32_t* status);

/* ------------------------------------------------------------------------
 * Compilation cache statistics
 * --------------------------------------------------------------------- */

typedef struct kiln_cache_stats_t {
  uint64_t module_hits;
  uint64_t module_misses;
  uint64_t function_hits;
  uint64_t function_misses;
  uint64_t bytes_read;
  uint64_t bytes_written;
  uint64_t time_saved_ns;
  uint64_t rejected;
} kiln_cache_stats_t;

/* The engine's cache counters; false if it has no cache. */
WASM_API_EXTERN bool kiln_engine_cache_stats(const wasm_engine_t*, kiln_cache_stats_t* out);

/* ------------------------------------------------------------------------
 * WASI preview 1
 *
 *   kiln_wasi_config_t* c = kiln_wasi_config_new();
 *   kiln_wasi_config_set_argv(c, argc, argv);
 *   kiln_wasi_config_inherit_stdio(c);
 *   kiln_wasi_config_preopen_dir(c, "./data", "data", true);
 *   kiln_store_set_wasi(store, c);                      // takes c
 *   wasm_extern_vec_t imports;
 *   kiln_wasi_imports(store, module, &imports);         // WASI functions
 *   instance = wasm_instance_new(store, module, &imports, &trap);
 *   ... call "_start"; kiln_trap_exit_status() reads proc_exit's status.
 * --------------------------------------------------------------------- */

typedef struct kiln_wasi_config_t kiln_wasi_config_t;

/* No arguments or environment, empty stdin, stdout and stderr discarded,
 * no directories. */
WASM_API_EXTERN own kiln_wasi_config_t* kiln_wasi_config_new(void);
WASM_API_EXTERN void kiln_wasi_config_delete(own kiln_wasi_config_t*);

WASM_API_EXTERN bool kiln_wasi_config_set_argv(kiln_wasi_config_t*, size_t argc, const char* const argv[]);
WASM_API_EXTERN bool kiln_wasi_config_inherit_argv(kiln_wasi_config_t*);
WASM_API_EXTERN bool kiln_wasi_config_set_env(
  kiln_wasi_config_t*, size_t n, const char* const names[], const char* const values[]);
WASM_API_EXTERN bool kiln_wasi_config_inherit_env(kiln_wasi_config_t*);
WASM_API_EXTERN bool kiln_wasi_config_inherit_stdio(kiln_wasi_config_t*);
WASM_API_EXTERN bool kiln_wasi_config_set_stdin_bytes(kiln_wasi_config_t*, const wasm_byte_vec_t* bytes);
WASM_API_EXTERN bool kiln_wasi_config_set_stdin_file(kiln_wasi_config_t*, const char* path);
WASM_API_EXTERN bool kiln_wasi_config_set_stdout_file(kiln_wasi_config_t*, const char* path);
WASM_API_EXTERN bool kiln_wasi_config_set_stderr_file(kiln_wasi_config_t*, const char* path);
/* The program sees host directory host_path as guest_path; nothing
 * outside it is reachable (not through "..", absolute paths or links). */
WASM_API_EXTERN bool kiln_wasi_config_preopen_dir(
  kiln_wasi_config_t*, const char* host_path, const char* guest_path, bool read_only);

/* Takes the config and makes it the store's WASI state. */
WASM_API_EXTERN own kiln_error_t* kiln_store_set_wasi(wasm_store_t*, own kiln_wasi_config_t*);

/* One entry per import of the module, in order: the WASI function of that
 * name, or NULL for an import outside wasi_snapshot_preview1 (set those
 * before instantiating; wasm_extern_vec_delete skips NULLs). */
WASM_API_EXTERN own kiln_error_t* kiln_wasi_imports(
  wasm_store_t*, const wasm_module_t*, own wasm_extern_vec_t* out);

#undef own

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* KILN_H */
