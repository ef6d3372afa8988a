/* kiln.h: config settings, fuel, epochs, modules with error messages,
 * serialization, trap codes, the cache and its stats, WASI preview 1. */
#include <unistd.h>
#include "check.h"

static void expect_error(kiln_error_t* err, const char* needle) {
  CHECK(err != NULL);
  wasm_name_t msg;
  kiln_error_message(err, &msg);
  if (!strstr(msg.data, needle)) {
    fprintf(stderr, "error `%s` lacks `%s`\n", msg.data, needle);
    exit(1);
  }
  wasm_name_delete(&msg);
  kiln_error_delete(err);
}

static uint8_t trap_code_of(wasm_trap_t* trap) {
  uint8_t code = 255;
  CHECK(trap != NULL && kiln_trap_code(trap, &code));
  wasm_trap_delete(trap);
  return code;
}

static wasm_store_t* fuel_store;
static uint64_t fuel_seen;
static wasm_trap_t* fuel_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  (void)args;
  (void)results;
  /* From inside a callback: the fuel of the calling wasm. */
  CHECK(kiln_store_get_fuel(fuel_store, &fuel_seen) == NULL);
  CHECK(kiln_store_set_fuel(fuel_store, fuel_seen) == NULL);
  expect_error(kiln_store_set_epoch_deadline(fuel_store, 1), "host callback");
  return NULL;
}

static void fuel(void) {
  wasm_config_t* config = wasm_config_new();
  kiln_config_consume_fuel_set(config, true);
  wasm_engine_t* engine = wasm_engine_new_with_config(config);
  wasm_store_t* store = wasm_store_new(engine);
  fuel_store = store;
  wasm_module_t* m = wat(engine,
    "(module (import \"\" \"cb\" (func $cb)) (func (export \"spin\") (loop $l (br $l)))"
    " (func (export \"cb\") (call $cb)))");
  wasm_functype_t* ft = wasm_functype_new_0_0();
  wasm_func_t* cb = wasm_func_new(store, ft, fuel_callback);
  wasm_extern_t* imports[] = {wasm_func_as_extern(cb)};
  wasm_instance_t* inst = instantiate(store, m, imports, 1);
  wasm_extern_vec_t ex;
  wasm_instance_exports(inst, &ex);
  CHECK(kiln_store_set_fuel(store, 10000) == NULL);
  uint64_t left = 0;
  CHECK(kiln_store_get_fuel(store, &left) == NULL && left == 10000);
  CHECK(wasm_func_call(export_func(&ex, 1), NULL, NULL) == NULL);
  CHECK(fuel_seen > 0 && fuel_seen < 10000);
  CHECK(trap_code_of(wasm_func_call(export_func(&ex, 0), NULL, NULL)) == KILN_TRAP_OUT_OF_FUEL);
  CHECK(kiln_store_get_fuel(store, &left) == NULL && left == 0);
  wasm_extern_vec_delete(&ex);
  wasm_instance_delete(inst);
  wasm_func_delete(cb);
  wasm_functype_delete(ft);
  wasm_module_delete(m);
  wasm_store_delete(store);
  wasm_engine_delete(engine);

  /* Without fuel in the config, fuel calls are errors. */
  engine = wasm_engine_new();
  store = wasm_store_new(engine);
  expect_error(kiln_store_set_fuel(store, 1), "fuel");
  expect_error(kiln_store_get_fuel(store, &left), "fuel");
  expect_error(kiln_store_set_fuel(NULL, 1), "NULL");
  wasm_store_delete(store);
  wasm_engine_delete(engine);
}

static void epochs(void) {
  wasm_config_t* config = wasm_config_new();
  kiln_config_epoch_interruption_set(config, true);
  wasm_engine_t* engine = wasm_engine_new_with_config(config);
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* m = wat(engine, "(module (func (export \"spin\") (loop $l (br $l))))");
  wasm_instance_t* inst = instantiate(store, m, NULL, 0);
  wasm_extern_vec_t ex;
  wasm_instance_exports(inst, &ex);
  CHECK(kiln_store_set_epoch_deadline(store, 1) == NULL);
  kiln_engine_increment_epoch(engine);
  CHECK(trap_code_of(wasm_func_call(export_func(&ex, 0), NULL, NULL)) == KILN_TRAP_INTERRUPT);
  wasm_extern_vec_delete(&ex);
  wasm_instance_delete(inst);
  wasm_module_delete(m);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
}

