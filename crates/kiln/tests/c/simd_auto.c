/* Loops that clang auto-vectorizes with -O2 -msimd128. Each exported
 * function returns a checksum; natively, main() prints them. */
#include <stdint.h>

#define N 4096
static float fa[N], fb[N], fc[N];
static int32_t ia[N], ib[N], ic[N];
static uint8_t bytes[N];
static int16_t sa[N], sb[N];

static uint32_t seed = 12345;
static uint32_t next(void) { seed = seed * 1103515245u + 12345u; return seed >> 8; }

static void init(void) {
    seed = 12345;
    for (int i = 0; i < N; i++) {
        fa[i] = (float)(next() % 1000) / 7.0f;
        fb[i] = (float)(next() % 1000) / 13.0f;
        ia[i] = (int32_t)(next() % 100000) - 50000;
        ib[i] = (int32_t)(next() % 1000) - 500;
        bytes[i] = (uint8_t)next();
        sa[i] = (int16_t)(next() % 60000 - 30000);
        sb[i] = (int16_t)(next() % 60000 - 30000);
    }
}

uint64_t saxpy(void) {
    init();
    for (int r = 0; r < 50; r++)
        for (int i = 0; i < N; i++) fc[i] = 1.5f * fa[i] + fb[i] * 0.25f - fc[i] * 0.5f;
    uint64_t h = 0;
    for (int i = 0; i < N; i++) { union { float f; uint32_t u; } v = { fc[i] }; h = h * 31 + v.u; }
    return h;
}

uint64_t int_ops(void) {
    init();
    for (int r = 0; r < 50; r++)
        for (int i = 0; i < N; i++) {
            int32_t x = ia[i] * ib[i] + (ia[i] >> 3) - (ib[i] << 2);
            ic[i] = (x > ic[i] ? x : ic[i]) ^ (x & 0x5555);
        }
    uint64_t h = 0;
    for (int i = 0; i < N; i++) h = h * 31 + (uint32_t)ic[i];
    return h;
}

uint64_t byte_sum(void) {
    init();
    uint32_t sum = 0, mx = 0;
    for (int r = 0; r < 100; r++)
        for (int i = 0; i < N; i++) {
            sum += bytes[i];
            mx = bytes[i] > mx ? bytes[i] : mx;
            bytes[i] = (uint8_t)(bytes[i] * 3 + 1);
        }
    return ((uint64_t)sum << 8) | mx;
}

uint64_t dot16(void) {
    init();
    int64_t acc = 0;
    for (int r = 0; r < 50; r++) {
        int32_t s = 0;
        for (int i = 0; i < N; i++) s += (int32_t)sa[i] * sb[i] >> 4;
        acc += s;
        sa[r] ^= (int16_t)s;
    }
    return (uint64_t)acc;
}

uint64_t float_minmax(void) {
    init();
    float lo = 1e30f, hi = -1e30f, sum = 0;
    for (int i = 0; i < N; i++) {
        float v = fa[i] - fb[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v * v;
    }
    union { float f; uint32_t u; } a = { lo }, b = { hi }, c = { sum };
    return ((uint64_t)a.u << 32) ^ ((uint64_t)b.u << 16) ^ c.u;
}

#ifndef __wasm__
#include <stdio.h>
int main(void) {
    printf("saxpy %llu\n", (unsigned long long)saxpy());
    printf("int_ops %llu\n", (unsigned long long)int_ops());
    printf("byte_sum %llu\n", (unsigned long long)byte_sum());
    printf("dot16 %llu\n", (unsigned long long)dot16());
    printf("float_minmax %llu\n", (unsigned long long)float_minmax());
    return 0;
}
#endif
