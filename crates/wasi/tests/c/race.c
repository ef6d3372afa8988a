// Opens "swap/secret.txt" beneath the sandbox (fd 3) over and over while
// the host keeps replacing "swap" with a symbolic link that points out of
// the sandbox, and counts what it got: the runtime must never hand out the
// file outside, whatever the timing.
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
  int rounds = 20000;
  int inside = 0, outside = 0, failed = 0, other = 0;
  for (int i = 0; i < rounds; i++) {
    __wasi_fd_t fd;
    if (__wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "swap/secret.txt", 0, __WASI_RIGHTS_FD_READ, 0, 0,
                         &fd) != 0) {
      failed++;
      continue;
    }
    char buf[16] = {0};
    __wasi_iovec_t iov = {.buf = (uint8_t *)buf, .buf_len = sizeof buf - 1};
    __wasi_size_t n = 0;
    (void)!__wasi_fd_read(fd, &iov, 1, &n);
    (void)!__wasi_fd_close(fd);
    if (strncmp(buf, "inside", 6) == 0)
      inside++;
    else if (strncmp(buf, "outside", 7) == 0)
      outside++;
    else
      other++;
  }
  printf("inside=%d outside=%d failed=%d other=%d\n", inside, outside, failed, other);
  return outside == 0 ? 0 : 1;
}
