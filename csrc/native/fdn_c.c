/* Portable C row kernel: the reference every SIMD path must match bit for bit. */
#include "fdn.h"

static void fdn_row(const fdn_conv_args *a, const uint8_t *in, size_t row_stride, int32_t *acc) {
    const int ocp = a->out_ch_pad, groups = a->groups;
    for (int x = 0; x < a->width; x++) {
        int32_t *dst = acc + (size_t)x * ocp;
        for (int o = 0; o < ocp; o++) dst[o] = 0;
        for (int ky = 0; ky < a->k; ky++) {
            const uint8_t *p = in + ky * row_stride + (size_t)x * a->in_ch;
            for (int g = 0; g < groups; g++, p += 4) {
                const int8_t *wg = a->w + (size_t)(ky * groups + g) * ocp * 4;
                const int32_t p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
                for (int o = 0; o < ocp; o++)
                    dst[o] += p0 * wg[4 * o] + p1 * wg[4 * o + 1] + p2 * wg[4 * o + 2] + p3 * wg[4 * o + 3];
            }
        }
    }
}

#define FDN_ENTRY fdn_conv_c
#include "fdn_layer.h"
