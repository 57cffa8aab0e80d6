/* ConnBase: the per-read hot path of the fast transport: stamp, then de-chunk a chunked HTTP body.
 *
 * At 512 streams every token is its own TCP read. In Python each read costs two interpreted calls
 * (data_received, then httptools' on_body) and three new objects; here it costs one C call and a
 * memcpy into the response's Pieces buffer (pieces.c).
 * Only the body of a chunked response is decoded here: status line and headers still go through
 * httptools (once per response), and every other framing (Content-Length, close-delimited) stays
 * on the Python path. The stamp is taken before anything else, on the clock of
 * time.perf_counter_ns(), so records from both paths are comparable.
 *
 * Python-side contract (loadtest/transport/_fast.py: _Protocol, and CConn built on this base):
 *   _feed(data)               called outside body mode, after the stamp is stored in _t
 *   _body_done(extra: bool)   the terminating chunk and trailers were read; extra: bytes followed
 *   _body_error(message)      the chunked framing was invalid
 * and, set by Python: _pieces (the Pieces receiving the body), _body_mode (0/1).
 */
#include "speedups.h"
#include <structmember.h>

enum {
    S_SIZE,        /* hex digits of a chunk size */
    S_EXT,         /* chunk extension: skipped up to CR */
    S_SIZE_LF,     /* LF after the size line's CR */
    S_DATA,        /* `remaining` bytes of chunk data */
    S_DATA_CR,     /* CR after chunk data */
    S_DATA_LF,     /* LF after chunk data */
    S_TRAILER,     /* start of a trailer line, or CR of the final empty line */
    S_TRAILER_LINE,/* inside a trailer line, up to CR */
    S_TRAILER_LF,  /* LF ending a trailer line */
    S_END_LF,      /* LF of the final empty line */
};

typedef struct {
    PyObject_HEAD
    PyObject *pieces;
    long long t_ns;
    int body_mode;
    int state;
    int digits;
    unsigned long long remaining;
} ConnBase;

static PyObject *str_feed, *str_body_done, *str_body_error;

static inline long long
now_ns(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    (void)PyTime_PerfCounterRaw(&t);
    return (long long)t;
#else
    return (long long)_PyTime_GetPerfCounter();
#endif
}

static PyObject *
fail(ConnBase *self, const char *message)
{
    self->body_mode = 0;
    PyObject *msg = PyUnicode_FromString(message);
    if (msg == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, str_body_error, msg);
    Py_DECREF(msg);
    return r;
}

