/* The common-shape SSE fast path in C: see one_event_per_piece / one_event_array in sse.py.
 *
 * When every body piece is exactly one single-line `data: ` event (what engines write per token),
 * the chunk payloads are copied straight into one JSON array for a single msgspec decode. The
 * Python version makes five passes over the pieces (join, two prefix checks, slices, join); this
 * makes two over memory that is already hot. Any other shape returns None, and the caller takes the
 * general SSE parser, exactly as the Python version does.
 */
#include "speedups.h"
#include <string.h>

/* The data of piece i, or NULL when a list does not hold (int, bytes) tuples. */
static const char *
piece_data(PyObject *pieces, int is_pieces, Py_ssize_t i, Py_ssize_t *len)
{
    if (is_pieces)
        return lt_piece((Pieces *)pieces, i, len);
    PyObject *item = PyList_GET_ITEM(pieces, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
        return NULL;
    PyObject *data = PyTuple_GET_ITEM(item, 1);
    if (!PyBytes_Check(data))
        return NULL;
    *len = PyBytes_GET_SIZE(data);
    return PyBytes_AS_STRING(data);
}

PyObject *
lt_one_event_array(PyObject *module, PyObject *pieces)
{
    int is_pieces = Py_IS_TYPE(pieces, lt_pieces_type);
    if (!is_pieces && !PyList_Check(pieces)) {
        PyErr_SetString(PyExc_TypeError, "pieces must be a Pieces or a list");
        return NULL;
    }
    Py_ssize_t n = is_pieces ? ((Pieces *)pieces)->n : PyList_GET_SIZE(pieces), total = 0, len;
    if (n == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *s = piece_data(pieces, is_pieces, i, &len);
        if (s == NULL || len < 8 || memcmp(s, "data: ", 6) != 0 || s[len - 2] != '\n' || s[len - 1] != '\n'
                || memchr(s, '\r', (size_t)len) != NULL || memchr(s + 6, '\n', (size_t)(len - 8)) != NULL)
            Py_RETURN_NONE;
        total += len - 8;
    }
    const char *last = piece_data(pieces, is_pieces, n - 1, &len);
    int done = len - 8 == 6 && memcmp(last + 6, "[DONE]", 6) == 0;
    Py_ssize_t n_json = n - done;
    if (n_json == 0)
        return Py_BuildValue("nnO", n, n_json, Py_None);
    if (done)
        total -= 6;
    PyObject *array = PyBytes_FromStringAndSize(NULL, total + n_json + 1);  /* brackets, commas */
    if (array == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(array);
    *out++ = '[';
    for (Py_ssize_t i = 0; i < n_json; i++) {
        const char *s = piece_data(pieces, is_pieces, i, &len);
        memcpy(out, s + 6, (size_t)(len - 8));
        out += len - 8;
        *out++ = i + 1 < n_json ? ',' : ']';
    }
    return Py_BuildValue("nnN", n, n_json, array);
}
