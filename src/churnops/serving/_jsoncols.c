/* churnops.serving._jsoncols: JSON request bodies → feature columns, in one pass.
 *
 * The accelerator behind churnops.serving.decode. A Decoder is built from the record
 * contract (field names, kinds, allowed values, ranges: defined once, in Python) and
 * fills the arrays of a ``Columns`` batch straight from the request bytes:
 *
 *   Decoder.records(body, numeric, codes) -> rows   V1 {"instances": [record, ...]}
 *   Decoder.column(data, field, out, rows) -> bool  one V2 tensor's flat "data" array
 *
 * It accepts a strict subset of what the reference path (orjson + validation.py)
 * accepts, and yields the same values: every feature exactly once per record, category
 * values spelled exactly as allowed, finite numbers in range (integral for integer
 * fields), null only where the contract allows it, plain ASCII strings without escapes.
 * Anything else (a contract violation, but also an escaped string, a duplicate key or
 * a nested customerID) makes it answer "not mine" (-1 / False) without an exception,
 * and the caller runs the reference path, which names the field and row.
 *
 * Numbers are parsed exactly: a decimal whose digits make an integer up to 2^53 and
 * whose power of ten is within 1e±22 is one correctly rounded IEEE multiplication or
 * division of two exact doubles (Clinger's fast path); everything else goes through CPython's own
 * correctly rounded PyOS_string_to_double. Both give what float(token) gives.
 *
 * Every read is bounds-checked against the body; nothing recurses; the only memory
 * written is the caller's arrays, within the capacity their buffers report.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_FIELDS 64
#define MAX_ALLOWED 32
#define MAX_NAME 64
#define MAX_NUMBER 64

enum kind { KIND_CATEGORY = 0, KIND_INTEGER = 1, KIND_NUMBER = 2 };

typedef struct {
    char name[MAX_NAME];
    Py_ssize_t name_len;
    int kind;
    int column; /* index into the numeric or the codes array */
    int nullable;
    double minimum, maximum;
    int n_allowed;
    char allowed[MAX_ALLOWED][MAX_NAME];
    Py_ssize_t allowed_len[MAX_ALLOWED];
} field_t;

typedef struct {
    PyObject_HEAD
    int n_fields, n_numeric, n_categorical;
    field_t fields[MAX_FIELDS];
    char id_name[MAX_NAME];
    Py_ssize_t id_len;
} Decoder;

typedef struct {
    const unsigned char *p, *end;
} cursor_t;

typedef struct {
    double *numeric;
    int64_t *codes;
    Py_ssize_t capacity;
} out_t;

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* --- scanning ---------------------------------------------------------------------- */

