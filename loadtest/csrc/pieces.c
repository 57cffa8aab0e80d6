/* Pieces: a response body's stamped pieces in one buffer.
 *
 * At 512 streams a list of (int, bytes) tuples cost three allocations per token on arrival, three
 * frees of long-cold memory after interpretation, and cache misses in between (~7% of the
 * client's CPU together). Pieces keeps the same sequence interface (len, indexing, iteration give
 * (t_ns, bytes) tuples, made on demand) so every slow path reads it as it read the list; the hot
 * path (chunked.c, sse.c) reads the buffer directly.
 */
#include "speedups.h"

PyTypeObject *lt_pieces_type = NULL;

static int
reserve(Pieces *p, Py_ssize_t n)
{
    if (p->len + n > p->cap) {
        Py_ssize_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n)
            cap *= 2;
        char *data = PyMem_Realloc(p->data, (size_t)cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        p->data = data;
        p->cap = cap;
    }
    if (p->n == p->mcap) {
        Py_ssize_t mcap = p->mcap ? p->mcap * 2 : 64;
        Mark *marks = PyMem_Realloc(p->marks, (size_t)mcap * sizeof(Mark));
        if (marks == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        p->marks = marks;
        p->mcap = mcap;
    }
    return 0;
}

int
lt_pieces_add(Pieces *p, long long t_ns, const char *bytes, Py_ssize_t n)
{
    if (reserve(p, n) < 0)
        return -1;
    memcpy(p->data + p->len, bytes, (size_t)n);
    p->len += n;
    p->marks[p->n].t_ns = t_ns;
    p->marks[p->n].end = p->len;
    p->n++;
    return 0;
}

static PyObject *
append(Pieces *self, PyObject *item)
{
    long long t;
    Py_buffer view;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, "a piece is a (t_ns, bytes) tuple");
        return NULL;
    }
    t = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 0));
    if (t == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(item, 1), &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = lt_pieces_add(self, t, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
body(Pieces *self, PyObject *unused)
{
    return PyBytes_FromStringAndSize(self->data, self->len);
}

static PyObject *
nbytes(Pieces *self, PyObject *unused)
{
    return PyLong_FromSsize_t(self->len);
}

static PyObject *
stamps(Pieces *self, PyObject *unused)
{
    PyObject *list = PyList_New(self->n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyObject *t = PyLong_FromLongLong(self->marks[i].t_ns);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, t);
    }
    return list;
}

static Py_ssize_t
length(Pieces *self)
{
    return self->n;
}

static PyObject *
item(Pieces *self, Py_ssize_t i)
{
    if (i < 0 || i >= self->n) {
        PyErr_SetString(PyExc_IndexError, "piece index out of range");
        return NULL;
    }
    Py_ssize_t len;
    const char *s = lt_piece(self, i, &len);
    return Py_BuildValue("(Ly#)", self->marks[i].t_ns, s, len);
}

static PyObject *
repr(Pieces *self)
{
    return PyUnicode_FromFormat("<Pieces: %zd pieces, %zd bytes>", self->n, self->len);
}

static void
dealloc(Pieces *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyMem_Free(self->data);
    PyMem_Free(self->marks);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef methods[] = {
    {"append", (PyCFunction)append, METH_O, "Add a (t_ns, bytes) piece."},
    {"body", (PyCFunction)body, METH_NOARGS, "All pieces' bytes, joined."},
    {"stamps", (PyCFunction)stamps, METH_NOARGS, "Each piece's t_ns, as a list."},
    {"nbytes", (PyCFunction)nbytes, METH_NOARGS, "Total bytes of all pieces (the runaway check reads it)."},
    {NULL}
};

static PyType_Slot slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, dealloc},
    {Py_tp_methods, methods},
    {Py_tp_repr, repr},
    {Py_sq_length, length},
    {Py_sq_item, item},
    {Py_tp_doc, "Pieces() -> the (t_ns, bytes) pieces of one response body, in one buffer."},
    {0, NULL}
};

static PyType_Spec spec = {
    "loadtest._speedups.Pieces", sizeof(Pieces), 0, Py_TPFLAGS_DEFAULT, slots,
};

PyObject *
lt_pieces_type_new(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &spec, NULL);
    lt_pieces_type = (PyTypeObject *)type;
    return type;
}
