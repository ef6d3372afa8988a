/* Vectors and type objects: every constructor, accessor, cast, copy and
 * destructor, with everything owned deleted (the leak checker verifies). */
#include "check.h"

static void byte_vectors(void) {
  wasm_byte_vec_t a, b, c, d;
  wasm_byte_vec_new_empty(&a);
  CHECK(a.size == 0 && a.data == NULL);
  wasm_byte_vec_new_uninitialized(&b, 5);
  CHECK(b.size == 5 && b.data != NULL);
  memcpy(b.data, "hello", 5);
  wasm_byte_vec_copy(&c, &b);
  CHECK(c.size == 5 && memcmp(c.data, "hello", 5) == 0 && c.data != b.data);
  wasm_byte_vec_new(&d, 3, "abc");
  CHECK(d.size == 3 && memcmp(d.data, "abc", 3) == 0);
  wasm_name_t n1, n2;
  wasm_name_new_from_string(&n1, "name");
  wasm_name_new_from_string_nt(&n2, "name");
  CHECK(n1.size == 4 && n2.size == 5 && n2.data[4] == 0);
  wasm_byte_vec_delete(&a);
  wasm_byte_vec_delete(&b);
  wasm_byte_vec_delete(&c);
  wasm_byte_vec_delete(&d);
  wasm_name_delete(&n1);
  wasm_name_delete(&n2);
  CHECK(n2.size == 0 && n2.data == NULL);
  /* Deleting an empty vector, and deleting twice, is harmless. */
  wasm_byte_vec_delete(&a);
}

static void value_types(void) {
  wasm_valkind_t kinds[] = {WASM_I32, WASM_I64, WASM_F32, WASM_F64, WASM_EXTERNREF, WASM_FUNCREF};
  for (size_t i = 0; i < 6; i++) {
    wasm_valtype_t* t = wasm_valtype_new(kinds[i]);
    CHECK(t && wasm_valtype_kind(t) == kinds[i]);
    CHECK(wasm_valtype_is_num(t) == (i < 4));
    CHECK(wasm_valtype_is_ref(t) == (i >= 4));
    wasm_valtype_t* c = wasm_valtype_copy(t);
    CHECK(wasm_valtype_kind(c) == kinds[i]);
    wasm_valtype_delete(t);
    wasm_valtype_delete(c);
  }
  CHECK(wasm_valtype_new(77) == NULL);

  wasm_valtype_vec_t v, u, w, e;
  wasm_valtype_t* ts[2] = {wasm_valtype_new_i64(), wasm_valtype_new_f32()};
  wasm_valtype_vec_new(&v, 2, ts);
  wasm_valtype_vec_copy(&u, &v);
  CHECK(u.size == 2 && wasm_valtype_kind(u.data[1]) == WASM_F32);
  wasm_valtype_vec_new_uninitialized(&w, 3);
  CHECK(w.size == 3 && w.data[0] == NULL);
  w.data[1] = wasm_valtype_new_f64();
  wasm_valtype_vec_new_empty(&e);
  wasm_valtype_vec_delete(&v);
  wasm_valtype_vec_delete(&u);
  wasm_valtype_vec_delete(&w);
  wasm_valtype_vec_delete(&e);
}

static void function_types(void) {
  wasm_functype_t* f = wasm_functype_new_3_2(wasm_valtype_new_i32(), wasm_valtype_new_i64(),
                                             wasm_valtype_new_externref(), wasm_valtype_new_funcref(),
                                             wasm_valtype_new_f64());
  CHECK(wasm_functype_params(f)->size == 3 && wasm_functype_results(f)->size == 2);
  CHECK(wasm_valtype_kind(wasm_functype_params(f)->data[2]) == WASM_EXTERNREF);
  CHECK(wasm_valtype_kind(wasm_functype_results(f)->data[0]) == WASM_FUNCREF);
  wasm_functype_t* g = wasm_functype_copy(f);
  CHECK(wasm_functype_params(g)->size == 3);

  wasm_functype_t* all[] = {
    wasm_functype_new_0_0(),
    wasm_functype_new_1_0(wasm_valtype_new_i32()),
    wasm_functype_new_2_0(wasm_valtype_new_i32(), wasm_valtype_new_i32()),
    wasm_functype_new_3_0(wasm_valtype_new_i32(), wasm_valtype_new_i32(), wasm_valtype_new_i32()),
    wasm_functype_new_0_1(wasm_valtype_new_i32()),
    wasm_functype_new_1_1(wasm_valtype_new_i32(), wasm_valtype_new_i32()),
    wasm_functype_new_2_1(wasm_valtype_new_i32(), wasm_valtype_new_i32(), wasm_valtype_new_i32()),
    wasm_functype_new_3_1(wasm_valtype_new_i32(), wasm_valtype_new_i32(), wasm_valtype_new_i32(),
                          wasm_valtype_new_i32()),
    wasm_functype_new_0_2(wasm_valtype_new_i32(), wasm_valtype_new_i32()),
    wasm_functype_new_1_2(wasm_valtype_new_i32(), wasm_valtype_new_i32(), wasm_valtype_new_i32()),
    wasm_functype_new_2_2(wasm_valtype_new_i32(), wasm_valtype_new_i32(), wasm_valtype_new_i32(),
                          wasm_valtype_new_i32()),
  };
  size_t n = sizeof(all) / sizeof(*all);
  wasm_functype_vec_t vec, copy, un, em;
  wasm_functype_vec_new(&vec, n, all);
  wasm_functype_vec_copy(&copy, &vec);
  CHECK(copy.size == n && wasm_functype_results(copy.data[10])->size == 2);
  wasm_functype_vec_new_uninitialized(&un, 2);
  wasm_functype_vec_new_empty(&em);
  wasm_functype_vec_delete(&vec);
  wasm_functype_vec_delete(&copy);
  wasm_functype_vec_delete(&un);
  wasm_functype_vec_delete(&em);

  /* Extern type casts are the same object; the wrong-kind ones are NULL. */
  wasm_externtype_t* et = wasm_functype_as_externtype(g);
  CHECK((void*)et == (void*)g && wasm_externtype_kind(et) == WASM_EXTERN_FUNC);
  CHECK(wasm_externtype_as_functype(et) == g);
  CHECK(wasm_externtype_as_globaltype(et) == NULL);
  CHECK(wasm_functype_as_externtype_const(g) == et);
  CHECK(wasm_externtype_as_functype_const(et) == g);
  wasm_externtype_t* etc = wasm_externtype_copy(et);
  CHECK(wasm_externtype_kind(etc) == WASM_EXTERN_FUNC);
  wasm_externtype_delete(etc);
  wasm_functype_delete(f);
  wasm_functype_delete(g);
}