static inline void
skip_ws(cursor_t *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static inline int
eat(cursor_t *c, unsigned char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static inline int
eat_literal(cursor_t *c, const char *lit, Py_ssize_t len)
{
    skip_ws(c);
    if (c->end - c->p >= len && memcmp(c->p, lit, len) == 0) {
        c->p += len;
        return 1;
    }
    return 0;
}

/* The bytes between a quote and the next one: a JSON string's contents when it has no
 * escaped quote. Callers accept them only when they equal a contract name or value
 * (which holds no backslash, so such a match cannot be an escape sequence) or after
 * plain() checked them. */
static inline int
quoted(cursor_t *c, const unsigned char **s, Py_ssize_t *len)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return 0;
    const unsigned char *start = c->p + 1;
    const unsigned char *close = memchr(start, '"', c->end - start);
    if (close == NULL)
        return 0;
    *s = start;
    *len = close - start;
    c->p = close + 1;
    return 1;
}

/* Printable ASCII without escapes (anything else is the reference path's to decode). */
static int
plain(const unsigned char *s, Py_ssize_t len)
{
    for (Py_ssize_t k = 0; k < len; k++)
        if (s[k] == '\\' || s[k] < 0x20 || s[k] >= 0x80)
            return 0;
    return 1;
}

static inline int
is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

/* A JSON number (RFC 8259 grammar) → double, exactly as float(token) would give it.
 * *integral is set when the token has no fraction and no exponent. */
static int
number(cursor_t *c, double *value, int *integral)
{
    skip_ws(c);
    const unsigned char *start = c->p, *p = c->p, *end = c->end;
    int negative = 0, digits = 0, frac_digits = 0, exact = 1;
    uint64_t mantissa = 0;
    long exponent = 0;

    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return 0;
    if (*p == '0') {
        p++;
    }
    else {
        while (p < end && is_digit(*p)) {
            if (digits < 19)
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            else
                exact = 0;
            digits++;
            p++;
        }
    }
    *integral = 1;
    if (p < end && *p == '.') {
        p++;
        *integral = 0;
        if (p >= end || !is_digit(*p))
            return 0;
        while (p < end && is_digit(*p)) {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                frac_digits++;
            }
            else
                exact = 0;
            digits++;
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        *integral = 0;
        int exp_negative = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            exp_negative = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p))
            return 0;
        while (p < end && is_digit(*p)) {
            if (exponent < 100000)
                exponent = exponent * 10 + (*p - '0');
            p++;
        }
        if (exp_negative)
            exponent = -exponent;
    }
    c->p = p;
    exponent -= frac_digits;
    if (exact && mantissa <= ((uint64_t)1 << 53) && exponent >= -22 && exponent <= 22) {
        double m = (double)mantissa; /* exact: mantissa < 2^53 */
        double v = exponent < 0 ? m / POW10[-exponent] : m * POW10[exponent];
        /* JSON -0 is the integer 0 (Python ints have no sign of zero); -0.0 stays -0.0. */
        *value = (negative && !(*integral && mantissa == 0)) ? -v : v;
        return 1;
    }
    Py_ssize_t len = p - start;
    if (len >= MAX_NUMBER)
        return 0;
    char buf[MAX_NUMBER];
    memcpy(buf, start, len);
    buf[len] = '\0';
    char *stop = NULL;
    double v = PyOS_string_to_double(buf, &stop, NULL); /* overflow → ±inf, no error */
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (stop != buf + len)
        return 0;
    *value = v;
    return 1;
}

/* --- values -------------------------------------------------------------------------- */

/* One value of field f at row `row` into the output arrays (stride = columns per row). */
static inline int
value(const Decoder *d, const field_t *f, cursor_t *c, const out_t *out, Py_ssize_t row)
{
    if (f->kind == KIND_CATEGORY) {
        const unsigned char *s;
        Py_ssize_t len;
        if (!quoted(c, &s, &len))
            return 0;
        for (int k = 0; k < f->n_allowed; k++) {
            if (f->allowed_len[k] == len && memcmp(f->allowed[k], s, len) == 0) {
                out->codes[row * d->n_categorical + f->column] = k;
                return 1;
            }
        }
        return 0; /* unknown values are the reference path's to reject or count */
    }
    double v;
    int integral;
    if (f->nullable && eat_literal(c, "null", 4)) {
        v = NAN;
    }
    else {
        if (!number(c, &v, &integral))
            return 0;
        if (!isfinite(v) || v < f->minimum || v > f->maximum)
            return 0;
        if (f->kind == KIND_INTEGER && v != floor(v))
            return 0;
    }
    out->numeric[row * d->n_numeric + f->column] = v;
    return 1;
}

/* The id's value is not a feature: a plain string, a number, true/false or null. */
static int
skip_id(cursor_t *c)
{
    const unsigned char *s;
    Py_ssize_t len;
    double v;
    int integral;
    skip_ws(c);
    if (c->p >= c->end)
        return 0;
    if (*c->p == '"')
        return quoted(c, &s, &len) && plain(s, len);
    return eat_literal(c, "null", 4) || eat_literal(c, "true", 4) ||
           eat_literal(c, "false", 5) || number(c, &v, &integral);
}

/* --- V1 records ---------------------------------------------------------------------- */

static int
find_field(const Decoder *d, const unsigned char *s, Py_ssize_t len, int hint)
{
    if (hint >= 0 && hint < d->n_fields && d->fields[hint].name_len == len &&
        memcmp(d->fields[hint].name, s, len) == 0)
        return hint;
    for (int i = 0; i < d->n_fields; i++)
        if (d->fields[i].name_len == len && memcmp(d->fields[i].name, s, len) == 0)
            return i;
    if (d->id_len == len && memcmp(d->id_name, s, len) == 0)
        return d->n_fields; /* the id */
    return -1;
}

/* One record into row `row`. `order` remembers the key order of the previous record,
 * so a batch whose records share one order finds each key at its first guess. */
