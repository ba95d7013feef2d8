/* jsonschema.cc - hopper's JSON Schema validator (include/jsonschema.h):
 * nlohmann-json parses, valijson 1.0 compiles and validates.
 *
 * Everything valijson and nlohmann may throw is caught at the C boundary
 * (valijson is built with VALIJSON_USE_EXCEPTIONS, or its errors would
 * abort()). Before valijson sees a schema, a walk of our own refuses what
 * would crash or mislead it at run time: a "$ref" cycle that never
 * descends into the body (valijson 1.0 recurses on it until the stack
 * overflows, at compile or at validation time), a "multipleOf" of 0 or
 * less (integer division by zero), and a "pattern" std::regex rejects
 * (valijson would compile it only when the first body reaches it). */
#define VALIJSON_USE_EXCEPTIONS 1

#include "jsonschema.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <jansson.h>
#include <nlohmann/json.hpp>
/* RapidJSON checks its invariants with RAPIDJSON_ASSERT all through its
 * parser. valijson's adapter would define it, under
 * VALIJSON_USE_EXCEPTIONS, to build two std::strings per check, a malloc
 * each: most of a parse's time. A failed check throws here too (the slow
 * path then decides), without the cost. The adapter's own dependencies
 * come first, with exceptions on (they are #pragma once). */
#include <stdexcept>
#include <valijson/exceptions.hpp>
#include <valijson/internal/adapter.hpp>
#include <valijson/internal/basic_adapter.hpp>
#include <valijson/internal/frozen_value.hpp>
#define RAPIDJSON_ASSERT(x) ((x) ? (void)0 : throw std::logic_error("rapidjson: " #x))
#pragma push_macro("VALIJSON_USE_EXCEPTIONS")
#undef VALIJSON_USE_EXCEPTIONS
#include <valijson/adapters/rapidjson_adapter.hpp>
#pragma pop_macro("VALIJSON_USE_EXCEPTIONS")
#include <rapidjson/document.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

using json = nlohmann::json;

struct jsonschema {
    valijson::Schema schema;
    /* The validator caches the std::regex of each "pattern": one thread
     * at a time (jsonschema.h). */
    mutable valijson::Validator validator;
    /* The schema matches strings against regular expressions: bodies
     * with longer strings than JSONSCHEMA_MAX_REGEX_INPUT are refused. */
    bool uses_regex = false;
};

namespace
{

/* Thrown from the parser callback to stop a parse at once. */
struct parse_stop {
    std::string why;
};

/* Copy s into out as one line of printable ASCII: control characters,
 * DEL and non-ASCII bytes (nlohmann quotes the bytes it choked on, which
 * may be invalid UTF-8) become \xNN. Truncated to fit; always
 * terminated when outlen > 0. */
void put_line(char *out, size_t outlen, const std::string &s)
{
    if (!out || outlen == 0)
        return;
    size_t n = 0;
    for (unsigned char c : s) {
        char esc[5];
        const char *p = esc;
        size_t k;
        if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            k = 4;
        } else {
            esc[0] = (char)c;
            k = 1;
        }
        if (n + k >= outlen)
            break;
        memcpy(out + n, p, k);
        n += k;
    }
    out[n] = '\0';
}

/* nlohmann's messages start with "[json.exception.parse_error.101] ". */
std::string nlohmann_reason(const json::exception &e)
{
    std::string w = e.what();
    if (w.rfind("[json.exception.", 0) == 0) {
        size_t end = w.find("] ");
        if (end != std::string::npos)
            w.erase(0, end + 2);
    }
    return w;
}

/* Parse text[0..len) into out, stopping at the first array or object
 * nested deeper than max_depth (nlohmann's callback sees each container
 * start before it is entered) and, when max_string is not 0, at the first
 * string or member name longer than max_string bytes. false with a reason
 * in why ("<what> is not JSON: ..."). Integers above INT64_MAX become
 * doubles. */
