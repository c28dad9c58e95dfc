/*
 * The layer driver and fused epilogue, compiled once per instruction set: each fdn_*.c file
 * defines FDN_ENTRY (the exported function name) and a static row kernel fdn_row, optionally
 * under `#pragma GCC target`, then includes this file, so the epilogue loops are vectorized for
 * the same instruction set as the convolution.
 *
 * Pooling the accumulators before the epilogue is exact: the threshold codes and the leaky
 * requantization are non-decreasing in the accumulator (channels compared as acc <= T have their
 * kernel and thresholds negated by the packer), so max then map == map then max.
 */
#include <stdlib.h>
#include <string.h>

#include "fdn.h"

static size_t fdn_round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

/* 2x2 max pool of two accumulator rows into pooled (Wo, out_ch). */
static void fdn_pool_row(const fdn_conv_args *a, const int32_t *r0, const int32_t *r1, int32_t *pooled, int wo) {
    const int c_count = a->out_ch, stride = a->out_ch_pad, w = a->width;
    for (int xo = 0; xo < wo; xo++) {
        int32_t *dst = pooled + (size_t)xo * c_count;
        if (a->pool == FDN_POOL_NONE) {
            memcpy(dst, r0 + (size_t)xo * stride, (size_t)c_count * sizeof(int32_t));
            continue;
        }
        /* max2: columns 2xo, 2xo+1 (floor); max2s1: xo, xo+1 with the last column replicated */
        const int x0 = a->pool == FDN_POOL_MAX2 ? 2 * xo : xo;
        const int x1 = a->pool == FDN_POOL_MAX2 ? 2 * xo + 1 : (xo + 1 < w ? xo + 1 : w - 1);
        const int32_t *p0 = r0 + (size_t)x0 * stride, *p1 = r0 + (size_t)x1 * stride;
        const int32_t *q0 = r1 + (size_t)x0 * stride, *q1 = r1 + (size_t)x1 * stride;
        for (int c = 0; c < c_count; c++) {
            int32_t m = p0[c] > p1[c] ? p0[c] : p1[c];
            int32_t n = q0[c] > q1[c] ? q0[c] : q1[c];
            dst[c] = m > n ? m : n;
        }
    }
}

/* Codes #{l : acc >= T_l}, summed over group_out channel groups, as uint8. */
static void fdn_threshold_row(const fdn_conv_args *a, const int32_t *pooled, int32_t *codes, uint8_t *out, int wo) {
    const int c_count = a->out_ch, groups = a->group_out, c_out = c_count / groups;
    for (int xo = 0; xo < wo; xo++) {
        const int32_t *v = pooled + (size_t)xo * c_count;
        for (int c = 0; c < c_count; c++) codes[c] = 0;
        for (int l = 0; l < a->levels; l++) {
            const int32_t *t = a->thresholds + (size_t)l * c_count;
            for (int c = 0; c < c_count; c++) codes[c] += v[c] >= t[c];
        }
        for (int g = 1; g < groups; g++)
            for (int c = 0; c < c_out; c++) codes[c] += codes[g * c_out + c];
        uint8_t *dst = out + (size_t)xo * c_out;
        for (int c = 0; c < c_out; c++) dst[c] = (uint8_t)codes[c];
    }
}

/* clip(round_half_up((acc + bias) * m / 2^shift), -128, 127) + 128, m by the sign of acc + bias. */
static void fdn_requant_row(const fdn_conv_args *a, const int32_t *pooled, uint8_t *out, int wo) {
    const int c_count = a->out_ch;
    const int64_t *offset = a->requant, *m_pos = offset + c_count, *m_neg = m_pos + c_count;
    const int64_t *shift = m_neg + c_count;
    for (int xo = 0; xo < wo; xo++) {
        const int32_t *v = pooled + (size_t)xo * c_count;
        uint8_t *dst = out + (size_t)xo * c_count;
        for (int c = 0; c < c_count; c++) {
            const int64_t z = (int64_t)v[c] + offset[c];
            const int64_t m = z >= 0 ? m_pos[c] : m_neg[c];
            /* wrapping product, as numpy's int64 */
            const int64_t scaled = (int64_t)((uint64_t)z * (uint64_t)m + ((uint64_t)1 << (shift[c] - 1)));
            int64_t r = scaled >> shift[c]; /* arithmetic shift: floor */
            r = r < -128 ? -128 : (r > 127 ? 127 : r);
            dst[c] = (uint8_t)(r + 128);
        }
    }
}

