/* Cold-start corpus: a compressor. Generates a few MB of text-like and
 * binary-like data, compresses it with zstd at several levels (one-shot and
 * streaming), decompresses and checks the round trip; prints sizes and a
 * checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zstd.h"

static unsigned long long rng = 0x243f6a8885a308d3ull;
static unsigned next_rand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (unsigned)(rng >> 16);
}

static unsigned long long fnv(const unsigned char *p, size_t n) {
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static size_t gen(unsigned char *buf, size_t n) {
    static const char *words[] = {"the", "runtime", "compiles", "every", "function", "lazily",
        "module", "table", "memory", "stack", "cache", "cold", "start", "wasm", "zstd", "frame"};
    size_t i = 0;
    while (i < n) {
        if (next_rand() % 8 == 0) {           /* binary-ish run */
            size_t k = 16 + next_rand() % 64;
            for (size_t j = 0; j < k && i < n; j++) buf[i++] = (unsigned char)(next_rand() % 7 * 37);
        } else {                               /* a sentence */
            size_t k = 4 + next_rand() % 12;
            for (size_t j = 0; j < k && i < n; j++) {
                const char *w = words[next_rand() % 16];
                while (*w && i < n) buf[i++] = (unsigned char)*w++;
                if (i < n) buf[i++] = ' ';
            }
            if (i < n) buf[i++] = '\n';
        }
    }
    return n;
}

int main(int argc, char **argv) {
    size_t n = (size_t)(argc > 1 ? atoi(argv[1]) : 3 << 20);
    unsigned char *src = malloc(n), *back = malloc(n);
    size_t cap = ZSTD_compressBound(n);
    unsigned char *dst = malloc(cap);
    gen(src, n);
    printf("input %zu bytes fnv=%016llx\n", n, fnv(src, n));
    static const int levels[] = {1, 3, 9, -5};
    for (int li = 0; li < 4; li++) {
        size_t c = ZSTD_compress(dst, cap, src, n, levels[li]);
        if (ZSTD_isError(c)) { fprintf(stderr, "compress: %s\n", ZSTD_getErrorName(c)); return 1; }
        size_t d = ZSTD_decompress(back, n, dst, c);
        if (ZSTD_isError(d) || d != n || memcmp(src, back, n)) { fprintf(stderr, "round trip failed\n"); return 1; }
        printf("level %d: %zu -> %zu bytes, fnv=%016llx\n", levels[li], n, c, fnv(dst, c));
    }
    /* streaming with a small window and checksums */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 5);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 17);
    ZSTD_outBuffer out = {dst, cap, 0};
    for (size_t off = 0; off < n; off += 65536) {
        size_t len = n - off < 65536 ? n - off : 65536;
        ZSTD_inBuffer in = {src + off, len, 0};
        ZSTD_EndDirective mode = off + len == n ? ZSTD_e_end : ZSTD_e_continue;
        size_t r;
        do { r = ZSTD_compressStream2(cc, &out, &in, mode); } while (!ZSTD_isError(r) && (mode == ZSTD_e_end ? r != 0 : in.pos < in.size));
        if (ZSTD_isError(r)) { fprintf(stderr, "stream: %s\n", ZSTD_getErrorName(r)); return 1; }
    }
    ZSTD_freeCCtx(cc);
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    ZSTD_inBuffer in = {dst, out.pos, 0};
    ZSTD_outBuffer o2 = {back, n, 0};
    size_t r = ZSTD_decompressStream(dc, &o2, &in);
    ZSTD_freeDCtx(dc);
    if (ZSTD_isError(r) || o2.pos != n || memcmp(src, back, n)) { fprintf(stderr, "stream round trip failed\n"); return 1; }
    printf("stream level 5: %zu -> %zu bytes, fnv=%016llx\n", n, out.pos, fnv(dst, out.pos));
    printf("zstd %s ok\n", ZSTD_versionString());
    return 0;
}
