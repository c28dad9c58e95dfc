/*
 * facedet native engine: one convolution layer of an integer model with its fused epilogue.
 *
 * Maps are NHWC uint8 without the batch axis. A layer reads (H, W, Cin) values (pixels, 2-bit
 * codes, sums of duplicated code groups, or int8 codes stored as code + 128 with zero point 128),
 * convolves them with an int8 kernel (stride 1, padding k / 2 filled with the zero point) into
 * int32 accumulators, and in one pass per output row applies the 2x2 max pool and the layer's
 * epilogue (thresholds -> codes, fixed-point requantization -> int8, or the float head affine).
 *
 * Kernel layout (packed by facedet/engine/native.py): for each kernel row ky, the k * Cin input
 * bytes under it are contiguous in NHWC, so they are read as G = ceil(k * Cin / 4) groups of
 * 4 bytes; w[((ky * G + g) * out_ch_pad + o) * 4 + b] multiplies byte 4g + b of row ky (zero
 * where 4g + b >= k * Cin). out_ch_pad is a multiple of 16.
 */
#ifndef FDN_H
#define FDN_H

#include <stddef.h>
#include <stdint.h>

enum { FDN_POOL_NONE = 0, FDN_POOL_MAX2 = 1, FDN_POOL_MAX2S1 = 2 };
enum { FDN_THRESHOLD = 0, FDN_REQUANT = 1, FDN_HEAD = 2 };
enum { FDN_ISA_C = 0, FDN_ISA_AVX2 = 1, FDN_ISA_AVXVNNI = 2, FDN_ISA_AVX512VNNI = 3, FDN_ISA_COUNT = 4 };

/* Output pixels of one row are computed in blocks of up to FDN_COL_BLOCK: buffers pad the row. */
#define FDN_COL_BLOCK 8

typedef struct {
    const uint8_t *x; /* (height, width, in_ch) input values */
    int height, width, in_ch;
    int zero_point; /* value of the padding (0, or 128 for int8 codes stored + 128) */
    int k;          /* kernel size, odd */
    int groups;     /* G: 4-byte groups per kernel row */
    const int8_t *w;
    int out_ch, out_ch_pad;
    int pool;  /* FDN_POOL_* */
    int kind;  /* FDN_THRESHOLD / FDN_REQUANT / FDN_HEAD */
    int levels;
    const int32_t *thresholds; /* (levels, out_ch): code = #{l : acc >= T[l]} */
    int group_out;             /* threshold: write sums of group_out channel groups (out_ch / group_out channels) */
    const int64_t *requant;    /* (4, out_ch): offset added to acc, multiplier z >= 0, z < 0, shift; head: row 0 */
    const float *affine;       /* head (2, out_ch): raw = (float)(acc + offset) * scale; raw = raw + bias */
    void *out; /* threshold / requant: uint8 (Ho, Wo, C'); head: float32 (H, W, out_ch) */
    int pairs_fit_int16; /* AVX2: 2 * max input * max |w| <= 32767, so vpmaddubsw cannot saturate */
} fdn_conv_args;

/* Accumulators of one output row: acc (width rounded up to FDN_COL_BLOCK, out_ch_pad) int32.
 * in points at the padded input row under kernel row 0, column 0; row_stride in bytes. */
typedef void (*fdn_row_kernel)(const fdn_conv_args *a, const uint8_t *in, size_t row_stride, int32_t *acc);

/* 1 where the compiler built that path (GCC on x86-64), else 0: the function then returns -2. */
extern const int fdn_avx2_compiled, fdn_avxvnni_compiled, fdn_avx512vnni_compiled;

int fdn_conv_c(const fdn_conv_args *a);
int fdn_conv_avx2(const fdn_conv_args *a);
int fdn_conv_avxvnni(const fdn_conv_args *a);
int fdn_conv_avx512vnni(const fdn_conv_args *a);

#endif /* FDN_H */
