/* The plain case of netan's per-record hot paths, in C.
 *
 * Each function is the fast lane of one Python function that stays the
 * definition (netan/fastlane.py builds their plans from the Python code;
 * tests run every input through both lanes and ask for identical output):
 *
 *   tsv_conn(line, plan)      -> the CONN_FIELDS tuple of one TSV conn.log line
 *                                (reader._tsv_conn_extractor), or None
 *   tsv_record(line, plan, ctx) -> both at once (the record, else the tuple, else None)
 *   json_conn(obj, names, seconds) -> the CONN_FIELDS tuple of a flat JSON conn record
 *                                (reader._conn_json's plain case), or None
 *   conn_record(c, ctx)       -> the flow record of a conn tuple with no side-log
 *                                entries (convert.Joiner.conn_flow), or None
 *   chain_observe(state, record, handle) -> ChainBuilder.observe's bookkeeping (the rules stay
 *                                in Python), True, or None
 *   tsv_row(plan, record)     -> one netan_flows.log row (sinks.zeek._compile_row);
 *   tsv_row_bytes(plan, record) the same as UTF-8 bytes
 *   json_line(line, names, seconds) -> json_conn's tuple read straight from a plain JSON line
 *                                (jsonlog.read_json + json_conn), or None
 *   Lane(...)                 -> pipeline._Pass2 for a plain conn record, without making it:
 *                                its line and row from templates cut from the Python output
 *                                (fastlane.lane_plan), ChainBuilder.observe's bookkeeping with
 *                                the network rules of a conn-only record (evidence), counters
 *   time_repr(v)              -> repr of a time without dtoa (for the tests), or None
 *
 * None means "not the plain case": the caller runs the Python code for that
 * line, which handles (and reports) everything unusual -- escapes, non-ASCII
 * text, numbers spelled oddly, unset counts, repeated uids, protocols other
 * than TCP/UDP/ICMP, ports out of range. So the C code only has to be right
 * where it says yes; it never reports a problem itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <arpa/inet.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ SHA-1 (FIPS 180-4) */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

/* SHA-1 of a message of at most 55 bytes: one padded block (a Community ID input is at most 40). */
static void sha1_short(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint8_t p[64];
    memcpy(p, msg, len);
    p[len] = 0x80;
    memset(p + len + 1, 0, 55 - len);
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) p[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], t;
    for (int i = 0; i < 20; i++) { t = rol(a, 5) + ((b & c) | (~b & d)) + e + 0x5A827999 + w[i]; e = d; d = c; c = rol(b, 30); b = a; a = t; }
    for (int i = 20; i < 40; i++) { t = rol(a, 5) + (b ^ c ^ d) + e + 0x6ED9EBA1 + w[i]; e = d; d = c; c = rol(b, 30); b = a; a = t; }
    for (int i = 40; i < 60; i++) { t = rol(a, 5) + ((b & c) | (b & d) | (c & d)) + e + 0x8F1BBCDC + w[i]; e = d; d = c; c = rol(b, 30); b = a; a = t; }
    for (int i = 60; i < 80; i++) { t = rol(a, 5) + (b ^ c ^ d) + e + 0xCA62C1D6 + w[i]; e = d; d = c; c = rol(b, 30); b = a; a = t; }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24); out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8); out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* ------------------------------------------------------------------ Community ID v1, seed 0 */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* "1:" + base64(sha1(seed 0 + a + b + tail)) as a new str. */
static PyObject *community_text(const uint8_t *a, int alen, const uint8_t *b, int blen, const uint8_t *tail, int tlen) {
    uint8_t msg[2 + 16 + 16 + 6], d[21];
    size_t n = 0;
    msg[n++] = 0; msg[n++] = 0;  /* the seed */
    memcpy(msg + n, a, (size_t)alen); n += (size_t)alen;
    memcpy(msg + n, b, (size_t)blen); n += (size_t)blen;
    memcpy(msg + n, tail, (size_t)tlen); n += (size_t)tlen;
    sha1_short(msg, n, d);
    d[20] = 0;
    char out[2 + 28];
    out[0] = '1'; out[1] = ':';
    char *o = out + 2;
    for (int i = 0; i < 21; i += 3) {  /* 20 bytes: six full groups, then two bytes and one '=' */
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | (i + 2 < 21 ? d[i + 2] : 0);
        *o++ = B64[v >> 18 & 63]; *o++ = B64[v >> 12 & 63]; *o++ = B64[v >> 6 & 63];
        *o++ = i + 2 < 20 ? B64[v & 63] : '=';
    }
    return PyUnicode_FromStringAndSize(out, 30);
}

/* An address as netan.community._packed does it (inet_pton, IPv6 when it has a ':'); 0 if not one. */
static int pack_addr(PyObject *s, uint8_t out[16]) {
    Py_ssize_t n;
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) return 0;
    const char *t = (const char *)PyUnicode_DATA(s);
    n = PyUnicode_GET_LENGTH(s);
    if (n <= 0 || n > 63 || (Py_ssize_t)strlen(t) != n) return 0;
    if (memchr(t, ':', (size_t)n)) return inet_pton(AF_INET6, t, out) == 1 ? 16 : 0;
    return inet_pton(AF_INET, t, out) == 1 ? 4 : 0;
}

/* Python's bytes comparison a < b (shorter first when one is a prefix of the other): <0, 0, >0. */
static int bytes_cmp(const uint8_t *a, int alen, const uint8_t *b, int blen) {
    int m = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    if (m) return m;
    return alen - blen;
}

static long icmp_pair(int v6, long type) {
    static const long p4[][2] = {{8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16}, {16, 15}, {10, 9}, {9, 10}, {17, 18}, {18, 17}};
    static const long p6[][2] = {{128, 129}, {129, 128}, {133, 134}, {134, 133}, {135, 136}, {136, 135}, {130, 131},
                                 {131, 130}, {139, 140}, {140, 139}, {144, 145}, {145, 144}};
    const long (*p)[2] = v6 ? p6 : p4;
    int n = v6 ? 12 : 10;
    for (int i = 0; i < n; i++)
        if (p[i][0] == type) return p[i][1];
    return -1;
}

/* ------------------------------------------------------------------ tsv_conn */

/* plain digits (at most 18) -> a Python int; NULL without an error when not plain */
static PyObject *plain_int(const char *s, Py_ssize_t n) {
    if (n <= 0 || n > 18) return NULL;
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return NULL;
        v = v * 10 + (s[i] - '0');
    }
    return PyLong_FromLongLong(v);
}

/* [-]digits[.digits] -> its double (strtod, correctly rounded as Python's float() is); 0 when not plain */
static int plain_double(const char *s, Py_ssize_t n, double *out) {
    char buf[48];
    if (n <= 0 || n >= (Py_ssize_t)sizeof buf) return 0;
    Py_ssize_t i = s[0] == '-' ? 1 : 0, digits = 0, dot = 0;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') digits++;
        else if (s[i] == '.' && !dot && digits) dot = 1;
        else return 0;
    }
    if (!digits) return 0;
    memcpy(buf, s, (size_t)n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return isfinite(*out);
}

static PyObject *ascii_str(const char *s, Py_ssize_t n) {
    PyObject *o = PyUnicode_New(n, 127);
    if (o) memcpy(PyUnicode_DATA(o), s, (size_t)n);
    return o;
}

enum { F_TS, F_UID, F_OH, F_OP, F_RH, F_RP, F_PROTO, F_SVC, F_DUR, F_OB, F_RB, F_ST, F_MISSED, F_HIST, F_OPK, F_RPK,
       F_MAC, F_CID, F_IPP, NCONN };

#define MAXCOLS 256

/* The tuple of one line (plan = (separator: str of one ASCII char, unset: str, nfields: int,
 * columns: tuple of NCONN ints, -1 for a column the header lacks)), or None. */
