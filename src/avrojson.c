/* avrojson.c - JSON bodies validated against an Avro schema and encoded
 * to Avro binary (include/avrojson.h says the mapping and the bounds).
 *
 * Three parts: the schema's own reading (jansson; avro-c 1.11 keeps
 * neither defaults nor logical types), compared with avro-c's at compile
 * time; the walk of a body's JSON that fills one cached avro-c generic
 * value, which avro-c then writes; and a bounded pre-scan of Avro binary
 * before avro-c's reader sees it (avro-c allocates any length a string
 * claims, and negates block counts without checking INT64_MIN). */
#include "avrojson.h"

#include <avro.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jsonschema.h"

enum kind {
    K_NULL,
    K_BOOLEAN,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BYTES,
    K_STRING,
    K_RECORD,
    K_ENUM,
    K_ARRAY,
    K_MAP,
    K_UNION,
    K_FIXED,
};

static const char *const kind_names[] = {
    "null",   "boolean", "int",  "long",  "float", "double", "bytes",
    "string", "record",  "enum", "array", "map",   "union",  "fixed",
};

/* What avro-c calls each kind, for the compile-time comparison. */
static const avro_type_t kind_avro[] = {
    AVRO_NULL,   AVRO_BOOLEAN, AVRO_INT32, AVRO_INT64, AVRO_FLOAT, AVRO_DOUBLE, AVRO_BYTES,
    AVRO_STRING, AVRO_RECORD,  AVRO_ENUM,  AVRO_ARRAY, AVRO_MAP,   AVRO_UNION,  AVRO_FIXED,
};

/* Only the logical types that change what a value may be; the others
 * (date, timestamps, decimal) are their underlying type's values. */
enum logical {
    L_NONE,
    L_TIME_MILLIS,
    L_TIME_MICROS,
    L_UUID,
};

struct node;

struct field {
    const char *name; /* in the schema document */
    struct node *type;
    json_t *deflt; /* in the schema document; NULL: no default */
    char *where;   /* the default's JSON pointer in the schema */
};

struct node {
    enum kind kind;
    enum logical logical;
    char *name;             /* full name of a record, enum or fixed */
    struct node *items;     /* array items, map values */
    size_t n;               /* fields, symbols or branches */
    struct field *fields;   /* record */
    const char **symbols;   /* enum, in the schema document */
    struct node **branches; /* union */
    struct strmap index;    /* field name or symbol -> index + 1 */
    int64_t size;           /* fixed */
    bool zero;              /* encodes to no bytes at all */
    bool compared;          /* visited by the comparison with avro-c */
};

struct avrojson {
    json_t *doc; /* the schema text, parsed: defaults point into it */
    struct node *root;
    struct node **nodes; /* every node, for freeing */
    size_t nnodes, capnodes;
    avro_schema_t schema;
    /* Each encode and check makes its own value of this class: avro-c's
     * generic unions keep their branch at offset 4, so pointers inside a
     * value kept between calls are misaligned, and LeakSanitizer (which
     * scans aligned words) reports what they hold as leaked. */
    avro_value_iface_t *iface;
};

/* Copy s[0..n) into out as one line of printable ASCII, other bytes as
 * \xNN; truncated to fit, always terminated when outlen > 0. */
static void put_line(char *out, size_t outlen, const char *s, size_t n)
{
    if (!out || outlen == 0)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[5];
        size_t m = 1;
        if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            m = 4;
        } else {
            esc[0] = (char)c;
        }
        if (k + m >= outlen)
            break;
        memcpy(out + k, esc, m);
        k += m;
    }
    out[k] = '\0';
}

/* Append s as a JSON pointer token ("~" and "/" escaped). */
static void put_token(struct buf *b, const char *s)
{
    buf_putc(b, '/');
    for (; *s; s++) {
        if (*s == '~')
            buf_puts(b, "~0");
        else if (*s == '/')
            buf_puts(b, "~1");
        else
            buf_putc(b, *s);
    }
}

static void put_index(struct buf *b, size_t i)
{
    buf_printf(b, "/%zu", i);
}

/* Whether text[0..len) nests arrays and objects deeper than max. A scan
 * of the raw text (strings skipped), so jansson, whose own bound is
 * 2048, never recurses past ours; the text's validity is jansson's. */
static bool too_deep(const char *text, size_t len, int max)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return true;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return false;
}

/* Parse a JSON text for compile (what = "schema") or encode ("body"):
 * a leading BOM skipped, no NUL byte, bounded depth, no duplicate names.
 * "\u0000" is allowed in strings because Avro's JSON encoding of bytes
 * needs it; strings, names and symbols refuse it where they are used. */
static json_t *load_json(const char *text, size_t len, int max_depth, const char *what,
                         struct buf *msg)
{
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        len -= 3;
    }
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        buf_printf(msg, "%s is not JSON: a NUL byte at offset %zu", what, (size_t)(nul - text));
        return NULL;
    }
    if (too_deep(text, len, max_depth)) {
        buf_printf(msg, "%s is refused: arrays and objects nested deeper than %d", what, max_depth);
        return NULL;
    }
    json_t *j = jsonschema_fast_tree(text, len, max_depth);
    if (j)
        return j;
    json_error_t e;
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j)
        buf_printf(msg, "%s is not JSON: %s at line %d, column %d", what, e.text, e.line, e.column);
    return j;
}

/* ---- the schema ---- */

struct sparse {
    struct avrojson *s;
    struct strmap names; /* full name -> node */
    struct buf path;     /* JSON pointer into the schema */
    struct buf msg;
    bool failed;
};

