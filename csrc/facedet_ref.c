/* facedet_ref.c: see facedet_ref.h. C99, no dependencies beyond libc and libm. */
#include "facedet_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* No fused multiply-add in the head affine: gcc ignores this pragma, so build with -ffp-contract=off. */
#if defined(__clang__) || !defined(__GNUC__)
#pragma STDC FP_CONTRACT OFF
#endif

static int bit_at(const uint8_t *bits, long index) { return (bits[index >> 3] >> (7 - (index & 7))) & 1; }

/* Stored kernel value at flat index (binary: +-1, else int8). */
static int32_t stored_w(const uint8_t *bits, const int8_t *i8, long index) {
    return bits ? (bit_at(bits, index) ? 1 : -1) : (int32_t)i8[index];
}

/* Floor of v / 2^s for any sign (>> of a negative value is implementation-defined in C). */
static int64_t floor_shift(int64_t v, int s) { return v >= 0 ? (v >> s) : -((-v - 1) >> s) - 1; }

/* acc(o, y, x) of a (reduced) conv: x (cin, h, w), kernel value through the layer's storage. */
static int64_t conv_at(const fd_layer *L, const int32_t *x, int cin, int h, int w, int o, int y, int xx) {
    const int k = L->k, p = k / 2;
    const int stored_in = cin * L->dup_input;
    int64_t acc = 0;
    for (int i = 0; i < cin; i++) {
        for (int ky = 0; ky < k; ky++) {
            int iy = y + ky - p;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < k; kx++) {
                int ix = xx + kx - p;
                if (ix < 0 || ix >= w) continue;
                int32_t wv = 0;
                for (int g = 0; g < L->dup_input; g++) { /* duplicated inputs: summed kernel */
                    long idx = (((long)o * stored_in + (long)g * cin + i) * k + ky) * k + kx;
                    wv += stored_w(L->w_bits, L->w_i8, idx);
                }
                acc += (int64_t)wv * x[((long)i * h + iy) * w + ix];
            }
        }
    }
    return acc;
}

static int32_t threshold_code(const fd_layer *L, int o, int64_t acc) {
    int down = bit_at(L->down_bits, o), code = 0;
    for (int t = 0; t < L->levels; t++) {
        int64_t T = L->t16 ? L->t16[o * L->levels + t] : L->t32[o * L->levels + t];
        code += down ? (acc <= T) : (acc >= T);
    }
    return code;
}

static int32_t requant_code(const fd_layer *L, int o, int64_t acc) {
    int64_t z = acc + L->bias[o];
    int64_t m = z >= 0 ? L->mult[o] : L->mult[L->out_ch + o];
    int s = L->shift[o];
    int64_t q = floor_shift(z * m + ((int64_t)1 << (s - 1)), s);
    return (int32_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

/* 2x2 max-pool of y (c, h, w) into out; returns the new side via *oh, *ow. */
static void max_pool(const int32_t *y, int c, int h, int w, int kind, int32_t *out, int *oh, int *ow) {
    int H = kind == FD_POOL_MAX2 ? h / 2 : h, W = kind == FD_POOL_MAX2 ? w / 2 : w;
    for (int ch = 0; ch < c; ch++)
        for (int r = 0; r < H; r++)
            for (int q = 0; q < W; q++) {
                int r0, r1, q0, q1;
                if (kind == FD_POOL_MAX2) { r0 = 2 * r; r1 = r0 + 1; q0 = 2 * q; q1 = q0 + 1; }
                else { r0 = r; r1 = r + 1 < h ? r + 1 : h - 1; q0 = q; q1 = q + 1 < w ? q + 1 : w - 1; }
                const int32_t *base = y + (long)ch * h * w;
                int32_t m = base[r0 * w + q0];
                if (base[r0 * w + q1] > m) m = base[r0 * w + q1];
                if (base[r1 * w + q0] > m) m = base[r1 * w + q0];
                if (base[r1 * w + q1] > m) m = base[r1 * w + q1];
                out[((long)ch * H + r) * W + q] = m;
            }
    *oh = H; *ow = W;
}

static int run_layer(const fd_layer *L, const int32_t *x, int h, int w, int32_t **out, int *oh, int *ow) {
    int cin = L->in_ch;
    const int32_t *src = x;
    int32_t *reduced = NULL;
    int stored_out = L->out_ch;
    if (L->dup_weight > 1 && !L->dup_out) { /* sum the d input-channel groups first */
        cin = L->in_ch / L->dup_weight;
        reduced = calloc((size_t)cin * h * w, sizeof *reduced);
        if (!reduced) return -1;
        for (int g = 0; g < L->dup_weight; g++)
            for (long j = 0; j < (long)cin * h * w; j++) reduced[j] += x[(long)g * cin * h * w + j];
        src = reduced;
    } else if (L->dup_weight > 1) {
        stored_out = L->out_ch / L->dup_weight; /* output o reuses stored filter o % stored_out */
    }
    int32_t *y = malloc((size_t)L->out_ch * h * w * sizeof *y);
    if (!y) { free(reduced); return -1; }
    for (int o = 0; o < L->out_ch; o++)
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++) {
                int64_t acc = conv_at(L, src, cin, h, w, o % stored_out, r, q);
                y[((long)o * h + r) * w + q] = L->op == FD_OP_THRESHOLD ? threshold_code(L, o, acc) : requant_code(L, o, acc);
            }
    free(reduced);
    if (L->pool == FD_POOL_NONE) { *out = y; *oh = h; *ow = w; return 0; }
    int32_t *pooled = malloc((size_t)L->out_ch * h * w * sizeof *pooled);
    if (!pooled) { free(y); return -1; }
    max_pool(y, L->out_ch, h, w, L->pool, pooled, oh, ow);
    free(y);
    *out = pooled;
    return 0;
}

int fd_run(const fd_model *model, const uint8_t *bgr, float *raw_out) {
    int h = model->img_size, w = model->img_size;
    int32_t *x = malloc((size_t)3 * h * w * sizeof *x);
    if (!x) return -1;
    for (int c = 0; c < 3; c++) /* HWC uint8 -> CHW int32, channel order kept (BGR) */
        for (long j = 0; j < (long)h * w; j++) x[c * (long)h * w + j] = bgr[j * 3 + c];
    for (int l = 0; l < model->num_layers; l++) {
        int32_t *y; int oh, ow;
        if (run_layer(&model->layers[l], x, h, w, &y, &oh, &ow)) { free(x); return -1; }
        free(x);
        x = y; h = oh; w = ow;
    }
    const fd_head *H = &model->head;
    fd_layer as_conv; /* the head is a 1x1 conv with the same weight storage */
    memset(&as_conv, 0, sizeof as_conv);
    as_conv.k = 1; as_conv.dup_input = H->dup_input; as_conv.w_bits = H->w_bits; as_conv.w_i8 = H->w_i8;
    for (int o = 0; o < H->out_ch; o++)
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++) {
                float v = (float)conv_at(&as_conv, x, H->in_ch, h, w, o, r, q) * H->scale[o];
                v = v + H->bias[o]; /* two float32 operations, never fused */
                raw_out[((long)o * h + r) * w + q] = v;
            }
    free(x);
    return 0;
}