static PyObject *parse_line(PyObject *line, PyObject *plan) {
    if (!PyUnicode_Check(line) || !PyTuple_Check(plan)) {
        PyErr_SetString(PyExc_TypeError, "tsv_conn(line: str, plan: tuple)");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(line) || PyTuple_GET_SIZE(plan) != 4) Py_RETURN_NONE;
    PyObject *sep_o = PyTuple_GET_ITEM(plan, 0), *unset_o = PyTuple_GET_ITEM(plan, 1);
    PyObject *cols_o = PyTuple_GET_ITEM(plan, 3);
    long nfields = PyLong_AsLong(PyTuple_GET_ITEM(plan, 2));
    if (nfields <= 0 || nfields > MAXCOLS || !PyUnicode_Check(sep_o) || PyUnicode_GET_LENGTH(sep_o) != 1 ||
        !PyUnicode_IS_ASCII(sep_o) || !PyUnicode_Check(unset_o) || !PyUnicode_IS_ASCII(unset_o) ||
        !PyTuple_Check(cols_o) || PyTuple_GET_SIZE(cols_o) != NCONN) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    const char sep = ((const char *)PyUnicode_DATA(sep_o))[0];
    const char *unset = (const char *)PyUnicode_DATA(unset_o);
    Py_ssize_t unset_n = PyUnicode_GET_LENGTH(unset_o);
    const char *s = (const char *)PyUnicode_DATA(line);
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    if (n && s[n - 1] == '\n') {
        n--;
        if (n && s[n - 1] == '\r') n--;
    }
    if (memchr(s, '\\', (size_t)n)) Py_RETURN_NONE;  /* escapes: the Python path unescapes */
    Py_ssize_t start[MAXCOLS + 1], len[MAXCOLS + 1];
    long k = 0;
    Py_ssize_t at = 0;
    for (;;) {
        const char *hit = memchr(s + at, sep, (size_t)(n - at));
        Py_ssize_t end = hit ? hit - s : n;
        if (k >= nfields) Py_RETURN_NONE;  /* too many columns */
        start[k] = at; len[k] = end - at; k++;
        if (!hit) break;
        at = end + 1;
    }
    if (k != nfields) Py_RETURN_NONE;
    long col[NCONN];
    for (int i = 0; i < NCONN; i++) {
        col[i] = PyLong_AsLong(PyTuple_GET_ITEM(cols_o, i));
        if (col[i] >= nfields) col[i] = -1;
    }
    if (PyErr_Occurred()) return NULL;
#define FIELD(i) (s + start[col[i]])
#define FLEN(i) (len[col[i]])
#define IS_UNSET(i) (FLEN(i) == unset_n && memcmp(FIELD(i), unset, (size_t)unset_n) == 0)
    /* what the Python path reports or refuses: no time, no addresses */
    if (col[F_TS] < 0 || col[F_OH] < 0 || col[F_RH] < 0 || FLEN(F_OH) == 0 || FLEN(F_RH) == 0 || IS_UNSET(F_OH) ||
        IS_UNSET(F_RH))
        Py_RETURN_NONE;
    PyObject *out = PyTuple_New(NCONN);
    if (!out) return NULL;
    double d;
    for (int i = 0; i < NCONN; i++) {
        PyObject *v = NULL;
        if (col[i] < 0) {
            if (i == F_TS) goto not_plain;
            v = Py_None; Py_INCREF(v);
        } else if (i == F_TS || i == F_DUR) {
            if (i == F_DUR && IS_UNSET(i)) { v = Py_None; Py_INCREF(v); }
            else if (!plain_double(FIELD(i), FLEN(i), &d)) goto not_plain;
            else if (!(v = PyFloat_FromDouble(d))) goto fail;
        } else if (i == F_OP || i == F_RP || i == F_OPK || i == F_RPK || i == F_OB || i == F_RB || i == F_MISSED ||
                   i == F_IPP) {
            int may_be_unset = i == F_OB || i == F_RB || i == F_MISSED || i == F_IPP;
            if (may_be_unset && IS_UNSET(i)) { v = Py_None; Py_INCREF(v); }
            else if (!(v = plain_int(FIELD(i), FLEN(i)))) { if (PyErr_Occurred()) goto fail; goto not_plain; }
        } else {  /* text: the address columns as they are, the others None when unset */
            if (i != F_OH && i != F_RH && IS_UNSET(i)) { v = Py_None; Py_INCREF(v); }
            else if (!(v = ascii_str(FIELD(i), FLEN(i)))) goto fail;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
not_plain:
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(out);
    return NULL;
#undef FIELD
#undef FLEN
#undef IS_UNSET
}

/* ------------------------------------------------------------------ conn_record */

/* ctx = (template, keys, recent, recent_limit, side_tables, l7_cache, window_append, tail_append, side_template)
 *   keys: the record keys it sets, in this order: flow_id community_id ts ts_end proto src_ip src_port dst_ip
 *         dst_port src_mac bytes_out bytes_in pkts_out pkts_in l7 payload framing tls zeek_uid conn_state history
 *         missed_bytes, then the payload side keys n entropy class observable out in, then the strings
 *         "tcp" "udp" "icmp" "icmp6" "unknown"
 */
enum { K_FLOW_ID, K_CID, K_TS, K_TS_END, K_PROTO, K_SRC_IP, K_SRC_PORT, K_DST_IP, K_DST_PORT, K_SRC_MAC, K_BYTES_OUT,
       K_BYTES_IN, K_PKTS_OUT, K_PKTS_IN, K_L7, K_PAYLOAD, K_FRAMING, K_TLS, K_ZEEK_UID, K_CONN_STATE, K_HISTORY,
       K_MISSED, K_N, K_ENTROPY, K_CLASS, K_OBSERVABLE, K_OUT, K_IN, S_TCP, S_UDP, S_ICMP, S_ICMP6, S_UNKNOWN, NKEYS };

static int is_int(PyObject *o) { return PyLong_CheckExact(o); }

/* What conn_record computes of a plain conn tuple before it makes any object of the record:
 * the value of each record key it sets, by K_* index up to K_MISSED (payload, framing and tls are
 * made with the dict; see record_dict). ``owned`` marks the values made here (new references);
 * the others are borrowed from the tuple or the context. */
#define NVALS (K_MISSED + 1)
#define V_NOBS NVALS /* the lane's values beyond them: not_observable, which unset sizes extend, */
#define V_NAME (NVALS + 1) /* and dst_name, the name DNS gave the destination */
typedef struct {
    PyObject *val[NVALS + 2];
    unsigned owned;  /* bit k: val[k] is a new reference */
    int pnum;        /* 6, 17, 1 or 58 */
    int unset;       /* bits 1, 2, 4, 8: orig_bytes, resp_bytes, orig_pkts, resp_pkts were unset (0 in the record) */
} conn_values;

static void conn_values_clear(conn_values *v) {
    for (int k = 0; k <= V_NAME; k++)
        if (v->owned >> k & 1) Py_CLEAR(v->val[k]);
    v->owned = 0;
}

/* 1 and ``out`` filled when the tuple is the plain case (conn_record's checks); 0 when not (nothing
 * made, no error); -1 on an error. Nothing in the context changes (joiner_commit does that).
 * ``allow_unset``: unset sizes are plain too (0 in the record, noted in ``unset``; conn_record
 * leaves them to Python, which also extends not_observable, as the lane does). */
static int conn_values_of(PyObject *c, PyObject *ctx, conn_values *out, int allow_unset) {
    if (!PyTuple_Check(c) || !PyTuple_Check(ctx)) {
        PyErr_SetString(PyExc_TypeError, "conn_record(c: tuple, ctx: tuple)");
        return -1;
    }
    if (PyTuple_GET_SIZE(c) != NCONN || PyTuple_GET_SIZE(ctx) != 9) return 0;
    PyObject *template = PyTuple_GET_ITEM(ctx, 0), *keys = PyTuple_GET_ITEM(ctx, 1), *recent = PyTuple_GET_ITEM(ctx, 2);
    long recent_limit = PyLong_AsLong(PyTuple_GET_ITEM(ctx, 3));
    PyObject *sides = PyTuple_GET_ITEM(ctx, 4), *l7_cache = PyTuple_GET_ITEM(ctx, 5);
    PyObject *side_template = PyTuple_GET_ITEM(ctx, 8);
    if (PyErr_Occurred()) return -1;
    if (!PyDict_Check(template) || !PyTuple_Check(keys) || PyTuple_GET_SIZE(keys) != NKEYS || !PyAnySet_Check(recent) ||
        !PyTuple_Check(sides) || !PyDict_Check(l7_cache) || !PyDict_Check(side_template))
        return 0;
#define C(i) PyTuple_GET_ITEM(c, i)
#define KEY(i) PyTuple_GET_ITEM(keys, i)
    PyObject *ts = C(F_TS), *uid = C(F_UID), *oh = C(F_OH), *op = C(F_OP), *rh = C(F_RH), *rp = C(F_RP);
    PyObject *proto = C(F_PROTO), *svc = C(F_SVC), *dur = C(F_DUR), *ob = C(F_OB), *rb = C(F_RB);
    PyObject *opk = C(F_OPK), *rpk = C(F_RPK), *cid = C(F_CID);
    if (!PyFloat_CheckExact(ts) || !isfinite(PyFloat_AS_DOUBLE(ts))) return 0;
    if (!PyUnicode_CheckExact(uid) || PyUnicode_GET_LENGTH(uid) == 0) return 0;
    PyObject *sizes[4] = {ob, rb, opk, rpk};
    int unset = 0;
    for (int i = 0; i < 4; i++) {
        if (sizes[i] == Py_None && allow_unset) unset |= 1 << i;
        else if (!is_int(sizes[i])) return 0;  /* conn_record: unset sizes are flagged in Python */
    }
    if ((op != Py_None && !is_int(op)) || (rp != Py_None && !is_int(rp))) return 0;
    if (dur != Py_None && !PyFloat_CheckExact(dur)) return 0;
    if (cid != Py_None && !PyUnicode_CheckExact(cid)) return 0;
    if (!PyUnicode_CheckExact(proto) || !PyUnicode_CheckExact(oh) || !PyUnicode_CheckExact(rh)) return 0;
    long sport = op == Py_None ? 0 : PyLong_AsLong(op), dport = rp == Py_None ? 0 : PyLong_AsLong(rp);
    if (PyErr_Occurred()) { PyErr_Clear(); return 0; }
    int pnum;
    PyObject *proto_out;
    if (PyUnicode_Compare(proto, KEY(S_TCP)) == 0) { pnum = 6; proto_out = KEY(S_TCP); }
    else if (PyUnicode_Compare(proto, KEY(S_UDP)) == 0) { pnum = 17; proto_out = KEY(S_UDP); }
    else if (PyUnicode_Compare(proto, KEY(S_ICMP)) == 0) {
        int v6 = PyUnicode_FindChar(oh, ':', 0, PyUnicode_GET_LENGTH(oh), 1) >= 0;
        pnum = v6 ? 58 : 1;
        proto_out = v6 ? KEY(S_ICMP6) : KEY(S_ICMP);
    } else return 0;
    if (PyErr_Occurred()) return -1;
    int contains = PySet_Contains(recent, uid);
    if (contains != 0 || PySet_GET_SIZE(recent) >= recent_limit)
        return contains < 0 ? -1 : 0;  /* a repeated uid, or the window is due to be cleared */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(sides); i++) {
        PyObject *table = PyTuple_GET_ITEM(sides, i);
        if (!PyDict_Check(table)) return 0;
        int has = PyDict_Contains(table, uid);
        if (has) return has < 0 ? -1 : 0;
    }
    PyObject *pair = PyDict_GetItemWithError(l7_cache, svc);
    if (!pair) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) return 0;
    PyObject *l7 = PyTuple_GET_ITEM(pair, pnum == 17);
    double t = PyFloat_AS_DOUBLE(ts), d = dur == Py_None ? 0.0 : PyFloat_AS_DOUBLE(dur);
    int has_dur = dur != Py_None && d > 0.0 && d < 1e12;

    PyObject *cid_out;
    if (cid != Py_None && PyUnicode_GET_LENGTH(cid) > 0) {
        cid_out = cid;
        Py_INCREF(cid_out);
        if (pnum == 1 || pnum == 58) { sport = dport = 0; }
    } else {
        uint8_t a[16], b[16], tail[6];
        int alen = pack_addr(oh, a), blen = pack_addr(rh, b);
        if (!alen || !blen) return 0;  /* the Python path reports the bad address */
        if (pnum == 6 || pnum == 17) {
            if (sport < 0 || sport > 65535 || dport < 0 || dport > 65535) return 0;
            int cmp = bytes_cmp(a, alen, b, blen);
            long p1 = sport, p2 = dport;
            tail[0] = (uint8_t)pnum; tail[1] = 0;
            if (cmp < 0 || (cmp == 0 && sport <= dport)) {
                tail[2] = (uint8_t)(p1 >> 8); tail[3] = (uint8_t)p1; tail[4] = (uint8_t)(p2 >> 8); tail[5] = (uint8_t)p2;
                cid_out = community_text(a, alen, b, blen, tail, 6);
            } else {
                tail[2] = (uint8_t)(p2 >> 8); tail[3] = (uint8_t)p2; tail[4] = (uint8_t)(p1 >> 8); tail[5] = (uint8_t)p1;
                cid_out = community_text(b, blen, a, alen, tail, 6);
            }
        } else {
            if (sport < 0 || dport < 0) return 0;
            long s1 = sport, s2 = dport;
            long other = icmp_pair(pnum == 58, s1);
            const uint8_t *x = a, *y = b;
            int xl = alen, yl = blen;
            if (other >= 0) {
                s2 = other;
                int cmp = bytes_cmp(a, alen, b, blen);
                if (cmp > 0 || (cmp == 0 && s1 > s2)) {
                    x = b; xl = blen; y = a; yl = alen;
                    long tmp = s1; s1 = s2; s2 = tmp;
                }
            }
            tail[0] = (uint8_t)pnum; tail[1] = 0;
            tail[2] = (uint8_t)((s1 & 0xFFFF) >> 8); tail[3] = (uint8_t)s1;
            tail[4] = (uint8_t)((s2 & 0xFFFF) >> 8); tail[5] = (uint8_t)s2;
            cid_out = community_text(x, xl, y, yl, tail, 6);
        }
        if (!cid_out) return -1;
        if (pnum == 1 || pnum == 58) { sport = dport = 0; }
    }
    conn_values *v = out;
    memset(v, 0, sizeof *v);
    v->pnum = pnum;
    v->unset = unset;
    v->val[K_CID] = cid_out;
    v->owned = 1u << K_CID;
#define OWN(k, expr) (v->owned |= 1u << (k), v->val[k] = (expr))
    if (has_dur) OWN(K_TS_END, PyFloat_FromDouble(t + d)); else v->val[K_TS_END] = ts;
    if (op == Py_None || pnum == 1 || pnum == 58) OWN(K_SRC_PORT, PyLong_FromLong(sport)); else v->val[K_SRC_PORT] = op;
    if (rp == Py_None || pnum == 1 || pnum == 58) OWN(K_DST_PORT, PyLong_FromLong(dport)); else v->val[K_DST_PORT] = rp;
#undef OWN
    if (!v->val[K_TS_END] || !v->val[K_SRC_PORT] || !v->val[K_DST_PORT]) { conn_values_clear(v); return -1; }
    v->val[K_FLOW_ID] = uid; v->val[K_TS] = ts; v->val[K_PROTO] = proto_out; v->val[K_SRC_IP] = oh;
    v->val[K_DST_IP] = rh; v->val[K_SRC_MAC] = C(F_MAC); v->val[K_BYTES_OUT] = ob; v->val[K_BYTES_IN] = rb;
    v->val[K_PKTS_OUT] = opk; v->val[K_PKTS_IN] = rpk; v->val[K_L7] = l7; v->val[K_ZEEK_UID] = uid;
    v->val[K_CONN_STATE] = C(F_ST); v->val[K_HISTORY] = C(F_HIST); v->val[K_MISSED] = C(F_MISSED);
    v->val[K_PAYLOAD] = v->val[K_FRAMING] = v->val[K_TLS] = v->val[V_NOBS] = v->val[V_NAME] = NULL;
    static const int size_keys[4] = {K_BYTES_OUT, K_BYTES_IN, K_PKTS_OUT, K_PKTS_IN};
    for (int i = 0; i < 4; i++)
        if (unset >> i & 1) {
            v->owned |= 1u << size_keys[i];
            if (!(v->val[size_keys[i]] = PyLong_FromLong(0))) { conn_values_clear(v); return -1; }
        }
    return 1;
#undef C
#undef KEY
}

/* What making a plain record changes in the joiner (Joiner._remember, and the segment's window and tail
 * when tracked): after the record is made. 0 on an error. */
