// The strings workload (bench/gc/wat/strings.wat) as plain C: the same
// steps and the same checksum, with an arena reset per batch instead of a
// collector and no bounds checks. It measures the floor that native code
// sets for this algorithm (see bench/GC.md). Build and run:
//   clang -O2 -o /tmp/strings-native bench/gc/native/strings.c && /tmp/strings-native 250
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct { uint32_t len; uint8_t b[]; } str;
typedef struct { uint32_t len; uint16_t u[]; } str16;
static const char *words = "alphabetagammadeltaepsilonzetaetathetaiotakappalambdamunuxiomicronpirhosigmatauupsilonphichipsiomega";
static const int starts[25] = {0,5,9,14,19,26,30,33,38,42,47,53,55,57,59,66,68,71,76,79,86,89,92,95,100};
static uint8_t *arena, *top;
static void *alloc(size_t n) { void *p = top; top += (n + 7) & ~7; memset(p, 0, n); return p; }
static uint64_t seed;
static uint32_t rnd(void) { seed = seed * 6364136223846793005ULL + 1442695040888963407ULL; return (uint32_t)(seed >> 33); }
static str *mk(uint32_t n) { str *s = alloc(sizeof(str) + n); s->len = n; return s; }
static str *word(int i) { str *s = mk(starts[i+1]-starts[i]); memcpy(s->b, words + starts[i], s->len); return s; }
static str *itoa_(uint32_t v) { uint32_t d = 1, t = v; while (t >= 10) { t /= 10; d++; } str *s = mk(d); do { s->b[--d] = '0' + v % 10; v /= 10; } while (d); return s; }
static str *concat(str *a, str *b) { str *s = mk(a->len + b->len); memmove(s->b, a->b, a->len); memmove(s->b + a->len, b->b, b->len); return s; }
__attribute__((noinline)) static int compare(str *a, str *b) { uint32_t n = a->len < b->len ? a->len : b->len; for (uint32_t i = 0; i < n; i++) if (a->b[i] != b->b[i]) return (int)a->b[i] - (int)b->b[i]; return (int)a->len - (int)b->len; }
__attribute__((noinline)) static void merge(str **src, str **dst, uint32_t lo, uint32_t mid, uint32_t hi) {
  uint32_t i = lo, j = mid, k = lo;
  while (i < mid && j < hi) { if (compare(src[j], src[i]) < 0) dst[k++] = src[j++]; else dst[k++] = src[i++]; }
  memmove(dst + k, src + i, (mid - i) * sizeof(str*)); memmove(dst + k + (mid - i), src + j, (hi - j) * sizeof(str*));
}
static void sort(str **a, uint32_t n) { str **src = a, **dst = alloc(n * sizeof(str*)); for (uint32_t w = 1; w < n; w *= 2) { for (uint32_t lo = 0; lo < n;) { uint32_t mid = lo + w > n ? n : lo + w, hi = mid + w > n ? n : mid + w; merge(src, dst, lo, mid, hi); lo = hi; } str **t = src; src = dst; dst = t; } if (src != a) memmove(a, src, n * sizeof(str*)); }
static str *buf; static uint32_t buf_len;
static void reserve(uint32_t extra) { uint32_t need = buf_len + extra, cap = buf->len; if (need > cap) { cap *= 2; str *b = mk(need > cap ? need : cap); memmove(b->b, buf->b, buf_len); buf = b; } }
static uint32_t hash(str *s) { uint32_t h = 0x811c9dc5; for (uint32_t i = 0; i < s->len; i++) h = (h ^ s->b[i]) * 0x01000193; return h; }
static str16 *upper16(str *s) { str16 *u = alloc(sizeof(str16) + 2 * s->len); u->len = s->len; for (uint32_t i = 0; i < s->len; i++) { uint32_t c = s->b[i]; if (c - 0x61 < 26) c -= 0x20; u->u[i] = c; } return u; }
static uint32_t hash16(str16 *s) { uint32_t h = 0x811c9dc5; for (uint32_t i = 0; i < s->len; i++) h = (h ^ s->u[i]) * 0x01000193; return h; }
static uint64_t fold(uint64_t acc, uint32_t v) { return acc * 31 + v; }
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 250; arena = malloc(64 << 20); top = arena; uint64_t acc = 0; seed = 20261206;
  str *dash = mk(1); dash->b[0] = '-'; uint8_t *base = top;
  for (int batch = 0; batch < n; batch++) {
    top = base; str **strs = alloc(10000 * sizeof(str*));
    for (int i = 0; i < 10000; i++) { uint32_t r = rnd(); strs[i] = concat(concat(concat(word(r % 24), dash), itoa_((r >> 5) % 100000)), word((r >> 22) % 24)); }
    sort(strs, 10000);
    buf = mk(64); buf_len = 0; uint32_t dups = 0;
    for (int i = 0; i < 10000; i++) { str *s = strs[i]; if (i) { reserve(1); buf->b[buf_len++] = ','; if (!compare(strs[i-1], s)) dups++; } reserve(s->len); memmove(buf->b + buf_len, s->b, s->len); buf_len += s->len; acc = fold(acc, hash16(upper16(s))); }
    str *joined = mk(buf_len); memmove(joined->b, buf->b, buf_len);
    acc = fold(acc, hash(joined)); acc = fold(acc, joined->len); acc = fold(acc, dups);
  }
  printf("%llu\n", (unsigned long long)acc); return 0;
}
