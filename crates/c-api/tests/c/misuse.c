/* Misuse the library can detect gives NULL, false, zero or a trap, never a
 * crash: NULL arguments, vectors of the wrong size, values of the wrong
 * kind, objects of another store, objects of the wrong kind. */
#include "check.h"

static void expect_trap(wasm_trap_t* trap, const char* needle) {
  CHECK(trap != NULL);
  wasm_message_t msg;
  wasm_trap_message(trap, &msg);
  if (!strstr(msg.data, needle)) {
    fprintf(stderr, "trap message `%s` lacks `%s`\n", msg.data, needle);
    exit(1);
  }
  wasm_name_delete(&msg);
  wasm_trap_delete(trap);
}

static wasm_trap_t* bad_results_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  (void)args;
  results->data[0].kind = WASM_F64; /* the type says i32 */
  return NULL;
}

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_store_t* other = wasm_store_new(engine);
  wasm_module_t* module = wat(engine,
    "(module (import \"\" \"f\" (func $f (result i32)))"
    " (func (export \"add\") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))"
    " (func (export \"callf\") (result i32) (call $f))"
    " (table (export \"t\") 1 funcref) (global (export \"g\") i32 (i32.const 1)))");

  /* NULL everywhere an object is needed. */
  CHECK(wasm_store_new(NULL) == NULL);
  CHECK(wasm_engine_new_with_config(NULL) == NULL);
  CHECK(wasm_module_new(NULL, NULL) == NULL && wasm_module_new(store, NULL) == NULL);
  CHECK(!wasm_module_validate(store, NULL));
  CHECK(wasm_func_new(store, NULL, bad_results_callback) == NULL);
  CHECK(wasm_func_new(NULL, NULL, NULL) == NULL);
  CHECK(wasm_instance_new(store, NULL, NULL, NULL) == NULL);
  expect_trap(wasm_func_call(NULL, NULL, NULL), "NULL");
  CHECK(wasm_func_param_arity(NULL) == 0 && wasm_func_type(NULL) == NULL);
  CHECK(wasm_global_new(store, NULL, NULL) == NULL && wasm_table_new(store, NULL, NULL) == NULL);
  CHECK(wasm_memory_new(store, NULL) == NULL && wasm_memory_data(NULL) == NULL);
  CHECK(wasm_memory_size(NULL) == 0 && !wasm_memory_grow(NULL, 1) && wasm_table_size(NULL) == 0);
  CHECK(wasm_table_get(NULL, 0) == NULL && !wasm_table_set(NULL, 0, NULL) && !wasm_table_grow(NULL, 1, NULL));
  CHECK(wasm_trap_origin(NULL) == NULL && wasm_frame_func_index(NULL) == 0);
  CHECK(wasm_valtype_kind(NULL) == WASM_I32 && wasm_globaltype_new(NULL, WASM_CONST) == NULL);
  CHECK(wasm_tabletype_new(NULL, NULL) == NULL && wasm_memorytype_new(NULL) == NULL);
  CHECK(wasm_functype_new(NULL, NULL) == NULL && wasm_importtype_new(NULL, NULL, NULL) == NULL);
  CHECK(wasm_foreign_new(NULL) == NULL && wasm_module_share(NULL) == NULL);
  CHECK(wasm_module_obtain(store, NULL) == NULL && wasm_ref_copy(NULL) == NULL && !wasm_ref_same(NULL, NULL));
  wasm_trap_t* null_trap = NULL;
  CHECK(wasm_instance_new(NULL, module, NULL, &null_trap) == NULL);
  expect_trap(null_trap, "NULL");
  wasm_extern_vec_t out;
  wasm_instance_exports(NULL, &out);
  CHECK(out.size == 0);
  wasm_global_get(NULL, NULL);
  wasm_global_set(NULL, NULL);
  wasm_val_delete(NULL);
  wasm_byte_vec_delete(NULL);
  wasm_module_delete(NULL);
  wasm_store_delete(NULL);
  wasm_engine_delete(NULL);
  wasm_name_t last;
  CHECK(kiln_last_error_message(&last) && last.size > 0);
  wasm_name_delete(&last);
  kiln_last_error_clear();
  CHECK(!kiln_last_error_message(&last) && last.size == 0);

  /* Imports: too few, wrong kind, another store's. */
  wasm_trap_t* trap = NULL;
  CHECK(wasm_instance_new(store, module, NULL, &trap) == NULL);
  expect_trap(trap, "");
  wasm_functype_t* ft = wasm_functype_new_0_1(wasm_valtype_new_i32());
  wasm_func_t* f_other = wasm_func_new(other, ft, bad_results_callback);
  wasm_extern_t* imports[] = {wasm_func_as_extern(f_other)};
  wasm_extern_vec_t iv = WASM_ARRAY_VEC(imports);
  CHECK(wasm_instance_new(store, module, &iv, &trap) == NULL);
  expect_trap(trap, "another store");
  wasm_func_t* f = wasm_func_new(store, ft, bad_results_callback);
  imports[0] = wasm_func_as_extern(f);
  wasm_instance_t* inst = instantiate(store, module, imports, 1);
  wasm_extern_vec_t ex;
  wasm_instance_exports(inst, &ex);

  /* Calls: wrong argument count, kinds, results size; bad callback results. */
  wasm_func_t* add = export_func(&ex, 0);
  wasm_val_t one[1] = {WASM_I32_VAL(1)};
  wasm_val_t two[2] = {WASM_I32_VAL(1), WASM_I64_VAL(2)};
  wasm_val_t res[2] = {WASM_INIT_VAL, WASM_INIT_VAL};
  wasm_val_vec_t a1 = WASM_ARRAY_VEC(one), a2 = WASM_ARRAY_VEC(two), r2 = WASM_ARRAY_VEC(res);
  wasm_val_vec_t r1 = {1, res}, r0 = WASM_EMPTY_VEC;
  expect_trap(wasm_func_call(add, &a1, &r1), "expected 2 arguments");
  expect_trap(wasm_func_call(add, &a2, &r1), "argument 1");
  two[1].kind = WASM_I32;
  expect_trap(wasm_func_call(add, &a2, &r2), "results vector");
  expect_trap(wasm_func_call(add, &a2, &r0), "results vector");
  CHECK(wasm_func_call(add, &a2, &r1) == NULL && res[0].of.i32 == 3);
  wasm_val_vec_t bad = {2, NULL};
  expect_trap(wasm_func_call(add, &bad, &r1), "NULL data");
  expect_trap(wasm_func_call(export_func(&ex, 1), NULL, &r1), "host callback result");
  /* A funcref of another store, and a non-function as funcref. */
  wasm_table_t* t = wasm_extern_as_table(ex.data[2]);
  CHECK(!wasm_table_set(t, 0, wasm_func_as_ref(f_other)));
  wasm_foreign_t* fo = wasm_foreign_new(store);
  CHECK(!wasm_table_set(t, 0, wasm_foreign_as_ref(fo)));
  CHECK(wasm_table_set(t, 0, wasm_func_as_ref(f)));
  /* Setting a constant global is refused. */
  wasm_global_t* g = wasm_extern_as_global(ex.data[3]);
  wasm_val_t nv = WASM_I32_VAL(5), gv;
  wasm_global_set(g, &nv);
  wasm_global_get(g, &gv);
  CHECK(gv.of.i32 == 1);
  /* Objects of the wrong kind. */
  CHECK(wasm_ref_as_func(wasm_foreign_as_ref(fo)) == NULL);
  CHECK(wasm_memory_size((wasm_memory_t*)wasm_global_as_ref(g)) == 0);
  expect_trap(wasm_func_call((wasm_func_t*)(void*)g, NULL, NULL), "not a function");
  /* A module of another engine cannot be obtained or instantiated. */
  wasm_engine_t* engine2 = wasm_engine_new();
  wasm_store_t* store2 = wasm_store_new(engine2);
  wasm_shared_module_t* shared = wasm_module_share(module);
  CHECK(wasm_module_obtain(store2, shared) == NULL);
  CHECK(wasm_instance_new(store2, module, &iv, &trap) == NULL);
  expect_trap(trap, "another engine");
  /* Bad types. */
  wasm_limits_t lim = {0, 1};
  CHECK(wasm_tabletype_new(wasm_valtype_new_i32(), &lim) == NULL);
  CHECK(wasm_globaltype_new(wasm_valtype_new_i32(), 9) == NULL);
  wasm_globaltype_t* gt = wasm_globaltype_new(wasm_valtype_new_i32(), WASM_CONST);
  wasm_val_t wrong = WASM_F32_VAL(1.0f);
  CHECK(wasm_global_new(store, gt, &wrong) == NULL);
  /* Accessors of a type of the wrong kind give NULL. */
  wasm_memorytype_t* mt = wasm_memorytype_new(&lim);
  CHECK(wasm_functype_params((wasm_functype_t*)(void*)mt) == NULL);
  wasm_memorytype_delete(mt);
  wasm_byte_vec_t junk;
  wasm_byte_vec_new(&junk, 4, "junk");
  CHECK(wasm_module_deserialize(store, &junk) == NULL);
  wasm_byte_vec_delete(&junk);

  wasm_globaltype_delete(gt);
  wasm_shared_module_delete(shared);
  wasm_store_delete(store2);
  wasm_engine_delete(engine2);
  wasm_foreign_delete(fo);
  wasm_extern_vec_delete(&ex);
  wasm_instance_delete(inst);
  wasm_func_delete(f);
  wasm_func_delete(f_other);
  wasm_functype_delete(ft);
  wasm_module_delete(module);
  wasm_store_delete(other);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  printf("misuse: ok\n");
  return 0;
}