static int
record(const Decoder *d, cursor_t *c, const out_t *out, Py_ssize_t row, int *order)
{
    uint64_t seen = 0;
    const uint64_t all = ((uint64_t)1 << d->n_fields) - 1; /* n_fields < 64 */
    int position = 0;
    if (!eat(c, '{'))
        return 0;
    for (;;) {
        const unsigned char *key;
        Py_ssize_t len;
        if (!quoted(c, &key, &len) || !eat(c, ':'))
            return 0;
        int hint = position <= d->n_fields ? order[position] : -1;
        int i = find_field(d, key, len, hint);
        if (i < 0)
            return 0;
        uint64_t bit = (uint64_t)1 << i; /* i ≤ n_fields ≤ 63 (checked at init) */
        if (seen & bit)
            return 0; /* a key twice */
        seen |= bit;
        if (position <= d->n_fields)
            order[position] = i;
        position++;
        if (i == d->n_fields) {
            if (!skip_id(c))
                return 0;
        }
        else if (!value(d, &d->fields[i], c, out, row)) {
            return 0;
        }
        if (eat(c, ','))
            continue;
        if (eat(c, '}'))
            break;
        return 0;
    }
    return (seen & all) == all;
}

/* {"instances": [record, ...]} → number of rows, or -1 (not for this path). */
static Py_ssize_t
records(const Decoder *d, cursor_t *c, const out_t *out)
{
    int order[MAX_FIELDS + 1];
    for (int k = 0; k <= MAX_FIELDS; k++)
        order[k] = k < d->n_fields ? k : -1;
    if (!eat(c, '{') || !eat_literal(c, "\"instances\"", 11) || !eat(c, ':') || !eat(c, '['))
        return -1;
    Py_ssize_t n = 0;
    for (;;) {
        if (n >= out->capacity || !record(d, c, out, n, order))
            return -1;
        n++;
        if (eat(c, ','))
            continue;
        if (eat(c, ']'))
            break;
        return -1;
    }
    if (!eat(c, '}'))
        return -1;
    skip_ws(c);
    return c->p == c->end ? n : -1;
}

/* --- V2 tensor data ------------------------------------------------------------------ */

/* A flat JSON array of exactly `rows` values of field f. */
static int
column(const Decoder *d, const field_t *f, cursor_t *c, const out_t *out, Py_ssize_t rows)
{
    if (!eat(c, '['))
        return 0;
    for (Py_ssize_t row = 0; row < rows; row++) {
        if (!value(d, f, c, out, row))
            return 0;
        if (!eat(c, row + 1 < rows ? ',' : ']'))
            return 0;
    }
    skip_ws(c);
    return rows > 0 && c->p == c->end;
}

/* --- Python glue ----------------------------------------------------------------------- */

static int
copy_name(PyObject *obj, char *dst, Py_ssize_t *len, const char *what)
{
    const char *s;
    if (PyBytes_AsStringAndSize(obj, (char **)&s, len) < 0)
        return -1;
    if (*len <= 0 || *len >= MAX_NAME) {
        PyErr_Format(PyExc_ValueError, "%s must be 1..%d bytes", what, MAX_NAME - 1);
        return -1;
    }
    for (Py_ssize_t k = 0; k < *len; k++) {
        unsigned char ch = (unsigned char)s[k];
        if (ch == '\\' || ch == '"' || ch < 0x20 || ch >= 0x80) {
            PyErr_Format(PyExc_ValueError, "%s must be printable ASCII without quotes", what);
            return -1;
        }
    }
    memcpy(dst, s, *len);
    return 0;
}

/* Decoder(fields, id_name): fields = ((name: bytes, kind: int, column: int,
 * nullable: bool, minimum: float, maximum: float, allowed: tuple[bytes, ...]), ...) */