static void serr(struct sparse *p, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void serr(struct sparse *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    if (p->path.len)
        buf_printf(&p->msg, "schema: %.*s: ", (int)p->path.len, p->path.data);
    else
        buf_puts(&p->msg, "schema: /: ");
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    buf_puts(&p->msg, line);
}

static struct node *new_node(struct avrojson *s, enum kind k)
{
    if (s->nnodes == s->capnodes) {
        s->capnodes = s->capnodes ? 2 * s->capnodes : 16;
        s->nodes = xrealloc(s->nodes, s->capnodes * sizeof *s->nodes);
    }
    struct node *n = xcalloc(1, sizeof *n);
    n->kind = k;
    s->nodes[s->nnodes++] = n;
    return n;
}

static int primitive(const char *name)
{
    for (int k = K_NULL; k <= K_STRING; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

/* [A-Za-z_][A-Za-z0-9_]*, in each dot-separated part when dotted. */
static bool valid_name(const char *s, bool dotted)
{
    bool start = true;
    for (; *s; s++) {
        char c = *s;
        if (c == '.' && dotted && !start) {
            start = true;
            continue;
        }
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(!start && c >= '0' && c <= '9'))
            return false;
        start = false;
    }
    return !start;
}

/* A name's meaning in namespace ns: a dotted name is full; otherwise the
 * enclosing namespace's, then the null namespace's (as Java's parser). */
static struct node *lookup(struct sparse *p, const char *name, const char *ns)
{
    if (!strchr(name, '.') && ns && *ns) {
        struct buf full = {0};
        buf_printf(&full, "%s.%s", ns, name);
        struct node *n = strmap_get(&p->names, full.data);
        buf_free(&full);
        if (n)
            return n;
    }
    return strmap_get(&p->names, name);
}

/* The name of the branch type that Avro's JSON encoding of unions uses. */
static const char *branch_name(const struct node *n)
{
    return n->name ? n->name : kind_names[n->kind];
}

static struct node *parse_type(struct sparse *p, json_t *j, const char *ns);

/* Register a named type: its full name from "name", "namespace" and the
 * enclosing namespace. *own_ns gets the namespace its children inherit
 * (owned by the caller). */
static struct node *define_named(struct sparse *p, json_t *j, enum kind k, const char *ns,
                                 char **own_ns)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !valid_name(name, true)) {
        serr(p, "%s needs a \"name\" of letters, digits and '_'", kind_names[k]);
        return NULL;
    }
    json_t *nsj = json_object_get(j, "namespace");
    if (nsj && !json_is_string(nsj)) {
        serr(p, "\"namespace\" must be a string");
        return NULL;
    }
    struct buf full = {0};
    const char *dot = strrchr(name, '.');
    if (dot) {
        buf_puts(&full, name);
        *own_ns = xstrndup(name, (size_t)(dot - name));
    } else {
        const char *space = nsj ? json_string_value(nsj) : ns;
        if (space && *space && !valid_name(space, true)) {
            serr(p, "namespace \"%s\" is not a valid name", space);
            return NULL;
        }
        if (space && *space)
            buf_printf(&full, "%s.%s", space, name);
        else
            buf_puts(&full, name);
        *own_ns = xstrdup(space ? space : "");
    }
    if (primitive(full.data) >= 0 || strmap_has(&p->names, full.data)) {
        serr(p, "type \"%s\" is defined twice", full.data);
        buf_free(&full);
        FREE_AND_NULL(*own_ns);
        return NULL;
    }
    struct node *n = new_node(p->s, k);
    n->name = xstrdup(full.data);
    strmap_put(&p->names, full.data, n);
    buf_free(&full);
    return n;
}

static struct node *parse_record(struct sparse *p, json_t *j, const char *ns)
{
    char *own = NULL;
    struct node *n = define_named(p, j, K_RECORD, ns, &own);
    if (!n)
        return NULL;
    json_t *fields = json_object_get(j, "fields");
    if (!json_is_array(fields)) {
        serr(p, "record %s needs a \"fields\" array", n->name);
        free(own);
        return NULL;
    }
    size_t mark = p->path.len;
    n->n = json_array_size(fields);
    n->fields = xcalloc(n->n ? n->n : 1, sizeof *n->fields);
    for (size_t i = 0; i < n->n && !p->failed; i++) {
        json_t *f = json_array_get(fields, i);
        struct field *fd = &n->fields[i];
        p->path.len = mark;
        buf_puts(&p->path, "/fields");
        put_index(&p->path, i);
        fd->name = json_string_value(json_object_get(f, "name"));
        if (!fd->name || !valid_name(fd->name, false)) {
            serr(p, "a field needs a \"name\" of letters, digits and '_'");
            break;
        }
        if (strmap_has(&n->index, fd->name)) {
            serr(p, "record %s has two fields \"%s\"", n->name, fd->name);
            break;
        }
        strmap_put(&n->index, fd->name, (void *)(uintptr_t)(i + 1));
        fd->deflt = json_object_get(f, "default");
        if (fd->deflt) {
            size_t at = p->path.len;
            buf_puts(&p->path, "/default");
            fd->where = xstrndup(p->path.data, p->path.len);
            p->path.len = at;
        }
        json_t *t = json_object_get(f, "type");
        if (!t) {
            serr(p, "field \"%s\" has no \"type\"", fd->name);
            break;
        }
        buf_puts(&p->path, "/type");
        fd->type = parse_type(p, t, own);
    }
    p->path.len = mark;
    free(own);
    return p->failed ? NULL : n;
}

static struct node *parse_enum(struct sparse *p, json_t *j, const char *ns)
{
    char *own = NULL;
    struct node *n = define_named(p, j, K_ENUM, ns, &own);
    free(own);
    if (!n)
        return NULL;
    json_t *syms = json_object_get(j, "symbols");
    if (!json_is_array(syms) || json_array_size(syms) == 0) {
        serr(p, "enum %s needs a non-empty \"symbols\" array", n->name);
        return NULL;
    }
    n->n = json_array_size(syms);
    n->symbols = xcalloc(n->n, sizeof *n->symbols);
    for (size_t i = 0; i < n->n; i++) {
        const char *sym = json_string_value(json_array_get(syms, i));
        if (!sym || !valid_name(sym, false)) {
            serr(p, "enum %s: symbol %zu is not a name", n->name, i);
            return NULL;
        }
        if (strmap_has(&n->index, sym)) {
            serr(p, "enum %s has the symbol \"%s\" twice", n->name, sym);
            return NULL;
        }
        n->symbols[i] = sym;
        strmap_put(&n->index, sym, (void *)(uintptr_t)(i + 1));
    }
    return n;
}

