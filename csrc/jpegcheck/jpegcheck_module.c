/*
 * facedet._jpegcheck: does libjpeg(-turbo) find a JPEG damaged?
 *
 *   damage(data) -> str | None
 *       None for a clean file, else one line such as
 *       "libjpeg: Corrupt JPEG data: 882 extraneous bytes before marker 0xd9 (3 warnings)"
 *       or "libjpeg error: Bogus marker length".
 *   LIBJPEG_VERSION: libjpeg-turbo's version number at build time (2001005 = 2.1.5), 0 if unknown.
 *
 * libjpeg only *warns* about damaged entropy-coded data (bad Huffman code, premature end of a data
 * segment, extraneous bytes before a marker) and hands back grey or garbled blocks; cv2.imdecode
 * prints those warnings to stderr and returns the image. Here the same library runs with an error
 * manager that records them: emit_message(-1) counts warnings and keeps the first text;
 * error_exit longjmps back with its text. Only the entropy decoding runs (jpeg_read_coefficients:
 * no IDCT, no upsampling, no colour conversion).
 *
 * Not counted as damage:
 * - the metadata-only warnings JWRN_JFIF_MAJOR (unknown JFIF revision) and JWRN_ADOBE_XFORM
 *   (unknown Adobe transform code): the pixel data is intact;
 * - fatal errors that mean "this libjpeg cannot decode this kind of JPEG" (12-bit or lossless
 *   processes, arithmetic coding compiled out): the check cannot judge such a file, so it answers
 *   None and the caller's decoder decides; the same for frames over MAX_PIXELS.
 *
 * The GIL is released while libjpeg runs; the caller's buffer stays exported (so alive and
 * unresized) until the call returns. jpeg_destroy_decompress runs on every path, also after a
 * longjmp, so no libjpeg memory outlives the call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* Progressive JPEGs from common encoders have about 10 scans; each scan re-reads the whole
 * coefficient buffer, so a file with thousands of tiny scans costs quadratic time. */
#define MAX_SCANS 256
/* OpenCV's default decode limit (CV_IO_MAX_IMAGE_PIXELS): a larger frame is not checked (the
 * coefficient arrays would take gigabytes for a few bytes of file); the decoder refuses it. */
#define MAX_PIXELS (1ULL << 30)

typedef struct {
    struct jpeg_error_mgr pub; /* first member: libjpeg casts cinfo->err to this struct */
    jmp_buf jump;
    long warnings;                          /* warnings counted as damage */
    char first_warning[JMSG_LENGTH_MAX];    /* text of the first of them */
    int fatal;                              /* error_exit was called */
    int unsupported;                        /* ... with an "unsupported kind of JPEG" error */
    char error[JMSG_LENGTH_MAX];            /* its text */
} check_error_mgr;

typedef struct {
    struct jpeg_progress_mgr pub; /* first member: cinfo->progress points here */
    check_error_mgr *err;
} check_progress_mgr;

static void record_error(j_common_ptr cinfo) {
    check_error_mgr *err = (check_error_mgr *)cinfo->err;
    int code = err->pub.msg_code;
    err->fatal = 1;
    err->unsupported = code == JERR_BAD_PRECISION || code == JERR_SOF_UNSUPPORTED || code == JERR_NOT_COMPILED ||
                       code == JERR_ARITH_NOTIMPL;
    err->pub.format_message(cinfo, err->error);
    longjmp(err->jump, 1);
}

static void record_message(j_common_ptr cinfo, int msg_level) {
    check_error_mgr *err = (check_error_mgr *)cinfo->err;
    if (msg_level != -1) return; /* trace messages (levels >= 0) are not problems */
    if (err->pub.msg_code == JWRN_JFIF_MAJOR || err->pub.msg_code == JWRN_ADOBE_XFORM) return;
    if (err->warnings++ == 0) err->pub.format_message(cinfo, err->first_warning);
}

static void limit_scans(j_common_ptr cinfo) {
    j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
    if (dinfo->input_scan_number > MAX_SCANS) {
        check_error_mgr *err = ((check_progress_mgr *)cinfo->progress)->err;
        snprintf(err->error, sizeof err->error, "more than %d scans", MAX_SCANS);
        err->fatal = 1;
        longjmp(err->jump, 1);
    }
}

/* Entropy-decodes the whole file; fills err. Runs without the GIL (no Python calls). */
static void run_check(const unsigned char *data, unsigned long size, check_error_mgr *err) {
    struct jpeg_decompress_struct cinfo;
    check_progress_mgr progress;
    cinfo.err = jpeg_std_error(&err->pub);
    err->pub.error_exit = record_error;
    err->pub.emit_message = record_message;
    progress.pub.progress_monitor = limit_scans;
    progress.err = err;
    jpeg_create_decompress(&cinfo); /* allocates nothing that can fail before setjmp matters */
    if (setjmp(err->jump)) {
        jpeg_destroy_decompress(&cinfo);
        return;
    }
    cinfo.progress = &progress.pub;
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    if ((unsigned long long)cinfo.image_width * cinfo.image_height > MAX_PIXELS) {
        jpeg_destroy_decompress(&cinfo); /* not judged: err stays clean */
        return;
    }
    jpeg_read_coefficients(&cinfo); /* coefficient arrays are freed with the object */
    jpeg_finish_decompress(&cinfo); /* reads on to the end-of-image marker */
    jpeg_destroy_decompress(&cinfo);
}

static PyObject *py_damage(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buffer;
    if (!PyArg_ParseTuple(args, "y*:damage", &buffer)) return NULL;
    if ((unsigned long long)buffer.len > ULONG_MAX) {
        PyBuffer_Release(&buffer);
        PyErr_SetString(PyExc_ValueError, "damage: more bytes than libjpeg can address");
        return NULL;
    }
    check_error_mgr err;
    memset(&err, 0, sizeof err);
    Py_BEGIN_ALLOW_THREADS
    run_check((const unsigned char *)buffer.buf, (unsigned long)buffer.len, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buffer);

    char line[2 * JMSG_LENGTH_MAX + 64];
    if (err.fatal && !err.unsupported)
        snprintf(line, sizeof line, "libjpeg error: %s", err.error);
    else if (err.warnings == 1)
        snprintf(line, sizeof line, "libjpeg: %s", err.first_warning);
    else if (err.warnings > 1)
        snprintf(line, sizeof line, "libjpeg: %s (%ld warnings)", err.first_warning, err.warnings);
    else
        Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1(line, (Py_ssize_t)strlen(line), "replace");
}

static PyMethodDef methods[] = {
    {"damage", py_damage, METH_VARARGS,
     "damage(data) -> str | None: libjpeg's warnings (or fatal error) on decoding a JPEG's entropy-coded data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpegcheck", "libjpeg's own verdict on a JPEG's entropy-coded data.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__jpegcheck(void) {
    PyObject *m = PyModule_Create(&module);
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    long version = LIBJPEG_TURBO_VERSION_NUMBER;
#else
    long version = 0;
#endif
    if (m && PyModule_AddIntConstant(m, "LIBJPEG_VERSION", version) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
