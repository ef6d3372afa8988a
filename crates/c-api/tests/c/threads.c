/* Threads: one engine, a module shared with wasm_module_share and
 * obtained in a store of each thread; each thread instantiates it with its
 * own host function and calls it. Also a finalizer of a host function's
 * environment, run when each thread's store goes. */
#include <pthread.h>
#include "check.h"

#define THREADS 4
#define CALLS 100

static wasm_engine_t* engine;
static wasm_shared_module_t* shared;
static int finalized[THREADS];

static wasm_trap_t* add_id(void* env, const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  results->data[0].of.i32 = args->data[0].of.i32 + *(int*)env;
  return NULL;
}

static void finalize(void* env) {
  finalized[*(int*)env]++;
}

static void* run(void* arg) {
  int id = (int)(intptr_t)arg;
  static int ids[THREADS];
  ids[id] = id;
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = wasm_module_obtain(store, shared);
  CHECK(module != NULL);
  wasm_functype_t* ft = wasm_functype_new_1_1(wasm_valtype_new_i32(), wasm_valtype_new_i32());
  wasm_func_t* host = wasm_func_new_with_env(store, ft, add_id, &ids[id], finalize);
  wasm_functype_delete(ft);
  wasm_extern_t* imports[] = {wasm_func_as_extern(host)};
  wasm_instance_t* instance = instantiate(store, module, imports, 1);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  wasm_func_t* f = export_func(&exports, 0);
  int32_t acc = 0;
  for (int i = 0; i < CALLS; i++) {
    wasm_val_t a[1] = {WASM_I32_VAL(acc)};
    wasm_val_t r[1] = {WASM_INIT_VAL};
    wasm_val_vec_t av = WASM_ARRAY_VEC(a), rv = WASM_ARRAY_VEC(r);
    CHECK(wasm_func_call(f, &av, &rv) == NULL);
    acc = r[0].of.i32;
  }
  CHECK(acc == CALLS * (id + 1));
  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_func_delete(host);
  wasm_module_delete(module);
  wasm_store_delete(store);
  return NULL;
}

int main(void) {
  engine = wasm_engine_new();
  wasm_module_t* module = wat(engine,
    "(module (import \"\" \"f\" (func $f (param i32) (result i32)))"
    " (func (export \"g\") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1))))");
  shared = wasm_module_share(module);
  wasm_module_delete(module); /* the shared handle keeps it */
  pthread_t threads[THREADS];
  for (intptr_t i = 0; i < THREADS; i++) {
    CHECK(pthread_create(&threads[i], NULL, run, (void*)i) == 0);
  }
  for (int i = 0; i < THREADS; i++) {
    CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(finalized[i] == 1);
  }
  wasm_shared_module_delete(shared);
  wasm_engine_delete(engine);
  printf("threads: ok\n");
  return 0;
}