bool parse_bounded(const char *text, size_t len, int max_depth, size_t max_string, const char *what,
                   json &out, std::string &why)
{
    /* nlohmann's lexer takes a NUL byte for the end of the input and
     * would leave what follows unread: "{}\0garbage" would pass. */
    if (const void *nul = memchr(text, '\0', len)) {
        why = std::string(what) + " is not JSON: a NUL byte at offset " +
              std::to_string((const char *)nul - text);
        return false;
    }
    json::parser_callback_t cb = [max_depth, max_string](int depth, json::parse_event_t ev,
                                                         json &parsed) -> bool {
        /* depth counts the containers around the one starting. */
        if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) &&
            depth >= max_depth)
            throw parse_stop{"arrays and objects nested deeper than " + std::to_string(max_depth)};
        /* valijson 1.0 reads every integer as int64_t: 2^63 and above
         * would wrap to negative numbers. As doubles they compare right
         * (though "type": "integer" no longer matches them). */
        if (ev == json::parse_event_t::value && parsed.is_number_unsigned() &&
            parsed.get<uint64_t>() > (uint64_t)INT64_MAX)
            parsed = (double)parsed.get<uint64_t>();
        if (max_string && (ev == json::parse_event_t::key || ev == json::parse_event_t::value) &&
            parsed.is_string() && parsed.get_ref<const std::string &>().size() > max_string)
            throw parse_stop{"a string of " +
                             std::to_string(parsed.get_ref<const std::string &>().size()) +
                             " bytes, longer than " + std::to_string(max_string) +
                             " (the bound for a schema with regular expressions)"};
        return true;
    };
    try {
        out = json::parse(text, text + len, cb, true, false);
        return true;
    } catch (const parse_stop &e) {
        why = std::string(what) + " is refused: " + e.why;
    } catch (const json::exception &e) {
        /* parse_error, and out_of_range 406 for a number beyond double's
         * range such as 1e400 */
        why = std::string(what) + " is not JSON: " + nlohmann_reason(e);
    }
    return false;
}

/* The parser mode for the schema's "$schema"; false when unsupported. */
bool pick_draft(const json &doc, valijson::SchemaParser::Version &v, std::string &why)
{
    v = valijson::SchemaParser::kDraft7;
    if (!doc.is_object())
        return true;
    auto it = doc.find("$schema");
    if (it == doc.end())
        return true;
    if (!it->is_string()) {
        why = "$schema: must be a string";
        return false;
    }
    std::string uri = it->get<std::string>();
    std::string u = uri;
    for (const char *scheme : {"http://", "https://"})
        if (u.rfind(scheme, 0) == 0) {
            u.erase(0, strlen(scheme));
            break;
        }
    if (!u.empty() && u.back() == '#')
        u.pop_back();
    if (u == "json-schema.org/draft-04/schema") {
        v = valijson::SchemaParser::kDraft4;
        return true;
    }
    /* valijson 1.0 has no draft 6 mode; draft 7 only adds keywords
     * ("if"/"then"/"else" and formats), so a draft 6 schema means the same. */
    if (u == "json-schema.org/draft-06/schema" || u == "json-schema.org/draft-07/schema")
        return true;
    why = "$schema \"" + uri + "\": not a draft hopper validates (4, 6 or 7)";
    return false;
}

/* "~" and "/" escaped for a JSON pointer token. */
std::string pointer_token(const std::string &s)
{
    std::string t;
    for (char c : s) {
        if (c == '~')
            t += "~0";
        else if (c == '/')
            t += "~1";
        else
            t += c;
    }
    return t;
}

/* The node a local "$ref" ("#", "#/definitions/a", %-encoded) points at,
 * or NULL. An empty reference is this document (RFC 3986), as "#" is:
 * valijson 1.0 takes it so (fuzz_registry found the recursion). */
const json *resolve_local_ref(const json &root, const std::string &ref)
{
    if (ref.empty())
        return &root;
    if (ref[0] != '#')
        return nullptr;
    std::string ptr;
    for (size_t i = 1; i < ref.size(); i++) {
        if (ref[i] == '%' && i + 2 < ref.size() && isxdigit((unsigned char)ref[i + 1]) &&
            isxdigit((unsigned char)ref[i + 2])) {
            ptr += (char)std::stoi(ref.substr(i + 1, 2), nullptr, 16);
            i += 2;
        } else {
            ptr += ref[i];
        }
    }
    if (ptr.empty())
        return &root;
    if (ptr[0] != '/')
        return nullptr;
    const json *node = &root;
    size_t pos = 1;
    for (;;) {
        size_t end = ptr.find('/', pos);
        std::string tok = ptr.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        for (size_t i = 0; (i = tok.find('~', i)) != std::string::npos; i++) {
            if (i + 1 < tok.size() && (tok[i + 1] == '0' || tok[i + 1] == '1'))
                tok.replace(i, 2, tok[i + 1] == '0' ? "~" : "/");
            else
                return nullptr;
        }
        if (node->is_object()) {
            auto it = node->find(tok);
            if (it == node->end())
                return nullptr;
            node = &*it;
        } else if (node->is_array()) {
            if (tok.empty() || tok.size() > 9 ||
                tok.find_first_not_of("0123456789") != std::string::npos)
                return nullptr;
            size_t i = std::stoul(tok);
            if (i >= node->size())
                return nullptr;
            node = &(*node)[i];
        } else {
            return nullptr;
        }
        if (end == std::string::npos)
            return node;
        pos = end + 1;
    }
}