static int joiner_commit(PyObject *ctx, PyObject *uid) {
    PyObject *recent = PyTuple_GET_ITEM(ctx, 2), *window_append = PyTuple_GET_ITEM(ctx, 6);
    PyObject *tail_append = PyTuple_GET_ITEM(ctx, 7);
    if (PySet_Add(recent, uid) < 0) return 0;
    if (window_append != Py_None) {
        Py_hash_t h = PyObject_Hash(uid);
        PyObject *hv = h == -1 ? NULL : PyLong_FromSsize_t(h);
        PyObject *r = hv ? PyObject_CallOneArg(window_append, hv) : NULL;
        Py_XDECREF(hv);
        if (!r) return 0;
        Py_DECREF(r);
    }
    if (tail_append != Py_None) {
        PyObject *r = PyObject_CallOneArg(tail_append, uid);
        if (!r) return 0;
        Py_DECREF(r);
    }
    return 1;
}

/* The record dict of plain values: the context's template with the values set. */
static PyObject *record_dict(conn_values *v, PyObject *ctx) {
    PyObject *template = PyTuple_GET_ITEM(ctx, 0), *keys = PyTuple_GET_ITEM(ctx, 1);
    PyObject *side_template = PyTuple_GET_ITEM(ctx, 8);
    PyObject *rec = PyDict_Copy(template);
    PyObject *payload = PyDict_New(), *out_side = PyDict_Copy(side_template), *in_side = PyDict_Copy(side_template);
    PyObject *framing = PyList_New(0);
    int ok = rec && payload && out_side && in_side && framing &&
             PyDict_SetItem(payload, PyTuple_GET_ITEM(keys, K_OUT), out_side) == 0 &&
             PyDict_SetItem(payload, PyTuple_GET_ITEM(keys, K_IN), in_side) == 0;
    v->val[K_PAYLOAD] = payload; v->val[K_FRAMING] = framing; v->val[K_TLS] = Py_None;
    for (int k = 0; ok && k < NVALS; k++)
        ok = PyDict_SetItem(rec, PyTuple_GET_ITEM(keys, k), v->val[k]) == 0;
    v->val[K_PAYLOAD] = v->val[K_FRAMING] = v->val[K_TLS] = NULL;
    Py_XDECREF(payload); Py_XDECREF(out_side); Py_XDECREF(in_side); Py_XDECREF(framing);
    if (!ok) Py_CLEAR(rec);
    return rec;
}

/* The record of one conn tuple (see conn_record), or None. */
static PyObject *make_record(PyObject *c, PyObject *ctx) {
    conn_values v;
    int plain = conn_values_of(c, ctx, &v, 0);
    if (plain <= 0) {
        if (plain < 0) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *rec = record_dict(&v, ctx);
    if (rec && !joiner_commit(ctx, v.val[K_FLOW_ID])) Py_CLEAR(rec);
    conn_values_clear(&v);
    return rec;
}

/* ------------------------------------------------------------------ tsv_row */

/* plan: one entry per column: (kind, route, then, careful, none_cell)
 *   kind 0 time/interval, 1 double, 2 count/int/port, 3 bool, 4 text, 5 anything else
 *   route: a tuple of keys from the record (nested dicts), or a callable getter(record)
 *   then: None or a callable applied to the value
 *   careful: a callable value -> cell text, the Python definition of the cell (sinks.zeek._cell)
 *   none_cell: the cell when the value before ``then`` is None (worked out once, as the compiled row does)
 * The row is written into one buffer; a cell from ``careful`` that is not ASCII sends the whole row
 * through str.join instead.
 */
typedef struct {
    char *p;
    size_t n, cap;
    char local[2048];
} outbuf;

static int ob_reserve(outbuf *b, size_t more) {
    if (b->n + more <= b->cap) return 1;
    size_t cap = b->cap * 2;
    while (cap < b->n + more) cap *= 2;
    char *q = PyMem_Malloc(cap);
    if (!q) { PyErr_NoMemory(); return 0; }
    memcpy(q, b->p, b->n);
    if (b->p != b->local) PyMem_Free(b->p);
    b->p = q; b->cap = cap;
    return 1;
}

static int ob_put(outbuf *b, const char *s, size_t n) {
    if (!ob_reserve(b, n)) return 0;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 1;
}

/* the decimal digits of x into out (at least 21 bytes); returns how many */
static size_t u64_text(char *out, uint64_t x) {
    char tmp[24];
    size_t n = 0;
    do { tmp[n++] = (char)('0' + x % 10); x /= 10; } while (x);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* |v| rounded to whole millionths, ties to even, from the double's exact value: 1 and *q when
 * |v| < 2**53 and the result fits 64 bits (what Python's "%.6f" and round(v, 6) compute with dtoa). */
static int micros(double v, uint64_t *q_out) {
    int e;
    double m = frexp(fabs(v), &e);  /* |v| = m * 2**e, 0.5 <= m < 1 */
    if (v == 0.0) { *q_out = 0; return 1; }
    if (e > 53 || e <= -900) return 0;
    uint64_t mant = (uint64_t)ldexp(m, 53);  /* exact: |v| = mant * 2**(e-53) */
    int shift = 53 - e;  /* >= 0 */
    unsigned __int128 x = (unsigned __int128)mant * 1000000u, q;
    if (shift == 0) q = x;
    else if (shift > 100) q = 0;  /* below 2**-47: rounds to 0 */
    else {
        q = x >> shift;
        unsigned __int128 rem = x - (q << shift), half = (unsigned __int128)1 << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
    }
    if (q >> 64) return 0;
    *q_out = (uint64_t)q;
    return 1;
}

/* |v| * 10**7 rounded to an integer, from the double's exact value, when |v| < 2**33: 1, the result and
 * whether the dropped part was exactly one half; 0 outside that range. */
static int tenth_micros(double v, uint64_t *q_out, int *half_out) {
    int e;
    double m = frexp(fabs(v), &e);
    if (v == 0.0 || e > 33 || e < -60) return 0;
    uint64_t mant = (uint64_t)ldexp(m, 53);
    int shift = 53 - e;  /* 20..113 */
    unsigned __int128 x = (unsigned __int128)mant * 10000000u;
    if (shift >= 120) return 0;
    unsigned __int128 q = x >> shift, rem = x - (q << shift), half = (unsigned __int128)1 << (shift - 1);
    *half_out = rem == half;
    if (rem > half || (rem == half && (q & 1))) q++;
    *q_out = (uint64_t)q;
    return 1;
}

/* repr(v) for 2**29 <= |v| < 2**33 (times from 1987 to 2242), without dtoa: 0 outside it, or for an exact
 * tie at the seventh decimal. Why it is repr: a double there is less than 1e-6 and at least 1.19e-7 apart
 * from its neighbours, so when the nearest six-decimal number reads back as v, no number with fewer
 * decimals can (it would lie within one spacing of that one, closer than 1e-6), and it is the nearest
 * of its length; when it does not, no number of six decimals or fewer can, and the nearest of seven
 * decimals lies within half a spacing, so it reads back as v: the shortest, and the nearest of its
 * length, which is what repr writes (tests/test_lane.py holds the two together). */
static size_t time_repr(char *out, double v) {
    double a = fabs(v);
    if (!(a >= 536870912.0 && a < 8589934592.0)) return 0;
    uint64_t q;
    int half;
    size_t n = 0;
    if (v < 0) out[n++] = '-';
    if (micros(a, &q) && (double)q / 1e6 == a) {
        n += u64_text(out + n, q / 1000000u);
        out[n++] = '.';
        uint64_t fp = q % 1000000u;
        int digits = 6;
        while (digits > 1 && fp % 10 == 0) { fp /= 10; digits--; }
        for (int i = digits - 1; i >= 0; i--) { out[n + (size_t)i] = (char)('0' + fp % 10); fp /= 10; }
        return n + (size_t)digits;
    }
    if (!tenth_micros(a, &q, &half) || half) return 0;
    n += u64_text(out + n, q / 10000000u);
    out[n++] = '.';
    uint64_t fp = q % 10000000u;
    for (int i = 6; i >= 0; i--) { out[n + (size_t)i] = (char)('0' + fp % 10); fp /= 10; }
    return n + 7;
}

/* Python's round(v, 6) for a finite double: the millionths as a decimal, read back correctly
 * rounded (q / 1e6 is one correctly rounded IEEE division of exact operands when q < 2**53). */
static int round6(double v, double *out) {
    uint64_t q;
    if (!micros(v, &q) || q >= ((uint64_t)1 << 53)) return 0;
    *out = copysign((double)q / 1e6, v);
    return 1;
}

/* "%.6f" of a finite double, exactly as Python prints it (correctly rounded, ties to even); with
 * ``strip`` trailing zeros go and "x." becomes "x.0" (sinks.zeek._fmt_double). Integer arithmetic on
 * the double's exact value when it is below 2**53; PyOS_double_to_string otherwise. */
static int ob_fixed6(outbuf *b, double v, int strip) {
    char tmp[64], *text = tmp, *owned = NULL;
    size_t n = 0;
    uint64_t q;
    if (micros(v, &q)) {
        uint64_t ip = q / 1000000u, fp = q % 1000000u;
        if (signbit(v)) tmp[n++] = '-';
        n += u64_text(tmp + n, ip);
        tmp[n++] = '.';
        for (int i = 5; i >= 0; i--) { tmp[n + (size_t)i] = (char)('0' + fp % 10); fp /= 10; }
        n += 6;
    } else {
        if (!(owned = text = PyOS_double_to_string(v, 'f', 6, 0, NULL))) return 0;
        n = strlen(text);
    }
    if (strip) {  /* 'f' with six decimals: at least one zero goes before a '.' can end it */
        while (text[n - 1] == '0') n--;
        if (text[n - 1] == '.') text[n++] = '0';
    }
    int ok = ob_put(b, text, n);
    PyMem_Free(owned);
    return ok;
}

static int plain_text(PyObject *v) {
    if (!PyUnicode_IS_ASCII(v)) return 0;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(v);
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (n == 0 || (n == 1 && s[0] == '-') || (n == 7 && memcmp(s, "(empty)", 7) == 0)) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\') return 0;
    return 1;
}

/* Append an ASCII str; 0 with no error when it is not ASCII (the caller takes the slow row). */
static int ob_str(outbuf *b, PyObject *s, int *not_ascii) {
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "tsv_row: a cell is not text");
        return 0;
    }
    if (!PyUnicode_IS_ASCII(s)) { *not_ascii = 1; return 0; }
    return ob_put(b, (const char *)PyUnicode_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
}

/* One cell: formatted here when the value is ordinary, else careful(v). */
static int ob_cell(outbuf *b, int kind, PyObject *v, PyObject *careful, int *not_ascii) {
    if (v == Py_None && kind != 5) return ob_put(b, "-", 1);
    switch (kind) {
    case 0:
    case 1: {
        double d;
        if (PyFloat_CheckExact(v)) d = PyFloat_AS_DOUBLE(v);
        else if (PyLong_CheckExact(v)) {
            d = PyLong_AsDouble(v);
            if (d == -1.0 && PyErr_Occurred()) { PyErr_Clear(); break; }
        } else break;
        if (!isfinite(d)) break;
        return ob_fixed6(b, d, kind == 1);
    }
    case 2:
        if (PyLong_CheckExact(v)) {
            int overflow;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); break; }
            char tmp[32];
            size_t n = 0;
            if (x < 0) tmp[n++] = '-';
            n += u64_text(tmp + n, x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
            return ob_put(b, tmp, n);
        }
        break;
    case 3: {
        int t = PyObject_IsTrue(v);
        if (t < 0) return 0;
        return ob_put(b, t ? "T" : "F", 1);
    }
    case 4:
        if (PyUnicode_CheckExact(v) && plain_text(v))
            return ob_put(b, (const char *)PyUnicode_DATA(v), (size_t)PyUnicode_GET_LENGTH(v));
        break;
    case 5:
        if ((PyList_CheckExact(v) && PyList_GET_SIZE(v) == 0) || (PyTuple_CheckExact(v) && PyTuple_GET_SIZE(v) == 0))
            return ob_put(b, "(empty)", 7);
        break;
    }
    PyObject *text = PyObject_CallOneArg(careful, v);
    if (!text) return 0;
    int ok = ob_str(b, text, not_ascii);
    Py_DECREF(text);
    return ok;
}

/* The dict a route's last key is looked up in, remembered between the columns of one row:
 * columns under one prefix (tls.*, payload.out.*) come one after another. */
typedef struct {
    PyObject *route;   /* the route whose prefix was walked last (borrowed from the plan) */
    PyObject *holder;  /* what its prefix led to (borrowed from the record) */
} prefix_memo;

static int same_prefix(PyObject *a, PyObject *b) {
    Py_ssize_t n = PyTuple_GET_SIZE(a);
    if (n != PyTuple_GET_SIZE(b)) return 0;
    for (Py_ssize_t j = 0; j < n - 1; j++)
        if (PyTuple_GET_ITEM(a, j) != PyTuple_GET_ITEM(b, j)) return 0;  /* the plan's keys are interned */
    return 1;
}

/* From ``holder``, the keys route[from:to] one after another (a step that is not a dict reads None);
 * a borrowed reference, NULL on an error. */
static PyObject *walk(PyObject *holder, PyObject *route, Py_ssize_t from, Py_ssize_t to) {
    for (Py_ssize_t j = from; j < to; j++) {
        if (!PyDict_Check(holder)) return Py_None;
        PyObject *got = PyDict_GetItemWithError(holder, PyTuple_GET_ITEM(route, j));
        if (!got) {
            if (PyErr_Occurred()) return NULL;
            got = Py_None;
        }
        holder = got;
    }
    return holder;
}

/* The value of one column before its cell is made (a new reference), and whether it was None before ``then``. */
static PyObject *column_value(PyObject *rec, PyObject *route, int *was_none, prefix_memo *memo) {
    if (!PyTuple_Check(route)) {
        PyObject *v = PyObject_CallOneArg(route, rec);
        *was_none = v == Py_None;
        return v;
    }
    PyObject *holder = rec;
    Py_ssize_t depth = PyTuple_GET_SIZE(route), from = 0;
    if (memo && depth > 1) {
        if (!memo->route || !same_prefix(memo->route, route)) {
            if (!(memo->holder = walk(rec, route, 0, depth - 1))) return NULL;
            memo->route = route;
        }
        holder = memo->holder;
        from = depth - 1;
    }
    if (!(holder = walk(holder, route, from, depth))) return NULL;
    *was_none = holder == Py_None;
    Py_INCREF(holder);
    return holder;
}

/* What column ``entry`` shows of ``rec``: the value after the getter's ``then`` (*none_cell = 0), or
 * the plan's ready cell for a value that was None before ``then`` (*none_cell = 1); a new reference. */
static PyObject *column_input(PyObject *entry, PyObject *rec, prefix_memo *memo, int *none_cell) {
    PyObject *then = PyTuple_GET_ITEM(entry, 2);
    int was_none;
    PyObject *v = column_value(rec, PyTuple_GET_ITEM(entry, 1), &was_none, memo);
    *none_cell = v && then != Py_None && was_none;
    if (!v || then == Py_None) return v;
    if (*none_cell) {
        Py_DECREF(v);
        PyObject *cell = PyTuple_GET_ITEM(entry, 4);
        Py_INCREF(cell);
        return cell;
    }
    PyObject *w = PyObject_CallOneArg(then, v);
    Py_DECREF(v);
    return w;
}

/* The row as str, or as UTF-8 bytes (``as_bytes``: for a file written in binary underneath). */
static PyObject *row_text(PyObject *plan, PyObject *rec, int as_bytes);

static PyObject *row_call(PyObject *const *args, Py_ssize_t nargs, int as_bytes) {
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "tsv_row(plan: tuple, record: dict)");
        return NULL;
    }
    return row_text(args[0], args[1], as_bytes);
}

