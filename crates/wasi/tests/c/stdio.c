// Copies standard input to standard output in upper case, reports the
// byte count on standard error, and checks what it can learn about the
// streams (not terminals when they are pipes).
#include <ctype.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
  char buf[100];
  size_t total = 0, n;
  while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
    for (size_t i = 0; i < n; i++) buf[i] = toupper((unsigned char)buf[i]);
    fwrite(buf, 1, n, stdout);
    total += n;
  }
  fprintf(stderr, "read %zu bytes, isatty(0)=%d isatty(1)=%d\n", total, isatty(0), isatty(1));
  return 0;
}
