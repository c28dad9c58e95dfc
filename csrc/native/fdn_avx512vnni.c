/* AVX-512 VNNI row kernel: vpdpbusd (u8 x s8, 4 products summed into int32, no saturation).
 * Register block: CB vectors of 16 output channels x NB output pixels of int32 accumulators. */
#include "fdn.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 9
#include <immintrin.h>
#include <string.h>
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")

static inline __attribute__((always_inline)) void fdn_block(const fdn_conv_args *a, const uint8_t *in,
                                                            size_t row_stride, int32_t *acc, int x0, int o0,
                                                            const int cb, const int nb) {
    __m512i sum[4][8];
    for (int i = 0; i < cb; i++)
        for (int j = 0; j < nb; j++) sum[i][j] = _mm512_setzero_si512();
    const int ocp = a->out_ch_pad, groups = a->groups, cin = a->in_ch;
    for (int ky = 0; ky < a->k; ky++) {
        const uint8_t *p = in + ky * row_stride + (size_t)x0 * cin;
        const int8_t *wk = a->w + ((size_t)ky * groups * ocp + o0) * 4;
        for (int g = 0; g < groups; g++, p += 4, wk += (size_t)ocp * 4) {
            __m512i wv[4];
            for (int i = 0; i < cb; i++) wv[i] = _mm512_loadu_si512((const void *)(wk + 64 * i));
            for (int j = 0; j < nb; j++) {
                int32_t four;
                memcpy(&four, p + (size_t)j * cin, 4);
                const __m512i xv = _mm512_set1_epi32(four);
                for (int i = 0; i < cb; i++) sum[i][j] = _mm512_dpbusd_epi32(sum[i][j], xv, wv[i]);
            }
        }
    }
    for (int j = 0; j < nb; j++)
        for (int i = 0; i < cb; i++) _mm512_storeu_si512((void *)(acc + (size_t)(x0 + j) * ocp + o0 + 16 * i), sum[i][j]);
}

static void fdn_row(const fdn_conv_args *a, const uint8_t *in, size_t row_stride, int32_t *acc) {
    const int ocp = a->out_ch_pad;
    for (int o0 = 0; o0 < ocp;) {
        const int cb = (ocp - o0) / 16 >= 4 ? 4 : (ocp - o0) / 16;
        for (int x0 = 0; x0 < a->width; x0 += cb > 2 ? 4 : 8) {
            switch (cb) {
                case 4: fdn_block(a, in, row_stride, acc, x0, o0, 4, 4); break;
                case 3: fdn_block(a, in, row_stride, acc, x0, o0, 3, 4); break;
                case 2: fdn_block(a, in, row_stride, acc, x0, o0, 2, 8); break;
                default: fdn_block(a, in, row_stride, acc, x0, o0, 1, 8); break;
            }
        }
        o0 += 16 * cb;
    }
}

#define FDN_ENTRY fdn_conv_avx512vnni
#include "fdn_layer.h"
#pragma GCC pop_options
const int fdn_avx512vnni_compiled = 1;
#else
const int fdn_avx512vnni_compiled = 0;
int fdn_conv_avx512vnni(const fdn_conv_args *a) {
    (void)a;
    return -2; /* not compiled in */
}
#endif
