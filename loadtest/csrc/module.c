/* loadtest._speedups: see speedups.h. */
#include "speedups.h"

static PyMethodDef methods[] = {
    {"one_event_array", lt_one_event_array, METH_O,
     "one_event_array(pieces) -> (events, json_events, b'[...]' or None) when every piece is one "
     "single-line data: event (a trailing [DONE] is counted in events, not put in the array); else None."},
    {NULL}
};

static int
add_type(PyObject *m, const char *name, PyObject *type)
{
    if (type == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(m, name, type);
    Py_DECREF(type);
    return rc;
}

static int
exec_module(PyObject *m)
{
    if (lt_chunked_init() < 0)
        return -1;
    if (add_type(m, "Pieces", lt_pieces_type_new(m)) < 0)
        return -1;
    return add_type(m, "ConnBase", lt_conn_type_new(m));
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "loadtest._speedups",
    "The C parts of the per-token hot path; the pure-Python path gives the same results.",
    0, methods, slots, NULL, NULL, NULL
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module);
}