static int
Decoder_init(Decoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fields", "id_name", NULL};
    PyObject *fields, *id_name;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!S", kwlist, &PyTuple_Type, &fields,
                                     &id_name))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if (n < 1 || n >= MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "between 1 and %d fields", MAX_FIELDS - 1);
        return -1;
    }
    self->n_fields = 0; /* set once everything checked out: methods refuse until then */
    self->n_numeric = self->n_categorical = 0;
    if (copy_name(id_name, self->id_name, &self->id_len, "id_name") < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        field_t *f = &self->fields[i];
        PyObject *name, *allowed;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, i), "SiipddO!", &name, &f->kind,
                              &f->column, &f->nullable, &f->minimum, &f->maximum,
                              &PyTuple_Type, &allowed))
            return -1;
        if (copy_name(name, f->name, &f->name_len, "a field name") < 0)
            return -1;
        int *count = f->kind == KIND_CATEGORY ? &self->n_categorical : &self->n_numeric;
        if (f->kind < KIND_CATEGORY || f->kind > KIND_NUMBER || f->column != *count) {
            PyErr_SetString(PyExc_ValueError,
                            "field kinds 0..2, columns numbered in order within a kind");
            return -1;
        }
        (*count)++;
        f->n_allowed = (int)PyTuple_GET_SIZE(allowed);
        if ((f->kind == KIND_CATEGORY) != (f->n_allowed > 0) || f->n_allowed > MAX_ALLOWED) {
            PyErr_Format(PyExc_ValueError,
                         "a category field needs 1..%d allowed values, others none",
                         MAX_ALLOWED);
            return -1;
        }
        for (int k = 0; k < f->n_allowed; k++)
            if (copy_name(PyTuple_GET_ITEM(allowed, k), f->allowed[k], &f->allowed_len[k],
                          "an allowed value") < 0)
                return -1;
    }
    self->n_fields = (int)n;
    return 0;
}

/* A writable, C-contiguous buffer of 8-byte items: its capacity in rows of `width`. */
static int
get_array(PyObject *obj, Py_buffer *view, const char *formats, int width, Py_ssize_t *rows)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    if (view->itemsize != 8 || strlen(fmt) != 1 || !strchr(formats, fmt[0])) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "expected a buffer of 8-byte items of format %s",
                     formats);
        return -1;
    }
    Py_ssize_t r = width > 0 ? view->len / (8 * (Py_ssize_t)width) : PY_SSIZE_T_MAX;
    *rows = r < *rows ? r : *rows;
    return 0;
}

static int
initialized(const Decoder *self)
{
    if (self->n_fields > 0)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "Decoder.__init__ was not called");
    return 0;
}

static PyObject *
Decoder_records(Decoder *self, PyObject *args)
{
    Py_buffer body, numeric, codes;
    PyObject *num_obj, *codes_obj;
    if (!initialized(self) || !PyArg_ParseTuple(args, "y*OO", &body, &num_obj, &codes_obj))
        return NULL;
    out_t out = {NULL, NULL, PY_SSIZE_T_MAX};
    if (get_array(num_obj, &numeric, "d", self->n_numeric, &out.capacity) < 0) {
        PyBuffer_Release(&body);
        return NULL;
    }
    if (get_array(codes_obj, &codes, "lq", self->n_categorical, &out.capacity) < 0) {
        PyBuffer_Release(&numeric);
        PyBuffer_Release(&body);
        return NULL;
    }
    out.numeric = numeric.buf;
    out.codes = codes.buf;
    cursor_t c = {body.buf, (const unsigned char *)body.buf + body.len};
    Py_ssize_t n = records(self, &c, &out);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&numeric);
    PyBuffer_Release(&body);
    return PyLong_FromSsize_t(n);
}

static PyObject *
Decoder_column(Decoder *self, PyObject *args)
{
    Py_buffer data, array;
    PyObject *array_obj;
    int i;
    Py_ssize_t rows;
    if (!initialized(self) || !PyArg_ParseTuple(args, "y*iOn", &data, &i, &array_obj, &rows))
        return NULL;
    if (i < 0 || i >= self->n_fields) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_IndexError, "no such field");
        return NULL;
    }
    const field_t *f = &self->fields[i];
    int category = f->kind == KIND_CATEGORY;
    Py_ssize_t capacity = PY_SSIZE_T_MAX;
    if (get_array(array_obj, &array, category ? "lq" : "d",
                  category ? self->n_categorical : self->n_numeric, &capacity) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    out_t out = {category ? NULL : array.buf, category ? array.buf : NULL, capacity};
    cursor_t c = {data.buf, (const unsigned char *)data.buf + data.len};
    int ok = rows <= capacity && column(self, f, &c, &out, rows);
    PyBuffer_Release(&array);
    PyBuffer_Release(&data);
    return PyBool_FromLong(ok);
}

