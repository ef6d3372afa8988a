// Random bytes: two 32-byte draws (printed in hex, the host checks they
// differ) and a 1 MiB draw whose byte histogram must look uniform.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <wasi/api.h>

int main(void) {
  unsigned char a[32], b[32];
  if (getentropy(a, sizeof a) != 0 || getentropy(b, sizeof b) != 0) return 1;
  for (int i = 0; i < 32; i++) printf("%02x", a[i]);
  printf("\n");
  for (int i = 0; i < 32; i++) printf("%02x", b[i]);
  printf("\n");
  size_t n = 1 << 20;
  unsigned char *big = malloc(n);
  if (__wasi_random_get(big, n) != 0) return 2;
  unsigned counts[256] = {0};
  for (size_t i = 0; i < n; i++) counts[big[i]]++;
  unsigned min = n, max = 0;
  for (int i = 0; i < 256; i++) {
    if (counts[i] < min) min = counts[i];
    if (counts[i] > max) max = counts[i];
  }
  // Each count is about 4096; a real generator stays well inside this.
  printf("histogram_ok=%d\n", min > 3500 && max < 4700);
  printf("zero_length_ok=%d\n", __wasi_random_get(big, 0) == 0);
  return 0;
}