static int
emit(ConnBase *self, const char *bytes, Py_ssize_t n)
{
    if (self->pieces == NULL || !Py_IS_TYPE(self->pieces, lt_pieces_type)) {
        PyErr_SetString(PyExc_TypeError, "_pieces is not a Pieces");
        return -1;
    }
    return lt_pieces_add((Pieces *)self->pieces, self->t_ns, bytes, n);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode body bytes; the stamp in t_ns is already set. */
static PyObject *
decode(ConnBase *self, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *buf = (const char *)view.buf;
    Py_ssize_t len = view.len, i = 0;
    PyObject *result = NULL;
    const char *error = NULL;

    while (i < len && error == NULL) {
        char c = buf[i];
        switch (self->state) {
        case S_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (++self->digits > 15) { error = "chunk size too large"; break; }
                self->remaining = (self->remaining << 4) | (unsigned)v;
                i++;
            } else if (self->digits == 0) {
                error = "invalid chunk size";
            } else if (c == '\r') {
                self->state = S_SIZE_LF; i++;
            } else if (c == ';' || c == ' ' || c == '\t') {
                self->state = S_EXT; i++;
            } else {
                error = "invalid chunk size";
            }
            break;
        }
        case S_EXT:
            if (c == '\r') self->state = S_SIZE_LF;
            else if (c == '\n') error = "invalid chunk extension";
            i++;
            break;
        case S_SIZE_LF:
            if (c != '\n') { error = "missing LF after chunk size"; break; }
            i++;
            self->digits = 0;
            self->state = self->remaining ? S_DATA : S_TRAILER;
            break;
        case S_DATA: {
            Py_ssize_t n = len - i;
            if ((unsigned long long)n > self->remaining)
                n = (Py_ssize_t)self->remaining;
            if (emit(self, buf + i, n) < 0)
                goto done;
            i += n;
            self->remaining -= (unsigned long long)n;
            if (self->remaining == 0)
                self->state = S_DATA_CR;
            break;
        }
        case S_DATA_CR:
            if (c != '\r') { error = "missing CRLF after chunk data"; break; }
            self->state = S_DATA_LF; i++;
            break;
        case S_DATA_LF:
            if (c != '\n') { error = "missing CRLF after chunk data"; break; }
            self->state = S_SIZE; i++;
            break;
        case S_TRAILER:
            if (c == '\r') self->state = S_END_LF;
            else if (c == '\n') { error = "invalid trailer"; break; }
            else self->state = S_TRAILER_LINE;
            i++;
            break;
        case S_TRAILER_LINE:
            if (c == '\r') self->state = S_TRAILER_LF;
            else if (c == '\n') { error = "invalid trailer"; break; }
            i++;
            break;
        case S_TRAILER_LF:
            if (c != '\n') { error = "invalid trailer"; break; }
            self->state = S_TRAILER; i++;
            break;
        case S_END_LF:
            if (c != '\n') { error = "invalid end of chunked body"; break; }
            i++;
            self->body_mode = 0;
            result = PyObject_CallMethodOneArg((PyObject *)self, str_body_done, i < len ? Py_True : Py_False);
            goto done;
        default:
            error = "invalid decoder state";
        }
    }
    result = error != NULL ? fail(self, error) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
data_received(ConnBase *self, PyObject *data)
{
    self->t_ns = now_ns();  /* first: nothing below may delay the stamp */
    if (!self->body_mode)
        return PyObject_CallMethodOneArg((PyObject *)self, str_feed, data);
    return decode(self, data);
}

static PyObject *
start_body(ConnBase *self, PyObject *data)
{
    self->body_mode = 1;
    self->state = S_SIZE;
    self->digits = 0;
    self->remaining = 0;
    if (PyObject_Length(data) == 0)
        Py_RETURN_NONE;
    return decode(self, data);
}

static int
traverse(ConnBase *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->pieces);
    return 0;
}

static int
clear(ConnBase *self)
{
    Py_CLEAR(self->pieces);
    return 0;
}

static void
dealloc(ConnBase *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef methods[] = {
    {"data_received", (PyCFunction)data_received, METH_O, "Stamp, then decode chunked body bytes or hand them to _feed."},
    {"_start_body", (PyCFunction)start_body, METH_O, "Enter body mode at the start of a chunked body; decode what already arrived."},
    {NULL}
};

static PyMemberDef members[] = {
    {"_t", T_LONGLONG, offsetof(ConnBase, t_ns), 0, "perf_counter_ns() stamp of the latest read"},
    {"_pieces", T_OBJECT, offsetof(ConnBase, pieces), 0, "the Pieces receiving the body"},
    {"_body_mode", T_INT, offsetof(ConnBase, body_mode), 0, "1 while a chunked body is decoded here"},
    {NULL}
};

static PyType_Slot slots[] = {
    {Py_tp_methods, methods},
    {Py_tp_members, members},
    {Py_tp_traverse, traverse},
    {Py_tp_clear, clear},
    {Py_tp_dealloc, dealloc},
    {Py_tp_doc, "C base of the fast transport's connection protocol."},
    {0, NULL}
};

static PyType_Spec spec = {
    "loadtest._speedups.ConnBase",
    sizeof(ConnBase),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    slots,
};

int
lt_chunked_init(void)
{
    if ((str_feed = PyUnicode_InternFromString("_feed")) == NULL ||
        (str_body_done = PyUnicode_InternFromString("_body_done")) == NULL ||
        (str_body_error = PyUnicode_InternFromString("_body_error")) == NULL)
        return -1;
    return 0;
}

PyObject *
lt_conn_type_new(PyObject *module)
{
    return PyType_FromModuleAndSpec(module, &spec, NULL);
}