/* The walk over a schema before valijson compiles it. */
struct schema_walk {
    const json &root;
    /* Subschemas that apply to the same body value as the key's: the
     * applicators and local "$ref"s. A cycle here is endless recursion. */
    std::map<const json *, std::vector<const json *>> same_value;
    std::map<const json *, std::string> path_of;
    std::vector<const json *>
        walked; /* in walk order: cycles are reported the same way each time */
    bool uses_regex = false;
    std::string remote_ref; /* the first "$ref" not into this document */
    std::string error;

    explicit schema_walk(const json &r) : root(r) {}

    void fail(const std::string &path, const std::string &what)
    {
        if (error.empty())
            error = (path.empty() ? "(root)" : path) + ": " + what;
    }

    /* libstdc++ 12 reads a backreference's or a brace quantifier's
     * number into a long without an overflow check (undefined behaviour
     * past 19 digits) and silently truncates it to int: a number of more
     * than six digits is refused before std::regex sees it. Beyond the
     * bound std::regex would refuse it anyway (its 100,000 NFA states). */
    static bool regex_numbers_bounded(const std::string &re)
    {
        bool in_braces = false, backref = false;
        size_t run = 0; /* digits in a row that std::regex reads as one number */
        for (size_t i = 0; i < re.size(); i++) {
            char c = re[i];
            bool digit = c >= '0' && c <= '9';
            if (!digit)
                backref = false, run = 0;
            if (c == '\\' && i + 1 < re.size()) {
                if (re[i + 1] >= '0' && re[i + 1] <= '9')
                    backref = true;
                else
                    i++; /* an escaped '{' or '}' is no brace */
                continue;
            }
            if (c == '{' || c == '}')
                in_braces = c == '{';
            if (digit && (backref || in_braces) && ++run > 6)
                return false;
        }
        return true;
    }

    void check_regex(const std::string &path, const std::string &re)
    {
        uses_regex = true;
        if (!regex_numbers_bounded(re)) {
            fail(path,
                 "\"" + re + "\" has a backreference or repeat count of more than six digits");
            return;
        }
        try {
            std::regex r(re);
        } catch (const std::regex_error &e) {
            fail(path, "\"" + re + "\" is not a regular expression std::regex accepts (" +
                           e.what() + ")");
        }
    }

    void edge(const json &from, const json &to)
    {
        same_value[&from].push_back(&to);
    }