static void config_settings(void) {
  wasm_config_t* config = wasm_config_new();
  CHECK(kiln_config_wasm_feature_set(config, "simd", false));
  CHECK(!kiln_config_wasm_feature_set(config, "no-such-feature", true));
  kiln_config_max_wasm_stack_set(config, 256 << 10);
  kiln_config_memory_reservation_set(config, 1 << 20);
  kiln_config_memory_guard_size_set(config, 64 << 10);
  kiln_config_parallel_compilation_set(config, false);
  kiln_config_pooling_allocation_set(config, 2, 2, 2);
  wasm_engine_t* engine = wasm_engine_new_with_config(config);
  CHECK(engine != NULL);
  wasm_store_t* store = wasm_store_new(engine);

  /* SIMD is off: a module using it is refused, with the reason. */
  wasm_byte_vec_t text;
  wasm_name_new_from_string(&text, "(module (func (result v128) (v128.const i64x2 0 0)))");
  wasm_module_t* m = NULL;
  expect_error(kiln_module_new(engine, &text, &m), "SIMD");
  CHECK(m == NULL);
  wasm_name_delete(&text);
  wasm_name_new_from_string(&text, "(module (func $oops (unknown-op)))");
  expect_error(kiln_module_new(engine, &text, &m), "unknown");
  wasm_name_delete(&text);

  /* Memories fit the small reservation (bounds-checked); the pool holds
   * two instances. */
  m = wat(engine, "(module (memory (export \"m\") 1 16) (func (export \"f\") (result i32) (i32.load (i32.const 65536))))");
  wasm_instance_t* a = instantiate(store, m, NULL, 0);
  wasm_instance_t* b = instantiate(store, m, NULL, 0);
  wasm_trap_t* trap = NULL;
  CHECK(wasm_instance_new(store, m, NULL, &trap) == NULL && trap != NULL);
  wasm_trap_delete(trap);
  wasm_extern_vec_t ex;
  wasm_instance_exports(a, &ex);
  CHECK(trap_code_of(wasm_func_call(export_func(&ex, 1), NULL, NULL)) == KILN_TRAP_MEMORY_OUT_OF_BOUNDS);
  wasm_extern_vec_delete(&ex);
  wasm_instance_delete(a);
  wasm_instance_delete(b);
  wasm_module_delete(m);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
}

static void serialization_and_cache(const char* dir) {
  char cache[512];
  snprintf(cache, sizeof cache, "%s/cache", dir);
  /* Two engines on one cache directory, one after the other (a cache
   * writes in the background and finishes when its engine goes). */
  wasm_engine_t* engines[2];
  wasm_module_t* m1 = NULL;
  for (int i = 0; i < 2; i++) {
    wasm_config_t* config = wasm_config_new();
    CHECK(kiln_config_cache_dir_set(config, cache) == NULL);
    engines[i] = wasm_engine_new_with_config(config);
    m1 = wat(engines[i], "(module (func (export \"f\") (result i32) (i32.const 5)))");
    if (i == 0) {
      wasm_module_delete(m1);
      wasm_engine_delete(engines[0]);
    }
  }
  kiln_cache_stats_t stats;
  CHECK(kiln_engine_cache_stats(engines[1], &stats) && stats.module_hits == 1);
  wasm_engine_t* plain = wasm_engine_new();
  CHECK(!kiln_engine_cache_stats(plain, &stats));
  wasm_config_t* bad = wasm_config_new();
  expect_error(kiln_config_cache_dir_set(bad, "/proc/no/such/dir"), "cache directory");
  wasm_config_delete(bad);

  wasm_byte_vec_t bytes;
  CHECK(kiln_module_serialize(m1, &bytes) == NULL && bytes.size > 0);
  wasm_module_t* m3 = NULL;
  CHECK(kiln_module_deserialize(engines[1], &bytes, &m3) == NULL && m3 != NULL);
  wasm_store_t* store = wasm_store_new(engines[1]);
  wasm_instance_t* inst = instantiate(store, m3, NULL, 0);
  wasm_extern_vec_t ex;
  wasm_instance_exports(inst, &ex);
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t rv = WASM_ARRAY_VEC(r);
  CHECK(wasm_func_call(export_func(&ex, 0), NULL, &rv) == NULL && r[0].of.i32 == 5);
  bytes.data[bytes.size / 2] ^= 0x5a;
  bytes.data[0] ^= 0x5a;
  wasm_module_t* m4 = NULL;
  expect_error(kiln_module_deserialize(engines[1], &bytes, &m4), "");
  CHECK(m4 == NULL);
  wasm_byte_vec_delete(&bytes);
  expect_error(kiln_module_serialize(NULL, &bytes), "NULL");

  wasm_extern_vec_delete(&ex);
  wasm_instance_delete(inst);
  wasm_store_delete(store);
  wasm_module_delete(m1);
  wasm_module_delete(m3);
  wasm_engine_delete(engines[1]);
  wasm_engine_delete(plain);
}