static float sigmoidf_(float v) {
    v = v < -80.0f ? -80.0f : v > 80.0f ? 80.0f : v;
    return 1.0f / (1.0f + expf(-v));
}

static float iou(const fd_box *a, const fd_box *b) {
    float w = fminf(a->x2, b->x2) - fmaxf(a->x1, b->x1), h = fminf(a->y2, b->y2) - fmaxf(a->y1, b->y1);
    if (w <= 0 || h <= 0) return 0.0f;
    float inter = w * h;
    float uni = (a->x2 - a->x1) * (a->y2 - a->y1) + (b->x2 - b->x1) * (b->y2 - b->y1) - inter;
    return uni > 0 ? inter / uni : 0.0f;
}

typedef struct {
    fd_box box;
    long order; /* row, column, anchor: ties in score keep this order (a stable sort, as numpy's) */
} ranked_box;

static int by_score(const void *a, const void *b) {
    const ranked_box *p = a, *q = b;
    if (p->box.score != q->box.score) return p->box.score < q->box.score ? 1 : -1;
    return p->order < q->order ? -1 : p->order > q->order;
}

static float clampf(float v, float hi) { return v < 0.0f ? 0.0f : v > hi ? hi : v; }

int fd_decode(const fd_model *model, const float *raw, float score_threshold, float nms_iou, fd_box *boxes,
              int max_boxes) {
    int g = model->img_size / model->stride, A = model->num_anchors, n = 0;
    float side = (float)model->img_size;
    ranked_box *all = malloc((size_t)g * g * A * sizeof *all);
    if (!all) return 0;
    for (int r = 0; r < g; r++)
        for (int q = 0; q < g; q++)
            for (int a = 0; a < A; a++) {
                const float *t = raw + (long)a * 5 * g * g + r * g + q; /* channel a*5+j at t[j*g*g] */
                float score = sigmoidf_(t[4 * g * g]);
                if (score < score_threshold) continue;
                float cx = (q + sigmoidf_(t[0])) * model->stride, cy = (r + sigmoidf_(t[g * g])) * model->stride;
                float tw = fminf(fmaxf(t[2 * g * g], -8.0f), 8.0f), th = fminf(fmaxf(t[3 * g * g], -8.0f), 8.0f);
                float bw = model->anchors[2 * a] * expf(tw), bh = model->anchors[2 * a + 1] * expf(th);
                /* clipped to the input square; boxes that collapse are dropped (as the Python decode) */
                fd_box b = {clampf(cx - bw / 2, side), clampf(cy - bh / 2, side), clampf(cx + bw / 2, side),
                            clampf(cy + bh / 2, side), score};
                if (b.x2 <= b.x1 || b.y2 <= b.y1) continue;
                all[n].box = b;
                all[n].order = ((long)r * g + q) * A + a;
                n++;
            }
    qsort(all, (size_t)n, sizeof *all, by_score);
    int kept = 0;
    for (int i = 0; i < n && kept < max_boxes; i++) {
        int keep = 1;
        for (int j = 0; j < kept && keep; j++) keep = iou(&all[i].box, &boxes[j]) <= nms_iou;
        if (keep) boxes[kept++] = all[i].box;
    }
    free(all);
    return kept;
}