static PyObject *tsv_row(PyObject *self, PyObject *const *args, Py_ssize_t nargs) { return row_call(args, nargs, 0); }

static PyObject *tsv_row_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return row_call(args, nargs, 1);
}

static PyObject *row_text(PyObject *plan, PyObject *rec, int as_bytes) {
    Py_ssize_t ncol = PyTuple_GET_SIZE(plan);
    outbuf b;
    b.p = b.local; b.n = 0; b.cap = sizeof b.local;
    int not_ascii = 0;
    PyObject *result = NULL;
    prefix_memo memo = {NULL, NULL};
    for (Py_ssize_t i = 0; i < ncol; i++) {
        PyObject *entry = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 5) {
            PyErr_SetString(PyExc_ValueError, "tsv_row: a plan entry is (kind, route, then, careful, none_cell)");
            goto done;
        }
        int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
        if (i && !ob_put(&b, "\t", 1)) goto done;
        int none_cell, ok;
        PyObject *v = column_input(entry, rec, &memo, &none_cell);
        if (!v) goto done;
        ok = none_cell ? ob_str(&b, v, &not_ascii) : ob_cell(&b, kind, v, PyTuple_GET_ITEM(entry, 3), &not_ascii);
        Py_DECREF(v);
        if (!ok) goto done;
    }
    if (!ob_put(&b, "\n", 1)) goto done;
    if (as_bytes) result = PyBytes_FromStringAndSize(b.p, (Py_ssize_t)b.n);
    else {
        result = PyUnicode_New((Py_ssize_t)b.n, 127);
        if (result) memcpy(PyUnicode_DATA(result), b.p, b.n);
    }
done:
    if (b.p != b.local) PyMem_Free(b.p);
    if (!result && not_ascii && !PyErr_Occurred()) {
        /* a cell with non-ASCII text: the row as str.join of the careful cells */
        PyObject *cells = PyList_New(ncol);
        if (!cells) return NULL;
        for (Py_ssize_t i = 0; i < ncol; i++) {
            PyObject *entry = PyTuple_GET_ITEM(plan, i), *text;
            int none_cell;
            PyObject *v = column_input(entry, rec, NULL, &none_cell);
            if (!v) { Py_DECREF(cells); return NULL; }
            if (none_cell) text = v;
            else {
                text = PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 3), v);
                Py_DECREF(v);
            }
            if (!text) { Py_DECREF(cells); return NULL; }
            PyList_SET_ITEM(cells, i, text);
        }
        PyObject *tab = PyUnicode_FromString("\t");
        PyObject *joined = tab ? PyUnicode_Join(tab, cells) : NULL;
        Py_XDECREF(tab);
        Py_DECREF(cells);
        if (!joined) return NULL;
        PyObject *nl = PyUnicode_FromString("\n");
        result = nl ? PyUnicode_Concat(joined, nl) : NULL;
        Py_XDECREF(nl);
        Py_DECREF(joined);
        if (result && as_bytes) {
            PyObject *encoded = PyUnicode_AsUTF8String(result);
            Py_DECREF(result);
            result = encoded;
        }
    }
    return result;
}

/* ------------------------------------------------------------------ json_conn */

/* Zeek's ISO 8601 time, 2018-03-24T17:15:20.615923Z, as jsonlog.json_time's fast path reads it: the
 * whole seconds from its memo ``seconds`` (a miss is left to Python, which fills it), the fraction
 * cut to six digits; float("<secs>.<ffffff>") is the one correctly rounded division below. */
static PyObject *iso_time(PyObject *v, PyObject *seconds) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (!PyUnicode_IS_ASCII(v) || !PyDict_Check(seconds) || n <= 21 || n > 64) return NULL;
    const char *t = (const char *)PyUnicode_DATA(v);
    if (t[19] != '.' || t[n - 1] != 'Z' || t[4] != '-' || t[10] != 'T') return NULL;
    uint64_t frac = 0;
    for (Py_ssize_t i = 20; i < n - 1; i++) {
        if (t[i] < '0' || t[i] > '9') return NULL;
        if (i < 26) frac = frac * 10 + (uint64_t)(t[i] - '0');
    }
    for (Py_ssize_t i = n - 1; i < 26; i++) frac *= 10;  /* fewer than six digits: zeros after them */
    /* the last whole second looked up (lines come in time order): the memo is a function of its key */
    static char last_key[19];
    static long long last_secs = -1;
    long long secs;
    if (last_secs >= 0 && memcmp(t, last_key, 19) == 0) secs = last_secs;
    else {
        PyObject *key = PyUnicode_Substring(v, 0, 19);
        if (!key) return NULL;
        PyObject *secs_o = PyDict_GetItemWithError(seconds, key);
        Py_DECREF(key);
        if (!secs_o || !PyLong_CheckExact(secs_o)) { PyErr_Clear(); return NULL; }
        secs = PyLong_AsLongLong(secs_o);
        if (secs < 0 || secs > 9000000000LL) { PyErr_Clear(); return NULL; }
        memcpy(last_key, t, 19);
        last_secs = secs;
    }
    return PyFloat_FromDouble((double)((uint64_t)secs * 1000000u + frac) / 1e6);
}

/* A Zeek time or interval from JSON as reader._conn_json's plain case reads it (jsonlog.json_time /
 * json_interval for a number): a new float, None, or NULL without an error when not plain. */
static PyObject *json_seconds(PyObject *v, int is_time, PyObject *seconds) {
    if (v == Py_None || PyBool_Check(v)) Py_RETURN_NONE;
    double f, r;
    if (is_time && PyUnicode_CheckExact(v)) return iso_time(v, seconds);
    if (PyFloat_CheckExact(v)) f = PyFloat_AS_DOUBLE(v);
    else if (PyLong_CheckExact(v)) {
        f = PyLong_AsDouble(v);
        if (f == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return NULL; }
    } else return NULL;
    if (!isfinite(f)) return NULL;
    if (is_time && fabs(f) >= 1e11) f = f / 1000.0;  /* JSON::TS_MILLIS */
    if (!round6(f, &r)) return NULL;
    return PyFloat_FromDouble(r);
}

/* The CONN_FIELDS tuple of a flat JSON conn record's values (v: each field's value, Py_None when absent;
 * borrowed) when every value has its plain type and the line is usable; else None (the Python path
 * decides). */
static PyObject *json_conn_of(PyObject *const *v, PyObject *seconds) {
    for (int i = 0; i < NCONN; i++) {
        PyObject *x = v[i];
        switch (i) {
        case F_TS: case F_DUR: break;
        case F_OP: case F_RP:
            if (!PyLong_CheckExact(x)) Py_RETURN_NONE;
            break;
        case F_OB: case F_RB: case F_MISSED: case F_OPK: case F_RPK: case F_IPP:
            if (x != Py_None && !PyLong_CheckExact(x)) Py_RETURN_NONE;
            break;
        case F_UID: case F_OH: case F_RH:
            if (!PyUnicode_CheckExact(x)) Py_RETURN_NONE;
            break;
        default:
            if (x != Py_None && !PyUnicode_CheckExact(x)) Py_RETURN_NONE;
        }
    }
    if (PyUnicode_GET_LENGTH(v[F_OH]) == 0 || PyUnicode_GET_LENGTH(v[F_RH]) == 0) Py_RETURN_NONE;
    PyObject *ts = json_seconds(v[F_TS], 1, seconds);
    if (!ts) { if (PyErr_Occurred()) return NULL; Py_RETURN_NONE; }
    if (ts == Py_None) { Py_DECREF(ts); Py_RETURN_NONE; }  /* no time: the Python path reports it */
    PyObject *dur = json_seconds(v[F_DUR], 0, NULL);
    if (!dur) { Py_DECREF(ts); if (PyErr_Occurred()) return NULL; Py_RETURN_NONE; }
    PyObject *out = PyTuple_New(NCONN);
    if (!out) { Py_DECREF(ts); Py_DECREF(dur); return NULL; }
    for (int i = 0; i < NCONN; i++) {
        PyObject *x = i == F_TS ? ts : i == F_DUR ? dur : (Py_INCREF(v[i]), v[i]);
        PyTuple_SET_ITEM(out, i, x);
    }
    return out;
}

/* json_conn(obj, names, seconds): json_conn_of for a parsed JSON object (names: CONN_FIELDS' names;
 * seconds: jsonlog's memo of ISO whole seconds). */
static PyObject *json_conn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != NCONN) {
        PyErr_SetString(PyExc_TypeError, "json_conn(obj: dict, names: tuple of the conn field names, seconds: dict)");
        return NULL;
    }
    PyObject *obj = args[0], *names = args[1], *v[NCONN];
    for (int i = 0; i < NCONN; i++) {
        v[i] = PyDict_GetItemWithError(obj, PyTuple_GET_ITEM(names, i));
        if (!v[i]) {
            if (PyErr_Occurred()) return NULL;
            v[i] = Py_None;
        }
    }
    return json_conn_of(v, args[2]);
}

/* ------------------------------------------------------------------ json_line */

static int arity_ok(Py_ssize_t nargs, Py_ssize_t want, const char *usage);

/* A JSON conn line read without a JSON parser, for the plain case: one flat object on one ASCII line
 * whose strings have no escapes, whose numbers are JSON numbers (integers of at most 18 digits, other
 * numbers finite), and whose arrays hold such strings; no nested objects (read_json flattens some). Any
 * other line, valid or not, is left to read_json, which parses it, reports it or flattens it. */

