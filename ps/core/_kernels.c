/* ps._kernels: the server's update rules as fused single-pass loops over float32 buffers, and the
 * squared norm it checks every pushed gradient with.
 *
 * numpy needs 9 passes over 2.8 MB arrays for one shared-RMSProp step; here each element is read and
 * written once. The loops run without the GIL. ps/optim.py holds the numpy reference and falls back to
 * it when this module is not built. Only the buffer protocol is used, so no numpy headers are needed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* Build the loops for AVX2 as well, picked at load time where the CPU has it (gcc's ifunc on ELF). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define KERNEL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL_CLONES
#endif

/* Element types that may sit at any address: a gradient is a view into the received message, where
 * it starts wherever the fields before it end. The loops read and write through these. */
#if defined(__GNUC__)
typedef float f32 __attribute__((aligned(1)));
typedef _Float16 f16 __attribute__((aligned(1)));
#else
typedef float f32;
typedef _Float16 f16;
#endif

/* Fills *view with a C-contiguous buffer of obj holding struct-format `kind` ('f': float32, 'e':
 * float16), optionally writable; a clear one-line ValueError otherwise. */
static int get_floats(PyObject *obj, int writable, const char *name, char kind, Py_buffer *view)
{
    const char *type = kind == 'e' ? "float16" : "float32";
    const Py_ssize_t itemsize = kind == 'e' ? 2 : 4;
    /* Writability is checked below rather than requested, so a read-only array gets its own message. */
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous %s buffer, got %.100s",
                     name, type, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (writable && view->readonly) {
        PyErr_Format(PyExc_ValueError, "%s is read-only, but it is updated in place", name);
        PyBuffer_Release(view);
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    const char *code = (*f == '<' || *f == '=' || *f == '@') ? f + 1 : f;  /* our hosts are little-endian */
    if (view->itemsize != itemsize || code[0] != kind || code[1] != '\0') {
        PyErr_Format(PyExc_ValueError, "%s must be %s, got format %s with itemsize %zd",
                     name, type, f, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int get_f32(PyObject *obj, int writable, const char *name, Py_buffer *view)
{
    return get_floats(obj, writable, name, 'f', view);
}

static int get_f16(PyObject *obj, int writable, const char *name, Py_buffer *view)
{
    return get_floats(obj, writable, name, 'e', view);
}

static int overlap(const Py_buffer *a, const Py_buffer *b)
{
    const char *pa = a->buf, *pb = b->buf;
    return a->len > 0 && b->len > 0 && pa < pb + b->len && pb < pa + a->len;
}

/* The three buffers (two written, one read) of an update, checked; 0 on success, all released on error. */
static int get_operands(PyObject *const objs[3], const char *const names[3], Py_buffer views[3])
{
    int i;
    for (i = 0; i < 3; i++) {
        if (get_f32(objs[i], i < 2, names[i], &views[i]) != 0) {
            while (i-- > 0)
                PyBuffer_Release(&views[i]);
            return -1;
        }
    }
    if (views[1].len != views[0].len || views[2].len != views[0].len) {
        PyErr_Format(PyExc_ValueError, "%s, %s and %s must have the same length, got %zd, %zd and %zd",
                     names[0], names[1], names[2], views[0].len / 4, views[1].len / 4, views[2].len / 4);
    }
    /* The loops take restrict pointers: overlapping operands would be undefined behaviour. */
    else if (overlap(&views[0], &views[1]) || overlap(&views[0], &views[2]) || overlap(&views[1], &views[2])) {
        PyErr_Format(PyExc_ValueError, "%s, %s and %s must not overlap", names[0], names[1], names[2]);
    }
    else {
        return 0;
    }
    for (i = 0; i < 3; i++)
        PyBuffer_Release(&views[i]);
    return -1;
}

/* out, when not NULL, gets a copy of the updated theta in the same pass (a push's reply: see update()). */
KERNEL_CLONES
static void rmsprop_loop(f32 *restrict theta, f32 *restrict g, const f32 *restrict d, f32 *restrict out,
                          Py_ssize_t n, float d_scale, float lr, float alpha, float eps)
{
    const float beta = 1.0f - alpha;
    for (Py_ssize_t i = 0; i < n; i++) {
        float x = d[i] * d_scale;
        float gi = alpha * g[i] + beta * x * x;
        g[i] = gi;
        float t = theta[i] - lr * x / sqrtf(gi + eps);
        theta[i] = t;
        if (out)
            out[i] = t;
    }
}

KERNEL_CLONES
static void momentum_loop(f32 *restrict theta, f32 *restrict m, const f32 *restrict d, f32 *restrict out,
                          Py_ssize_t n, float d_scale, float lr, float alpha)
{
    const float beta = 1.0f - alpha;
    for (Py_ssize_t i = 0; i < n; i++) {
        float mi = alpha * m[i] + beta * (d[i] * d_scale);
        m[i] = mi;
        float t = theta[i] - lr * mi;
        theta[i] = t;
        if (out)
            out[i] = t;
    }
}

KERNEL_CLONES
static double sumsq_loop(const f32 *restrict d, Py_ssize_t n)
{
    /* In double: squares of finite float32 cannot overflow it, so only NaN or Inf input makes the
     * sum non-finite. The simd reduction lets gcc reorder the sum (with -fopenmp-simd). */
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (Py_ssize_t i = 0; i < n; i++)
        acc += (double)d[i] * (double)d[i];
    return acc;
}

/* float16 -> float32, with F16C where the CPU has it (x86-64-v3: AVX2 + F16C); numpy's cast is a
 * software conversion, ~1.3 ms for 0.7M halves. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define WIDEN_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WIDEN_CLONES
#endif

WIDEN_CLONES
static void widen_loop(f32 *restrict dst, const f16 *restrict src, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

PyDoc_STRVAR(widen_doc,
"widen(src, dst)\n--\n\n"
"Write the float16 buffer src into the float32 buffer dst (same element count).");

/* widen(): src float16, dst float32, the same element count; then the loop without the GIL. */
static PyObject *widen(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *src_obj, *dst_obj;
    Py_buffer src, dst;
    if (!PyArg_ParseTuple(args, "OO:widen", &src_obj, &dst_obj))
        return NULL;
    if (get_f16(src_obj, 0, "src", &src) != 0)
        return NULL;
    if (get_f32(dst_obj, 1, "dst", &dst) != 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    Py_ssize_t n = src.len / src.itemsize;
    if (dst.len / dst.itemsize != n) {
        PyErr_Format(PyExc_ValueError, "src has %zd elements, dst %zd", n, dst.len / dst.itemsize);
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        widen_loop(dst.buf, src.buf, n);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(sumsq_doc,
"sumsq(d)\n--\n\n"
"The sum of squares of the float32 buffer d, accumulated in double: NaN or Inf when d holds one.");

static PyObject *sumsq(PyObject *Py_UNUSED(self), PyObject *obj)
{
    Py_buffer v;
    double acc;
    if (get_f32(obj, 0, "d", &v) != 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    acc = sumsq_loop(v.buf, v.len / 4);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&v);
    return PyFloat_FromDouble(acc);
}

/* Shared by rmsprop() and momentum(): check the operands (and `out`, a writable float32 buffer of
 * theta's length that gets the updated theta in the same pass, when given), then run `step` without
 * the GIL. The service hands a push's reply region as `out`: the loops wait on sqrt and divide, so
 * the extra store is almost free, where a second pass copying theta out cost ~0.12 ms at Atari size. */
typedef void (*step_fn)(float *theta, float *state, const float *d, float *out, Py_ssize_t n, const float *k);

static PyObject *update(PyObject *const objs[3], const char *const names[3], PyObject *out_obj,
                        step_fn step, const float *k)
{
    Py_buffer v[3], out;
    int has_out = out_obj != NULL && out_obj != Py_None;
    if (get_operands(objs, names, v) != 0)
        return NULL;
    if (has_out && get_f32(out_obj, 1, "out", &out) != 0)
        has_out = -1;
    else if (has_out && out.len != v[0].len)
        PyErr_Format(PyExc_ValueError, "out must have theta's length %zd, got %zd", v[0].len / 4, out.len / 4);
    else if (has_out && (overlap(&out, &v[0]) || overlap(&out, &v[1]) || overlap(&out, &v[2])))
        PyErr_Format(PyExc_ValueError, "out must not overlap %s, %s or %s", names[0], names[1], names[2]);
    else {
        Py_BEGIN_ALLOW_THREADS
        step(v[0].buf, v[1].buf, v[2].buf, has_out ? out.buf : NULL, v[0].len / 4, k);
        Py_END_ALLOW_THREADS
    }
    if (has_out == 1)
        PyBuffer_Release(&out);
    for (int i = 0; i < 3; i++)
        PyBuffer_Release(&v[i]);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static void rmsprop_step(float *theta, float *g, const float *d, float *out, Py_ssize_t n, const float *k)
{
    rmsprop_loop(theta, g, d, out, n, k[0], k[1], k[2], k[3]);
}

static void momentum_step(float *theta, float *m, const float *d, float *out, Py_ssize_t n, const float *k)
{
    momentum_loop(theta, m, d, out, n, k[0], k[1], k[2]);
}

PyDoc_STRVAR(rmsprop_doc,
"rmsprop(theta, g, d, d_scale, lr, alpha, eps, out=None)\n--\n\n"
"One RMSProp step in place on theta and g, with x = d * d_scale:\n"
"g = alpha*g + (1-alpha)*x^2; theta -= lr * x / sqrt(g + eps). All float32, same length.\n"
"With out (a writable float32 buffer of theta's length), also writes the updated theta there in the same pass.");

static PyObject *rmsprop(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"theta", "g", "d", "d_scale", "lr", "alpha", "eps", "out", NULL};
    static const char *const names[3] = {"theta", "g", "d"};
    PyObject *objs[3], *out = NULL;
    float k[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOffff|O:rmsprop", keywords, &objs[0], &objs[1], &objs[2],
                                     &k[0], &k[1], &k[2], &k[3], &out))
        return NULL;
    return update(objs, names, out, rmsprop_step, k);
}

PyDoc_STRVAR(momentum_doc,
"momentum(theta, m, d, d_scale, lr, alpha, out=None)\n--\n\n"
"One momentum-SGD step in place on theta and m, with x = d * d_scale:\n"
"m = alpha*m + (1-alpha)*x; theta -= lr * m. All float32, same length.\n"
"With out (a writable float32 buffer of theta's length), also writes the updated theta there in the same pass.");

static PyObject *momentum(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"theta", "m", "d", "d_scale", "lr", "alpha", "out", NULL};
    static const char *const names[3] = {"theta", "m", "d"};
    PyObject *objs[3], *out = NULL;
    float k[3];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOfff|O:momentum", keywords, &objs[0], &objs[1], &objs[2],
                                     &k[0], &k[1], &k[2], &out))
        return NULL;
    return update(objs, names, out, momentum_step, k);
}

static PyMethodDef methods[] = {
    {"sumsq", sumsq, METH_O, sumsq_doc},
    {"widen", widen, METH_VARARGS, widen_doc},
    {"rmsprop", (PyCFunction)(void (*)(void))rmsprop, METH_VARARGS | METH_KEYWORDS, rmsprop_doc},
    {"momentum", (PyCFunction)(void (*)(void))momentum, METH_VARARGS | METH_KEYWORDS, momentum_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ps.core._kernels",
    .m_doc = "Fused single-pass float32 update rules (RMSProp, momentum SGD) and sum of squares for the parameter server.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__kernels(void)
{
    return PyModule_Create(&module);
}
