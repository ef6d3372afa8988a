/* Force-included into every Lua source file for wasm32-wasi: the Debian
 * wasi-libc has no setjmp/longjmp, so a Lua error cannot unwind. An error
 * (or a yield across a C call) ends the program instead; the benchmark
 * script raises none and uses no coroutines. */
#ifndef LUA_WASI_NOJMP_H
#define LUA_WASI_NOJMP_H
void lua_wasi_fatal(void *L, int status) __attribute__((noreturn));
#define LUAI_THROW(L, c) lua_wasi_fatal((void *)(L), (c)->status)
#define LUAI_TRY(L, c, a) { a }
#define luai_jmpbuf int
#endif