static const char *json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* after the opening quote: the end of a string without escapes or control characters (at its closing quote) */
static const char *json_plain_string(const char *p, const char *end) {
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p;
        if (c == '\\' || c < 0x20) return NULL;
        p++;
    }
    return NULL;
}

/* a JSON number from p: its end (NULL if not one); *is_int when it has no fraction or exponent */
static const char *json_number(const char *p, const char *end, int *is_int) {
    const char *q = p;
    if (q < end && *q == '-') q++;
    if (q >= end) return NULL;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') { while (q < end && *q >= '0' && *q <= '9') q++; }
    else return NULL;
    *is_int = 1;
    if (q < end && *q == '.') {
        q++;
        if (q >= end || *q < '0' || *q > '9') return NULL;
        while (q < end && *q >= '0' && *q <= '9') q++;
        *is_int = 0;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-')) q++;
        if (q >= end || *q < '0' || *q > '9') return NULL;
        while (q < end && *q >= '0' && *q <= '9') q++;
        *is_int = 0;
    }
    return q;
}

/* One value from *pp, *pp moved past it: the value as a new reference when ``want``, else Py_None once
 * it is checked (a key json_conn does not read); NULL with *plain = 0 when the line is not the plain
 * case, NULL alone on an error. */
static PyObject *json_value(const char **pp, const char *end, int want, int *plain) {
    const char *p = *pp;
    if (p >= end) { *plain = 0; return NULL; }
    char c = *p;
    if (c == '"') {
        const char *q = json_plain_string(p + 1, end);
        if (!q) { *plain = 0; return NULL; }
        *pp = q + 1;
        return want ? ascii_str(p + 1, q - p - 1) : (Py_INCREF(Py_None), Py_None);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        int is_int;
        const char *q = json_number(p, end, &is_int);
        if (!q) { *plain = 0; return NULL; }
        *pp = q;
        if (!want) { Py_INCREF(Py_None); return Py_None; }
        Py_ssize_t n = q - p;
        if (is_int) {
            int neg = *p == '-';
            if (n - neg > 18) { *plain = 0; return NULL; }
            long long x = 0;
            for (const char *d = p + neg; d < q; d++) x = x * 10 + (*d - '0');
            return PyLong_FromLongLong(neg ? -x : x);
        }
        char buf[64];
        if (n >= (Py_ssize_t)sizeof buf) { *plain = 0; return NULL; }
        memcpy(buf, p, (size_t)n);
        buf[n] = 0;
        double d = strtod(buf, NULL);
        if (!isfinite(d)) { *plain = 0; return NULL; }
        return PyFloat_FromDouble(d);
    }
    static const struct { const char *word; size_t n; } words[] = {{"true", 4}, {"false", 5}, {"null", 4}};
    for (int i = 0; i < 3; i++) {
        if ((size_t)(end - p) >= words[i].n && memcmp(p, words[i].word, words[i].n) == 0) {
            *pp = p + words[i].n;
            PyObject *o = i == 0 ? Py_True : i == 1 ? Py_False : Py_None;
            Py_INCREF(o);
            return o;
        }
    }
    if (c == '[' && !want) {  /* an array of plain strings, checked (no conn field is an array) */
        p = json_ws(p + 1, end);
        if (p < end && *p == ']') { *pp = p + 1; Py_INCREF(Py_None); return Py_None; }
        for (;;) {
            if (p >= end || *p != '"') break;
            const char *q = json_plain_string(p + 1, end);
            if (!q) break;
            p = json_ws(q + 1, end);
            if (p < end && *p == ',') { p = json_ws(p + 1, end); continue; }
            if (p < end && *p == ']') { *pp = p + 1; Py_INCREF(Py_None); return Py_None; }
            break;
        }
    }
    *plain = 0;
    return NULL;
}

/* The conn field names by length (json_line's key lookup), for the names tuple last given. */
static PyObject *names_cached;
static signed char names_by_len[24][NCONN + 1];

static int cache_names(PyObject *names) {
    if (names == names_cached) return 1;
    memset(names_by_len, -1, sizeof names_by_len);
    int fill[24] = {0};
    for (int i = 0; i < NCONN; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name) || !PyUnicode_IS_ASCII(name) || PyUnicode_GET_LENGTH(name) >= 24) return 0;
        Py_ssize_t n = PyUnicode_GET_LENGTH(name);
        names_by_len[n][fill[n]++] = (signed char)i;
    }
    Py_INCREF(names);
    Py_XSETREF(names_cached, names);
    return 1;
}

static int conn_field(PyObject *names, const char *k, Py_ssize_t n) {
    if (n >= 24) return -1;
    for (const signed char *i = names_by_len[n]; *i >= 0; i++)
        if (memcmp(PyUnicode_DATA(PyTuple_GET_ITEM(names, *i)), k, (size_t)n) == 0) return *i;
    return -1;
}

/* The conn tuple of a plain JSON line (json_conn_of of its values), None when not plain; names as json_conn. */
static PyObject *json_line_conn(PyObject *line, PyObject *names, PyObject *seconds) {
    if (!PyUnicode_Check(line) || !PyTuple_Check(names) || PyTuple_GET_SIZE(names) != NCONN) {
        PyErr_SetString(PyExc_TypeError, "json_line(line: str, names: tuple of the conn field names, seconds: dict)");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(line) || !cache_names(names)) Py_RETURN_NONE;
    const char *p = (const char *)PyUnicode_DATA(line), *end = p + PyUnicode_GET_LENGTH(line);
    PyObject *v[NCONN] = {NULL};
    PyObject *out = NULL;
    int plain = 1;
    p = json_ws(p, end);
    if (p >= end || *p != '{') goto not_plain;
    p = json_ws(p + 1, end);
    if (p < end && *p == '}') p++;
    else for (;;) {
        if (p >= end || *p != '"') goto not_plain;
        const char *k = p + 1, *kend = json_plain_string(k, end);
        if (!kend) goto not_plain;
        p = json_ws(kend + 1, end);
        if (p >= end || *p != ':') goto not_plain;
        p = json_ws(p + 1, end);
        int field = conn_field(names, k, kend - k);
        PyObject *x = json_value(&p, end, field >= 0, &plain);
        if (!x) { if (!plain) goto not_plain; goto done; }
        if (field >= 0) Py_XSETREF(v[field], x);  /* a repeated key: the last one, as a dict keeps */
        else Py_DECREF(x);
        p = json_ws(p, end);
        if (p < end && *p == ',') { p = json_ws(p + 1, end); continue; }
        if (p < end && *p == '}') { p++; break; }
        goto not_plain;
    }
    if (json_ws(p, end) != end) goto not_plain;
    {
        PyObject *vals[NCONN];
        for (int i = 0; i < NCONN; i++) vals[i] = v[i] ? v[i] : Py_None;
        out = json_conn_of(vals, seconds);
    }
    goto done;
not_plain:
    out = Py_None;
    Py_INCREF(out);
done:
    for (int i = 0; i < NCONN; i++) Py_XDECREF(v[i]);
    return out;
}

static PyObject *json_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return arity_ok(nargs, 3, "json_line(line, names, seconds)") ? json_line_conn(args[0], args[1], args[2]) : NULL;
}

/* ------------------------------------------------------------------ chain_observe */

/* chain_observe(state, record, handle): ChainBuilder.observe's bookkeeping for a record whose
 * side is known and whose times and size have their plain types; True when done, None when the
 * Python observe must do it (nothing changed then). The evidence rules stay in Python (state's
 * ``kinds``, called once).
 * state = (who: dict, subjects: list, dests: dict, strong: frozenset, kinds, baseline,
 *          appends: (ts, ts_end, bytes_out, key, handle, flags) bound array.append methods, names)
 * names = ("app", "dst_port", "device", "src_ip", "dst_name", "tls", "sni", "dst_ip", "bytes_out",
 *          "l7", "ts", "ts_end", "dns") */
enum { N_APP, N_PORT, N_DEVICE, N_SRC_IP, N_DST_NAME, N_TLS, N_SNI, N_DST_IP, N_BYTES_OUT, N_L7, N_TS, N_TS_END,
       N_DNS, NNAMES };

static PyObject *call_append(PyObject *append, PyObject *v) {
    if (!v) return NULL;
    PyObject *r = PyObject_CallOneArg(append, v);
    Py_DECREF(v);
    return r;
}

static PyObject *chain_observe(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 8 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "chain_observe(state: tuple, record: dict, handle: int)");
        return NULL;
    }
    PyObject *st = args[0], *r = args[1], *handle = args[2];
    PyObject *who_d = PyTuple_GET_ITEM(st, 0), *subjects = PyTuple_GET_ITEM(st, 1), *dests = PyTuple_GET_ITEM(st, 2);
    PyObject *strong = PyTuple_GET_ITEM(st, 3), *kinds_fn = PyTuple_GET_ITEM(st, 4), *baseline = PyTuple_GET_ITEM(st, 5);
    PyObject *appends = PyTuple_GET_ITEM(st, 6), *names = PyTuple_GET_ITEM(st, 7);
    if (!PyDict_Check(who_d) || !PyList_Check(subjects) || !PyDict_Check(dests) || !PyAnySet_Check(strong) ||
        !PyTuple_Check(appends) || PyTuple_GET_SIZE(appends) != 6 || !PyTuple_Check(names) ||
        PyTuple_GET_SIZE(names) != NNAMES || !PyLong_CheckExact(handle))
        Py_RETURN_NONE;
    PyObject *v[NNAMES];
    for (int i = 0; i < N_DNS; i++) {
        if (i == N_SNI) { v[i] = NULL; continue; }
        v[i] = PyDict_GetItemWithError(r, PyTuple_GET_ITEM(names, i));
        if (!v[i] && PyErr_Occurred()) return NULL;
    }
    /* what the Python observe keeps aside (odd types) or finds missing: its own path */
    if (!v[N_TS] || !v[N_TS_END] || !PyFloat_CheckExact(v[N_TS]) || !PyFloat_CheckExact(v[N_TS_END])) Py_RETURN_NONE;
    PyObject *b_out = v[N_BYTES_OUT];
    long long b = 0;
    if (b_out) {
        int overflow = 0;
        if (!PyLong_CheckExact(b_out)) Py_RETURN_NONE;
        b = PyLong_AsLongLongAndOverflow(b_out, &overflow);
        if (overflow || (b == -1 && PyErr_Occurred())) { PyErr_Clear(); Py_RETURN_NONE; }
    }
    PyObject *dst_name = v[N_DST_NAME] ? v[N_DST_NAME] : Py_None;
    int named = PyObject_IsTrue(dst_name);
    if (named < 0) return NULL;
    PyObject *dest = NULL;
    if (named) dest = dst_name;
    else {
        PyObject *tls = v[N_TLS];
        int has_tls = tls ? PyObject_IsTrue(tls) : 0;
        if (has_tls < 0) return NULL;
        if (has_tls) {
            if (!PyDict_Check(tls)) Py_RETURN_NONE;
            PyObject *sni = PyDict_GetItemWithError(tls, PyTuple_GET_ITEM(names, N_SNI));
            if (!sni && PyErr_Occurred()) return NULL;
            int t = sni ? PyObject_IsTrue(sni) : 0;
            if (t < 0) return NULL;
            if (t) dest = sni;
        }
        if (!dest) {
            if (!v[N_DST_IP]) Py_RETURN_NONE;  /* KeyError in Python: let it say so */
            dest = v[N_DST_IP];
        }
    }
    PyObject *port = v[N_PORT];
    PyObject *zero = NULL;
    if (!port) { zero = PyLong_FromLong(0); if (!zero) return NULL; port = zero; }
    PyObject *who = PyTuple_Pack(4, v[N_DEVICE] ? v[N_DEVICE] : Py_None, v[N_APP] ? v[N_APP] : Py_None,
                                 v[N_SRC_IP] ? v[N_SRC_IP] : Py_None, port);
    Py_XDECREF(zero);
    if (!who) return NULL;
    PyObject *sid_o = PyDict_GetItemWithError(who_d, who);
    Py_DECREF(who);
    if (!sid_o) { if (PyErr_Occurred()) return NULL; Py_RETURN_NONE; }  /* a new side: Python registers it */
    Py_ssize_t sid = PyLong_AsSsize_t(sid_o);
    if (sid < 0 || sid >= PyList_GET_SIZE(subjects)) { PyErr_Clear(); Py_RETURN_NONE; }
    PyObject *subject = PyList_GET_ITEM(subjects, sid);
    /* from here on the record is noted here */
    PyObject *did_o = PyDict_GetItemWithError(dests, dest);
    long long did;
    if (did_o) did = PyLong_AsLongLong(did_o);
    else {
        if (PyErr_Occurred()) return NULL;
        did = (long long)PyDict_GET_SIZE(dests);
        PyObject *n = PyLong_FromLongLong(did);
        if (!n || PyDict_SetItem(dests, dest, n) < 0) { Py_XDECREF(n); return NULL; }
        Py_DECREF(n);
    }
    PyObject *kargs[4] = {r, baseline, subject, named ? Py_True : Py_False};
    PyObject *kinds = PyObject_Vectorcall(kinds_fn, kargs, 4, NULL);
    if (!kinds) return NULL;
    PyObject *it = PyObject_GetIter(kinds);
    Py_DECREF(kinds);
    if (!it) return NULL;
    long flags = 0;
    PyObject *k;
    while ((k = PyIter_Next(it))) {
        int in = PySet_Contains(strong, k);
        Py_DECREF(k);
        if (in < 0) { Py_DECREF(it); return NULL; }
        if (in) { flags = 1; break; }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    if (b >= 1024) {
        PyObject *l7 = v[N_L7] ? v[N_L7] : Py_None;
        int is_dns = PyObject_RichCompareBool(l7, PyTuple_GET_ITEM(names, N_DNS), Py_EQ);
        if (is_dns < 0) return NULL;
        if (!is_dns) flags |= 2;
    }
    PyObject *results[6];
    Py_INCREF(v[N_TS]); Py_INCREF(v[N_TS_END]); Py_INCREF(handle);
    PyObject *vals[6] = {v[N_TS], v[N_TS_END], PyLong_FromLongLong(b),
                         PyLong_FromUnsignedLongLong((unsigned long long)sid << 32 | (unsigned long long)did), handle,
                         PyLong_FromLong(flags)};
    for (int i = 0; i < 6; i++) {
        results[i] = call_append(PyTuple_GET_ITEM(appends, i), vals[i]);
        if (!results[i]) {
            for (int j = i + 1; j < 6; j++) Py_XDECREF(vals[j]);
            return NULL;
        }
        Py_DECREF(results[i]);
    }
    Py_RETURN_TRUE;
}