/* The logical types that constrain values; a wrong base type or an
 * unknown name leaves the underlying type, as the spec says (decimal's
 * bytes are not checked against its precision, so it needs nothing). */
static enum logical logical_of(json_t *j, enum kind k)
{
    const char *lt = json_string_value(json_object_get(j, "logicalType"));
    if (!lt)
        return L_NONE;
    if (strcmp(lt, "time-millis") == 0 && k == K_INT)
        return L_TIME_MILLIS;
    if (strcmp(lt, "time-micros") == 0 && k == K_LONG)
        return L_TIME_MICROS;
    if (strcmp(lt, "uuid") == 0 && k == K_STRING)
        return L_UUID;
    return L_NONE;
}

static struct node *parse_type(struct sparse *p, json_t *j, const char *ns)
{
    if (p->failed)
        return NULL;
    if (json_is_string(j)) {
        const char *name = json_string_value(j);
        int k = primitive(name);
        if (k >= 0)
            return new_node(p->s, (enum kind)k);
        struct node *n = lookup(p, name, ns);
        if (!n)
            serr(p, "unknown type \"%s\"", name);
        return n;
    }
    if (json_is_array(j)) {
        struct node *u = new_node(p->s, K_UNION);
        u->n = json_array_size(j);
        if (u->n == 0) {
            serr(p, "a union needs at least one branch");
            return NULL;
        }
        u->branches = xcalloc(u->n, sizeof *u->branches);
        size_t mark = p->path.len;
        for (size_t i = 0; i < u->n; i++) {
            p->path.len = mark;
            put_index(&p->path, i);
            struct node *b = parse_type(p, json_array_get(j, i), ns);
            if (!b)
                return NULL;
            if (b->kind == K_UNION) {
                serr(p, "a union directly inside a union");
                return NULL;
            }
            for (size_t k = 0; k < i; k++)
                if (strcmp(branch_name(u->branches[k]), branch_name(b)) == 0) {
                    serr(p, "the union has two branches \"%s\"", branch_name(b));
                    return NULL;
                }
            u->branches[i] = b;
        }
        p->path.len = mark;
        return u;
    }
    if (!json_is_object(j)) {
        serr(p, "a type must be a name, an object or a union array");
        return NULL;
    }
    json_t *t = json_object_get(j, "type");
    if (!t) {
        serr(p, "no \"type\"");
        return NULL;
    }
    if (!json_is_string(t)) {
        size_t mark = p->path.len;
        buf_puts(&p->path, "/type");
        struct node *n = parse_type(p, t, ns);
        if (n)
            p->path.len = mark;
        return n;
    }
    const char *tn = json_string_value(t);
    int k = primitive(tn);
    if (k >= 0) {
        struct node *n = new_node(p->s, (enum kind)k);
        n->logical = logical_of(j, n->kind);
        return n;
    }
    if (strcmp(tn, "record") == 0)
        return parse_record(p, j, ns);
    if (strcmp(tn, "enum") == 0)
        return parse_enum(p, j, ns);
    if (strcmp(tn, "array") == 0 || strcmp(tn, "map") == 0) {
        bool array = tn[0] == 'a';
        const char *member = array ? "items" : "values";
        json_t *sub = json_object_get(j, member);
        if (!sub) {
            serr(p, "%s needs \"%s\"", tn, member);
            return NULL;
        }
        struct node *n = new_node(p->s, array ? K_ARRAY : K_MAP);
        size_t mark = p->path.len;
        buf_printf(&p->path, "/%s", member);
        n->items = parse_type(p, sub, ns);
        if (!n->items)
            return NULL;
        p->path.len = mark;
        return n;
    }
    if (strcmp(tn, "fixed") == 0) {
        char *own = NULL;
        struct node *n = define_named(p, j, K_FIXED, ns, &own);
        free(own);
        if (!n)
            return NULL;
        json_t *size = json_object_get(j, "size");
        /* avro-c 1.11 cannot read a fixed of size 0 back (its
         * avro_malloc(0) is NULL, taken for out of memory) */
        if (!json_is_integer(size) || json_integer_value(size) < 1 ||
            json_integer_value(size) > INT32_MAX) {
            serr(p, "fixed %s needs a \"size\" from 1 to 2^31-1", n->name);
            return NULL;
        }
        n->size = json_integer_value(size);
        return n;
    }
    struct node *n = lookup(p, tn, ns);
    if (!n)
        serr(p, "unknown type \"%s\"", tn);
    return n;
}

/* Whether our reading and avro-c's agree: kinds, field names, symbols,
 * sizes and branch counts. Field and branch indices are what the walk
 * hands avro-c, so a disagreement would put values in the wrong place. */
static bool same_as_avro(struct node *n, avro_schema_t a, struct buf *msg)
{
    while (is_avro_link(a))
        a = avro_schema_link_target(a);
    if (!a || avro_typeof(a) != kind_avro[n->kind]) {
        buf_printf(msg, "schema: avro-c reads %s %s as another type", kind_names[n->kind],
                   n->name ? n->name : "");
        return false;
    }
    switch (n->kind) {
    case K_RECORD:
        if (n->compared)
            return true;
        n->compared = true;
        if (avro_schema_record_size(a) != n->n)
            break;
        for (size_t i = 0; i < n->n; i++) {
            const char *an = avro_schema_record_field_name(a, (int)i);
            if (!an || strcmp(an, n->fields[i].name) != 0)
                goto differ;
            if (!same_as_avro(n->fields[i].type, avro_schema_record_field_get_by_index(a, (int)i),
                              msg))
                return false;
        }
        return true;
    case K_ENUM:
        if ((size_t)avro_schema_enum_number_of_symbols(a) != n->n)
            break;
        for (size_t i = 0; i < n->n; i++) {
            const char *as = avro_schema_enum_get(a, (int)i);
            if (!as || strcmp(as, n->symbols[i]) != 0)
                goto differ;
        }
        return true;
    case K_FIXED:
        if (avro_schema_fixed_size(a) != n->size)
            break;
        return true;
    case K_ARRAY:
        return same_as_avro(n->items, avro_schema_array_items(a), msg);
    case K_MAP:
        return same_as_avro(n->items, avro_schema_map_values(a), msg);
    case K_UNION:
        if (avro_schema_union_size(a) != n->n)
            break;
        for (size_t i = 0; i < n->n; i++)
            if (!same_as_avro(n->branches[i], avro_schema_union_branch(a, (int)i), msg))
                return false;
        return true;
    default:
        return true;
    }
differ:
    buf_printf(msg, "schema: avro-c reads %s %s differently", kind_names[n->kind],
               n->name ? n->name : "");
    return false;
}