/* raw = (float)(acc + offset) * scale, then raw + bias: two float32 roundings, never fused. */
static void fdn_head_row(const fdn_conv_args *a, const int32_t *pooled, float *out, int wo) {
    const int c_count = a->out_ch;
    const int64_t *offset = a->requant;
    const float *scale = a->affine, *bias = a->affine + c_count;
    for (int xo = 0; xo < wo; xo++) {
        const int32_t *v = pooled + (size_t)xo * c_count;
        float *dst = out + (size_t)xo * c_count;
        for (int c = 0; c < c_count; c++) {
            volatile float product = (float)((int64_t)v[c] + offset[c]) * scale[c];
            dst[c] = product + bias[c];
        }
    }
}

static void fdn_epilogue(const fdn_conv_args *a, const int32_t *r0, const int32_t *r1, int32_t *pooled,
                         int32_t *codes, int yo, int wo) {
    fdn_pool_row(a, r0, r1, pooled, wo);
    if (a->kind == FDN_THRESHOLD) {
        const size_t row_bytes = (size_t)wo * (a->out_ch / a->group_out);
        fdn_threshold_row(a, pooled, codes, (uint8_t *)a->out + (size_t)yo * row_bytes, wo);
    } else if (a->kind == FDN_REQUANT) {
        fdn_requant_row(a, pooled, (uint8_t *)a->out + (size_t)yo * wo * a->out_ch, wo);
    } else {
        fdn_head_row(a, pooled, (float *)a->out + (size_t)yo * wo * a->out_ch, wo);
    }
}

int FDN_ENTRY(const fdn_conv_args *a) {
    const int pad = a->k / 2, h = a->height, w = a->width, cin = a->in_ch;
    const size_t w_round = fdn_round_up((size_t)w, FDN_COL_BLOCK);
    const size_t row_stride = (w_round + 2 * (size_t)pad) * cin;
    const size_t acc_row = w_round * (size_t)a->out_ch_pad;
    const int ho = a->pool == FDN_POOL_MAX2 ? h / 2 : h, wo = a->pool == FDN_POOL_MAX2 ? w / 2 : w;
    /* zero-point padded input; 64 spare bytes: the last 4-byte group of a row may overrun it */
    uint8_t *padded = malloc((h + 2 * (size_t)pad) * row_stride + 64);
    int32_t *acc = malloc(2 * acc_row * sizeof(int32_t) + ((size_t)wo + 1) * a->out_ch * 2 * sizeof(int32_t));
    if (!padded || !acc) {
        free(padded);
        free(acc);
        return -1;
    }
    int32_t *pooled = acc + 2 * acc_row, *codes = pooled + (size_t)(wo + 1) * a->out_ch;
    memset(padded, a->zero_point, (h + 2 * (size_t)pad) * row_stride + 64);
    for (int y = 0; y < h; y++)
        memcpy(padded + (y + pad) * row_stride + (size_t)pad * cin, a->x + (size_t)y * w * cin, (size_t)w * cin);
    int32_t *a0 = acc, *a1 = acc + acc_row;
    if (a->pool == FDN_POOL_MAX2) {
        for (int yo = 0; yo < ho; yo++) {
            fdn_row(a, padded + 2 * (size_t)yo * row_stride, row_stride, a0);
            fdn_row(a, padded + (2 * (size_t)yo + 1) * row_stride, row_stride, a1);
            fdn_epilogue(a, a0, a1, pooled, codes, yo, wo);
        }
    } else if (a->pool == FDN_POOL_MAX2S1) {
        fdn_row(a, padded, row_stride, a0); /* rows y and y + 1 (the last replicated), rolling */
        for (int y = 0; y < h; y++) {
            int32_t *next = a0;
            if (y + 1 < h) {
                next = a1;
                fdn_row(a, padded + (y + 1) * row_stride, row_stride, next);
            }
            fdn_epilogue(a, a0, next, pooled, codes, y, wo);
            a1 = a0;
            a0 = next;
        }
    } else {
        for (int y = 0; y < h; y++) {
            fdn_row(a, padded + (size_t)y * row_stride, row_stride, a0);
            fdn_epilogue(a, a0, a0, pooled, codes, y, wo);
        }
    }
    free(padded);
    free(acc);
    return 0;
}