static void global_table_memory_types(void) {
  wasm_globaltype_t* g = wasm_globaltype_new(wasm_valtype_new_f32(), WASM_VAR);
  CHECK(wasm_valtype_kind(wasm_globaltype_content(g)) == WASM_F32);
  CHECK(wasm_globaltype_mutability(g) == WASM_VAR);
  wasm_globaltype_t* gc = wasm_globaltype_copy(g);
  CHECK(wasm_globaltype_mutability(gc) == WASM_VAR);
  wasm_externtype_t* ge = wasm_globaltype_as_externtype(gc);
  CHECK(wasm_externtype_kind(ge) == WASM_EXTERN_GLOBAL);
  CHECK(wasm_externtype_as_globaltype(ge) == gc);
  CHECK(wasm_externtype_as_globaltype_const(ge) == gc);
  CHECK(wasm_globaltype_as_externtype_const(gc) == ge);
  CHECK(wasm_externtype_as_tabletype(ge) == NULL);

  wasm_limits_t lim = {1, wasm_limits_max_default};
  wasm_tabletype_t* t = wasm_tabletype_new(wasm_valtype_new_funcref(), &lim);
  CHECK(wasm_valtype_kind(wasm_tabletype_element(t)) == WASM_FUNCREF);
  CHECK(wasm_tabletype_limits(t)->min == 1 && wasm_tabletype_limits(t)->max == 0xffffffff);
  CHECK(wasm_tabletype_new(wasm_valtype_new_i32(), &lim) == NULL); /* not a reference */
  wasm_tabletype_t* tc = wasm_tabletype_copy(t);
  wasm_externtype_t* te = wasm_tabletype_as_externtype(tc);
  CHECK(wasm_externtype_kind(te) == WASM_EXTERN_TABLE);
  CHECK(wasm_externtype_as_tabletype(te) == tc);
  CHECK(wasm_externtype_as_tabletype_const(te) == tc);
  CHECK(wasm_tabletype_as_externtype_const(tc) == te);

  wasm_limits_t ml = {2, 3};
  wasm_memorytype_t* m = wasm_memorytype_new(&ml);
  CHECK(wasm_memorytype_limits(m)->min == 2 && wasm_memorytype_limits(m)->max == 3);
  wasm_memorytype_t* mc = wasm_memorytype_copy(m);
  wasm_externtype_t* me = wasm_memorytype_as_externtype(mc);
  CHECK(wasm_externtype_kind(me) == WASM_EXTERN_MEMORY);
  CHECK(wasm_externtype_as_memorytype(me) == mc);
  CHECK(wasm_externtype_as_memorytype_const(me) == mc);
  CHECK(wasm_memorytype_as_externtype_const(mc) == me);
  /* Accessors given a type of another kind (misuse, cast on purpose)
   * give NULL. */
  CHECK(wasm_memorytype_limits((wasm_memorytype_t*)(void*)g) == NULL);
  CHECK(wasm_tabletype_element((wasm_tabletype_t*)(void*)m) == NULL);
  CHECK(wasm_globaltype_content((wasm_globaltype_t*)(void*)t) == NULL);
  CHECK(wasm_tabletype_limits((wasm_tabletype_t*)(void*)m) == NULL);
  CHECK(wasm_functype_params((wasm_functype_t*)(void*)m) == NULL);
  CHECK(wasm_functype_results((wasm_functype_t*)(void*)m) == NULL);

  wasm_globaltype_vec_t gv, gv2, gv3, gv4;
  wasm_globaltype_vec_new(&gv, 1, &g);
  wasm_globaltype_vec_copy(&gv2, &gv);
  wasm_globaltype_vec_new_uninitialized(&gv3, 1);
  wasm_globaltype_vec_new_empty(&gv4);
  wasm_globaltype_vec_delete(&gv);
  wasm_globaltype_vec_delete(&gv2);
  wasm_globaltype_vec_delete(&gv3);
  wasm_globaltype_vec_delete(&gv4);

  wasm_tabletype_vec_t tv, tv2, tv3, tv4;
  wasm_tabletype_vec_new(&tv, 1, &t);
  wasm_tabletype_vec_copy(&tv2, &tv);
  wasm_tabletype_vec_new_uninitialized(&tv3, 1);
  wasm_tabletype_vec_new_empty(&tv4);
  wasm_tabletype_vec_delete(&tv);
  wasm_tabletype_vec_delete(&tv2);
  wasm_tabletype_vec_delete(&tv3);
  wasm_tabletype_vec_delete(&tv4);

  wasm_memorytype_vec_t mv, mv2, mv3, mv4;
  wasm_memorytype_vec_new(&mv, 1, &m);
  wasm_memorytype_vec_copy(&mv2, &mv);
  wasm_memorytype_vec_new_uninitialized(&mv3, 1);
  wasm_memorytype_vec_new_empty(&mv4);
  wasm_memorytype_vec_delete(&mv);
  wasm_memorytype_vec_delete(&mv2);
  wasm_memorytype_vec_delete(&mv3);
  wasm_memorytype_vec_delete(&mv4);

  wasm_externtype_vec_t ev, ev2, ev3, ev4;
  wasm_externtype_t* es[] = {ge, te, me};
  wasm_externtype_vec_new(&ev, 3, es);
  wasm_externtype_vec_copy(&ev2, &ev);
  CHECK(wasm_externtype_kind(ev2.data[2]) == WASM_EXTERN_MEMORY);
  wasm_externtype_vec_new_uninitialized(&ev3, 2);
  wasm_externtype_vec_new_empty(&ev4);
  wasm_externtype_vec_delete(&ev);
  wasm_externtype_vec_delete(&ev2);
  wasm_externtype_vec_delete(&ev3);
  wasm_externtype_vec_delete(&ev4);
}