/* ---- the walk over a body ---- */

struct walk {
    struct buf path; /* JSON pointer of the value being walked */
    struct buf msg;  /* the first failure */
    struct buf scratch;
    bool failed;
    int depth;      /* records, arrays and maps entered */
    int in_default; /* > 0: walking a schema default */
    int trial;      /* > 0: trying a union branch, no message */
    bool exhausted; /* the trials ran out of steps */
    uint64_t steps, max_steps;
    size_t empty_items;
};

static void fail(struct walk *w, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void fail(struct walk *w, const char *fmt, ...)
{
    w->failed = true;
    if (w->trial || w->msg.len)
        return;
    if (w->path.len)
        buf_printf(&w->msg, "%.*s: ", (int)w->path.len, w->path.data);
    else
        buf_puts(&w->msg, "/: ");
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    buf_puts(&w->msg, line);
}

/* "string \"x\"", "integer 5", "object": what a JSON value is, for errors. */
static const char *describe(const json_t *j, char *out, size_t outlen)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING: {
        size_t n = json_string_length(j);
        snprintf(out, outlen, "string \"%.*s\"%s", (int)(n > 40 ? 40 : n), json_string_value(j),
                 n > 40 ? "..." : "");
        return out;
    }
    case JSON_INTEGER:
        snprintf(out, outlen, "integer %" JSON_INTEGER_FORMAT, json_integer_value(j));
        return out;
    case JSON_REAL:
        snprintf(out, outlen, "number %.17g", json_real_value(j));
        return out;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

static bool expected(struct walk *w, const struct node *n, const json_t *j)
{
    char d[96];
    if (!w->trial)
        fail(w, "expected %s%s%s, got %s", kind_names[n->kind], n->name ? " " : "",
             n->name ? n->name : "", describe(j, d, sizeof d));
    else
        w->failed = true;
    return false;
}

/* avro-c's return code: an error there is a bug or out of memory, never
 * the body's fault, but it fails the body all the same. */
static bool avro_ok(struct walk *w, int rc, const char *what)
{
    if (rc == 0)
        return true;
    fail(w, "avro-c: %s: %s", what, avro_strerror());
    return false;
}

static bool is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* Avro's JSON bytes encoding: each code point 0..255 is one byte.
 * jansson has checked the UTF-8 already. Into w->scratch. */
static bool json_bytes(struct walk *w, const json_t *j)
{
    const unsigned char *s = (const unsigned char *)json_string_value(j);
    size_t n = json_string_length(j);
    w->scratch.len = 0;
    buf_reserve(&w->scratch, n + 1);
    size_t chars = 0;
    for (size_t i = 0; i < n; chars++) {
        unsigned char c = s[i];
        if (c < 0x80) {
            w->scratch.data[w->scratch.len++] = (char)c;
            i++;
        } else if ((c == 0xc2 || c == 0xc3) && i + 1 < n) {
            w->scratch.data[w->scratch.len++] = (char)(((c & 0x1f) << 6) | (s[i + 1] & 0x3f));
            i += 2;
        } else {
            fail(w, "a bytes string holds code points up to U+00FF only; character %zu is above",
                 chars);
            return false;
        }
    }
    return true;
}

static bool walk_value(struct walk *w, const struct node *n, json_t *j, avro_value_t *v);

/* Whether a member name of a parsed object holds "\u0000" (allowed by
 * the parse for bytes; C strings would cut the name there). */
static bool key_has_nul(const char *key)
{
    return json_object_iter_key_len(json_object_key_to_iter(key)) != strlen(key);
}

static bool walk_record(struct walk *w, const struct node *n, json_t *j, avro_value_t *v)
{
    const char *key;
    json_t *member;
    size_t mark = w->path.len;
    /* A member the schema has no field for would be dropped: refused. */
    json_object_foreach(j, key, member)
    {
        if (key_has_nul(key) || !strmap_has(&n->index, key)) {
            put_token(&w->path, key);
            fail(w, "not a field of record %s", n->name);
            w->path.len = mark;
            return false;
        }
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct field *f = &n->fields[i];
        avro_value_t child, *c = NULL;
        if (v) {
            if (!avro_ok(w, avro_value_get_by_index(v, i, &child, NULL), "record field"))
                return false;
            c = &child;
        }
        member = json_object_get(j, f->name);
        bool ok;
        if (member) {
            put_token(&w->path, f->name);
            ok = walk_value(w, f->type, member, c);
        } else if (f->deflt) {
            put_token(&w->path, f->name);
            w->in_default++;
            ok = walk_value(w, f->type, f->deflt, c);
            w->in_default--;
        } else {
            fail(w, "missing field \"%s\" (no default)", f->name);
            return false;
        }
        w->path.len = mark;
        if (!ok)
            return false;
    }
    return true;
}

static bool walk_union(struct walk *w, const struct node *n, json_t *j, avro_value_t *v)
{
    avro_value_t branch;
    size_t pick = n->n;
    json_t *val = j;
    size_t mark = w->path.len;
    if (w->in_default) {
        /* the spec: a union's default is a value of its first branch */
        pick = 0;
    } else if (json_is_null(j)) {
        for (size_t i = 0; i < n->n; i++)
            if (n->branches[i]->kind == K_NULL)
                pick = i;
        if (pick == n->n)
            return expected(w, n, j);
    } else if (json_is_object(j) && json_object_size(j) == 1) {
        /* Avro's JSON encoding, {"type name": value}, whenever the one
         * member names a branch (avrojson.h) */
        void *it = json_object_iter(j);
        const char *key = json_object_iter_key(it);
        for (size_t i = 0; i < n->n; i++)
            if (!key_has_nul(key) && strcmp(branch_name(n->branches[i]), key) == 0) {
                pick = i;
                val = json_object_iter_value(it);
                put_token(&w->path, key);
            }
    }
    if (pick == n->n) {
        /* The plain value: the first branch it converts to. A value
         * other than null never converts to null, so with one other
         * branch there is nothing to try, and its error is the answer. */
        size_t others = 0, only = 0;
        for (size_t i = 0; i < n->n; i++)
            if (n->branches[i]->kind != K_NULL) {
                others++;
                only = i;
            }
        if (others == 1) {
            pick = only;
        } else {
            for (size_t i = 0; i < n->n && pick == n->n; i++) {
                if (n->branches[i]->kind == K_NULL)
                    continue;
                int depth = w->depth;
                w->trial++;
                bool ok = walk_value(w, n->branches[i], j, NULL);
                w->trial--;
                w->depth = depth;
                w->path.len = mark;
                w->failed = false;
                if (ok)
                    pick = i;
                else if (w->exhausted)
                    break;
            }
            if (pick == n->n) {
                w->failed = true;
                if (w->exhausted) {
                    fail(w, "choosing union branches took more than %" PRIu64 " steps",
                         w->max_steps);
                    return false;
                }
                char d[96];
                if (!w->trial) {
                    struct buf names = {0};
                    for (size_t i = 0; i < n->n; i++)
                        buf_printf(&names, "%s%s", i ? ", " : "", branch_name(n->branches[i]));
                    fail(w, "no branch of union [%s] takes %s", names.data,
                         describe(j, d, sizeof d));
                    buf_free(&names);
                }
                return false;
            }
            if (!v)
                return true; /* a trial of an outer union: converting is enough */
        }
    }
    if (v && !avro_ok(w, avro_value_set_branch(v, (int)pick, &branch), "union branch"))
        return false;
    bool ok = walk_value(w, n->branches[pick], val, v ? &branch : NULL);
    if (ok)
        w->path.len = mark;
    return ok;
}

static bool walk_value(struct walk *w, const struct node *n, json_t *j, avro_value_t *v)
{
    if (w->trial && ++w->steps > w->max_steps) {
        w->exhausted = true;
        w->failed = true;
        return false;
    }
    char d[96];
    switch (n->kind) {
    case K_NULL:
        if (!json_is_null(j))
            return expected(w, n, j);
        return !v || avro_ok(w, avro_value_set_null(v), "null");
    case K_BOOLEAN:
        if (!json_is_boolean(j))
            return expected(w, n, j);
        return !v || avro_ok(w, avro_value_set_boolean(v, json_is_true(j)), "boolean");
    case K_INT:
    case K_LONG: {
        if (!json_is_integer(j))
            return expected(w, n, j);
        json_int_t x = json_integer_value(j);
        if (n->kind == K_INT && (x < INT32_MIN || x > INT32_MAX)) {
            fail(w, "%" JSON_INTEGER_FORMAT " is out of range for int", x);
            return false;
        }
        if ((n->logical == L_TIME_MILLIS && (x < 0 || x >= 86400000LL)) ||
            (n->logical == L_TIME_MICROS && (x < 0 || x >= 86400000000LL))) {
            fail(w, "%" JSON_INTEGER_FORMAT " is not a time of day in %s", x,
                 n->logical == L_TIME_MILLIS ? "milliseconds" : "microseconds");
            return false;
        }
        if (!v)
            return true;
        if (n->kind == K_INT)
            return avro_ok(w, avro_value_set_int(v, (int32_t)x), "int");
        return avro_ok(w, avro_value_set_long(v, (int64_t)x), "long");
    }
    case K_FLOAT:
    case K_DOUBLE: {
        if (!json_is_number(j))
            return expected(w, n, j);
        double x = json_number_value(j);
        if (n->kind == K_FLOAT && fabs(x) > FLT_MAX) {
            fail(w, "%s is out of range for float", describe(j, d, sizeof d));
            return false;
        }
        if (!v)
            return true;
        if (n->kind == K_FLOAT)
            return avro_ok(w, avro_value_set_float(v, (float)x), "float");
        return avro_ok(w, avro_value_set_double(v, x), "double");
    }
    case K_STRING: {
        if (!json_is_string(j))
            return expected(w, n, j);
        const char *s = json_string_value(j);
        size_t len = json_string_length(j);
        /* avro-c's strings end at a NUL */
        if (strlen(s) != len) {
            fail(w, "a string may not hold \\u0000");
            return false;
        }
        if (n->logical == L_UUID && !is_uuid(s, len)) {
            fail(w, "%s is not a uuid (8-4-4-4-12 hex digits)", describe(j, d, sizeof d));
            return false;
        }
        return !v || avro_ok(w, avro_value_set_string_len(v, s, len + 1), "string");
    }
    case K_BYTES:
    case K_FIXED:
        if (!json_is_string(j))
            return expected(w, n, j);
        if (!json_bytes(w, j))
            return false;
        if (n->kind == K_FIXED && (int64_t)w->scratch.len != n->size) {
            fail(w, "fixed %s needs %" PRId64 " bytes, got %zu", n->name, n->size, w->scratch.len);
            return false;
        }
        if (!v)
            return true;
        if (n->kind == K_BYTES)
            return avro_ok(w, avro_value_set_bytes(v, w->scratch.data, w->scratch.len), "bytes");
        return avro_ok(w, avro_value_set_fixed(v, w->scratch.data, w->scratch.len), "fixed");
    case K_ENUM: {
        if (!json_is_string(j))
            return expected(w, n, j);
        uintptr_t i = (uintptr_t)strmap_get(&n->index, json_string_value(j));
        if (!i || strlen(json_string_value(j)) != json_string_length(j)) {
            fail(w, "%s is not a symbol of enum %s", describe(j, d, sizeof d), n->name);
            return false;
        }
        return !v || avro_ok(w, avro_value_set_enum(v, (int)(i - 1)), "enum");
    }
    case K_UNION:
        return walk_union(w, n, j, v);
    default:
        break;
    }

    /* records, arrays and maps: the depth bound, counted as
     * avrojson_check_binary counts it */
    bool is_record = n->kind == K_RECORD;
    if ((n->kind == K_ARRAY && !json_is_array(j)) || (n->kind != K_ARRAY && !json_is_object(j)))
        return expected(w, n, j);
    if (w->depth >= AVROJSON_MAX_DEPTH) {
        fail(w, "records, arrays and maps nested deeper than %d", AVROJSON_MAX_DEPTH);
        return false;
    }
    w->depth++;
    bool ok = true;
    size_t mark = w->path.len;
    if (is_record) {
        ok = walk_record(w, n, j, v);
    } else if (n->kind == K_ARRAY) {
        size_t i;
        json_t *item;
        json_array_foreach(j, i, item)
        {
            avro_value_t child;
            if (v && n->items->zero && ++w->empty_items > AVROJSON_MAX_EMPTY_ITEMS) {
                fail(w, "more than %d items that encode to no bytes", AVROJSON_MAX_EMPTY_ITEMS);
                ok = false;
                break;
            }
            if (v && !avro_ok(w, avro_value_append(v, &child, NULL), "array item")) {
                ok = false;
                break;
            }
            put_index(&w->path, i);
            if (!walk_value(w, n->items, item, v ? &child : NULL)) {
                ok = false;
                break;
            }
            w->path.len = mark;
        }
    } else {
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val)
        {
            avro_value_t child;
            if (key_has_nul(key)) {
                put_token(&w->path, key);
                fail(w, "a map key may not hold \\u0000");
                ok = false;
                break;
            }
            if (v && !avro_ok(w, avro_value_add(v, key, &child, NULL, NULL), "map entry")) {
                ok = false;
                break;
            }
            put_token(&w->path, key);
            if (!walk_value(w, n->items, val, v ? &child : NULL)) {
                ok = false;
                break;
            }
            w->path.len = mark;
        }
    }
    w->depth--;
    return ok;
}

