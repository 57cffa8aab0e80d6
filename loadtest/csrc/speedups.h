/* loadtest._speedups: the C parts of the per-token hot path, one extension module.
 *
 *   pieces.c   Pieces: a response body's stamped pieces in one buffer (the Exchange.pieces container)
 *   chunked.c  ConnBase: the connection protocol's data_received and chunked-body decoder
 *   sse.c      one_event_array: the common SSE shape straight to one JSON array
 *   module.c   the module
 */
#ifndef LOADTEST_SPEEDUPS_H
#define LOADTEST_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    long long t_ns;   /* arrival stamp (time.perf_counter_ns clock) */
    Py_ssize_t end;   /* end offset of this piece's bytes in data */
} Mark;

/* A list of (t_ns, bytes) pieces, stored as one byte buffer and an array of marks: appending a
 * piece costs a memcpy, not three Python objects, and reading the body back walks one buffer. */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t len, cap;
    Mark *marks;
    Py_ssize_t n, mcap;
} Pieces;

extern PyTypeObject *lt_pieces_type;

int lt_pieces_add(Pieces *p, long long t_ns, const char *bytes, Py_ssize_t n);

static inline const char *
lt_piece(const Pieces *p, Py_ssize_t i, Py_ssize_t *len)
{
    Py_ssize_t start = i ? p->marks[i - 1].end : 0;
    *len = p->marks[i].end - start;
    return p->data + start;
}

PyObject *lt_pieces_type_new(PyObject *module);
PyObject *lt_conn_type_new(PyObject *module);
int lt_chunked_init(void);
PyObject *lt_one_event_array(PyObject *module, PyObject *pieces);

#endif
