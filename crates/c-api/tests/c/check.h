/* Helpers shared by the C tests: CHECK stops the program with the line
 * that failed; wat() compiles a text module through kiln_module_new. */
#ifndef KILN_TEST_CHECK_H
#define KILN_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kiln.h"

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      wasm_name_t last_;                                                 \
      kiln_last_error_message(&last_);                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",      \
              __FILE__, __LINE__, #cond,                                 \
              last_.data ? last_.data : "none");                         \
      wasm_byte_vec_delete(&last_);                                      \
      exit(1);                                                           \
    }                                                                    \
  } while (0)

/* Compiles WebAssembly text; exits on failure. */
static inline wasm_module_t* wat(wasm_engine_t* engine, const char* text) {
  wasm_byte_vec_t bytes;
  wasm_byte_vec_new(&bytes, strlen(text), text);
  wasm_module_t* module = NULL;
  kiln_error_t* err = kiln_module_new(engine, &bytes, &module);
  wasm_byte_vec_delete(&bytes);
  if (err) {
    wasm_name_t msg;
    kiln_error_message(err, &msg);
    fprintf(stderr, "compiling test module: %s\n", msg.data);
    wasm_byte_vec_delete(&msg);
    kiln_error_delete(err);
    exit(1);
  }
  return module;
}

/* Instantiates with the given imports; exits on failure. */
static inline wasm_instance_t* instantiate(wasm_store_t* store, wasm_module_t* module,
                                           wasm_extern_t** imports, size_t n) {
  wasm_extern_vec_t vec = {n, imports};
  wasm_trap_t* trap = NULL;
  wasm_instance_t* instance = wasm_instance_new(store, module, &vec, &trap);
  if (!instance) {
    wasm_message_t msg;
    wasm_trap_message(trap, &msg);
    fprintf(stderr, "instantiating: %s\n", msg.data);
    exit(1);
  }
  CHECK(trap == NULL);
  return instance;
}

/* Export i of an instance's export vector, as a function. */
static inline wasm_func_t* export_func(const wasm_extern_vec_t* exports, size_t i) {
  CHECK(i < exports->size);
  wasm_func_t* f = wasm_extern_as_func(exports->data[i]);
  CHECK(f != NULL);
  return f;
}

#endif
