/* The common-shape SSE fast path in C: see one_event_per_piece / one_event_array in sse.py.
 *
 * When every body piece is exactly one single-line `data: ` event (what engines write per token),
 * the chunk payloads are copied straight into one JSON array for a single msgspec decode. The
 * Python version makes five passes over the pieces (join, two prefix checks, slices, join); this
 * makes two over memory that is already hot. Any other shape returns None, and the caller takes the
 * general SSE parser, exactly as the Python version does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The data of piece i, or NULL when the list does not hold (int, bytes) tuples. */
static PyObject *
piece_data(PyObject *pieces, Py_ssize_t i)
{
    PyObject *item = PyList_GET_ITEM(pieces, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
        return NULL;
    PyObject *data = PyTuple_GET_ITEM(item, 1);
    return PyBytes_Check(data) ? data : NULL;
}

static PyObject *
one_event_array(PyObject *module, PyObject *pieces)
{
    if (!PyList_Check(pieces)) {
        PyErr_SetString(PyExc_TypeError, "pieces must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(pieces), total = 0;
    if (n == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *data = piece_data(pieces, i);
        if (data == NULL)
            Py_RETURN_NONE;
        const char *s = PyBytes_AS_STRING(data);
        Py_ssize_t len = PyBytes_GET_SIZE(data);
        if (len < 8 || memcmp(s, "data: ", 6) != 0 || s[len - 2] != '\n' || s[len - 1] != '\n'
                || memchr(s, '\r', (size_t)len) != NULL || memchr(s + 6, '\n', (size_t)(len - 8)) != NULL)
            Py_RETURN_NONE;
        total += len - 8;
    }
    PyObject *last = piece_data(pieces, n - 1);
    Py_ssize_t last_len = PyBytes_GET_SIZE(last) - 8;
    int done = last_len == 6 && memcmp(PyBytes_AS_STRING(last) + 6, "[DONE]", 6) == 0;
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
        PyObject *data = PyTuple_GET_ITEM(PyList_GET_ITEM(pieces, i), 1);
        Py_ssize_t len = PyBytes_GET_SIZE(data) - 8;
        memcpy(out, PyBytes_AS_STRING(data) + 6, (size_t)len);
        out += len;
        *out++ = i + 1 < n_json ? ',' : ']';
    }
    PyObject *result = Py_BuildValue("nnN", n, n_json, array);
    return result;
}

static PyMethodDef methods[] = {
    {"one_event_array", one_event_array, METH_O,
     "one_event_array(pieces) -> (events, json_events, b'[...]' or None) when every piece is one "
     "single-line data: event (a trailing [DONE] is counted in events, not put in the array); else None."},
    {NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "loadtest._sse", "C fast path for the common SSE shape.", 0, methods,
};

PyMODINIT_FUNC
PyInit__sse(void)
{
    return PyModuleDef_Init(&module);
}
