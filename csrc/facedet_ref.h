/*
 * facedet_ref: portable C99 reference inference for facedet integer models.
 *
 * The model (weights, thresholds, requantization, head affine) comes from a header written by
 * `facedet export MODEL.fdet --c-header model.h` (facedet/export_c.py). Integer layers run in
 * integers only; the head ends in one float32 multiply and one float32 add per output, which
 * gives the same raw head values as the Python engine bit for bit (compile with
 * -ffp-contract=off so the two float operations are not fused).
 *
 * Layout: feature maps are CHW int32; the input is the letterboxed HxWx3 uint8 BGR image.
 * This is a readable reference, not a fast kernel: no SIMD, no bit-serial tricks.
 */
#ifndef FACEDET_REF_H
#define FACEDET_REF_H

#include <stddef.h>
#include <stdint.h>

enum { FD_OP_THRESHOLD = 0, FD_OP_REQUANT = 1 };
enum { FD_POOL_NONE = 0, FD_POOL_MAX2 = 1, FD_POOL_MAX2S1 = 2 };

typedef struct {
    int op;              /* FD_OP_THRESHOLD (binary/int8 weights + thresholds) or FD_OP_REQUANT (int8) */
    int in_ch, out_ch;   /* channels of the non-duplicated input, and of the output */
    int k;               /* kernel size (1 or 3), stride 1, zero padding k / 2 */
    int pool;            /* FD_POOL_* applied to the output codes */
    int dup_weight;      /* duplicated weight channels d (1 = none) */
    int dup_out;         /* 0: tiled along input channels (input groups are summed), 1: along outputs */
    int dup_input;       /* duplicated input maps d' (stored kernel has d' * in_ch channels) */
    int levels;          /* thresholds per channel (codes 0..levels) */
    const uint8_t *w_bits;      /* binary stored kernel, bit-packed MSB first, 1 = +1, 0 = -1 */
    const int8_t *w_i8;         /* or the int8 stored kernel */
    const int16_t *t16;         /* thresholds (out_ch, levels), int16 ... */
    const int32_t *t32;         /* ... or int32 */
    const uint8_t *down_bits;   /* packed: 1 = code_k is acc <= T_k, 0 = acc >= T_k */
    const int32_t *bias;        /* FD_OP_REQUANT: (out_ch) bias in accumulator units */
    const int32_t *mult;        /* (2, out_ch) multipliers for z >= 0 and z < 0 */
    const int8_t *shift;        /* (out_ch) right shifts */
} fd_layer;

typedef struct {
    int in_ch, out_ch, dup_input;
    const uint8_t *w_bits;
    const int8_t *w_i8;
    const float *scale, *bias;  /* raw = (float)acc * scale; raw = raw + bias */
} fd_head;

typedef struct {
    int num_layers;
    const fd_layer *layers;
    fd_head head;
    int img_size, stride, num_anchors;
    const float *anchors;       /* (num_anchors, 2) width, height in input pixels */
    int letterbox_value;
} fd_model;

typedef struct {
    float x1, y1, x2, y2, score;  /* input (letterboxed) pixels */
} fd_box;

/* Raw head output (num_anchors * 5, grid, grid) into raw_out; grid = img_size / stride.
 * bgr: img_size * img_size * 3 bytes. Returns 0, or -1 when memory runs out. */
int fd_run(const fd_model *model, const uint8_t *bgr, float *raw_out);

/* YOLOv2 decode (sigmoid offsets, exp sizes) + greedy NMS, as facedet.anchors.decode does in
 * input pixels. Writes at most max_boxes boxes, best first; returns how many. */
int fd_decode(const fd_model *model, const float *raw, float score_threshold, float nms_iou, fd_box *boxes,
              int max_boxes);

#endif /* FACEDET_REF_H */
