/* The runtime objects of wasm.h: engines, stores, modules, instances,
 * functions (host callbacks with and without environments, nested calls,
 * traps), globals, tables, memories, externals, references and their host
 * info, foreign objects, traps and frames, serialization, sharing. Every
 * object owned is deleted, so the leak checker must find nothing. */
#include "check.h"

static const char* MODULE_WAT =
  "(module\n"
  "  (import \"host\" \"add\" (func $add (param i32 i32) (result i32)))\n"
  "  (import \"host\" \"g\" (global $g (mut i64)))\n"
  "  (import \"host\" \"echo\" (func $echo (param externref) (result externref)))\n"
  "  (func (export \"call_add\") (param i32 i32) (result i32) (call $add (local.get 0) (local.get 1)))\n"
  "  (func (export \"get_g\") (result i64) (global.get $g))\n"
  "  (func (export \"types\") (param i64 f32 f64) (result f64 f32 i64) local.get 2 local.get 1 local.get 0)\n"
  "  (func (export \"echo\") (param externref) (result externref) (call $echo (local.get 0)))\n"
  "  (func (export \"trap\") nop (call $inner))\n"
  "  (func $inner (i32.div_s (i32.const 1) (i32.const 0)) drop)\n"
  "  (global (export \"gf\") (mut f64) (f64.const 1.5))\n"
  "  (table (export \"tab\") 2 10 funcref)\n"
  "  (memory (export \"mem\") 1 4)\n"
  "  (elem (i32.const 1) func $add)\n"
  "  (func (export \"call_ind\") (param i32 i32 i32) (result i32)\n"
  "    (call_indirect (param i32 i32) (result i32) (local.get 0) (local.get 1) (local.get 2)))\n"
  "  (data (i32.const 16) \"hi\"))\n";

enum { E_CALL_ADD, E_GET_G, E_TYPES, E_ECHO, E_TRAP, E_GF, E_TAB, E_MEM, E_CALL_IND, N_EXPORTS };

/* A binary module: (func (export "f") (result i32) i32.const 42). */
static const unsigned char BINARY[] = {
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,             /* magic, version */
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f,                   /* type: () -> i32 */
  0x03, 0x02, 0x01, 0x00,                                     /* func: type 0 */
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00,                   /* export "f" func 0 */
  0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x2a, 0x0b,             /* code: i32.const 42 */
};

struct env {
  int calls;
  int finalized;
  const wasm_func_t* nested; /* called from inside the callback */
};

static int finalized_host_info = 0;
static void count_finalizer(void* p) {
  (*(int*)p)++;
}

static void env_finalizer(void* p) {
  ((struct env*)p)->finalized++;
}

static wasm_trap_t* add_callback(void* envp, const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  struct env* env = envp;
  env->calls++;
  CHECK(args->size == 2 && results->size == 1);
  CHECK(args->data[0].kind == WASM_I32 && results->data[0].kind == WASM_I32);
  if (env->nested) {
    /* Re-entering the API from a callback: a nested call into wasm. */
    wasm_val_t r[1] = {WASM_INIT_VAL};
    wasm_val_vec_t rv = WASM_ARRAY_VEC(r);
    CHECK(wasm_func_call(env->nested, NULL, &rv) == NULL);
    CHECK(r[0].kind == WASM_I64 && r[0].of.i64 == 7);
  }
  results->data[0].of.i32 = args->data[0].of.i32 + args->data[1].of.i32;
  return NULL;
}

static wasm_trap_t* echo_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  wasm_val_copy(&results->data[0], &args->data[0]);
  return NULL;
}

static wasm_store_t* trap_store;
static wasm_trap_t* fail_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  (void)args;
  (void)results;
  wasm_message_t msg;
  wasm_name_new_from_string_nt(&msg, "host says no");
  wasm_trap_t* trap = wasm_trap_new(trap_store, &msg);
  wasm_name_delete(&msg);
  return trap;
}

/* Exercises the functions every reference kind has (copy, same, host
 * info, delete) on `obj` of kind NAME, and the casts to and from
 * wasm_ref_t (REF_KIND). */