static void walk_free(struct walk *w)
{
    buf_free(&w->path);
    buf_free(&w->msg);
    buf_free(&w->scratch);
}

/* ---- compile ---- */

static void node_free(struct node *n)
{
    if (n->kind == K_RECORD)
        for (size_t i = 0; i < n->n; i++)
            free(n->fields[i].where);
    free(n->name);
    free(n->fields);
    free(n->symbols);
    free(n->branches);
    strmap_free(&n->index);
    free(n);
}

void avrojson_free(struct avrojson *s)
{
    if (!s)
        return;
    if (s->iface)
        avro_value_iface_decref(s->iface);
    if (s->schema)
        avro_schema_decref(s->schema);
    for (size_t i = 0; i < s->nnodes; i++)
        node_free(s->nodes[i]);
    free(s->nodes);
    json_decref(s->doc);
    free(s);
}

/* Which nodes encode to no bytes: null, records of only nulls and such
 * records (the least fixed point, so a record that contains itself is not
 * one; it has no finite value anyway). */
static void mark_zero(struct avrojson *s)
{
    bool changed = true;
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *n = s->nodes[i];
        n->zero = n->kind == K_NULL;
    }
    while (changed) {
        changed = false;
        for (size_t i = 0; i < s->nnodes; i++) {
            struct node *n = s->nodes[i];
            if (n->kind != K_RECORD || n->zero)
                continue;
            bool all = true;
            for (size_t f = 0; f < n->n && all; f++)
                all = n->fields[f].type->zero;
            if (all)
                changed = n->zero = true;
        }
    }
}