    void walk(const json &node, const std::string &path)
    {
        if (!node.is_object())
            return; /* true/false, or not a schema: valijson says so */
        path_of[&node] = path;
        walked.push_back(&node);
        auto ref = node.find("$ref");
        if (ref != node.end() && ref->is_string()) {
            /* As valijson 1.0 reads it: trailing slashes trimmed
             * (sanitiseJsonPointer), so "#/" is the root, not its member
             * "" (fuzz_registry: "#/" at the root recursed until the stack
             * overflowed). */
            std::string r = ref->get_ref<const std::string &>();
            if (r.size() > 1 && r[0] == '#')
                r.erase(std::max<size_t>(r.find_last_not_of('/') + 1, 1));
            if (const json *target = resolve_local_ref(root, r))
                edge(node, *target);
            else if (!r.empty() && r[0] != '#' && remote_ref.empty())
                remote_ref = r;
            /* A pointer into this document that names nothing ("#/",
             * "#/definitions/missing"): valijson 1.0 resolved "#/" to the
             * root and recursed until the stack overflowed (fuzz_registry
             * in CI). Only "#name" anchors are left to valijson. */
            if (!r.empty() && r.size() > 1 && r[0] == '#' && r[1] == '/' &&
                !resolve_local_ref(root, r))
                fail(path, "$ref \"" + r + "\" points at nothing in this schema");
        }
        for (auto it = node.begin(); it != node.end(); ++it) {
            const std::string &k = it.key();
            const json &v = it.value();
            const std::string p = path + "/" + pointer_token(k);
            if (k == "enum" || k == "const" || k == "default" || k == "examples") {
                continue; /* data, not schemas */
            } else if (k == "allOf" || k == "anyOf" || k == "oneOf") {
                if (v.is_array())
                    for (size_t i = 0; i < v.size(); i++) {
                        edge(node, v[i]);
                        walk(v[i], p + "/" + std::to_string(i));
                    }
            } else if (k == "not" || k == "if" || k == "then" || k == "else") {
                edge(node, v);
                walk(v, p);
            } else if (k == "dependencies" && v.is_object()) {
                for (auto d = v.begin(); d != v.end(); ++d)
                    if (d->is_object()) {
                        edge(node, *d);
                        walk(*d, p + "/" + pointer_token(d.key()));
                    }
            } else if ((k == "properties" || k == "patternProperties" || k == "definitions") &&
                       v.is_object()) {
                for (auto m = v.begin(); m != v.end(); ++m) {
                    if (k == "patternProperties")
                        check_regex(p, m.key());
                    walk(*m, p + "/" + pointer_token(m.key()));
                }
            } else if (k == "items" && v.is_array()) {
                for (size_t i = 0; i < v.size(); i++)
                    walk(v[i], p + "/" + std::to_string(i));
            } else if (k == "multipleOf") {
                if (v.is_number() && !(v.get<double>() > 0))
                    fail(p, "must be greater than 0");
            } else if (k == "pattern" && v.is_string()) {
                check_regex(p, v.get<std::string>());
            } else if (k == "format" && v.is_string()) {
                /* the formats valijson 1.0 checks, with std::regex */
                const std::string &f = v.get_ref<const std::string &>();
                if (f == "date" || f == "time" || f == "date-time")
                    uses_regex = true;
            } else if (v.is_object()) {
                /* items, additionalItems, additionalProperties, contains,
                 * propertyNames; and unknown keywords, which a "$ref" may
                 * point into */
                walk(v, p);
            }
        }
    }

    /* A cycle of same-value edges, as "#/a -> #/b -> #/a"; empty if none.
     * Iterative depth-first search: the graph is as large as the schema. */
    std::string find_cycle()
    {
        enum colour { WHITE, GREY, BLACK };
        std::map<const json *, colour> colour_of;
        for (const json *start : walked) {
            if (colour_of[start] != WHITE)
                continue;
            /* (node, index of its next edge) */
            std::vector<std::pair<const json *, size_t>> stack{{start, 0}};
            colour_of[start] = GREY;
            while (!stack.empty()) {
                const json *n = stack.back().first;
                size_t i = stack.back().second++;
                auto edges = same_value.find(n);
                if (edges == same_value.end() || i >= edges->second.size()) {
                    colour_of[n] = BLACK;
                    stack.pop_back();
                    continue;
                }
                const json *next = edges->second[i];
                colour c = colour_of[next];
                if (c == GREY) {
                    std::string s;
                    bool on = false;
                    for (auto &f : stack) {
                        on = on || f.first == next;
                        if (on)
                            s += "#" + path_of[f.first] + " -> ";
                    }
                    return s + "#" + path_of[next];
                }
                if (c == WHITE) {
                    colour_of[next] = GREY;
                    stack.push_back({next, 0});
                }
            }
        }
        return "";
    }
};

/* A step of valijson's error context, as a JSON pointer token resolved
 * against the body: "[2]" is an index in an array, "[price]" a member. */
struct step {
    bool index;
    size_t i;
    std::string key;
};

/* valijson's context ("<root>", "[items]", "[2]", ...) as steps. Names
 * are bracketed as they are, so the body's own value says what a step
 * is: an array is indexed, an object has members. */
