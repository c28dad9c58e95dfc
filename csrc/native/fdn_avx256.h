/* 256-bit row kernel shared by AVX-VNNI (vpdpbusd) and AVX2 (vpmaddubsw + vpmaddwd): each file
 * defines FDN_DOT(sum, x, w, safe) and includes this under its own `#pragma GCC target`.
 * Register block: 2 vectors of 8 output channels x 4 output pixels (out_ch_pad is a multiple of 16). */
#include <immintrin.h>
#include <string.h>

#define FDN_NB 4

static inline __attribute__((always_inline)) void fdn_block(const fdn_conv_args *a, const uint8_t *in,
                                                            size_t row_stride, int32_t *acc, int x0, int o0,
                                                            const int safe) {
    __m256i sum[2][FDN_NB];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < FDN_NB; j++) sum[i][j] = _mm256_setzero_si256();
    const int ocp = a->out_ch_pad, groups = a->groups, cin = a->in_ch;
    for (int ky = 0; ky < a->k; ky++) {
        const uint8_t *p = in + ky * row_stride + (size_t)x0 * cin;
        const int8_t *wk = a->w + ((size_t)ky * groups * ocp + o0) * 4;
        for (int g = 0; g < groups; g++, p += 4, wk += (size_t)ocp * 4) {
            const __m256i w0 = _mm256_loadu_si256((const __m256i *)wk);
            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wk + 32));
            for (int j = 0; j < FDN_NB; j++) {
                int32_t four;
                memcpy(&four, p + (size_t)j * cin, 4);
                const __m256i xv = _mm256_set1_epi32(four);
                sum[0][j] = FDN_DOT(sum[0][j], xv, w0, safe);
                sum[1][j] = FDN_DOT(sum[1][j], xv, w1, safe);
            }
        }
    }
    for (int j = 0; j < FDN_NB; j++)
        for (int i = 0; i < 2; i++)
            _mm256_storeu_si256((__m256i *)(acc + (size_t)(x0 + j) * ocp + o0 + 8 * i), sum[i][j]);
}

static void fdn_row(const fdn_conv_args *a, const uint8_t *in, size_t row_stride, int32_t *acc) {
    for (int o0 = 0; o0 < a->out_ch_pad; o0 += 16)
        for (int x0 = 0; x0 < a->width; x0 += FDN_NB) {
            if (a->pairs_fit_int16)
                fdn_block(a, in, row_stride, acc, x0, o0, 1);
            else
                fdn_block(a, in, row_stride, acc, x0, o0, 0);
        }
}