static PyMethodDef Decoder_methods[] = {
    {"records", (PyCFunction)Decoder_records, METH_VARARGS,
     "records(body, numeric, codes) -> rows\n\n"
     "Fill float64 ``numeric`` and int64 ``codes`` (C-contiguous, one row per record)\n"
     "from a V1 body; -1 when the reference path must judge it (nothing is raised)."},
    {"column", (PyCFunction)Decoder_column, METH_VARARGS,
     "column(data, field, array, rows) -> bool\n\n"
     "Fill field ``field``'s column of ``array`` (numeric or codes, by the field's kind)\n"
     "from the JSON array ``data`` of exactly ``rows`` values; False when the reference\n"
     "path must judge it."},
    {NULL, NULL, 0, NULL},
};

/* --- V1 responses ---------------------------------------------------------------------- */

static PyObject *
v1_predictions(PyObject *module, PyObject *args)
{
    static const char head[] = "{\"predictions\":[";
    static const char open[] = "{\"churn_probability\":";
    static const char yes[] = ",\"churn\":true,\"model_version\":";
    static const char no[] = ",\"churn\":false,\"model_version\":";
    Py_buffer numbers, churn, version;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*y*y*", &numbers, &churn, &version))
        return NULL;
    PyObject *result = NULL;
    const char *num = numbers.buf;
    const unsigned char *decision = churn.buf;
    Py_ssize_t n = churn.len, count = numbers.len > 2 ? 1 : 0;
    for (Py_ssize_t k = 1; k + 1 < numbers.len; k++)
        count += num[k] == ',';
    if (churn.itemsize != 1 || numbers.len < 2 || num[0] != '[' || num[numbers.len - 1] != ']' ||
        count != n) {
        PyErr_SetString(PyExc_ValueError, "numbers must be a JSON array of one number per decision");
        goto done;
    }
    Py_ssize_t size = (Py_ssize_t)sizeof(head) - 1 + numbers.len + 2 +
                      n * ((Py_ssize_t)sizeof(open) - 1 + (Py_ssize_t)sizeof(no) - 1 +
                           version.len + 2);
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(result), *start = out;
#define PUT(src, len)                                                                         \
    do {                                                                                      \
        memcpy(out, (src), (len));                                                            \
        out += (len);                                                                         \
    } while (0)
    PUT(head, sizeof(head) - 1);
    const char *p = num + 1, *end = num + numbers.len - 1;
    for (Py_ssize_t row = 0; row < n; row++) {
        const char *comma = memchr(p, ',', end - p);
        const char *stop = comma ? comma : end;
        if (row > 0)
            *out++ = ',';
        PUT(open, sizeof(open) - 1);
        PUT(p, stop - p);
        if (decision[row])
            PUT(yes, sizeof(yes) - 1);
        else
            PUT(no, sizeof(no) - 1);
        PUT(version.buf, version.len);
        *out++ = '}';
        p = stop + 1;
    }
    PUT("]}", 2);
#undef PUT
    if (_PyBytes_Resize(&result, out - start) < 0)
        result = NULL;
done:
    PyBuffer_Release(&version);
    PyBuffer_Release(&churn);
    PyBuffer_Release(&numbers);
    return result;
}

static PyMethodDef module_methods[] = {
    {"v1_predictions", v1_predictions, METH_VARARGS,
     "v1_predictions(numbers, churn, version) -> bytes\n\n"
     "The V1 response body: ``numbers`` is the JSON array of the probabilities (as\n"
     "orjson formats it), ``churn`` one byte per record (0/1), ``version`` the model\n"
     "version as a JSON string."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "churnops.serving._jsoncols.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "JSON request bodies → feature columns for one record contract.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_methods = Decoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "churnops.serving._jsoncols",
    .m_doc = "JSON request bodies → feature columns (see churnops.serving.decode).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__jsoncols(void)
{
    if (PyType_Ready(&DecoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "CATEGORY", KIND_CATEGORY) < 0 ||
        PyModule_AddIntConstant(m, "INTEGER", KIND_INTEGER) < 0 ||
        PyModule_AddIntConstant(m, "NUMBER", KIND_NUMBER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