std::vector<step> context_steps(const json &body, const std::vector<std::string> &context)
{
    std::vector<step> steps;
    const json *node = &body;
    for (size_t k = 1; k < context.size(); k++) {
        const std::string &c = context[k];
        std::string name =
            c.size() >= 2 && c.front() == '[' && c.back() == ']' ? c.substr(1, c.size() - 2) : c;
        if (node && node->is_array() && !name.empty() && name.size() <= 19 &&
            name.find_first_not_of("0123456789") == std::string::npos) {
            size_t i = std::stoull(name);
            steps.push_back({true, i, ""});
            node = i < node->size() ? &(*node)[i] : nullptr;
        } else {
            steps.push_back({false, 0, name});
            auto it = node && node->is_object() ? node->find(name) : json::const_iterator();
            node = node && node->is_object() && it != node->end() ? &*it : nullptr;
        }
    }
    return steps;
}

/* Whether a comes before b: document order (indexes by number, members
 * by name, as nlohmann keeps them), a value's own errors before its
 * ancestors' (the deeper error is the specific one). */
bool before(const std::vector<step> &a, const std::vector<step> &b)
{
    for (size_t k = 0; k < a.size() && k < b.size(); k++) {
        if (a[k].index != b[k].index)
            return a[k].index; /* cannot happen on one body; any fixed order */
        if (a[k].index ? a[k].i != b[k].i : a[k].key != b[k].key)
            return a[k].index ? a[k].i < b[k].i : a[k].key < b[k].key;
    }
    return a.size() > b.size();
}

std::string pointer_of(const std::vector<step> &steps)
{
    if (steps.empty())
        return "(root)";
    std::string p;
    for (const step &s : steps)
        p += "/" + (s.index ? std::to_string(s.i) : pointer_token(s.key));
    return p;
}

struct jsonschema *compile(const char *text, size_t len, std::string &err)
{
    json doc;
    if (!parse_bounded(text, len, JSONSCHEMA_MAX_SCHEMA_DEPTH, 0, "schema", doc, err))
        return nullptr;
    valijson::SchemaParser::Version version;
    if (!pick_draft(doc, version, err))
        return nullptr;

    schema_walk w(doc);
    w.walk(doc, "");
    if (!w.error.empty()) {
        err = "schema: " + w.error;
        return nullptr;
    }
    /* Refused before valijson sees it: a "$ref" without '#' that is not
     * a URL ("%/definitions/x") is resolved by valijson 1.0 against this
     * document's root, and a root that is that "$ref" recursed until the
     * stack overflowed (found by fuzz_registry). */
    if (!w.remote_ref.empty()) {
        err = "schema: remote $ref \"" + w.remote_ref +
              "\" is not fetched (the validator opens no connections)";
        return nullptr;
    }
    std::string cycle = w.find_cycle();
    if (!cycle.empty()) {
        err = "schema: $ref cycle that never descends into the body (" + cycle +
              "): validation would not end";
        return nullptr;
    }

    std::unique_ptr<jsonschema> s(new jsonschema);
    s->uses_regex = w.uses_regex;
    try {
        valijson::SchemaParser parser(version);
        valijson::adapters::NlohmannJsonAdapter adapter(doc);
        parser.populateSchema(adapter, s->schema);
    } catch (const std::exception &e) {
        std::string what = e.what();
        if (what.find("Fetching of remote JSON References not enabled") != std::string::npos)
            err = "schema: remote $ref" +
                  (w.remote_ref.empty() ? "" : " \"" + w.remote_ref + "\"") +
                  " is not fetched (the validator opens no connections)";
        else
            err = "schema: " + what;
        return nullptr;
    }
    return s.release();
}

/* ---- the fast path for valid bodies ----
 *
 * nlohmann's parser reads a character at a time through a callback and a
 * std::string: about 10 us of a 1 KiB body's 13 (perf, make
 * bench-contracts). RapidJSON's in-place parser is several times faster.
 * It answers only "valid": whatever it does not take for certain (not
 * JSON, past a bound, a number or string the two parsers could read
 * apart, a body the schema refuses) goes the nlohmann way above, which
 * decides and says why. So the fast path can make hopper faster, never
 * change an answer (fuzz_jsonschema compares the two). */

/* What the fast path takes, read outside strings: nesting of arrays and
 * objects within max (so that the parser's recursion is bounded before it
 * starts), and numbers that are integers of at most 18 digits. RapidJSON
 * 1.1.0 (Debian 12's) converts fractions and exponents through code with
 * undefined behaviour on some inputs (UBSan: clz of 0 in diyfp.h, for
 * "-0e308"), whose result the fast path could then trust; such bodies,
 * and integers that may leave int64, take the reference path. */