static int arity_ok(Py_ssize_t nargs, Py_ssize_t want, const char *usage) {
    if (nargs == want) return 1;
    PyErr_SetString(PyExc_TypeError, usage);
    return 0;
}

static PyObject *tsv_conn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return arity_ok(nargs, 2, "tsv_conn(line, plan)") ? parse_line(args[0], args[1]) : NULL;
}

static PyObject *conn_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return arity_ok(nargs, 2, "conn_record(c, ctx)") ? make_record(args[0], args[1]) : NULL;
}

/* tsv_record(line, plan, ctx): the record of a plain line; the tuple when only the line is plain
 * (the caller makes the record the Python way); None when the line is not plain. */
static PyObject *tsv_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arity_ok(nargs, 3, "tsv_record(line, plan, ctx)")) return NULL;
    PyObject *c = parse_line(args[0], args[1]);
    if (!c || c == Py_None) return c;
    PyObject *rec = make_record(c, args[2]);
    if (rec != Py_None) {
        Py_DECREF(c);
        return rec;
    }
    Py_DECREF(rec);
    return c;
}

/* ------------------------------------------------------------------ Lane */

/* A Lane does the whole of pass 2 (netan.pipeline._Pass2) for a plain conn record without making it:
 * the flows.jsonl line and the netan_flows.log row from templates (fixed bytes around the record's
 * values, cut by netan.fastlane.lane_plan from what dumps_line and the row function write of a record
 * with marker values, and checked there against them), ChainBuilder.observe's bookkeeping (with the
 * network rules of a conn-only record, see plain_flags), the row counters and the joiner's. The
 * lines, rows and chain columns gather in buffers that ``flush`` hands to the files and the builder;
 * the caller flushes before it writes anything itself, so the order of the outputs is the order of
 * the records. A record that is not plain in any of these respects changes nothing and goes the
 * Python way. */

typedef struct {
    char *p;
    size_t n, cap;
} growbuf;

static int gb_put(growbuf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        char *q = PyMem_Realloc(b->p, cap);
        if (!q) { PyErr_NoMemory(); return 0; }
        b->p = q; b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 1;
}

/* how a value is written: as a Zeek TSV cell, as JSON, as JSON rounded to microseconds (a Zeek JSON time) */
enum { M_TSV, M_JSON, M_JSON_ROUND6 };

typedef struct {
    Py_ssize_t nslots;
    int *slot;         /* the K_* index of each value, in the order they appear */
    int *mode;         /* how each is written (M_*) */
    int *drop;         /* bytes of the piece before it to take back when it is None (its key) */
    const char **seg;  /* nslots + 1 fixed pieces around them (borrowed from ``segs``) */
    Py_ssize_t *seglen;
    PyObject *segs;    /* the tuple of bytes the pieces live in */
} template_t;

static void template_free(template_t *t) {
    PyMem_Free(t->slot); PyMem_Free(t->mode); PyMem_Free(t->drop); PyMem_Free(t->seg); PyMem_Free(t->seglen);
    Py_CLEAR(t->segs);
    memset(t, 0, sizeof *t);
}

/* plan = (pieces: tuple of bytes, slots: tuple of K_* ints[, modes: tuple of M_* ints, drops: tuple of ints]),
 * len(pieces) == len(slots) + 1; without modes every value is written in ``mode`` and nothing dropped */
static int template_init(template_t *t, PyObject *plan, int mode) {
    Py_ssize_t parts = PyTuple_Check(plan) ? PyTuple_GET_SIZE(plan) : 0;
    if ((parts != 2 && parts != 4) || !PyTuple_Check(PyTuple_GET_ITEM(plan, 0)) ||
        !PyTuple_Check(PyTuple_GET_ITEM(plan, 1))) {
        PyErr_SetString(PyExc_TypeError, "a lane template is (pieces: tuple of bytes, slots: tuple of int[, modes, drops])");
        return 0;
    }
    PyObject *segs = PyTuple_GET_ITEM(plan, 0), *slots = PyTuple_GET_ITEM(plan, 1);
    PyObject *modes = parts == 4 ? PyTuple_GET_ITEM(plan, 2) : NULL, *drops = parts == 4 ? PyTuple_GET_ITEM(plan, 3) : NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(slots);
    if (PyTuple_GET_SIZE(segs) != n + 1 || (modes && (!PyTuple_Check(modes) || PyTuple_GET_SIZE(modes) != n ||
                                                      !PyTuple_Check(drops) || PyTuple_GET_SIZE(drops) != n))) {
        PyErr_SetString(PyExc_ValueError, "a lane template has one piece more than slots, and a mode and drop per slot");
        return 0;
    }
    t->nslots = n;
    t->slot = PyMem_Calloc((size_t)n + 1, sizeof(int));
    t->mode = PyMem_Calloc((size_t)n + 1, sizeof(int));
    t->drop = PyMem_Calloc((size_t)n + 1, sizeof(int));
    t->seg = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    t->seglen = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    if (!t->slot || !t->mode || !t->drop || !t->seg || !t->seglen) { PyErr_NoMemory(); return 0; }
    for (Py_ssize_t i = 0; i <= n; i++) {
        PyObject *b = PyTuple_GET_ITEM(segs, i);
        if (!PyBytes_Check(b)) { PyErr_SetString(PyExc_TypeError, "a lane template piece is bytes"); return 0; }
        t->seg[i] = PyBytes_AS_STRING(b);
        t->seglen[i] = PyBytes_GET_SIZE(b);
        if (i < n) {
            long k = PyLong_AsLong(PyTuple_GET_ITEM(slots, i));
            if (k < 0 || k > V_NAME || k == K_PAYLOAD || k == K_FRAMING || k == K_TLS) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a lane template slot is a plain value's K index");
                return 0;
            }
            t->slot[i] = (int)k;
            long m = modes ? PyLong_AsLong(PyTuple_GET_ITEM(modes, i)) : mode;
            long d = drops ? PyLong_AsLong(PyTuple_GET_ITEM(drops, i)) : 0;
            if (m < M_TSV || m > M_JSON_ROUND6 || d < 0 || d > t->seglen[i]) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a lane template's mode or drop is out of range");
                return 0;
            }
            t->mode[i] = (int)m;
            t->drop[i] = (int)d;
        }
    }
    Py_INCREF(segs);
    t->segs = segs;
    return 1;
}

/* text JSON writes as it is between quotes (orjson escapes '"', '\\' and control characters) */
static int json_plain_text(PyObject *v) {
    if (!PyUnicode_IS_ASCII(v)) return 0;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(v);
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return 0;
    return 1;
}

static int put_int(growbuf *b, PyObject *v) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
    char tmp[32];
    size_t n = 0;
    if (x < 0) tmp[n++] = '-';
    n += u64_text(tmp + n, x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
    return gb_put(b, tmp, n) ? 1 : -1;
}

/* A float as JSON: repr, which orjson matches in this range (tests/test_lane.py); 0 outside it. */
static int put_json_float(growbuf *b, double d) {
    double a = fabs(d);
    if (!(d == 0.0 || (a >= 1e-4 && a < 1e16))) return 0;
    char quick[40];
    size_t qn = time_repr(quick, d);
    if (qn) return gb_put(b, quick, qn) ? 1 : -1;
    char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text) return -1;
    int ok = gb_put(b, text, strlen(text));
    PyMem_Free(text);
    return ok ? 1 : -1;
}

/* One value as flows.jsonl (``json``) or netan_flows.log writes it: 1, 0 when it is not a plain value
 * there (the record goes the Python way), -1 on an error. */
static int put_value(growbuf *b, PyObject *v, int json) {
    if (v == Py_None) return gb_put(b, json ? "null" : "-", json ? 4 : 1) ? 1 : -1;
    if (PyUnicode_CheckExact(v)) {
        if (json) {
            if (!json_plain_text(v)) return 0;
            return gb_put(b, "\"", 1) && gb_put(b, (const char *)PyUnicode_DATA(v), (size_t)PyUnicode_GET_LENGTH(v)) &&
                   gb_put(b, "\"", 1) ? 1 : -1;
        }
        if (!plain_text(v)) return 0;
        return gb_put(b, (const char *)PyUnicode_DATA(v), (size_t)PyUnicode_GET_LENGTH(v)) ? 1 : -1;
    }
    if (PyLong_CheckExact(v)) return put_int(b, v);
    if (json && (PyTuple_CheckExact(v) || PyList_CheckExact(v))) {  /* a list of plain text */
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        if (!gb_put(b, "[", 1)) return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyUnicode_CheckExact(items[i])) return 0;
            if (i && !gb_put(b, ",", 1)) return -1;
            int r = put_value(b, items[i], 1);
            if (r <= 0) return r;
        }
        return gb_put(b, "]", 1) ? 1 : -1;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (json) return put_json_float(b, d);
        if (!isfinite(d)) return 0;
        outbuf o;
        o.p = o.local; o.n = 0; o.cap = sizeof o.local;
        if (!ob_fixed6(&o, d, 0)) return -1;
        int ok = gb_put(b, o.p, o.n);
        if (o.p != o.local) PyMem_Free(o.p);
        return ok ? 1 : -1;
    }
    return 0;
}

static int render(growbuf *b, const template_t *t, PyObject *const *val) {
    for (Py_ssize_t i = 0; i < t->nslots; i++) {
        if (!gb_put(b, t->seg[i], (size_t)t->seglen[i])) return -1;
        PyObject *v = val[t->slot[i]];
        if (v == Py_None && t->drop[i]) {  /* a Zeek JSON row leaves an unset column out, key and all */
            b->n -= (size_t)t->drop[i];
            continue;
        }
        int r;
        if (t->mode[i] == M_JSON_ROUND6 && v != Py_None) {
            double d;
            if (!PyFloat_CheckExact(v) || !round6(PyFloat_AS_DOUBLE(v), &d)) return 0;
            r = put_json_float(b, d);
        } else r = put_value(b, v, t->mode[i] != M_TSV);
        if (r <= 0) return r;
    }
    return gb_put(b, t->seg[t->nslots], (size_t)t->seglen[t->nslots]) ? 1 : -1;
}

/* the network rules' kinds of a conn-only record (evidence._network_findings with no payload seen,
 * no TLS details, HTTP, framing, DNS name or baseline), as bits */
