/*
 * facedet.engine._native: the Python binding of the native layer kernels (fdn.h).
 *
 *   isas() -> list of instruction sets this CPU and build can run, best first
 *             ("avx512vnni", "avxvnni", "avx2", "c")
 *   conv(isa, x, dims, w, thresholds, requant, affine, out) -> None
 *
 * Buffers are any contiguous objects with the buffer protocol (numpy arrays); the Python side
 * (facedet/engine/native.py) packs them. Sizes are checked here so that a wrong call raises
 * ValueError instead of reading or writing out of bounds. The GIL is released while computing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "fdn.h"

static const char *const ISA_NAMES[FDN_ISA_COUNT] = {"c", "avx2", "avxvnni", "avx512vnni"};

static int isa_supported(int isa) {
    if (isa == FDN_ISA_C) return 1;
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (isa == FDN_ISA_AVX2) return fdn_avx2_compiled && __builtin_cpu_supports("avx2");
#if !defined(__clang__) && __GNUC__ >= 11
    if (isa == FDN_ISA_AVXVNNI) return fdn_avxvnni_compiled && __builtin_cpu_supports("avxvnni");
#endif
    if (isa == FDN_ISA_AVX512VNNI)
        return fdn_avx512vnni_compiled && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

static PyObject *py_isas(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *list = PyList_New(0);
    for (int isa = FDN_ISA_COUNT - 1; list && isa >= 0; isa--) {
        if (!isa_supported(isa)) continue;
        PyObject *name = PyUnicode_FromString(ISA_NAMES[isa]);
        if (!name || PyList_Append(list, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(name);
    }
    return list;
}

static int need(const Py_buffer *buffer, Py_ssize_t bytes, const char *what) {
    if (buffer->len >= bytes) return 1;
    PyErr_Format(PyExc_ValueError, "%s: %zd bytes, need %zd", what, buffer->len, bytes);
    return 0;
}

/* Checks the packed arrays against the layer dims; returns 0 with ValueError set when wrong. */
static int check_layer(const fdn_conv_args *a, Py_buffer *bufs) {
    if (a->height < 1 || a->width < 1 || a->in_ch < 1 || a->k < 1 || a->k % 2 == 0 || a->out_ch < 1 ||
        a->out_ch_pad % 16 || a->out_ch_pad < a->out_ch || a->groups * 4 < a->k * a->in_ch || a->pool < 0 ||
        a->pool > 2 || a->kind < 0 || a->kind > 2 || a->levels < 0 || a->group_out < 1 || a->out_ch % a->group_out ||
        a->zero_point < 0 || a->zero_point > 255) {
        PyErr_SetString(PyExc_ValueError, "conv: inconsistent layer dimensions");
        return 0;
    }
    const Py_ssize_t ho = a->pool == FDN_POOL_MAX2 ? a->height / 2 : a->height;
    const Py_ssize_t wo = a->pool == FDN_POOL_MAX2 ? a->width / 2 : a->width;
    const Py_ssize_t out_values = a->kind == FDN_THRESHOLD ? ho * wo * (a->out_ch / a->group_out) : ho * wo * a->out_ch;
    const Py_ssize_t out_bytes = out_values * (a->kind == FDN_HEAD ? 4 : 1);
    if (!need(&bufs[0], (Py_ssize_t)a->height * a->width * a->in_ch, "input") ||
        !need(&bufs[1], (Py_ssize_t)a->k * a->groups * a->out_ch_pad * 4, "weights") ||
        !need(&bufs[5], out_bytes, "output"))
        return 0;
    if (a->kind == FDN_THRESHOLD) return need(&bufs[2], (Py_ssize_t)a->levels * a->out_ch * 4, "thresholds");
    if (a->kind == FDN_REQUANT) return need(&bufs[3], (Py_ssize_t)4 * a->out_ch * 8, "requantization");
    return need(&bufs[3], (Py_ssize_t)a->out_ch * 8, "head offsets") && need(&bufs[4], 2 * a->out_ch * 4, "head affine");
}

static PyObject *py_conv(PyObject *self, PyObject *args) {
    (void)self;
    const char *isa_name;
    fdn_conv_args a;
    Py_buffer bufs[6];
    memset(&a, 0, sizeof a);
    memset(bufs, 0, sizeof bufs);
    if (!PyArg_ParseTuple(args, "s(iiiiiiiiiiiii)y*y*y*y*y*w*", &isa_name, &a.height, &a.width, &a.in_ch,
                          &a.zero_point, &a.k, &a.groups, &a.out_ch, &a.out_ch_pad, &a.pool, &a.kind, &a.levels,
                          &a.group_out, &a.pairs_fit_int16, &bufs[0], &bufs[1], &bufs[2], &bufs[3], &bufs[4], &bufs[5]))
        return NULL;
    int isa = -1;
    for (int i = 0; i < FDN_ISA_COUNT; i++)
        if (strcmp(isa_name, ISA_NAMES[i]) == 0) isa = i;
    int status = -3;
    if (isa < 0 || !isa_supported(isa)) {
        PyErr_Format(PyExc_ValueError, "conv: instruction set %s is not available here", isa_name);
    } else if (check_layer(&a, bufs)) {
        a.x = bufs[0].buf;
        a.w = bufs[1].buf;
        a.thresholds = bufs[2].buf;
        a.requant = bufs[3].buf;
        a.affine = bufs[4].buf;
        a.out = bufs[5].buf;
        static int (*const entry[FDN_ISA_COUNT])(const fdn_conv_args *) = {fdn_conv_c, fdn_conv_avx2, fdn_conv_avxvnni,
                                                                            fdn_conv_avx512vnni};
        Py_BEGIN_ALLOW_THREADS status = entry[isa](&a);
        Py_END_ALLOW_THREADS if (status == -1) PyErr_NoMemory();
        else if (status != 0) PyErr_Format(PyExc_RuntimeError, "conv: %s path failed (%d)", isa_name, status);
    }
    for (int i = 0; i < 6; i++) PyBuffer_Release(&bufs[i]);
    if (status != 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"isas", py_isas, METH_NOARGS, "Instruction sets this CPU and build can run, best first."},
    {"conv", py_conv, METH_VARARGS, "One convolution layer with its fused epilogue (see facedet/engine/native.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "facedet native integer kernels", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
