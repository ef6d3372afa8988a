/* The C side of bench/c-api: the cost of one call through the C API, in
 * thread CPU time, median of ROUNDS rounds.
 *
 *   wasm_to_host: wasm calls an imported host function (i32) -> i32, a
 *                 C callback made with wasm_func_new, N times in a loop;
 *   host_to_wasm: C calls an exported wasm function (i32) -> i32 with
 *                 wasm_func_call, N times.
 *
 * Prints "<name> <ns per call>" lines for the Rust harness (src/main.rs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kiln.h"

#define ROUNDS 15
#define N 1000000

static const char* WAT =
  "(module\n"
  "  (import \"h\" \"f\" (func $f (param i32) (result i32)))\n"
  "  (func (export \"run\") (param $n i32) (result i32) (local $acc i32)\n"
  "    (block $done (loop $l\n"
  "      (br_if $done (i32.eqz (local.get $n)))\n"
  "      (local.set $acc (call $f (local.get $acc)))\n"
  "      (local.set $n (i32.sub (local.get $n) (i32.const 1)))\n"
  "      (br $l)))\n"
  "    (local.get $acc))\n"
  "  (func (export \"inc\") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))\n";

static wasm_trap_t* inc_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  results->data[0].of.i32 = args->data[0].of.i32 + 1;
  return NULL;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median(double* v) {
  qsort(v, ROUNDS, sizeof *v, cmp);
  return v[ROUNDS / 2];
}

static void die(const char* what) {
  fprintf(stderr, "bench: %s failed\n", what);
  exit(1);
}

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_byte_vec_t text;
  wasm_byte_vec_new(&text, strlen(WAT), WAT);
  wasm_module_t* module = NULL;
  if (kiln_module_new(engine, &text, &module)) die("compile");
  wasm_byte_vec_delete(&text);
  wasm_functype_t* ty = wasm_functype_new_1_1(wasm_valtype_new_i32(), wasm_valtype_new_i32());
  wasm_func_t* host = wasm_func_new(store, ty, inc_callback);
  wasm_functype_delete(ty);
  wasm_extern_t* imports[] = {wasm_func_as_extern(host)};
  wasm_extern_vec_t import_vec = WASM_ARRAY_VEC(imports);
  wasm_instance_t* instance = wasm_instance_new(store, module, &import_vec, NULL);
  if (!instance) die("instantiate");
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  const wasm_func_t* run = wasm_extern_as_func(exports.data[0]);
  const wasm_func_t* inc = wasm_extern_as_func(exports.data[1]);

  double rounds[ROUNDS];
  wasm_val_t args[1], results[1];
  wasm_val_vec_t arg_vec = WASM_ARRAY_VEC(args), result_vec = WASM_ARRAY_VEC(results);

  for (int r = -2; r < ROUNDS; r++) { /* two warm-up rounds */
    args[0].kind = WASM_I32;
    args[0].of.i32 = N;
    double t = now_ns();
    if (wasm_func_call(run, &arg_vec, &result_vec)) die("run");
    t = now_ns() - t;
    if (results[0].of.i32 != N) die("run result");
    if (r >= 0) rounds[r] = t / N;
  }
  printf("wasm_to_host %.2f\n", median(rounds));

  for (int r = -2; r < ROUNDS; r++) {
    double t = now_ns();
    int32_t x = 0;
    for (int i = 0; i < N; i++) {
      args[0].kind = WASM_I32;
      args[0].of.i32 = x;
      if (wasm_func_call(inc, &arg_vec, &result_vec)) die("inc");
      x = results[0].of.i32;
    }
    t = now_ns() - t;
    if (x != N) die("inc result");
    if (r >= 0) rounds[r] = t / N;
  }
  printf("host_to_wasm %.2f\n", median(rounds));

  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_func_delete(host);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
