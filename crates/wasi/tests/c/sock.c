// A one-connection echo server on the listening socket the host preopened
// as fd 3: accepts, reads one line with sock_recv, sends it back in upper
// case with sock_send, shuts the connection down, and reports socket
// errors for descriptors that are not sockets.
#include <ctype.h>
#include <stdio.h>
#include <wasi/api.h>

int main(void) {
  __wasi_fdstat_t st;
  printf("listener_filetype=%d\n", __wasi_fd_fdstat_get(3, &st) == 0 ? st.fs_filetype : -1);
  __wasi_fd_t conn;
  int err = __wasi_sock_accept(3, 0, &conn);
  printf("accept=%d\n", err);
  if (err) return 1;
  char line[256];
  size_t len = 0;
  while (len < sizeof line - 1) {
    __wasi_iovec_t iov = {.buf = (uint8_t *)line + len, .buf_len = sizeof line - 1 - len};
    __wasi_size_t n;
    __wasi_roflags_t flags;
    if (__wasi_sock_recv(conn, &iov, 1, 0, &n, &flags) != 0 || n == 0) break;
    len += n;
    if (line[len - 1] == '\n') break;
  }
  for (size_t i = 0; i < len; i++) line[i] = toupper((unsigned char)line[i]);
  __wasi_ciovec_t out = {.buf = (const uint8_t *)line, .buf_len = len};
  __wasi_size_t sent;
  printf("send=%d\n", __wasi_sock_send(conn, &out, 1, 0, &sent));
  printf("sent=%u\n", (unsigned)sent);
  printf("shutdown=%d\n", __wasi_sock_shutdown(conn, __WASI_SDFLAGS_WR));
  printf("shutdown_stdout=%d\n", __wasi_sock_shutdown(1, __WASI_SDFLAGS_WR));
  printf("shutdown_closed=%d\n", __wasi_sock_shutdown(77, __WASI_SDFLAGS_WR));
  printf("accept_on_stdin=%d\n", __wasi_sock_accept(0, 0, &conn));
  return 0;
}