/* Every default must be a value of its field's type. */
static bool check_defaults(struct avrojson *s, struct buf *msg)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        struct node *n = s->nodes[i];
        if (n->kind != K_RECORD)
            continue;
        for (size_t f = 0; f < n->n; f++) {
            const struct field *fd = &n->fields[f];
            if (!fd->deflt)
                continue;
            struct walk w = {.max_steps = UINT64_MAX, .in_default = 1};
            buf_puts(&w.path, fd->where);
            bool ok = walk_value(&w, fd->type, fd->deflt, NULL);
            if (!ok)
                buf_printf(msg, "schema: default of field \"%s\" of record %s: %s", fd->name,
                           n->name, w.msg.len ? w.msg.data : "invalid");
            walk_free(&w);
            if (!ok)
                return false;
        }
    }
    return true;
}

/* Remove every "default" member from j, recursively (the text is at most
 * AVROJSON_MAX_SCHEMA_DEPTH deep). */
static void strip_defaults(json_t *j)
{
    size_t i;
    json_t *v;
    const char *key;
    if (json_is_object(j)) {
        json_object_del(j, "default");
        json_object_foreach(j, key, v) strip_defaults(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) strip_defaults(v);
    }
}

static struct avrojson *compile(const char *text, size_t len, struct buf *msg)
{
    struct avrojson *s = xcalloc(1, sizeof *s);
    s->doc = load_json(text, len, AVROJSON_MAX_SCHEMA_DEPTH, "schema", msg);
    if (!s->doc)
        goto fail;
    struct sparse p = {.s = s};
    s->root = parse_type(&p, s->doc, "");
    if (p.failed || !s->root) {
        buf_append(msg, p.msg.data, p.msg.len);
        if (!msg->len)
            buf_puts(msg, "schema: invalid");
    }
    strmap_free(&p.names);
    buf_free(&p.path);
    buf_free(&p.msg);
    if (msg->len)
        goto fail;

