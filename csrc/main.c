/* facedet_ref command line: raw head floats (and detections) of one letterboxed image.
 *
 *   gcc -std=c99 -O2 -ffp-contract=off -DFD_MODEL_HEADER='"model.h"' -I. main.c facedet_ref.c -lm -o facedet_ref
 *   ./facedet_ref image.bin|image.ppm raw_out.bin [score_threshold]
 *
 * The image is img_size x img_size: raw HWC BGR bytes (.bin) or a binary PPM (P6, RGB). The raw
 * head (num_anchors*5, grid, grid) goes to raw_out.bin as float32; detections (input pixels)
 * are printed as "x1 y1 x2 y2 score" lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facedet_ref.h"
#include FD_MODEL_HEADER

static int read_image(const char *path, uint8_t *bgr, int size) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = (size_t)size * size * 3;
    int is_ppm = strlen(path) > 4 && strcmp(path + strlen(path) - 4, ".ppm") == 0;
    if (is_ppm) {
        int w, h, maxval;
        if (fscanf(f, "P6 %d %d %d", &w, &h, &maxval) != 3 || w != size || h != size || maxval != 255) {
            fclose(f);
            return -1;
        }
        fgetc(f); /* the single whitespace after the header */
    }
    size_t got = fread(bgr, 1, n, f);
    fclose(f);
    if (got != n) return -1;
    if (is_ppm)
        for (size_t i = 0; i < n; i += 3) { uint8_t t = bgr[i]; bgr[i] = bgr[i + 2]; bgr[i + 2] = t; }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s image.bin|image.ppm raw_out.bin [score_threshold]\n", argv[0]);
        return 2;
    }
    const fd_model *m = &fd_model_data;
    int g = m->img_size / m->stride, channels = m->num_anchors * 5;
    uint8_t *bgr = malloc((size_t)m->img_size * m->img_size * 3);
    float *raw = malloc((size_t)channels * g * g * sizeof *raw);
    fd_box boxes[200];
    if (!bgr || !raw) return 1;
    if (read_image(argv[1], bgr, m->img_size)) {
        fprintf(stderr, "%s: cannot read a %dx%d image\n", argv[1], m->img_size, m->img_size);
        return 1;
    }
    if (fd_run(m, bgr, raw)) { fprintf(stderr, "out of memory\n"); return 1; }
    FILE *out = fopen(argv[2], "wb");
    if (!out || fwrite(raw, sizeof *raw, (size_t)channels * g * g, out) != (size_t)channels * g * g) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 1;
    }
    fclose(out);
    float threshold = argc > 3 ? (float)atof(argv[3]) : 0.05f;
    int n = fd_decode(m, raw, threshold, 0.4f, boxes, 200);
    for (int i = 0; i < n; i++)
        printf("%.3f %.3f %.3f %.3f %.6f\n", boxes[i].x1, boxes[i].y1, boxes[i].x2, boxes[i].y2, boxes[i].score);
    free(bgr); free(raw);
    return 0;
}