static const char* WASI_WAT =
  "(module\n"
  "  (import \"wasi_snapshot_preview1\" \"fd_write\" (func $fd_write (param i32 i32 i32 i32) (result i32)))\n"
  "  (import \"env\" \"extra\" (func $extra))\n"
  "  (import \"wasi_snapshot_preview1\" \"args_sizes_get\" (func $asg (param i32 i32) (result i32)))\n"
  "  (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $exit (param i32)))\n"
  "  (memory (export \"memory\") 1)\n"
  "  (data (i32.const 8) \"hello wasi\\n\")\n"
  "  (func (export \"_start\")\n"
  "    (call $extra)\n"
  "    (i32.store (i32.const 0) (i32.const 8))\n"
  "    (i32.store (i32.const 4) (i32.const 11))\n"
  "    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))\n"
  "    (drop (call $asg (i32.const 40) (i32.const 44)))\n"
  "    (call $exit (i32.load (i32.const 40)))))\n";

static int extra_called = 0;
static wasm_trap_t* extra_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  (void)args;
  (void)results;
  extra_called++;
  return NULL;
}

static void wasi(const char* dir) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* m = wat(engine, WASI_WAT);

  char out_path[512];
  snprintf(out_path, sizeof out_path, "%s/stdout.txt", dir);
  kiln_wasi_config_t* c = kiln_wasi_config_new();
  const char* argv[] = {"prog", "a", "b"};
  CHECK(kiln_wasi_config_set_argv(c, 3, argv));
  CHECK(kiln_wasi_config_inherit_argv(c));
  CHECK(kiln_wasi_config_set_argv(c, 3, argv)); /* the last setting wins */
  const char* names[] = {"K"};
  const char* values[] = {"V"};
  CHECK(kiln_wasi_config_set_env(c, 1, names, values));
  CHECK(kiln_wasi_config_inherit_env(c));
  CHECK(kiln_wasi_config_inherit_stdio(c));
  wasm_byte_vec_t input;
  wasm_byte_vec_new(&input, 2, "in");
  CHECK(kiln_wasi_config_set_stdin_bytes(c, &input));
  wasm_byte_vec_delete(&input);
  CHECK(kiln_wasi_config_set_stdin_file(c, "/dev/null"));
  CHECK(!kiln_wasi_config_set_stdin_file(c, "/no/such/file"));
  CHECK(kiln_wasi_config_set_stdout_file(c, out_path));
  CHECK(kiln_wasi_config_set_stderr_file(c, "/dev/null"));
  CHECK(kiln_wasi_config_preopen_dir(c, dir, "data", true));
  CHECK(!kiln_wasi_config_preopen_dir(c, "/no/such/dir", "x", false));
  CHECK(kiln_store_set_wasi(store, c) == NULL);

  wasm_extern_vec_t imports;
  CHECK(kiln_wasi_imports(store, m, &imports) == NULL);
  CHECK(imports.size == 4 && imports.data[0] && !imports.data[1] && imports.data[2] && imports.data[3]);
  wasm_functype_t* ft = wasm_functype_new_0_0();
  imports.data[1] = wasm_func_as_extern(wasm_func_new(store, ft, extra_callback));
  wasm_functype_delete(ft);
  wasm_trap_t* trap = NULL;
  wasm_instance_t* inst = wasm_instance_new(store, m, &imports, &trap);
  CHECK(inst != NULL);
  wasm_extern_vec_t ex;
  wasm_instance_exports(inst, &ex);
  trap = wasm_func_call(export_func(&ex, 1), NULL, NULL);
  int32_t status = -1;
  CHECK(trap != NULL && kiln_trap_exit_status(trap, &status) && status == 3);
  uint8_t code;
  CHECK(!kiln_trap_code(trap, &code));
  wasm_trap_delete(trap);
  CHECK(extra_called == 1);

  FILE* f = fopen(out_path, "r");
  char buf[64] = {0};
  CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 11 && strcmp(buf, "hello wasi\n") == 0);
  fclose(f);
  unlink(out_path);

  /* A module importing an unknown WASI function. */
  wasm_module_t* m2 = wat(engine, "(module (import \"wasi_snapshot_preview1\" \"nope\" (func)))");
  wasm_extern_vec_t none;
  expect_error(kiln_wasi_imports(store, m2, &none), "nope");
  kiln_wasi_config_delete(kiln_wasi_config_new());
  expect_error(kiln_store_set_wasi(store, NULL), "NULL");

  wasm_extern_vec_delete(&ex);
  wasm_extern_vec_delete(&imports);
  wasm_instance_delete(inst);
  wasm_module_delete(m);
  wasm_module_delete(m2);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
}

int main(void) {
  char dir[] = "/tmp/kiln-capi-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  fuel();
  epochs();
  config_settings();
  serialization_and_cache(dir);
  wasi(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  printf("extensions: ok\n");
  return 0;
}
