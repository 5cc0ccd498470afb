/* ps.service._bytesbuf: a bytes object written in place before it is handed to gRPC.
 *
 * gRPC's Python server sends a reply only as `bytes`. A push's reply is mostly the parameters (2.8 MB
 * at Atari size), which the update kernel writes in its own pass over theta; built in a bytearray,
 * the reply would need one more full copy to become bytes. A BytesBuf exposes a fresh, uninitialized
 * bytes object's storage as a writable buffer, and take() hands that bytes object out once no view of
 * it is left, so nothing can write to it after gRPC has it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *bytes;   /* NULL once taken */
    Py_ssize_t views;  /* buffers exported and not yet released */
} BytesBuf;

static PyObject *bytesbuf_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"size", NULL};
    Py_ssize_t size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n:BytesBuf", keywords, &size))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be >= 0");
        return NULL;
    }
    BytesBuf *self = (BytesBuf *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->bytes = PyBytes_FromStringAndSize(NULL, size);
    if (self->bytes == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void bytesbuf_dealloc(BytesBuf *self)
{
    Py_XDECREF(self->bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int bytesbuf_getbuffer(BytesBuf *self, Py_buffer *view, int flags)
{
    if (self->bytes == NULL) {
        PyErr_SetString(PyExc_BufferError, "this BytesBuf's bytes were taken: it can no longer be written");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->bytes), PyBytes_GET_SIZE(self->bytes),
                          0, flags) != 0)
        return -1;
    self->views++;
    return 0;
}

static void bytesbuf_releasebuffer(BytesBuf *self, Py_buffer *Py_UNUSED(view))
{
    self->views--;
}

PyDoc_STRVAR(take_doc,
"take()\n--\n\n"
"The bytes written so far, handed out once: BufferError while any view of them is still alive.");

static PyObject *bytesbuf_take(BytesBuf *self, PyObject *Py_UNUSED(ignored))
{
    if (self->bytes == NULL) {
        PyErr_SetString(PyExc_BufferError, "the bytes were already taken");
        return NULL;
    }
    if (self->views > 0) {
        PyErr_Format(PyExc_BufferError, "%zd view(s) of the bytes are still alive: release them first", self->views);
        return NULL;
    }
    PyObject *out = self->bytes;
    self->bytes = NULL;
    return out;
}

static PyBufferProcs bytesbuf_as_buffer = {
    .bf_getbuffer = (getbufferproc)bytesbuf_getbuffer,
    .bf_releasebuffer = (releasebufferproc)bytesbuf_releasebuffer,
};

static PyMethodDef bytesbuf_methods[] = {
    {"take", (PyCFunction)bytesbuf_take, METH_NOARGS, take_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(bytesbuf_doc,
"BytesBuf(size)\n--\n\n"
"A new bytes object of `size` uninitialized bytes, writable through the buffer protocol until take().");

static PyTypeObject BytesBufType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ps.service._bytesbuf.BytesBuf",
    .tp_basicsize = sizeof(BytesBuf),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = bytesbuf_doc,
    .tp_new = bytesbuf_new,
    .tp_dealloc = (destructor)bytesbuf_dealloc,
    .tp_as_buffer = &bytesbuf_as_buffer,
    .tp_methods = bytesbuf_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ps.service._bytesbuf",
    .m_doc = "A bytes object written in place before it is handed out (a push's reply).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__bytesbuf(void)
{
    if (PyType_Ready(&BytesBufType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&BytesBufType);
    if (PyModule_AddObject(m, "BytesBuf", (PyObject *)&BytesBufType) < 0) {
        Py_DECREF(&BytesBufType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