#define REF_BASE(NAME, obj, extra)                                                   \
  do {                                                                               \
    wasm_##NAME##_t* c_ = wasm_##NAME##_copy(obj);                                   \
    CHECK(c_ != NULL && wasm_##NAME##_same(c_, obj));                                \
    wasm_##NAME##_set_host_info(c_, (void*)0x5);                                     \
    CHECK(wasm_##NAME##_get_host_info(c_) == (void*)0x5);                            \
    wasm_##NAME##_set_host_info_with_finalizer(c_, &finalized_host_info, count_finalizer); \
    extra;                                                                           \
    wasm_##NAME##_delete(c_);                                                        \
  } while (0)

#define REF_KIND(NAME, obj)                                                          \
  REF_BASE(NAME, obj, {                                                              \
    wasm_ref_t* r_ = wasm_##NAME##_as_ref(c_);                                       \
    CHECK(wasm_ref_as_##NAME(r_) == c_);                                             \
    CHECK(wasm_##NAME##_as_ref_const(c_) == r_);                                     \
    CHECK(wasm_ref_as_##NAME##_const(r_) == c_);                                     \
  })

static void module_reflection(wasm_store_t* store, wasm_module_t* module) {
  wasm_importtype_vec_t imports;
  wasm_module_imports(module, &imports);
  CHECK(imports.size == 3);
  CHECK(wasm_importtype_module(imports.data[0])->size == 4);
  CHECK(wasm_externtype_kind(wasm_importtype_type(imports.data[1])) == WASM_EXTERN_GLOBAL);
  wasm_importtype_vec_delete(&imports);

  wasm_exporttype_vec_t exports;
  wasm_module_exports(module, &exports);
  CHECK(exports.size == N_EXPORTS);
  CHECK(wasm_externtype_kind(wasm_exporttype_type(exports.data[E_TAB])) == WASM_EXTERN_TABLE);
  CHECK(memcmp(wasm_exporttype_name(exports.data[E_MEM])->data, "mem", 3) == 0);
  wasm_exporttype_vec_delete(&exports);

  wasm_byte_vec_t binary;
  wasm_byte_vec_new(&binary, sizeof(BINARY), (const char*)BINARY);
  CHECK(wasm_module_validate(store, &binary));
  wasm_module_t* m = wasm_module_new(store, &binary);
  CHECK(m != NULL);
  binary.data[0] = 1; /* no longer wasm */
  CHECK(!wasm_module_validate(store, &binary));
  CHECK(wasm_module_new(store, &binary) == NULL);
  wasm_byte_vec_delete(&binary);

  /* Serialize, deserialize, share, obtain. */
  wasm_byte_vec_t ser;
  wasm_module_serialize(m, &ser);
  CHECK(ser.size > 0);
  wasm_module_t* m2 = wasm_module_deserialize(store, &ser);
  CHECK(m2 != NULL);
  wasm_byte_vec_delete(&ser);
  wasm_shared_module_t* shared = wasm_module_share(m2);
  wasm_module_t* m3 = wasm_module_obtain(store, shared);
  CHECK(m3 != NULL && wasm_module_same(m2, m3));
  wasm_shared_module_delete(shared);
  wasm_instance_t* inst = instantiate(store, m3, NULL, 0);
  wasm_extern_vec_t ex;
  wasm_instance_exports(inst, &ex);
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t rv = WASM_ARRAY_VEC(r);
  CHECK(wasm_func_call(export_func(&ex, 0), NULL, &rv) == NULL && r[0].of.i32 == 42);
  REF_KIND(module, m);
  REF_KIND(instance, inst);
  wasm_extern_vec_delete(&ex);
  wasm_instance_delete(inst);
  wasm_module_delete(m);
  wasm_module_delete(m2);
  wasm_module_delete(m3);
}

static void calls(wasm_store_t* store, wasm_extern_vec_t* ex, struct env* env) {
  /* Host callback through wasm, with a nested call back into wasm. */
  wasm_val_t a[2] = {WASM_I32_VAL(40), WASM_I32_VAL(2)};
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t av = WASM_ARRAY_VEC(a), rv = WASM_ARRAY_VEC(r);
  env->nested = export_func(ex, E_GET_G);
  CHECK(wasm_func_call(export_func(ex, E_CALL_ADD), &av, &rv) == NULL);
  CHECK(r[0].kind == WASM_I32 && r[0].of.i32 == 42 && env->calls == 1);
  env->nested = NULL;

  /* Mixed value types, through an allocated vector. */
  wasm_val_vec_t args, results;
  wasm_val_t init[3] = {WASM_I64_VAL(-5), WASM_F32_VAL(2.5f), WASM_F64_VAL(0.25)};
  wasm_val_vec_new(&args, 3, init);
  wasm_val_vec_new_uninitialized(&results, 3);
  wasm_func_t* types = export_func(ex, E_TYPES);
  CHECK(wasm_func_param_arity(types) == 3 && wasm_func_result_arity(types) == 3);
  CHECK(wasm_func_call(types, &args, &results) == NULL);
  CHECK(results.data[0].kind == WASM_F64 && results.data[0].of.f64 == 0.25);
  CHECK(results.data[1].kind == WASM_F32 && results.data[1].of.f32 == 2.5f);
  CHECK(results.data[2].kind == WASM_I64 && results.data[2].of.i64 == -5);
  wasm_val_vec_t copy, empty;
  wasm_val_vec_copy(&copy, &results);
  CHECK(copy.size == 3 && copy.data[2].of.i64 == -5);
  wasm_val_vec_new_empty(&empty);
  wasm_val_vec_delete(&copy);
  wasm_val_vec_delete(&empty);
  wasm_val_vec_delete(&args);
  wasm_val_vec_delete(&results);

  wasm_functype_t* ft = wasm_func_type(types);
  CHECK(wasm_functype_params(ft)->size == 3);
  wasm_functype_delete(ft);

  /* Host references through wasm and back: same object, same host info. */
  wasm_foreign_t* foreign = wasm_foreign_new(store);
  wasm_foreign_set_host_info(foreign, (void*)0x77);
  wasm_val_t ea[1] = {WASM_REF_VAL(wasm_foreign_as_ref(foreign))};
  wasm_val_t er[1] = {WASM_INIT_VAL};
  wasm_val_vec_t eav = WASM_ARRAY_VEC(ea), erv = WASM_ARRAY_VEC(er);
  CHECK(wasm_func_call(export_func(ex, E_ECHO), &eav, &erv) == NULL);
  CHECK(er[0].kind == WASM_EXTERNREF && er[0].of.ref != NULL);
  CHECK(wasm_ref_same(er[0].of.ref, wasm_foreign_as_ref(foreign)));
  CHECK(wasm_ref_get_host_info(er[0].of.ref) == (void*)0x77);
  wasm_val_t vcopy;
  wasm_val_copy(&vcopy, &er[0]);
  CHECK(wasm_ref_same(vcopy.of.ref, er[0].of.ref));
  wasm_val_delete(&vcopy);
  wasm_val_delete(&er[0]);
  REF_KIND(foreign, foreign);
  REF_BASE(ref, wasm_foreign_as_ref(foreign), {});
  wasm_foreign_delete(foreign);

  /* A trap in wasm: message, origin and trace with offsets. */
  wasm_trap_t* trap = wasm_func_call(export_func(ex, E_TRAP), NULL, NULL);
  CHECK(trap != NULL);
  wasm_message_t msg;
  wasm_trap_message(trap, &msg);
  CHECK(msg.size > 0 && msg.data[msg.size - 1] == 0 && strstr(msg.data, "divide by zero"));
  wasm_name_delete(&msg);
  uint8_t code = 255;
  CHECK(kiln_trap_code(trap, &code) && code == KILN_TRAP_INTEGER_DIVISION_BY_ZERO);
  wasm_frame_t* origin = wasm_trap_origin(trap);
  CHECK(origin != NULL);
  CHECK(wasm_frame_func_index(origin) == 7); /* $inner: after 2 imported and 5 defined functions */
  CHECK(wasm_frame_module_offset(origin) > 0 && wasm_frame_func_offset(origin) > 0);
  CHECK(wasm_frame_module_offset(origin) > wasm_frame_func_offset(origin));
  CHECK(wasm_frame_instance(origin) == NULL);
  wasm_frame_t* fcopy = wasm_frame_copy(origin);
  CHECK(wasm_frame_func_index(fcopy) == 7);
  wasm_frame_vec_t trace, tcopy, tun, tempty;
  wasm_trap_trace(trap, &trace);
  CHECK(trace.size == 2 && wasm_frame_func_index(trace.data[1]) == 6);
  wasm_frame_vec_copy(&tcopy, &trace);
  CHECK(tcopy.size == 2);
  wasm_frame_vec_new_uninitialized(&tun, 1);
  wasm_frame_vec_new(&tempty, 1, &fcopy);
  wasm_frame_vec_delete(&tun);
  wasm_frame_vec_delete(&tempty);
  wasm_frame_vec_new_empty(&tempty);
  wasm_frame_vec_delete(&tempty);
  wasm_frame_vec_delete(&trace);
  wasm_frame_vec_delete(&tcopy);
  wasm_frame_delete(origin);
  REF_KIND(trap, trap);
  wasm_trap_delete(trap);
}

static void externals(wasm_store_t* store, wasm_extern_vec_t* ex) {
  /* Globals. */
  wasm_global_t* gf = wasm_extern_as_global(ex->data[E_GF]);
  CHECK(gf != NULL && wasm_extern_kind(ex->data[E_GF]) == WASM_EXTERN_GLOBAL);
  wasm_val_t v;
  wasm_global_get(gf, &v);
  CHECK(v.kind == WASM_F64 && v.of.f64 == 1.5);
  wasm_val_t nv = WASM_F64_VAL(-3.0);
  wasm_global_set(gf, &nv);
  wasm_global_get(gf, &v);
  CHECK(v.of.f64 == -3.0);
  wasm_globaltype_t* gt = wasm_global_type(gf);
  CHECK(wasm_globaltype_mutability(gt) == WASM_VAR);
  wasm_globaltype_delete(gt);
  CHECK(wasm_global_as_extern(gf) == ex->data[E_GF]);
  CHECK(wasm_global_as_extern_const(gf) == ex->data[E_GF]);
  CHECK(wasm_extern_as_global_const(ex->data[E_GF]) == gf);
  REF_KIND(global, gf);

  /* Tables. */
  wasm_table_t* tab = wasm_extern_as_table(ex->data[E_TAB]);
  CHECK(tab != NULL && wasm_table_size(tab) == 2);
  CHECK(wasm_table_get(tab, 0) == NULL);
  wasm_ref_t* f1 = wasm_table_get(tab, 1);
  CHECK(f1 != NULL && wasm_ref_as_func(f1) != NULL);
  CHECK(wasm_table_get(tab, 2) == NULL);
  CHECK(wasm_table_set(tab, 0, f1));
  CHECK(!wasm_table_set(tab, 2, f1));
  CHECK(wasm_table_grow(tab, 3, f1) && wasm_table_size(tab) == 5);
  CHECK(!wasm_table_grow(tab, 6, NULL));
  wasm_val_t ia[3] = {WASM_I32_VAL(3), WASM_I32_VAL(4), WASM_I32_VAL(4)};
  wasm_val_t ir[1] = {WASM_INIT_VAL};
  wasm_val_vec_t iav = WASM_ARRAY_VEC(ia), irv = WASM_ARRAY_VEC(ir);
  CHECK(wasm_func_call(export_func(ex, E_CALL_IND), &iav, &irv) == NULL && ir[0].of.i32 == 7);
  wasm_tabletype_t* tt = wasm_table_type(tab);
  CHECK(wasm_tabletype_limits(tt)->min == 5 && wasm_tabletype_limits(tt)->max == 10);
  wasm_tabletype_delete(tt);
  CHECK(wasm_table_as_extern(tab) == ex->data[E_TAB]);
  CHECK(wasm_table_as_extern_const(tab) == ex->data[E_TAB]);
  CHECK(wasm_extern_as_table_const(ex->data[E_TAB]) == tab);
  REF_KIND(table, tab);
  wasm_ref_delete(f1);

  wasm_limits_t tl = {2, 3};
  wasm_tabletype_t* tt2 = wasm_tabletype_new(wasm_valtype_new_externref(), &tl);
  wasm_foreign_t* fo = wasm_foreign_new(store);
  wasm_table_t* t2 = wasm_table_new(store, tt2, wasm_foreign_as_ref(fo));
  CHECK(t2 != NULL && wasm_table_size(t2) == 2);
  wasm_ref_t* e0 = wasm_table_get(t2, 0);
  CHECK(e0 && wasm_ref_same(e0, wasm_foreign_as_ref(fo)));
  wasm_ref_delete(e0);
  wasm_tabletype_delete(tt2);
  wasm_table_delete(t2);
  wasm_foreign_delete(fo);

  /* Memories. */
  wasm_memory_t* mem = wasm_extern_as_memory(ex->data[E_MEM]);
  CHECK(mem && wasm_memory_size(mem) == 1 && wasm_memory_data_size(mem) == MEMORY_PAGE_SIZE);
  CHECK(memcmp(wasm_memory_data(mem) + 16, "hi", 2) == 0);
  CHECK(wasm_memory_grow(mem, 1) && wasm_memory_size(mem) == 2);
  CHECK(!wasm_memory_grow(mem, 3));
  wasm_memorytype_t* mt = wasm_memory_type(mem);
  CHECK(wasm_memorytype_limits(mt)->min == 2 && wasm_memorytype_limits(mt)->max == 4);
  wasm_memorytype_delete(mt);
  CHECK(wasm_memory_as_extern(mem) == ex->data[E_MEM]);
  CHECK(wasm_memory_as_extern_const(mem) == ex->data[E_MEM]);
  CHECK(wasm_extern_as_memory_const(ex->data[E_MEM]) == mem);
  REF_KIND(memory, mem);
  wasm_limits_t ml = {1, 1};
  wasm_memorytype_t* mt2 = wasm_memorytype_new(&ml);
  wasm_memory_t* m2 = wasm_memory_new(store, mt2);
  CHECK(m2 && wasm_memory_size(m2) == 1 && !wasm_memory_grow(m2, 1));
  wasm_memory_data(m2)[0] = 9;
  wasm_memorytype_delete(mt2);
  wasm_memory_delete(m2);

  /* Externals. */
  wasm_func_t* f = export_func(ex, E_CALL_ADD);
  CHECK(wasm_func_as_extern(f) == ex->data[E_CALL_ADD]);
  CHECK(wasm_func_as_extern_const(f) == ex->data[E_CALL_ADD]);
  CHECK(wasm_extern_as_func_const(ex->data[E_CALL_ADD]) == f);
  CHECK(wasm_extern_as_func(ex->data[E_MEM]) == NULL);
  wasm_externtype_t* et = wasm_extern_type(ex->data[E_CALL_ADD]);
  CHECK(wasm_externtype_kind(et) == WASM_EXTERN_FUNC);
  wasm_externtype_delete(et);
  REF_KIND(func, f);
  REF_KIND(extern, ex->data[E_MEM]);
  wasm_extern_vec_t vcopy, vun, vempty, vnew;
  wasm_extern_vec_copy(&vcopy, ex);
  CHECK(vcopy.size == N_EXPORTS && wasm_extern_same(vcopy.data[0], ex->data[0]));
  wasm_extern_vec_new_uninitialized(&vun, 2);
  wasm_extern_vec_new_empty(&vempty);
  wasm_extern_t* one = wasm_extern_copy(ex->data[0]);
  wasm_extern_vec_new(&vnew, 1, &one);
  wasm_extern_vec_delete(&vcopy);
  wasm_extern_vec_delete(&vun);
  wasm_extern_vec_delete(&vempty);
  wasm_extern_vec_delete(&vnew);
}

int main(void) {
  wasm_config_t* config = wasm_config_new();
  wasm_engine_t* engine = wasm_engine_new_with_config(config);
  wasm_store_t* store = wasm_store_new(engine);
  trap_store = store;
  wasm_module_t* module = wat(engine, MODULE_WAT);
  module_reflection(store, module);

  struct env env = {0, 0, NULL};
  wasm_functype_t* add_t = wasm_functype_new_2_1(wasm_valtype_new_i32(), wasm_valtype_new_i32(), wasm_valtype_new_i32());
  wasm_func_t* add = wasm_func_new_with_env(store, add_t, add_callback, &env, env_finalizer);
  wasm_functype_delete(add_t);
  wasm_globaltype_t* g_t = wasm_globaltype_new(wasm_valtype_new_i64(), WASM_VAR);
  wasm_val_t g_v = WASM_I64_VAL(7);
  wasm_global_t* g = wasm_global_new(store, g_t, &g_v);
  wasm_globaltype_delete(g_t);
  wasm_functype_t* echo_t = wasm_functype_new_1_1(wasm_valtype_new_externref(), wasm_valtype_new_externref());
  wasm_func_t* echo = wasm_func_new(store, echo_t, echo_callback);
  wasm_functype_delete(echo_t);

  wasm_extern_t* imports[] = {wasm_func_as_extern(add), wasm_global_as_extern(g), wasm_func_as_extern(echo)};
  wasm_instance_t* instance = instantiate(store, module, imports, 3);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  CHECK(exports.size == N_EXPORTS);
  calls(store, &exports, &env);
  externals(store, &exports);

  /* A host callback's trap comes out of the call as that trap. */
  wasm_functype_t* fail_t = wasm_functype_new_0_0();
  wasm_func_t* fail = wasm_func_new(store, fail_t, fail_callback);
  wasm_functype_delete(fail_t);
  wasm_trap_t* trap = wasm_func_call(fail, NULL, NULL);
  wasm_message_t msg;
  wasm_trap_message(trap, &msg);
  CHECK(strcmp(msg.data, "host says no") == 0);
  wasm_name_delete(&msg);
  CHECK(wasm_trap_origin(trap) == NULL); /* called by the host: no wasm frames */
  wasm_trap_delete(trap);
  /* Called from wasm, the callback's trap has the calling wasm frames. */
  wasm_module_t* m2 = wat(engine, "(module (import \"\" \"fail\" (func $fail)) (func (export \"run\") nop (call $fail)))");
  wasm_extern_t* imports2[] = {wasm_func_as_extern(fail)};
  wasm_instance_t* i2 = instantiate(store, m2, imports2, 1);
  wasm_extern_vec_t ex2;
  wasm_instance_exports(i2, &ex2);
  trap = wasm_func_call(export_func(&ex2, 0), NULL, NULL);
  wasm_trap_message(trap, &msg);
  CHECK(strcmp(msg.data, "host says no") == 0);
  wasm_name_delete(&msg);
  wasm_frame_t* origin = wasm_trap_origin(trap);
  CHECK(origin && wasm_frame_func_index(origin) == 1 && wasm_frame_func_offset(origin) > 0);
  wasm_frame_delete(origin);
  wasm_trap_delete(trap);
  wasm_extern_vec_delete(&ex2);
  wasm_instance_delete(i2);
  wasm_module_delete(m2);
  wasm_func_delete(fail);

  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_func_delete(add);
  wasm_func_delete(echo);
  wasm_global_delete(g);
  wasm_module_delete(module);
  CHECK(env.finalized == 0); /* the store still holds the function */
  wasm_store_delete(store);
  CHECK(env.finalized == 1); /* exactly once, with the store */
  wasm_engine_delete(engine);
  CHECK(finalized_host_info == 10); /* one per REF_KIND above, all released */
  printf("runtime: ok\n");
  return 0;
}
