/* Explicit SIMD through wasm_simd128.h; the native build computes the same
 * results with scalar code. Each exported function returns a checksum. */
#include <stdint.h>
#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

#define N 1024
static uint8_t src[N], dst[N];
static float f[N];
static int32_t w[N];

static void init(void) {
    uint32_t s = 777;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        src[i] = (uint8_t)(s >> 24);
        f[i] = (float)((int32_t)(s >> 9) % 2000 - 1000) / 8.0f;
        w[i] = (int32_t)(s >> 3) - (1 << 27);
    }
}

/* Saturating add of a constant, then per-16-byte-block byte reversal. */
uint64_t bytes_sat_shuffle(void) {
    init();
#ifdef __wasm_simd128__
    for (int i = 0; i < N; i += 16) {
        v128_t v = wasm_v128_load(src + i);
        v = wasm_u8x16_add_sat(v, wasm_u8x16_splat(100));
        v = wasm_i8x16_shuffle(v, v, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        wasm_v128_store(dst + i, v);
    }
#else
    for (int i = 0; i < N; i += 16)
        for (int k = 0; k < 16; k++) {
            unsigned v = src[i + 15 - k] + 100u;
            dst[i + k] = (uint8_t)(v > 255 ? 255 : v);
        }
#endif
    uint64_t h = 0;
    for (int i = 0; i < N; i++) h = h * 131 + dst[i];
    return h;
}

/* Clamp floats to [-50, 50], then convert with saturation and sum. */
uint64_t float_clamp_convert(void) {
    init();
    int64_t sum = 0;
#ifdef __wasm_simd128__
    v128_t lo = wasm_f32x4_splat(-50.0f), hi = wasm_f32x4_splat(50.0f);
    v128_t acc = wasm_i32x4_splat(0);
    for (int i = 0; i < N; i += 4) {
        v128_t v = wasm_v128_load(f + i);
        v = wasm_f32x4_pmin(wasm_f32x4_pmax(v, lo), hi);
        v = wasm_f32x4_mul(v, wasm_f32x4_splat(3.0f));
        acc = wasm_i32x4_add(acc, wasm_i32x4_trunc_sat_f32x4(v));
    }
    sum = (int64_t)wasm_i32x4_extract_lane(acc, 0) + wasm_i32x4_extract_lane(acc, 1) +
          wasm_i32x4_extract_lane(acc, 2) + wasm_i32x4_extract_lane(acc, 3);
#else
    int32_t lanes[4] = {0, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        float v = f[i];
        v = v < -50.0f ? -50.0f : v;
        v = v > 50.0f ? 50.0f : v;
        lanes[i % 4] += (int32_t)(v * 3.0f);
    }
    sum = (int64_t)lanes[0] + lanes[1] + lanes[2] + lanes[3];
#endif
    return (uint64_t)sum;
}

/* Lane-wise compare and bitmask of 32-bit integers. */
uint64_t compare_bitmask(void) {
    init();
    uint64_t h = 0;
#ifdef __wasm_simd128__
    for (int i = 0; i < N; i += 4) {
        v128_t v = wasm_v128_load(w + i);
        uint32_t m = wasm_i32x4_bitmask(wasm_i32x4_gt(v, wasm_i32x4_splat(0)));
        v128_t abs = wasm_i32x4_abs(v);
        h = h * 17 + m + (uint32_t)wasm_i32x4_extract_lane(wasm_i32x4_shr(abs, 20), 2);
    }
#else
    for (int i = 0; i < N; i += 4) {
        uint32_t m = 0;
        for (int k = 0; k < 4; k++) m |= (w[i + k] > 0 ? 1u : 0u) << k;
        int32_t a = w[i + 2] < 0 ? -w[i + 2] : w[i + 2];
        h = h * 17 + m + (uint32_t)(a >> 20);
    }
#endif
    return h;
}

#ifndef __wasm__
#include <stdio.h>
int main(void) {
    printf("bytes_sat_shuffle %llu\n", (unsigned long long)bytes_sat_shuffle());
    printf("float_clamp_convert %llu\n", (unsigned long long)float_clamp_convert());
    printf("compare_bitmask %llu\n", (unsigned long long)compare_bitmask());
    return 0;
}
#endif