static void import_export_types(void) {
  wasm_name_t module, name, ename;
  wasm_name_new_from_string(&module, "env");
  wasm_name_new_from_string(&name, "f");
  wasm_name_new_from_string(&ename, "g");
  wasm_importtype_t* it =
    wasm_importtype_new(&module, &name, wasm_functype_as_externtype(wasm_functype_new_0_0()));
  CHECK(wasm_importtype_module(it)->size == 3 && memcmp(wasm_importtype_module(it)->data, "env", 3) == 0);
  CHECK(wasm_importtype_name(it)->size == 1 && wasm_importtype_name(it)->data[0] == 'f');
  CHECK(wasm_externtype_kind(wasm_importtype_type(it)) == WASM_EXTERN_FUNC);
  wasm_importtype_t* itc = wasm_importtype_copy(it);
  CHECK(wasm_importtype_name(itc)->data[0] == 'f');

  wasm_limits_t lim = {0, 1};
  wasm_exporttype_t* et = wasm_exporttype_new(&ename, wasm_memorytype_as_externtype(wasm_memorytype_new(&lim)));
  CHECK(wasm_exporttype_name(et)->data[0] == 'g');
  CHECK(wasm_externtype_kind(wasm_exporttype_type(et)) == WASM_EXTERN_MEMORY);
  wasm_exporttype_t* etc = wasm_exporttype_copy(et);

  wasm_importtype_vec_t iv, iv2, iv3, iv4;
  wasm_importtype_vec_new(&iv, 1, &it);
  wasm_importtype_vec_copy(&iv2, &iv);
  wasm_importtype_vec_new_uninitialized(&iv3, 1);
  wasm_importtype_vec_new_empty(&iv4);
  wasm_importtype_vec_delete(&iv);
  wasm_importtype_vec_delete(&iv2);
  wasm_importtype_vec_delete(&iv3);
  wasm_importtype_vec_delete(&iv4);
  wasm_importtype_delete(itc);

  wasm_exporttype_vec_t ev, ev2, ev3, ev4;
  wasm_exporttype_vec_new(&ev, 1, &et);
  wasm_exporttype_vec_copy(&ev2, &ev);
  wasm_exporttype_vec_new_uninitialized(&ev3, 1);
  wasm_exporttype_vec_new_empty(&ev4);
  wasm_exporttype_vec_delete(&ev);
  wasm_exporttype_vec_delete(&ev2);
  wasm_exporttype_vec_delete(&ev3);
  wasm_exporttype_vec_delete(&ev4);
  wasm_exporttype_delete(etc);
}

int main(void) {
  byte_vectors();
  value_types();
  function_types();
  global_table_memory_types();
  import_export_types();
  printf("types: ok\n");
  return 0;
}