    /* avro-c parses the same document, reserialized without its defaults:
     * avro-c ignores them, and its parser refuses the "\u0000" that a
     * bytes default may hold. */
    json_t *bare = json_deep_copy(s->doc);
    if (!bare) {
        buf_puts(msg, "schema: out of memory");
        goto fail;
    }
    strip_defaults(bare);
    char *canon = json_dumps(bare, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(bare);
    if (!canon) {
        buf_puts(msg, "schema: cannot serialize it for avro-c");
        goto fail;
    }
    int rc = avro_schema_from_json_length(canon, strlen(canon), &s->schema);
    free(canon);
    if (rc) {
        s->schema = NULL;
        buf_printf(msg, "schema: avro-c: %s", avro_strerror());
        goto fail;
    }
    if (!same_as_avro(s->root, s->schema, msg))
        goto fail;
    mark_zero(s);
    if (!check_defaults(s, msg))
        goto fail;
    s->iface = avro_generic_class_from_schema(s->schema);
    if (!s->iface) {
        buf_printf(msg, "schema: avro-c: %s", avro_strerror());
        goto fail;
    }
    return s;
fail:
    avrojson_free(s);
    return NULL;
}

struct avrojson *avrojson_compile(const char *schema, size_t len, char *err, size_t errlen)
{
    struct buf msg = {0};
    struct avrojson *s = compile(schema ? schema : "", schema ? len : 0, &msg);
    if (!s)
        put_line(err, errlen, msg.data ? msg.data : "schema: invalid", msg.data ? msg.len : 16);
    buf_free(&msg);
    return s;
}

/* ---- encode ---- */

bool avrojson_encode(const struct avrojson *s, const void *body, size_t len, struct buf *out,
                     char *why, size_t whylen)
{
    struct walk w = {.max_steps = (uint64_t)AVROJSON_TRIAL_STEPS * (len + 64)};
    bool ok = false, have_value = false;
    avro_value_t value;
    json_t *j = load_json(body ? body : "", body ? len : 0, AVROJSON_MAX_DEPTH, "body", &w.msg);
    if (!j)
        goto done;
    if (!avro_ok(&w, avro_generic_value_new(s->iface, &value), "new value"))
        goto done;
    have_value = true;
    if (!walk_value(&w, s->root, j, &value))
        goto done;
    size_t size;
    if (!avro_ok(&w, avro_value_sizeof(&value, &size), "size"))
        goto done;
    if (size > 0) {
        buf_reserve(out, size);
        avro_writer_t wr = avro_writer_memory(out->data + out->len, (int64_t)size);
        if (!wr) {
            fail(&w, "avro-c: writer: %s", avro_strerror());
            goto done;
        }
        int rc = avro_value_write(wr, &value);
        int64_t written = avro_writer_tell(wr);
        avro_writer_free(wr);
        if (rc || written != (int64_t)size) {
            fail(&w, "avro-c: write: %s", rc ? avro_strerror() : "short");
            goto done;
        }
        out->len += size;
    }
    ok = true;
done:
    if (ok)
        put_line(why, whylen, "", 0);
    else
        put_line(why, whylen, w.msg.len ? w.msg.data : "/: invalid", w.msg.len ? w.msg.len : 10);
    if (have_value)
        avro_value_decref(&value);
    json_decref(j);
    walk_free(&w);
    return ok;
}

/* ---- check_binary ---- */

struct scan {
    const uint8_t *p;
    size_t len, pos;
    int depth;
    size_t empty_items;
    struct buf msg;
};

static bool serr_at(struct scan *sc, size_t at, const char *fmt, ...) PRINTF_LIKE(3, 4);
static bool serr_at(struct scan *sc, size_t at, const char *fmt, ...)
{
    if (sc->msg.len)
        return false;
    buf_printf(&sc->msg, "offset %zu: ", at);
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    buf_puts(&sc->msg, line);
    return false;
}

/* A zigzag varint of at most 10 bytes whose value fits 64 bits. */
static bool scan_long(struct scan *sc, int64_t *out)
{
    size_t at = sc->pos;
    uint64_t v = 0;
    for (int i = 0;; i++) {
        if (sc->pos >= sc->len)
            return serr_at(sc, at, "truncated varint");
        uint8_t b = sc->p[sc->pos++];
        if (i == 9 && b > 1)
            return serr_at(sc, at, "varint beyond 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return true;
}

static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (k >= n - i)
            return false;
        for (size_t m = 1; m <= k; m++) {
            if ((s[i + m] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + m] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* A length prefix and that many bytes, which must all be there. */
static bool scan_len(struct scan *sc, const char *what, size_t *start, size_t *n)
{
    size_t at = sc->pos;
    int64_t l;
    if (!scan_long(sc, &l))
        return false;
    if (l < 0)
        return serr_at(sc, at, "negative %s length %" PRId64, what, l);
    if ((uint64_t)l > sc->len - sc->pos)
        return serr_at(sc, at, "%s length %" PRId64 " exceeds the %zu bytes left", what, l,
                       sc->len - sc->pos);
    *start = sc->pos;
    *n = (size_t)l;
    sc->pos += (size_t)l;
    return true;
}

static bool scan_string(struct scan *sc, const struct node *n)
{
    size_t at = sc->pos, start, len;
    if (!scan_len(sc, "string", &start, &len))
        return false;
    if (!utf8_ok(sc->p + start, len))
        return serr_at(sc, at, "string is not UTF-8");
    if (n && n->logical == L_UUID && !is_uuid((const char *)sc->p + start, len))
        return serr_at(sc, at, "string is not a uuid");
    return true;
}

static bool scan_value(struct scan *sc, const struct node *n);

/* Blocks of items: a count, a negative count with the block's byte size,
 * 0 at the end. */
static bool scan_blocks(struct scan *sc, const struct node *n)
{
    bool map = n->kind == K_MAP;
    for (;;) {
        size_t at = sc->pos;
        int64_t count;
        if (!scan_long(sc, &count))
            return false;
        if (count == 0)
            return true;
        int64_t bytes = -1;
        if (count < 0) {
            if (count == INT64_MIN)
                return serr_at(sc, at, "block count -2^63");
            count = -count;
            size_t bat = sc->pos;
            if (!scan_long(sc, &bytes))
                return false;
            if (bytes < 0 || (uint64_t)bytes > sc->len - sc->pos)
                return serr_at(sc, bat, "block size %" PRId64 " does not fit the %zu bytes left",
                               bytes, sc->len - sc->pos);
        }
        size_t start = sc->pos;
        if (!map && n->items->zero) {
            if ((uint64_t)count > AVROJSON_MAX_EMPTY_ITEMS - sc->empty_items)
                return serr_at(sc, at, "more than %d items that encode to no bytes",
                               AVROJSON_MAX_EMPTY_ITEMS);
            sc->empty_items += (size_t)count;
        } else if ((uint64_t)count > sc->len - sc->pos) {
            /* each item takes a byte at least */
            return serr_at(sc, at, "block count %" PRId64 " exceeds the %zu bytes left", count,
                           sc->len - sc->pos);
        }
        for (int64_t i = 0; i < count; i++) {
            if (map && !scan_string(sc, NULL))
                return false;
            if (!scan_value(sc, n->items))
                return false;
        }
        if (bytes >= 0 && sc->pos - start != (uint64_t)bytes)
            return serr_at(sc, at, "block size %" PRId64 " but its items take %zu bytes", bytes,
                           sc->pos - start);
    }
}

static bool scan_value(struct scan *sc, const struct node *n)
{
    size_t at = sc->pos;
    int64_t x;
    switch (n->kind) {
    case K_NULL:
        return true;
    case K_BOOLEAN:
        if (sc->pos >= sc->len)
            return serr_at(sc, at, "truncated boolean");
        if (sc->p[sc->pos] > 1)
            return serr_at(sc, at, "boolean byte %u is neither 0 nor 1", sc->p[sc->pos]);
        sc->pos++;
        return true;
    case K_INT:
        if (!scan_long(sc, &x))
            return false;
        if (x < INT32_MIN || x > INT32_MAX)
            return serr_at(sc, at, "%" PRId64 " is out of range for int", x);
        return true;
    case K_LONG:
        return scan_long(sc, &x);
    case K_FLOAT:
    case K_DOUBLE: {
        size_t k = n->kind == K_FLOAT ? 4 : 8;
        if (sc->len - sc->pos < k)
            return serr_at(sc, at, "truncated %s", kind_names[n->kind]);
        sc->pos += k;
        return true;
    }
    case K_STRING:
        return scan_string(sc, n);
    case K_BYTES: {
        size_t start, len;
        return scan_len(sc, "bytes", &start, &len);
    }
    case K_FIXED:
        if ((uint64_t)n->size > sc->len - sc->pos)
            return serr_at(sc, at, "fixed %s needs %" PRId64 " bytes, %zu left", n->name, n->size,
                           sc->len - sc->pos);
        sc->pos += (size_t)n->size;
        return true;
    case K_ENUM:
        if (!scan_long(sc, &x))
            return false;
        if (x < 0 || (uint64_t)x >= n->n)
            return serr_at(sc, at, "enum %s has no symbol %" PRId64, n->name, x);
        return true;
    case K_UNION:
        if (!scan_long(sc, &x))
            return false;
        if (x < 0 || (uint64_t)x >= n->n)
            return serr_at(sc, at, "union has no branch %" PRId64, x);
        return scan_value(sc, n->branches[x]);
    default:
        break;
    }
    if (sc->depth >= AVROJSON_MAX_DEPTH)
        return serr_at(sc, at, "records, arrays and maps nested deeper than %d",
                       AVROJSON_MAX_DEPTH);
    sc->depth++;
    bool ok = true;
    if (n->kind == K_RECORD) {
        for (size_t i = 0; i < n->n && ok; i++)
            ok = scan_value(sc, n->fields[i].type);
    } else {
        ok = scan_blocks(sc, n);
    }
    sc->depth--;
    return ok;
}

bool avrojson_check_binary(const struct avrojson *s, const void *data, size_t len, char *why,
                           size_t whylen)
{
    struct scan sc = {.p = data ? data : (const uint8_t *)"", .len = data ? len : 0};
    bool ok = scan_value(&sc, s->root);
    if (ok && sc.pos != sc.len)
        ok = serr_at(&sc, sc.pos, "%zu bytes left over after the datum", sc.len - sc.pos);
    if (ok) {
        /* Only now may avro-c read it: every length fits what is there. */
        avro_reader_t r = avro_reader_memory((const char *)sc.p, (int64_t)sc.len);
        if (!r) {
            buf_printf(&sc.msg, "avro-c: reader: %s", avro_strerror());
            ok = false;
        } else {
            avro_value_t value;
            if (avro_generic_value_new(s->iface, &value)) {
                buf_printf(&sc.msg, "avro-c: new value: %s", avro_strerror());
                ok = false;
            } else if (avro_value_read(r, &value)) {
                buf_printf(&sc.msg, "avro-c cannot read it: %s", avro_strerror());
                avro_value_decref(&value);
                ok = false;
            } else {
                avro_value_decref(&value);
                /* avro_reader_is_eof answers only for file readers: a
                 * memory reader at its end refuses one byte more. */
                char extra;
                if (avro_read(r, &extra, 1) == 0) {
                    buf_puts(&sc.msg, "avro-c read less than all of it");
                    ok = false;
                }
            }
            avro_reader_free(r);
        }
    }
    if (ok)
        put_line(why, whylen, "", 0);
    else
        put_line(why, whylen, sc.msg.data ? sc.msg.data : "invalid", sc.msg.data ? sc.msg.len : 7);
    buf_free(&sc.msg);
    return ok;
}