bool fast_scan(const char *p, size_t n, int max)
{
    int depth = 0, digits = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c >= '0' && c <= '9') {
            if (++digits > 18)
                return false;
            continue;
        }
        if (digits && (c == '.' || c == 'e' || c == 'E'))
            return false;
        digits = 0;
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            k = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, cp = c & 0x07;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += k + 1;
    }
    return true;
}

using rdoc = rapidjson::Document;
using rval = rapidjson::Value;

bool fast_string_ok(const rval &v, size_t max_string)
{
    size_t n = v.GetStringLength();
    if (max_string && n > max_string)
        return false;
    return !memchr(v.GetString(), '\0', n) && utf8_valid((const unsigned char *)v.GetString(), n);
}

/* What the slow path would read otherwise: integers past INT64_MAX
 * (nlohmann's reading makes them doubles), strings holding NUL, invalid
 * UTF-8 from escapes, strings past the regex bound, and repeated member
 * names (nlohmann keeps the last, RapidJSON both). Depth is bounded
 * already (fast_scan). */
bool fast_dom_ok(const rval &v, size_t max_string)
{
    if (v.IsString())
        return fast_string_ok(v, max_string);
    if (v.IsNumber())
        return !(v.IsUint64() && !v.IsInt64());
    if (v.IsArray()) {
        for (const rval &e : v.GetArray())
            if (!fast_dom_ok(e, max_string))
                return false;
        return true;
    }
    if (!v.IsObject())
        return true;
    std::vector<std::pair<const char *, size_t>> names;
    names.reserve(v.MemberCount());
    for (const auto &m : v.GetObject()) {
        if (!fast_string_ok(m.name, max_string) || !fast_dom_ok(m.value, max_string))
            return false;
        names.emplace_back(m.name.GetString(), m.name.GetStringLength());
    }
    std::sort(names.begin(), names.end(), [](const auto &a, const auto &b) {
        int c = memcmp(a.first, b.first, std::min(a.second, b.second));
        return c < 0 || (c == 0 && a.second < b.second);
    });
    for (size_t i = 1; i < names.size(); i++)
        if (names[i].second == names[i - 1].second &&
            !memcmp(names[i].first, names[i - 1].first, names[i].second))
            return false;
    return true;
}

/* Parse text with RapidJSON when the fast path may take it (above) and
 * hand the document to use; false when it declines or use says false. */
template <typename Use>
bool fast_parse(const char *text, size_t len, int max_depth, size_t max_string, Use &&use)
{
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        text += 3, len -= 3;
    if (memchr(text, '\0', len) || !fast_scan(text, len, max_depth))
        return false;
    /* In place: a NUL-terminated copy the parser may write into. */
    thread_local std::vector<char> copy;
    copy.assign(text, text + len);
    copy.push_back('\0');
    /* The DOM's nodes go into a buffer kept between calls (RapidJSON
     * asks malloc for more only past it), not a fresh 64 KiB chunk each
     * time. */
    thread_local char pool_buf[32 << 10];
    rapidjson::MemoryPoolAllocator<> pool(pool_buf, sizeof pool_buf);
    rdoc doc(&pool);
    doc.ParseInsitu<rapidjson::kParseFullPrecisionFlag>(copy.data());
    if (doc.HasParseError() || !fast_dom_ok(doc, max_string))
        return false;
    return use(doc);
}

bool fast_valid(const jsonschema &s, const char *text, size_t len)
{
    return fast_parse(text, len, JSONSCHEMA_MAX_DEPTH,
                      s.uses_regex ? JSONSCHEMA_MAX_REGEX_INPUT : 0, [&s](const rdoc &doc) {
                          valijson::adapters::RapidJsonAdapter adapter(doc);
                          return s.validator.validate(s.schema, adapter, nullptr);
                      });
}

/* A jansson copy of a document fast_parse took: its numbers are integers
 * that fit int64 (fast_scan), but RapidJSON reads "-0" as a double, which
 * jansson reads as the integer 0: declined (NULL) like anything else the
 * two could read apart. */
