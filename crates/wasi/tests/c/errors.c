// Calls WASI functions directly with bad descriptors, bad pointers and bad
// arguments, printing each errno: the runtime must answer every one with
// an errno (never a trap), and the program must keep running.
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

#define SHOW(name, expr) printf("%s=%d\n", name, (int)(expr))

// path_open as the runtime sees it: the path is a pointer and a length.
__attribute__((import_module("wasi_snapshot_preview1"), import_name("path_open")))
int32_t raw_path_open(int32_t fd, int32_t dirflags, int32_t path, int32_t path_len, int32_t oflags,
                      int64_t base, int64_t inheriting, int32_t fdflags, int32_t fd_out);

// This libc's headers leave proc_raise out.
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_raise")))
int32_t raw_proc_raise(int32_t sig);

int main(void) {
  __wasi_size_t n = 0;
  // A pointer just past the end of memory, and one far past it.
  uint8_t *end = (uint8_t *)(__builtin_wasm_memory_size(0) * 65536);
  uint8_t *far = (uint8_t *)0xfffffff0u;

  // Out-of-bounds pointers: fault (21).
  SHOW("args_sizes_get_oob", __wasi_args_sizes_get((__wasi_size_t *)far, &n));
  __wasi_ciovec_t bad_iov = {.buf = far, .buf_len = 16};
  SHOW("fd_write_oob_buffer", __wasi_fd_write(1, &bad_iov, 1, &n));
  SHOW("fd_write_oob_iovecs", __wasi_fd_write(1, (const __wasi_ciovec_t *)(end - 4), 1, &n));
  __wasi_ciovec_t ok_iov = {.buf = (const uint8_t *)"", .buf_len = 0};
  SHOW("fd_write_oob_result", __wasi_fd_write(1, &ok_iov, 1, (__wasi_size_t *)(end - 2)));
  SHOW("random_get_oob", __wasi_random_get(end - 8, 16));
  SHOW("clock_time_get_oob", __wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, (__wasi_timestamp_t *)far));
  SHOW("path_open_oob_path", raw_path_open(3, 0, (int32_t)(uintptr_t)far, 4, 0, 0, 0, 0, (int32_t)(uintptr_t)&n));
  SHOW("fd_prestat_get_oob", __wasi_fd_prestat_get(3, (__wasi_prestat_t *)far));
  SHOW("fd_fdstat_get_oob", __wasi_fd_fdstat_get(1, (__wasi_fdstat_t *)(end - 1)));

  // Bad descriptors: badf (8).
  SHOW("fd_close_bad", __wasi_fd_close(1000));
  SHOW("fd_write_bad", __wasi_fd_write(1000, &ok_iov, 1, &n));
  __wasi_fdstat_t st;
  SHOW("fd_fdstat_get_bad", __wasi_fd_fdstat_get(1000, &st));
  SHOW("fd_renumber_bad_to", __wasi_fd_renumber(1, 1000));
  __wasi_prestat_t pre;
  SHOW("fd_prestat_get_stdout", __wasi_fd_prestat_get(1, &pre));

  // Wrong kind of descriptor.
  uint8_t buf[8];
  __wasi_iovec_t iov = {.buf = buf, .buf_len = sizeof buf};
  SHOW("fd_read_dir", __wasi_fd_read(3, &iov, 1, &n));  // badf
  __wasi_filesize_t pos;
  SHOW("fd_seek_stdout", __wasi_fd_seek(1, 0, __WASI_WHENCE_CUR, &pos));  // spipe
  __wasi_fd_t fd;
  SHOW("path_open_on_stdout", __wasi_path_open(1, 0, "x", 0, 0, 0, 0, &fd));  // notdir
  SHOW("sock_shutdown_stdout", __wasi_sock_shutdown(1, __WASI_SDFLAGS_WR));  // notsock
  SHOW("sock_accept_dir", __wasi_sock_accept(3, 0, &fd));  // notsock
  SHOW("fd_readdir_stdout", __wasi_fd_readdir(1, buf, sizeof buf, 0, &n));  // notdir

  // Bad arguments: inval (28), ilseq (25), nametoolong (37), nosys (52).
  __wasi_timestamp_t t;
  SHOW("clock_time_get_bad_clock", __wasi_clock_time_get(99, 1, &t));
  SHOW("fd_seek_bad_whence", __wasi_fd_seek(3, 0, 7, &pos));
  __wasi_event_t ev;
  SHOW("poll_oneoff_none", __wasi_poll_oneoff(NULL, &ev, 0, &n));
  SHOW("path_open_bad_utf8", __wasi_path_open(3, 0, "\xff\xfe", 0, 0, 0, 0, &fd));
  char small[1];
  SHOW("fd_prestat_dir_name_short", __wasi_fd_prestat_dir_name(3, (uint8_t *)small, 0));
  SHOW("proc_raise", raw_proc_raise(15));
  SHOW("sched_yield", __wasi_sched_yield());

  // Rights: a file opened with FD_WRITE, which is then dropped: writing
  // is notcapable (76) and the right cannot be regained.
  __wasi_fd_t f;
  SHOW("open_rw", __wasi_path_open(3, 0, "rights.txt", __WASI_OFLAGS_CREAT, __WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_READ, 0, 0, &f));
  SHOW("drop_write", __wasi_fd_fdstat_set_rights(f, __WASI_RIGHTS_FD_READ, 0));
  __wasi_ciovec_t hi = {.buf = (const uint8_t *)"lost", .buf_len = 4};
  SHOW("write_without_right", __wasi_fd_write(f, &hi, 1, &n));
  SHOW("regain_write", __wasi_fd_fdstat_set_rights(f, __WASI_RIGHTS_FD_READ | __WASI_RIGHTS_FD_WRITE, 0));
  SHOW("close", __wasi_fd_close(f));
  SHOW("close_again", __wasi_fd_close(f));

  fflush(stdout);
  __wasi_proc_exit(3);
}