enum { KB_NO_PAYLOAD = 1, KB_UPLOAD_DOMINANT = 2, KB_DIRECT_IP = 4, KB_TLS_ODD_PORT = 8, KB_NON_TLS_443 = 16 };
enum { CH_WHO, CH_DESTS, CH_NEW_SIDE, CH_DEVICE, CH_APP, CH_ENCRYPTED_L7, CH_DNS_PORTS, CH_TLS_PORTS, CH_STRONG, CH_DNS,
       CH_TLS, CH_UNKNOWN, NCHAIN };
enum { COL_TS, COL_TS_END, COL_BYTES_OUT, COL_KEY, COL_HANDLE, COL_FLAGS, NCOLS };

/* A direct-mapped cache of the chain builder's ids by the bytes of their key (a source address and port,
 * or a destination address). The builder's dicts remain the record (an id never changes once given); the
 * cache spares their lookups -- a tuple or a new str hashed and compared per flow -- in fixed memory. */
#define IDCACHE_SLOTS (1 << 15)
typedef struct {
    uint64_t h;
    uint32_t id;
    uint8_t n;  /* key length; 0xFF: empty */
    char key[51];
} idslot;

static uint64_t key_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ULL; }
    return h ^ (h >> 29);
}

static int idcache_get(const idslot *c, const char *k, size_t n, uint64_t h, unsigned long long *id) {
    const idslot *e = &c[h & (IDCACHE_SLOTS - 1)];
    if (e->h != h || e->n != n || memcmp(e->key, k, n) != 0) return 0;
    *id = e->id;
    return 1;
}

static void idcache_put(idslot *c, const char *k, size_t n, uint64_t h, unsigned long long id) {
    idslot *e = &c[h & (IDCACHE_SLOTS - 1)];
    if (n >= 0xFF || n > sizeof e->key || id > UINT32_MAX) return;
    e->h = h; e->n = (uint8_t)n; e->id = (uint32_t)id;
    memcpy(e->key, k, n);
}

typedef struct {
    PyObject_HEAD
    template_t json_t, row_t;
    idslot *side_ids, *dest_ids;  /* the id caches, while there is a chain builder */
    PyObject *chain;  /* None, or the NCHAIN-tuple described in lane_init */
    PyObject *out_write, *row_write, *columns_sink, *uid_differs;
    PyObject *nobs;  /* not_observable by the ``unset`` bits: a tuple of 16 */
    PyObject *dst_name;  /* dst_name(src_ip, dst_ip, ts) -> name or None; None when no DNS answers were read */
    growbuf json, row, col[NCOLS];
    long long at;        /* where the next line goes in flows.jsonl */
    Py_ssize_t pending;  /* records in the buffers */
} Lane;

static int eq_str(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_CheckExact(a) && PyUnicode_Compare(a, b) == 0);
}

/* flags (ChainBuilder: 1 positive, 2 upload) of a plain record; -1 on an error */
static int plain_flags(PyObject *ch, const conn_values *v, long long b_out, long long b_in, int named) {
    PyObject *l7 = v->val[K_L7], *port = v->val[K_DST_PORT];
    int is_dns = eq_str(l7, PyTuple_GET_ITEM(ch, CH_DNS)), is_tls = eq_str(l7, PyTuple_GET_ITEM(ch, CH_TLS));
    int is_unknown = eq_str(l7, PyTuple_GET_ITEM(ch, CH_UNKNOWN));
    if (PyErr_Occurred()) return -1;
    long strong = PyLong_AsLong(PyTuple_GET_ITEM(ch, CH_STRONG));
    int kinds = KB_NO_PAYLOAD;
    long long floor_in = b_in > 1 ? b_in : 1;
    if (b_out >= 1024 && (floor_in > (1LL << 60) ? 0 : b_out >= 4 * floor_in)) kinds |= KB_UPLOAD_DOMINANT;
    int direct_proto = v->pnum == 6 || v->pnum == 17;
    if (direct_proto && b_out > 0 && !is_dns && !named) {
        int dns_port = PySet_Contains(PyTuple_GET_ITEM(ch, CH_DNS_PORTS), port);
        if (dns_port < 0) return -1;
        if (!dns_port) kinds |= KB_DIRECT_IP;
    }
    if (is_tls) {
        int std = PySet_Contains(PyTuple_GET_ITEM(ch, CH_TLS_PORTS), port);
        if (std < 0) return -1;
        if (!std) kinds |= KB_TLS_ODD_PORT;
    } else if (v->pnum == 6 && b_out > 0 && !is_unknown) {
        long p = PyLong_AsLong(port);
        if (p == -1 && PyErr_Occurred()) return -1;
        if (p == 443) {
            int enc = PySet_Contains(PyTuple_GET_ITEM(ch, CH_ENCRYPTED_L7), l7);
            if (enc < 0) return -1;
            if (!enc) kinds |= KB_NON_TLS_443;
        }
    }
    int flags = (kinds & strong) ? 1 : 0;
    if (b_out >= 1024 && !is_dns) flags |= 2;
    return flags;
}

static int col_put(growbuf *b, const void *x, size_t n) { return gb_put(b, (const char *)x, n); }

/* The whole pass of one conn tuple: 1 done, 0 not plain (nothing changed), -1 error. */
static int lane_take(Lane *L, PyObject *c, PyObject *ctx) {
    conn_values v;
    int r = conn_values_of(c, ctx, &v, 1);
    if (r <= 0) return r;
    v.val[V_NOBS] = PyTuple_GET_ITEM(L->nobs, v.unset);
    v.val[V_NAME] = Py_None;
    int named = 0;
    if (L->dst_name != Py_None) {  /* the joiner's own lookup (Joiner.dst_name), as conn_flow calls it */
        PyObject *nargs[3] = {v.val[K_SRC_IP], v.val[K_DST_IP], v.val[K_TS]};
        PyObject *name = PyObject_Vectorcall(L->dst_name, nargs, 3, NULL);
        if (!name) { conn_values_clear(&v); return -1; }
        v.owned |= 1u << V_NAME;
        v.val[V_NAME] = name;
        if (name != Py_None && !PyUnicode_CheckExact(name)) { conn_values_clear(&v); return 0; }
        named = name != Py_None && PyUnicode_GET_LENGTH(name) > 0;
    }
    size_t j0 = L->json.n, r0 = L->row.n;
    long long b_out = 0, b_in = 0;
    PyObject *ch = L->chain, *who = NULL, *sid_o = NULL;
    unsigned long long sid = 0;
    char side_key[48];
    size_t side_n = 0;
    uint64_t side_h = 0;
    if ((r = render(&L->json, &L->json_t, v.val)) <= 0) goto undo;
    if ((r = render(&L->row, &L->row_t, v.val)) <= 0) goto undo;
    if (ch != Py_None) {
        int o1, o2;
        b_out = PyLong_AsLongLongAndOverflow(v.val[K_BYTES_OUT], &o1);
        b_in = PyLong_AsLongLongAndOverflow(v.val[K_BYTES_IN], &o2);
        if (o1 || o2 || PyErr_Occurred()) { PyErr_Clear(); r = 0; goto undo; }
        /* the side's cache key: the source address, a NUL, the port's two bytes */
        PyObject *src = v.val[K_SRC_IP];
        long port = PyLong_AsLong(v.val[K_DST_PORT]);
        if (port == -1 && PyErr_Occurred()) { r = -1; goto undo; }
        side_n = PyUnicode_IS_ASCII(src) && port >= 0 && port <= 65535 ? (size_t)PyUnicode_GET_LENGTH(src) + 3 : 0;
        if (side_n && side_n <= sizeof side_key) {
            memcpy(side_key, PyUnicode_DATA(src), side_n - 3);
            side_key[side_n - 3] = 0; side_key[side_n - 2] = (char)(port >> 8); side_key[side_n - 1] = (char)port;
            side_h = key_hash(side_key, side_n);
        } else side_n = 0;
        if (!side_n || !idcache_get(L->side_ids, side_key, side_n, side_h, &sid)) {
            who = PyTuple_Pack(4, PyTuple_GET_ITEM(ch, CH_DEVICE), PyTuple_GET_ITEM(ch, CH_APP), src, v.val[K_DST_PORT]);
            if (!who) { r = -1; goto undo; }
            sid_o = PyDict_GetItemWithError(PyTuple_GET_ITEM(ch, CH_WHO), who);
            if (sid_o) Py_INCREF(sid_o);
            else if (PyErr_Occurred() || !(sid_o = PyObject_CallOneArg(PyTuple_GET_ITEM(ch, CH_NEW_SIDE), who))) {
                r = -1;
                goto undo;
            }
            sid = PyLong_AsUnsignedLongLong(sid_o);
            if (PyErr_Occurred()) { r = -1; goto undo; }
            if (side_n) idcache_put(L->side_ids, side_key, side_n, side_h, sid);
        }
    }
    /* from here on the record is taken */
    if (!joiner_commit(ctx, v.val[K_FLOW_ID])) { r = -1; goto undo; }
    if (ch != Py_None) {
        PyObject *dests = PyTuple_GET_ITEM(ch, CH_DESTS), *dest = named ? v.val[V_NAME] : v.val[K_DST_IP];
        unsigned long long did;
        size_t dn = PyUnicode_IS_ASCII(dest) ? (size_t)PyUnicode_GET_LENGTH(dest) : 0;
        uint64_t dh = dn ? key_hash(PyUnicode_DATA(dest), dn) : 0;
        if (!dn || !idcache_get(L->dest_ids, PyUnicode_DATA(dest), dn, dh, &did)) {
            PyObject *did_o = PyDict_GetItemWithError(dests, dest);
            if (did_o) did = PyLong_AsUnsignedLongLong(did_o);
            else {
                if (PyErr_Occurred()) { r = -1; goto undo; }
                did = (unsigned long long)PyDict_GET_SIZE(dests);
                PyObject *n = PyLong_FromUnsignedLongLong(did);
                if (!n || PyDict_SetItem(dests, dest, n) < 0) { Py_XDECREF(n); r = -1; goto undo; }
                Py_DECREF(n);
            }
            if (dn) idcache_put(L->dest_ids, PyUnicode_DATA(dest), dn, dh, did);
        }
        int flags = plain_flags(ch, &v, b_out, b_in, named);
        if (flags < 0 || PyErr_Occurred()) { r = -1; goto undo; }
        double ts = PyFloat_AS_DOUBLE(v.val[K_TS]), ts_end = PyFloat_AS_DOUBLE(v.val[K_TS_END]);
        unsigned long long key = sid << 32 | did, handle = (unsigned long long)L->at;
        uint8_t f8 = (uint8_t)flags;
        if (!col_put(&L->col[COL_TS], &ts, 8) || !col_put(&L->col[COL_TS_END], &ts_end, 8) ||
            !col_put(&L->col[COL_BYTES_OUT], &b_out, 8) || !col_put(&L->col[COL_KEY], &key, 8) ||
            !col_put(&L->col[COL_HANDLE], &handle, 8) || !col_put(&L->col[COL_FLAGS], &f8, 1)) {
            r = -1;
            goto done;
        }
    }
    if (PyDict_GET_SIZE(L->uid_differs) && PyDict_DelItem(L->uid_differs, v.val[K_FLOW_ID]) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) { r = -1; goto done; }
        PyErr_Clear();
    }
    L->at += (long long)(L->json.n - j0);
    L->pending++;
    r = 1;
    goto done;
undo:
    L->json.n = j0;
    L->row.n = r0;
done:
    Py_XDECREF(who);
    Py_XDECREF(sid_o);
    conn_values_clear(&v);
    return r;
}

static PyObject *gb_take(growbuf *b) {
    PyObject *o = PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->n);
    if (o) b->n = 0;
    return o;
}

static PyObject *lane_flush_impl(Lane *L) {
    PyObject *items[2] = {L->out_write, L->row_write};
    growbuf *bufs[2] = {&L->json, &L->row};
    for (int i = 0; i < 2; i++) {
        if (!bufs[i]->n) continue;
        PyObject *data = gb_take(bufs[i]);
        PyObject *r = data ? PyObject_CallOneArg(items[i], data) : NULL;
        Py_XDECREF(data);
        if (!r) return NULL;
        Py_DECREF(r);
    }
    if (L->chain != Py_None && L->col[COL_FLAGS].n) {
        PyObject *cols[NCOLS];
        for (int i = 0; i < NCOLS; i++) {
            if (!(cols[i] = gb_take(&L->col[i]))) {
                for (int j = 0; j < i; j++) Py_DECREF(cols[j]);
                return NULL;
            }
        }
        PyObject *r = PyObject_Vectorcall(L->columns_sink, cols, NCOLS, NULL);
        for (int i = 0; i < NCOLS; i++) Py_DECREF(cols[i]);
        if (!r) return NULL;
        Py_DECREF(r);
    }
    PyObject *n = PyLong_FromSsize_t(L->pending);
    L->pending = 0;
    return n;
}