json_t *to_jansson(const rval &v)
{
    json_t *j = nullptr;
    switch (v.GetType()) {
    case rapidjson::kNullType:
        return json_null();
    case rapidjson::kFalseType:
        return json_false();
    case rapidjson::kTrueType:
        return json_true();
    case rapidjson::kStringType:
        return json_stringn_nocheck(v.GetString(), v.GetStringLength());
    case rapidjson::kNumberType:
        return v.IsInt64() && !v.IsDouble() ? json_integer(v.GetInt64()) : nullptr;
    case rapidjson::kArrayType:
        j = json_array();
        for (const rval &e : v.GetArray())
            if (!j || json_array_append_new(j, to_jansson(e)))
                goto failed;
        return j;
    case rapidjson::kObjectType:
        j = json_object();
        for (const auto &m : v.GetObject())
            if (!j || json_object_setn_new_nocheck(j, m.name.GetString(), m.name.GetStringLength(),
                                                   to_jansson(m.value)))
                goto failed;
        return j;
    }
failed:
    json_decref(j);
    return nullptr;
}

bool validate_slow(const jsonschema &s, const char *text, size_t len, std::string &why)
{
    json body;
    if (!parse_bounded(text, len, JSONSCHEMA_MAX_DEPTH,
                       s.uses_regex ? JSONSCHEMA_MAX_REGEX_INPUT : 0, "body", body, why))
        return false;
    valijson::adapters::NlohmannJsonAdapter adapter(body);
    /* Valid bodies (the common case) are checked without collecting
     * errors, which stops at the first failure; a failure is validated
     * again to say why. */
    if (s.validator.validate(s.schema, adapter, nullptr))
        return true;
    valijson::ValidationResults results;
    s.validator.validate(s.schema, adapter, &results);
    bool have = false;
    std::vector<step> best;
    std::string desc;
    for (const auto &e : results) {
        std::vector<step> steps = context_steps(body, e.context);
        if (!have || before(steps, best)) {
            have = true;
            best = std::move(steps);
            desc = e.description;
        }
    }
    why = have ? pointer_of(best) + ": " + desc : "(root): does not match the schema";
    return false;
}

bool validate(const jsonschema &s, const char *text, size_t len, std::string &why)
{
    bool valid = false;
    try {
        valid = fast_valid(s, text, len);
    } catch (const std::exception &) {
        /* the slow path decides */
    }
    if (valid) {
        why.clear();
        return true;
    }
    return validate_slow(s, text, len, why);
}

} // namespace

extern "C" struct jsonschema *jsonschema_compile(const char *schema, size_t len, char *err,
                                                 size_t errlen)
{
    std::string why;
    try {
        struct jsonschema *s = compile(schema ? schema : "", schema ? len : 0, why);
        if (s)
            return s;
    } catch (const std::exception &e) {
        why = std::string("schema: internal error: ") + e.what();
    } catch (...) {
        why = "schema: internal error";
    }
    put_line(err, errlen, why);
    return nullptr;
}

static bool validate_c(const struct jsonschema *s, const void *body, size_t len, char *why,
                       size_t whylen, bool fast)
{
    std::string w;
    try {
        const char *text = body ? (const char *)body : "";
        if (fast ? validate(*s, text, body ? len : 0, w)
                 : validate_slow(*s, text, body ? len : 0, w)) {
            put_line(why, whylen, "");
            return true;
        }
    } catch (const std::exception &e) {
        /* a "pattern" std::regex cannot run (error_complexity,
         * error_stack), or a bug: never a pass */
        w = std::string("(root): validation failed: ") + e.what();
    } catch (...) {
        w = "(root): validation failed";
    }
    put_line(why, whylen, w);
    return false;
}

extern "C" bool jsonschema_validate(const struct jsonschema *s, const void *body, size_t len,
                                    char *why, size_t whylen)
{
    return validate_c(s, body, len, why, whylen, true);
}

extern "C" bool jsonschema_validate_reference(const struct jsonschema *s, const void *body,
                                              size_t len, char *why, size_t whylen)
{
    return validate_c(s, body, len, why, whylen, false);
}

extern "C" struct json_t *jsonschema_fast_tree(const void *text, size_t len, int max_depth)
{
    json_t *tree = nullptr;
    try {
        fast_parse((const char *)text, len, max_depth, 0, [&tree](const rdoc &doc) {
            tree = to_jansson(doc);
            return tree != nullptr;
        });
    } catch (...) {
        json_decref(tree); /* a RapidJSON assertion: the caller parses */
        tree = nullptr;
    }
    return tree;
}

extern "C" void jsonschema_free(struct jsonschema *s)
{
    delete s;
}
