/* Record walks for the batch reader (netan/fastpath_read.py, netan/walk.py).

   Why C: a pcap file is a chain of records whose lengths are only known one
   after the other, so finding the record offsets is a sequential loop that
   cannot be vectorised. In Python that loop costs ~0.6 us per record, a
   quarter of the whole flow engine. Everything else stays in numpy; this
   file only turns a buffer into an array of record offsets.

   walk_pcap(buf, pos, end, hdr_len, big_endian) -> (offsets: bytes, pos, cut)
     offsets: native int64 record offsets, every record that starts before
              `end` (the last one may reach past `end` or past the buffer);
     pos:     the offset after the last whole record header read;
     cut:     True when a record's header was cut by the end of the buffer
              (its offset is in `offsets`, `pos` is that offset).
   The same contract as the pure-Python fallback in netan/walk.py.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint32_t read_u32(const unsigned char *p, int big_endian) {
    if (big_endian)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}

static PyObject *walk_pcap(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end, hdr_len;
    int big_endian;
    if (!PyArg_ParseTuple(args, "y*nnni", &view, &pos, &end, &hdr_len, &big_endian))
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len;
    if (end > size) end = size;
    Py_ssize_t cap = 4096, n = 0;
    int64_t *offs = (int64_t *)PyMem_RawMalloc(cap * sizeof(int64_t));
    if (offs == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    int cut = 0, nomem = 0;
    Py_BEGIN_ALLOW_THREADS
    while (pos >= 0 && pos < end) {
        if (n == cap) {
            Py_ssize_t ncap = cap * 2;
            int64_t *grown = (int64_t *)PyMem_RawRealloc(offs, ncap * sizeof(int64_t));
            if (grown == NULL) { nomem = 1; break; }
            offs = grown;
            cap = ncap;
        }
        offs[n++] = (int64_t)pos;
        if (pos + 12 > size) { cut = 1; break; }
        pos += (Py_ssize_t)read_u32(buf + pos + 8, big_endian) + hdr_len;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (nomem) {
        PyMem_RawFree(offs);
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)offs, n * (Py_ssize_t)sizeof(int64_t));
    PyMem_RawFree(offs);
    if (out == NULL) return NULL;
    return Py_BuildValue("Nni", out, pos, cut);
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Offsets of the pcap records in buf[pos:end] (see netan/walk.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "netan._walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