#define LANE_FLUSH_AT (1 << 20)

static PyObject *lane_after(Lane *L, int r) {
    if (r < 0) return NULL;
    if (r == 0) Py_RETURN_NONE;
    if (L->json.n >= LANE_FLUSH_AT || L->row.n >= LANE_FLUSH_AT) {
        Py_ssize_t pending = L->pending;
        PyObject *n = lane_flush_impl(L);
        if (!n) return NULL;
        Py_DECREF(n);
        L->pending = pending;  /* still to be counted by the caller's flush */
    }
    Py_RETURN_TRUE;
}

/* every method but __init__ needs what __init__ sets */
static int lane_ready(Lane *L) {
    if (L->nobs) return 1;
    PyErr_SetString(PyExc_ValueError, "Lane: __init__ was not called");
    return 0;
}

static PyObject *lane_conn(Lane *L, PyObject *const *args, Py_ssize_t nargs) {
    if (!lane_ready(L) || !arity_ok(nargs, 2, "Lane.conn(c, ctx)")) return NULL;
    return lane_after(L, lane_take(L, args[0], args[1]));
}

static PyObject *lane_line(Lane *L, PyObject *const *args, Py_ssize_t nargs) {
    if (!lane_ready(L) || !arity_ok(nargs, 3, "Lane.line(line, plan, ctx)")) return NULL;
    PyObject *c = parse_line(args[0], args[1]);
    if (!c || c == Py_None) return c;
    int r = lane_take(L, c, args[2]);
    if (r == 0) return c;  /* a plain line, not a plain record: the caller makes it */
    Py_DECREF(c);
    return lane_after(L, r);
}

static PyObject *lane_json(Lane *L, PyObject *const *args, Py_ssize_t nargs) {
    if (!lane_ready(L) || !arity_ok(nargs, 4, "Lane.json_line(line, names, seconds, ctx)")) return NULL;
    PyObject *c = json_line_conn(args[0], args[1], args[2]);
    if (!c || c == Py_None) return c;
    int r = lane_take(L, c, args[3]);
    if (r == 0) return c;  /* a plain line, not a plain record: the caller makes it */
    Py_DECREF(c);
    return lane_after(L, r);
}

static PyObject *lane_flush(Lane *L, PyObject *unused) { return lane_ready(L) ? lane_flush_impl(L) : NULL; }

/* render(values): (json line, row) of a tuple of NVALS values in K_* order, or None (for lane_plan's check) */
static PyObject *lane_render(Lane *L, PyObject *values) {
    if (!lane_ready(L)) return NULL;
    if (!PyTuple_Check(values) || PyTuple_GET_SIZE(values) != NVALS + 2) {
        PyErr_SetString(PyExc_TypeError, "Lane.render(values: tuple of the record's plain values in K order)");
        return NULL;
    }
    growbuf j = {0}, w = {0};
    PyObject *const *val = &PyTuple_GET_ITEM(values, 0);
    int r1 = render(&j, &L->json_t, val), r2 = r1 > 0 ? render(&w, &L->row_t, val) : r1;
    PyObject *out = NULL;
    if (r1 > 0 && r2 > 0) {
        PyObject *a = PyBytes_FromStringAndSize(j.p, (Py_ssize_t)j.n), *b = PyBytes_FromStringAndSize(w.p, (Py_ssize_t)w.n);
        out = a && b ? PyTuple_Pack(2, a, b) : NULL;
        Py_XDECREF(a); Py_XDECREF(b);
    } else if (r1 >= 0 && r2 >= 0) {
        out = Py_None;
        Py_INCREF(out);
    }
    PyMem_Free(j.p); PyMem_Free(w.p);
    return out;
}

static PyObject *lane_flags(Lane *L, PyObject *const *args, Py_ssize_t nargs) {
    /* flags_of(c, ctx): the chain flags the lane gives a plain conn tuple, or None (for the tests) */
    if (!lane_ready(L) || !arity_ok(nargs, 2, "Lane.flags_of(c, ctx)")) return NULL;
    if (L->chain == Py_None) Py_RETURN_NONE;
    conn_values v;
    int r = conn_values_of(args[0], args[1], &v, 1);
    if (r <= 0) { if (r < 0) return NULL; Py_RETURN_NONE; }
    int o1, o2;
    long long b_out = PyLong_AsLongLongAndOverflow(v.val[K_BYTES_OUT], &o1);
    long long b_in = PyLong_AsLongLongAndOverflow(v.val[K_BYTES_IN], &o2);
    PyObject *out = NULL;
    if (o1 || o2 || PyErr_Occurred()) { PyErr_Clear(); out = Py_None; Py_INCREF(out); }
    else {
        int f = plain_flags(L->chain, &v, b_out, b_in, 0);
        if (f >= 0) out = PyLong_FromLong(f);
    }
    conn_values_clear(&v);
    return out;
}

static void lane_dealloc(Lane *L) {
    template_free(&L->json_t);
    template_free(&L->row_t);
    Py_XDECREF(L->chain); Py_XDECREF(L->out_write); Py_XDECREF(L->row_write);
    Py_XDECREF(L->columns_sink); Py_XDECREF(L->uid_differs); Py_XDECREF(L->nobs); Py_XDECREF(L->dst_name);
    PyMem_Free(L->json.p); PyMem_Free(L->row.p);
    PyMem_Free(L->side_ids); PyMem_Free(L->dest_ids);
    for (int i = 0; i < NCOLS; i++) PyMem_Free(L->col[i].p);
    Py_TYPE(L)->tp_free((PyObject *)L);
}

/* Lane(json_plan, row_plan, chain, out_write, row_write, columns_sink, uid_differs, not_observable, at,
 *      dst_name=None)
 *   chain: None (no chain builder), or (who: dict, dests: dict, new_side: callable(who) -> side id,
 *          device, app, encrypted_l7: set, dns_ports: set, standard_tls_ports: set, strong: int (KB_* bits
 *          of the kinds that are strong), "dns", "tls", "unknown")
 *   columns_sink(ts, ts_end, bytes_out, key, handle, flags): the chain columns as bytes ("ddqQQB") */
static int lane_init(Lane *L, PyObject *args, PyObject *kw) {
    PyObject *jp, *rp, *chain, *ow, *rw, *cs, *ud, *nobs, *names = Py_None;
    long long at;
    if (!PyArg_ParseTuple(args, "OOOOOOOOL|O", &jp, &rp, &chain, &ow, &rw, &cs, &ud, &nobs, &at, &names)) return -1;
    if (!PyTuple_Check(nobs) || PyTuple_GET_SIZE(nobs) != 16) {
        PyErr_SetString(PyExc_TypeError, "Lane: not_observable is a tuple of 16 values, by unset sizes");
        return -1;
    }
    if (!PyDict_Check(ud) || (chain != Py_None && (!PyTuple_Check(chain) || PyTuple_GET_SIZE(chain) != NCHAIN ||
                                                   !PyDict_Check(PyTuple_GET_ITEM(chain, CH_WHO)) ||
                                                   !PyDict_Check(PyTuple_GET_ITEM(chain, CH_DESTS)) ||
                                                   !PyAnySet_Check(PyTuple_GET_ITEM(chain, CH_ENCRYPTED_L7)) ||
                                                   !PyAnySet_Check(PyTuple_GET_ITEM(chain, CH_DNS_PORTS)) ||
                                                   !PyAnySet_Check(PyTuple_GET_ITEM(chain, CH_TLS_PORTS))))) {
        PyErr_SetString(PyExc_TypeError, "Lane: uid_differs is a dict; chain is None or the chain tuple");
        return -1;
    }
    Py_CLEAR(L->nobs);  /* not ready until this init succeeds */
    template_free(&L->json_t);
    template_free(&L->row_t);
    if (!template_init(&L->json_t, jp, M_JSON) || !template_init(&L->row_t, rp, M_TSV)) return -1;
    PyObject **slots[] = {&L->chain, &L->out_write, &L->row_write, &L->columns_sink, &L->uid_differs, &L->dst_name,
                          &L->nobs};  /* nobs last: set, the lane is ready */
    PyObject *vals[] = {chain, ow, rw, cs, ud, names, nobs};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(vals[i]);
        Py_XSETREF(*slots[i], vals[i]);
    }
    L->at = at;
    if (chain != Py_None && !L->side_ids) {
        L->side_ids = PyMem_Malloc(IDCACHE_SLOTS * sizeof(idslot));
        L->dest_ids = PyMem_Malloc(IDCACHE_SLOTS * sizeof(idslot));
        if (!L->side_ids || !L->dest_ids) { PyErr_NoMemory(); return -1; }
    }
    for (idslot **c = (idslot *[]){L->side_ids, L->dest_ids, NULL}; *c; c++)
        for (size_t i = 0; i < IDCACHE_SLOTS; i++) (*c)[i].n = 0xFF;  /* empty: the builder may be another one */
    return 0;
}

static PyMethodDef lane_methods[] = {
    {"line", (PyCFunction)(void (*)(void))lane_line, METH_FASTCALL,
     "line(line, plan, ctx): True when the lane wrote the line's record; else tsv_conn's answer (tuple or None)."},
    {"json_line", (PyCFunction)(void (*)(void))lane_json, METH_FASTCALL,
     "json_line(line, names, seconds, ctx): True when the lane wrote the JSON line's record; else json_line's answer."},
    {"conn", (PyCFunction)(void (*)(void))lane_conn, METH_FASTCALL,
     "conn(c, ctx): True when the lane wrote the conn tuple's record, else None."},
    {"flush", (PyCFunction)lane_flush, METH_NOARGS,
     "Hand the buffered lines, rows and chain columns over; returns how many records they held."},
    {"render", (PyCFunction)lane_render, METH_O, "(json line, row) of plain values in K order, or None."},
    {"flags_of", (PyCFunction)(void (*)(void))lane_flags, METH_FASTCALL,
     "flags_of(c, ctx): the chain flags of a plain conn tuple, or None."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef lane_members[] = {
    {"at", T_LONGLONG, offsetof(Lane, at), 0, "where the next line goes in flows.jsonl"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "netan._fastlane.Lane",
    .tp_basicsize = sizeof(Lane),
    .tp_dealloc = (destructor)lane_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pass 2 of plain conn records, written whole (see netan.fastlane.lane_plan).",
    .tp_methods = lane_methods,
    .tp_members = lane_members,
    .tp_init = (initproc)lane_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *time_repr_py(PyObject *self, PyObject *v) {
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) return NULL;
    char out[40];
    size_t n = time_repr(out, d);
    if (!n) Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(out, (Py_ssize_t)n);
}

static PyMethodDef methods[] = {
    {"time_repr", (PyCFunction)time_repr_py, METH_O, "repr of a time the lane writes without dtoa, or None."},
    {"tsv_conn", (PyCFunction)(void (*)(void))tsv_conn, METH_FASTCALL,
     "The CONN_FIELDS tuple of one plain TSV conn.log line, or None."},
    {"conn_record", (PyCFunction)(void (*)(void))conn_record, METH_FASTCALL,
     "The flow record of a plain conn tuple without side-log entries, or None."},
    {"tsv_record", (PyCFunction)(void (*)(void))tsv_record, METH_FASTCALL,
     "tsv_conn then conn_record: the record, else the tuple, else None."},
    {"json_line", (PyCFunction)(void (*)(void))json_line, METH_FASTCALL,
     "json_conn's tuple straight from a plain JSON conn line (no JSON parser), or None."},
    {"json_conn", (PyCFunction)(void (*)(void))json_conn, METH_FASTCALL,
     "The CONN_FIELDS tuple of a plain, flat JSON conn record, or None."},
    {"chain_observe", (PyCFunction)(void (*)(void))chain_observe, METH_FASTCALL,
     "ChainBuilder.observe's bookkeeping for a plain record: True, or None for the Python observe."},
    {"tsv_row", (PyCFunction)(void (*)(void))tsv_row, METH_FASTCALL,
     "One Zeek TSV row (newline included) of a record, from a column plan."},
    {"tsv_row_bytes", (PyCFunction)(void (*)(void))tsv_row_bytes, METH_FASTCALL,
     "tsv_row as UTF-8 bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "netan._fastlane", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastlane(void) {
    if (PyType_Ready(&LaneType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&LaneType);
    if (PyModule_AddObject(m, "Lane", (PyObject *)&LaneType) < 0) {
        Py_DECREF(&LaneType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
