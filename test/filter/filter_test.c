/*-------------------------------------------------------------------------
 *
 * filter_test.c
 *	  Standalone unit tests of the filter library (src/filter.c): every
 *	  RocketMQ compatibility vector, then our own tests of errors,
 *	  normalization, evaluation rules, limits and allocation failures.
 *
 * Usage: filter_test VECTORS.json
 * The last line printed is "filter tests: N passed, M failed"; the exit
 * status is non-zero when a test failed.  The vectors file is read with a
 * small JSON reader below, so no other tool is needed.
 *
 * IDENTIFICATION
 *	  test/filter/filter_test.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

static int	n_passed = 0;
static int	n_failed = 0;

/* ----------------------------------------------------------------------
 * A counting allocator that can be told to fail
 * ----------------------------------------------------------------------
 */
typedef struct TestAlloc
{
	long		live;			/* blocks not yet freed */
	long		count;			/* allocations made */
	long		fail_at;		/* fail allocation number fail_at (0-based); -1 never */
} TestAlloc;

static void *test_alloc(void *ctx, size_t size);
static void test_free(void *ctx, void *ptr);

/* test_alloc: malloc, counted, failing on request */
static void *
test_alloc(void *ctx, size_t size)
{
	TestAlloc  *ta = (TestAlloc *) ctx;
	void	   *p;

	if (ta->fail_at >= 0 && ta->count >= ta->fail_at)
		return NULL;
	ta->count++;
	p = malloc(size);
	if (p != NULL)
		ta->live++;
	return p;
}

/* test_free: free, counted */
static void
test_free(void *ctx, void *ptr)
{
	TestAlloc  *ta = (TestAlloc *) ctx;

	ta->live--;
	free(ptr);
}

static TestAlloc ta_state = {0, 0, -1};
static const CfAllocator test_allocator = {test_alloc, test_free, &ta_state};

/* ----------------------------------------------------------------------
 * A small JSON reader (enough for the vectors file and test headers)
 * ----------------------------------------------------------------------
 */
typedef enum JType
{
	J_NULL,
	J_BOOL,
	J_NUM,
	J_STR,
	J_ARR,
	J_OBJ
} JType;

typedef struct JVal
{
	JType		type;
	bool		b;
	char	   *s;				/* J_STR: decoded; J_NUM: text */
	size_t		len;
	struct JVal *items;			/* J_ARR, J_OBJ: values */
	struct JVal *keys;			/* J_OBJ: keys (J_STR) */
	size_t		n;
} JVal;

typedef struct JReader
{
	const char *s;
	size_t		len;
	size_t		pos;
	const char *error;
} JReader;

static bool j_value(JReader *r, JVal *v, int depth);
static void j_free(JVal *v);

/* j_space: skip white space */
static void
j_space(JReader *r)
{
	while (r->pos < r->len && strchr(" \t\r\n", r->s[r->pos]) != NULL && r->s[r->pos] != '\0')
		r->pos++;
}

/* j_put_utf8: append code point cp as UTF-8 */
static size_t
j_put_utf8(char *d, unsigned long cp)
{
	if (cp < 0x80)
	{
		d[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		d[0] = (char) (0xC0 | (cp >> 6));
		d[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		d[0] = (char) (0xE0 | (cp >> 12));
		d[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		d[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (char) (0xF0 | (cp >> 18));
	d[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	d[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	d[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/* j_hex4: four hex digits at r->pos */
static bool
j_hex4(JReader *r, unsigned long *cp)
{
	size_t		i;

	*cp = 0;
	if (r->pos + 4 > r->len)
		return false;
	for (i = 0; i < 4; i++)
	{
		char		c = r->s[r->pos + i];
		unsigned long d;

		if (c >= '0' && c <= '9')
			d = (unsigned long) (c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned long) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned long) (c - 'A' + 10);
		else
			return false;
		*cp = *cp * 16 + d;
	}
	r->pos += 4;
	return true;
}

/* j_string: a JSON string at r->pos (the opening quote) */
static bool
j_string(JReader *r, JVal *v)
{
	char	   *d = (char *) malloc(r->len - r->pos + 1);
	size_t		n = 0;

	if (d == NULL)
		return false;
	r->pos++;
	while (r->pos < r->len && r->s[r->pos] != '"')
	{
		char		c = r->s[r->pos++];

		if (c != '\\')
		{
			d[n++] = c;
			continue;
		}
		if (r->pos >= r->len)
			break;
		c = r->s[r->pos++];
		switch (c)
		{
			case 'n':
				d[n++] = '\n';
				break;
			case 't':
				d[n++] = '\t';
				break;
			case 'r':
				d[n++] = '\r';
				break;
			case 'b':
				d[n++] = '\b';
				break;
			case 'f':
				d[n++] = '\f';
				break;
			case 'u':
				{
					unsigned long cp,
								lo;

					if (!j_hex4(r, &cp))
					{
						free(d);
						r->error = "bad \\u escape";
						return false;
					}
					if (cp >= 0xD800 && cp < 0xDC00 && r->pos + 6 <= r->len &&
						r->s[r->pos] == '\\' && r->s[r->pos + 1] == 'u')
					{
						r->pos += 2;
						if (!j_hex4(r, &lo))
						{
							free(d);
							r->error = "bad \\u escape";
							return false;
						}
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					}
					n += j_put_utf8(d + n, cp);
					break;
				}
			default:
				d[n++] = c;
				break;
		}
	}
	if (r->pos >= r->len)
	{
		free(d);
		r->error = "unterminated string";
		return false;
	}
	r->pos++;
	d[n] = '\0';
	v->type = J_STR;
	v->s = d;
	v->len = n;
	return true;
}

/* j_list: the elements of an array or object */
static bool
j_list(JReader *r, JVal *v, bool obj, int depth)
{
	size_t		cap = 0;
	char		close = obj ? '}' : ']';

	v->type = obj ? J_OBJ : J_ARR;
	r->pos++;
	j_space(r);
	if (r->pos < r->len && r->s[r->pos] == close)
	{
		r->pos++;
		return true;
	}
	for (;;)
	{
		if (v->n == cap)
		{
			cap = cap ? cap * 2 : 8;
			v->items = (JVal *) realloc(v->items, cap * sizeof(JVal));
			if (obj)
				v->keys = (JVal *) realloc(v->keys, cap * sizeof(JVal));
			if (v->items == NULL || (obj && v->keys == NULL))
				return false;
		}
		memset(&v->items[v->n], 0, sizeof(JVal));
		if (obj)
		{
			memset(&v->keys[v->n], 0, sizeof(JVal));
			j_space(r);
			if (r->pos >= r->len || r->s[r->pos] != '"' || !j_string(r, &v->keys[v->n]))
			{
				r->error = "expected a key";
				return false;
			}
			j_space(r);
			if (r->pos >= r->len || r->s[r->pos] != ':')
			{
				r->error = "expected ':'";
				return false;
			}
			r->pos++;
		}
		if (!j_value(r, &v->items[v->n], depth + 1))
		{
			if (obj)
				j_free(&v->keys[v->n]);
			return false;
		}
		v->n++;
		j_space(r);
		if (r->pos < r->len && r->s[r->pos] == ',')
		{
			r->pos++;
			continue;
		}
		if (r->pos < r->len && r->s[r->pos] == close)
		{
			r->pos++;
			return true;
		}
		r->error = "expected ',' or a closing bracket";
		return false;
	}
}

/* j_value: any JSON value */
static bool
j_value(JReader *r, JVal *v, int depth)
{
	memset(v, 0, sizeof(*v));
	j_space(r);
	if (depth > 50 || r->pos >= r->len)
	{
		r->error = "unexpected end or too deep";
		return false;
	}
	switch (r->s[r->pos])
	{
		case '"':
			return j_string(r, v);
		case '[':
			return j_list(r, v, false, depth);
		case '{':
			return j_list(r, v, true, depth);
		case 't':
		case 'f':
		case 'n':
			{
				const char *w = r->s[r->pos] == 't' ? "true" : r->s[r->pos] == 'f' ? "false" : "null";
				size_t		n = strlen(w);

				if (r->pos + n > r->len || memcmp(r->s + r->pos, w, n) != 0)
				{
					r->error = "bad literal";
					return false;
				}
				r->pos += n;
				v->type = (w[0] == 'n') ? J_NULL : J_BOOL;
				v->b = (w[0] == 't');
				return true;
			}
		default:
			{
				size_t		b = r->pos;

				while (r->pos < r->len && strchr("+-0123456789.eE", r->s[r->pos]) != NULL &&
					   r->s[r->pos] != '\0')
					r->pos++;
				if (r->pos == b)
				{
					r->error = "unexpected character";
					return false;
				}
				v->type = J_NUM;
				v->len = r->pos - b;
				v->s = (char *) malloc(v->len + 1);
				if (v->s == NULL)
					return false;
				memcpy(v->s, r->s + b, v->len);
				v->s[v->len] = '\0';
				return true;
			}
	}
}

/* j_free: release what j_value allocated */
static void
j_free(JVal *v)
{
	size_t		i;

	for (i = 0; i < v->n; i++)
	{
		j_free(&v->items[i]);
		if (v->type == J_OBJ)
			j_free(&v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
	memset(v, 0, sizeof(*v));
}

/* j_parse: a whole JSON text (NUL-terminated) */
static bool
j_parse(const char *text, JVal *v)
{
	JReader		r;

	r.s = text;
	r.len = strlen(text);
	r.pos = 0;
	r.error = NULL;
	if (!j_value(&r, v, 0))
	{
		fprintf(stderr, "JSON error at byte %lu: %s\n", (unsigned long) r.pos,
				r.error ? r.error : "out of memory");
		j_free(v);
		return false;
	}
	return true;
}

/* j_get: member key of object v, or NULL */
static const JVal *
j_get(const JVal *v, const char *key)
{
	size_t		i;

	if (v == NULL || v->type != J_OBJ)
		return NULL;
	for (i = 0; i < v->n; i++)
	{
		if (v->keys[i].len == strlen(key) && memcmp(v->keys[i].s, key, v->keys[i].len) == 0)
			return &v->items[i];
	}
	return NULL;
}

/* ----------------------------------------------------------------------
 * Header lookup over a JSON object
 * ----------------------------------------------------------------------
 */
typedef struct LookupCtx
{
	const JVal *headers;
	int			calls;
	int			abort_after;	/* abort on this call (1-based); 0 never */
} LookupCtx;

/* json_lookup: the CfLookup of the tests */
static int
json_lookup(void *ctx, const char *name, size_t len, CfValue *out)
{
	LookupCtx  *lc = (LookupCtx *) ctx;
	size_t		i;

	lc->calls++;
	if (lc->abort_after > 0 && lc->calls >= lc->abort_after)
		return 1;
	memset(out, 0, sizeof(*out));
	out->kind = CFV_MISSING;
	if (lc->headers == NULL || lc->headers->type != J_OBJ)
		return 0;
	for (i = 0; i < lc->headers->n; i++)
	{
		const JVal *k = &lc->headers->keys[i];
		const JVal *v = &lc->headers->items[i];

		if (k->len != len || (len > 0 && memcmp(k->s, name, len) != 0))
			continue;
		switch (v->type)
		{
			case J_NULL:
				out->kind = CFV_NULL;
				break;
			case J_BOOL:
				out->kind = CFV_BOOL;
				out->boolean = v->b;
				break;
			case J_NUM:
				out->kind = CFV_NUMBER;
				out->str = v->s;
				out->len = v->len;
				break;
			case J_STR:
				out->kind = CFV_STRING;
				out->str = v->s;
				out->len = v->len;
				break;
			default:
				out->kind = CFV_OTHER;
				break;
		}
		return 0;
	}
	return 0;
}

/* ----------------------------------------------------------------------
 * Helpers
 * ----------------------------------------------------------------------
 */
static const char *
result_name(int r)
{
	switch (r)
	{
		case CF_TRUE:
			return "true";
		case CF_FALSE:
			return "false";
		case CF_UNKNOWN:
			return "null";
		default:
			return "syntax_error";
	}
}

#define RESULT_SYNTAX_ERROR 3

/* check: count one test */
static void
check(bool ok, const char *what, const char *detail)
{
	if (ok)
		n_passed++;
	else
	{
		n_failed++;
		printf("FAIL: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	}
}

/* normalized: the normalized text of f (malloc'd) */
static char *
normalized(const CourierFilter *f)
{
	size_t		need = cf_normalize(f, NULL, 0);
	char	   *buf = (char *) malloc(need + 1);

	if (buf != NULL)
		cf_normalize(f, buf, need + 1);
	return buf;
}

/* run_filter: compile text and evaluate it; RESULT_SYNTAX_ERROR if refused */
static int
run_filter(const char *text, size_t len, const JVal *headers, const char *tag,
		   size_t taglen, CfError *err, char **norm)
{
	CourierFilter *f;
	LookupCtx	lc;
	int			r;

	f = cf_parse(text, len, &test_allocator, err);
	if (norm)
		*norm = NULL;
	if (f == NULL)
		return RESULT_SYNTAX_ERROR;
	lc.headers = headers;
	lc.calls = 0;
	lc.abort_after = 0;
	r = (int) cf_eval(f, json_lookup, &lc, tag, taglen, tag != NULL);
	if (norm)
		*norm = normalized(f);
	cf_free(f, &test_allocator);
	return r;
}

/*
 * check_roundtrip: the normalized text parses, normalizes to itself, and
 * gives the same result.
 */
static void
check_roundtrip(const char *what, const char *norm, const JVal *headers,
				const char *tag, size_t taglen, int expect)
{
	CfError		err;
	char	   *again = NULL;
	char		msg[600];
	int			r = run_filter(norm, strlen(norm), headers, tag, taglen, &err, &again);

	if (r == RESULT_SYNTAX_ERROR)
	{
		snprintf(msg, sizeof(msg), "normalized [%s] does not parse: %s", norm, err.message);
		check(false, what, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "normalized [%s] -> [%s], result %s, expected %s",
			 norm, again ? again : "?", result_name(r), result_name(expect));
	check(again != NULL && strcmp(again, norm) == 0 && r == expect, what, msg);
	free(again);
}

/* ----------------------------------------------------------------------
 * The compatibility vectors
 * ----------------------------------------------------------------------
 */

/* read_file: a whole file, NUL-terminated (malloc'd) */
static char *
read_file(const char *path)
{
	FILE	   *fp = fopen(path, "rb");
	char	   *buf = NULL;
	size_t		len = 0,
				cap = 0,
				n;

	if (fp == NULL)
		return NULL;
	for (;;)
	{
		if (cap - len < 4096)
		{
			cap = cap ? cap * 2 : 65536;
			buf = (char *) realloc(buf, cap + 1);
			if (buf == NULL)
				break;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	fclose(fp);
	if (buf != NULL)
		buf[len] = '\0';
	return buf;
}

/* test_vectors: every vector's courier result, and round trips */
static int
test_vectors(const char *path)
{
	char	   *text = read_file(path);
	JVal		all;
	size_t		i;
	int			nvec = 0,
				nok = 0;

	if (text == NULL)
	{
		printf("FAIL: cannot read %s\n", path);
		n_failed++;
		return 0;
	}
	if (!j_parse(text, &all) || all.type != J_ARR)
	{
		printf("FAIL: %s is not a JSON array\n", path);
		n_failed++;
		free(text);
		return 0;
	}
	for (i = 0; i < all.n; i++)
	{
		const JVal *v = &all.items[i];
		const JVal *id = j_get(v, "id");
		const JVal *expr = j_get(v, "expr");
		const JVal *headers = j_get(v, "headers");
		const JVal *tag = j_get(v, "tag");
		const JVal *want = j_get(v, "courier");
		int			expect;
		int			r;
		CfError		err;
		char	   *norm = NULL;
		char		what[64];
		char		msg[600];
		const char *tagp = NULL;
		size_t		taglen = 0;

		if (id == NULL || expr == NULL || expr->type != J_STR || want == NULL)
		{
			printf("FAIL: vector %lu is malformed\n", (unsigned long) i);
			n_failed++;
			continue;
		}
		if (want->type == J_BOOL)
			expect = want->b ? CF_TRUE : CF_FALSE;
		else if (want->type == J_NULL)
			expect = CF_UNKNOWN;
		else
			expect = RESULT_SYNTAX_ERROR;
		if (tag != NULL && tag->type == J_STR)
		{
			tagp = tag->s;
			taglen = tag->len;
		}
		nvec++;
		r = run_filter(expr->s, expr->len, headers, tagp, taglen, &err, &norm);
		snprintf(what, sizeof(what), "vector %s", id->s);
		snprintf(msg, sizeof(msg), "[%s] gave %s, expected %s%s%s", expr->s,
				 result_name(r), result_name(expect),
				 r == RESULT_SYNTAX_ERROR ? " -- " : "",
				 r == RESULT_SYNTAX_ERROR ? err.message : "");
		check(r == expect, what, msg);
		if (r == expect)
			nok++;
		if (r == RESULT_SYNTAX_ERROR)
		{
			snprintf(msg, sizeof(msg), "[%s] error without a position or message", expr->s);
			check(err.message[0] != '\0' &&
				  (strncmp(err.message, "syntax error at position ", 25) != 0 || err.position > 0),
				  what, msg);
		}
		else if (norm != NULL)
			check_roundtrip(what, norm, headers, tagp, taglen, r);
		free(norm);
	}
	printf("vectors: %d of %d give the courier result\n", nok, nvec);
	j_free(&all);
	free(text);
	return nvec;
}

/* ----------------------------------------------------------------------
 * Our own tests
 * ----------------------------------------------------------------------
 */

/* expect_error: text is refused with this position and message */
static void
expect_error(const char *text, int position, const char *message)
{
	CfError		err;
	CourierFilter *f = cf_parse(text, strlen(text), &test_allocator, &err);
	char		msg[700];

	snprintf(msg, sizeof(msg), "[%s] gave position %d \"%s\", expected %d \"%s\"",
			 text, f ? -1 : err.position, f ? "(accepted)" : err.message, position, message);
	check(f == NULL && err.position == position && strcmp(err.message, message) == 0,
		  "error", msg);
	cf_free(f, &test_allocator);
}

/* test_errors: positions and messages */
static void
test_errors(void)
{
	expect_error("", 0, "filter is empty");
	expect_error("  \t\n ", 0, "filter is empty");
	expect_error("a = ", 5, "syntax error at position 5: expected a value after '=', found end of input");
	expect_error("price > 10 AND = 5", 16,
				 "syntax error at position 16: expected an expression after AND, found '='");
	expect_error("a = 1 b = 2", 7, "syntax error at position 7: unexpected 'b' after a complete expression");
	expect_error("a = 1)", 6, "syntax error at position 6: unmatched ')'");
	expect_error("(a = 1", 7,
				 "syntax error at position 7: expected ')' to close the '(' at position 1, found end of input");
	expect_error("a LIKE 'x%'", 3,
				 "syntax error at position 3: unexpected 'LIKE' (LIKE is not supported; use CONTAINS, STARTSWITH or ENDSWITH)");
	expect_error("a + 1 > 2", 3, "syntax error at position 3: unexpected '+' (filters have no arithmetic)");
	expect_error("user-id = 1", 5,
				 "syntax error at position 5: unexpected '-' (a header name with '-' must be quoted: \"user-id\")");
	expect_error("a - 1", 3, "syntax error at position 3: unexpected '-' (filters have no arithmetic)");
	expect_error("a != 1", 3, "syntax error at position 3: '!=' is not an operator, use '<>'");
	expect_error("a == 1", 3, "syntax error at position 3: '==' is not an operator, use '='");
	expect_error("a = 1 && b = 2", 7, "syntax error at position 7: '&&' is not an operator, use AND");
	expect_error("a = 1 || b = 2", 7,
				 "syntax error at position 7: '||' only joins the tags of a tag expression; use OR between conditions");
	expect_error("a = 'x", 5, "syntax error at position 5: unterminated string");
	expect_error("\"a = 1", 1, "syntax error at position 1: unterminated quoted name");
	expect_error("a = 1 /* x", 7, "syntax error at position 7: unterminated comment");
	expect_error("a = 0x10", 5, "syntax error at position 5: invalid number '0x10'");
	expect_error("a = 010", 5, "syntax error at position 5: invalid number '010'");
	expect_error("a > 1e", 5, "syntax error at position 5: invalid number '1e'");
	expect_error("a > 1.2.3", 5, "syntax error at position 5: invalid number '1.2.3'");
	expect_error("1a = 1", 1, "syntax error at position 1: invalid number '1a'");
	expect_error("a = ?", 5, "syntax error at position 5: unexpected character '?'");
	expect_error("\xC3\xA9 = 1", 1, "syntax error at position 1: unexpected character '\xC3\xA9'");
	expect_error("a = \x01", 5, "syntax error at position 5: unexpected byte 0x01");
	expect_error("a = \xFF", 5, "syntax error at position 5: unexpected byte 0xFF");
	expect_error("a = \xC3(", 5, "syntax error at position 5: unexpected byte 0xC3");
	expect_error("a = 1 \"x\x01y\"", 7, "syntax error at position 7: unexpected \"x?y\" after a complete expression");
	expect_error("a = 1 \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xC3\xA9yyy\"", 7,
				 "syntax error at position 7: unexpected \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... after a complete expression");
	expect_error("in = 1", 1, "syntax error at position 1: expected an expression, found IN");
	expect_error("a and between 2 and 10", 7,
				 "syntax error at position 7: expected an expression after AND, found BETWEEN");
	expect_error("a between 10,20", 13,
				 "syntax error at position 13: expected AND after the lower bound of BETWEEN, found ','");
	expect_error("a between 1 and", 16,
				 "syntax error at position 16: expected a value after BETWEEN ... AND, found end of input");
	expect_error("a in ()", 7,
				 "syntax error at position 7: expected a string or a number in the IN list, found ')'");
	expect_error("a in ('x', NULL)", 12,
				 "syntax error at position 12: expected a string or a number in the IN list, found NULL");
	expect_error("a in ('x' 'y')", 11,
				 "syntax error at position 11: expected ',' or ')' in the IN list, found 'y'");
	expect_error("a in 'x'", 6, "syntax error at position 6: expected '(' after IN, found 'x'");
	expect_error("a in (- 'x')", 9,
				 "syntax error at position 9: expected a number after the sign in the IN list, found 'x'");
	expect_error("a contains x", 12, "syntax error at position 12: expected a string after CONTAINS, found 'x'");
	expect_error("a endswith 1", 12, "syntax error at position 12: expected a string after ENDSWITH, found '1'");
	expect_error("a NOT LIKE 'x'", 7,
				 "syntax error at position 7: expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT, found 'LIKE'");
	expect_error("a is 1", 6, "syntax error at position 6: expected NULL or NOT NULL after IS, found '1'");
	expect_error("a is not true", 10, "syntax error at position 10: expected NULL after IS NOT, found TRUE");
	expect_error("NOT", 4, "syntax error at position 4: expected an expression after NOT, found end of input");
	expect_error("()", 2, "syntax error at position 2: expected an expression after '(', found ')'");
	expect_error("a = 1 or", 9, "syntax error at position 9: expected an expression after OR, found end of input");
	expect_error("-- only a comment", 18, "syntax error at position 18: expected an expression, found end of input");
	expect_error("a = -", 6, "syntax error at position 6: expected a value after '-', found end of input");
	expect_error("a < = 1", 5, "syntax error at position 5: expected a value after '<', found '='");
	expect_error("a || || b", 6, "syntax error at position 6: empty tag in tag expression");
	expect_error("a ||", 3, "syntax error at position 3: empty tag in tag expression");
	expect_error("|| a", 1, "syntax error at position 1: empty tag in tag expression");
	expect_error("a || *", 6, "syntax error at position 6: '*' cannot be combined with other tags");
	expect_error("a = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' x", 60,
				 "syntax error at position 60: unexpected 'x' after a complete expression");
	expect_error("a = 1 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'", 7,
				 "syntax error at position 7: unexpected 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... after a complete expression");
	expect_error("a = 'x' \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"", 9,
				 "syntax error at position 9: unexpected \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb... after a complete expression");

	/* the NUL check needs the length, not strlen */
	{
		CfError		err;
		CourierFilter *f = cf_parse("a = 'x\0y'", 9, &test_allocator, &err);

		check(f == NULL && err.position == 7 &&
			  strcmp(err.message, "syntax error at position 7: the filter contains a NUL byte") == 0,
			  "NUL byte refused", err.message);
		cf_free(f, &test_allocator);
	}
	/* err may be NULL */
	check(cf_parse("a =", 3, &test_allocator, NULL) == NULL, "NULL err pointer", NULL);
	/* text may be NULL with length 0 */
	{
		CfError		err;

		check(cf_parse(NULL, 0, &test_allocator, &err) == NULL &&
			  strcmp(err.message, "filter is empty") == 0, "NULL text", err.message);
	}
}

/* expect_norm: text normalizes to want, which normalizes to itself */
static void
expect_norm(const char *text, const char *want)
{
	CfError		err;
	CourierFilter *f = cf_parse(text, strlen(text), &test_allocator, &err);
	char	   *got = f ? normalized(f) : NULL;
	char		msg[700];

	snprintf(msg, sizeof(msg), "[%s] normalized to [%s], expected [%s]", text,
			 got ? got : err.message, want);
	check(got != NULL && strcmp(got, want) == 0, "normalize", msg);
	if (got != NULL)
		check_roundtrip("normalize round trip", got, NULL, NULL, 0,
						(int) cf_eval(f, json_lookup, &(LookupCtx) {NULL, 0, 0}, NULL, 0, false));
	free(got);
	cf_free(f, &test_allocator);
}

/* test_normalize: the normalized form */
static void
test_normalize(void)
{
	expect_norm("a=3 and b<>4 And c>5 AND d<=4", "(a = 3 AND b <> 4 AND c > 5 AND d <= 4)");
	expect_norm("a=3 or b<>4 Or c>=5 OR d<4", "(a = 3 OR b <> 4 OR c >= 5 OR d < 4)");
	expect_norm("NOT a = 'x'", "(NOT (a = 'x'))");
	expect_norm("not not a", "(NOT (NOT a))");
	expect_norm("NOT (a AND b)", "(NOT (a AND b))");
	expect_norm("a = 1 OR b = 2 AND c = 3", "(a = 1 OR (b = 2 AND c = 3))");
	expect_norm("(a = 1 OR b = 2) AND c = 3", "((a = 1 OR b = 2) AND c = 3)");
	expect_norm("(a AND b) AND (c AND d)", "(a AND b AND c AND d)");
	expect_norm("a OR (b OR (c OR d))", "(a OR b OR c OR d)");
	expect_norm("a AND (b OR c) AND d", "(a AND (b OR c) AND d)");
	expect_norm("((((a = 1))))", "a = 1");
	expect_norm("1 < 2 < 3", "(1 < 2) < 3");
	expect_norm("(a = 1) = TRUE", "(a = 1) = TRUE");
	expect_norm("a = b < c", "a = (b < c)");
	expect_norm("a < b = c", "(a < b) = c");
	expect_norm("a = 1 IS NULL", "(a = 1) IS NULL");
	expect_norm("a is not null", "a IS NOT NULL");
	expect_norm("NOT a IS NULL", "(NOT (a IS NULL))");
	expect_norm("TAGS is not null and TAGS='''''tag'''''", "(TAGS IS NOT NULL AND TAGS = '''''tag''''')");
	expect_norm("tags = 'x'", "tags = 'x'");
	expect_norm("\"TAGS\" = 'x'", "\"TAGS\" = 'x'");
	expect_norm("\"x\" = 1", "x = 1");
	expect_norm("\"a b\" = 1", "\"a b\" = 1");
	expect_norm("\"and\" = 1", "\"and\" = 1");
	expect_norm("\"Between\" = 1", "\"Between\" = 1");
	expect_norm("\"1a\" = 1", "\"1a\" = 1");
	expect_norm("\"say \"\"hi\"\"\" = 1", "\"say \"\"hi\"\"\" = 1");
	expect_norm("\"\" = 1", "\"\" = 1");
	expect_norm("$a_1 = 1", "$a_1 = 1");
	expect_norm("a = 'it''s'", "a = 'it''s'");
	expect_norm("a = 'x\ny'", "a = 'x\ny'");
	expect_norm("a = 10L", "a = 10");
	expect_norm("a = 0l", "a = 0");
	expect_norm("a = 1E2", "a = 1e2");
	expect_norm("a = 5.", "a = 5.");
	expect_norm("a > .5E-3", "a > .5e-3");
	expect_norm("a = - -5", "a = 5");
	expect_norm("a = -(5)", "a = -5");
	expect_norm("a = -(-(+5))", "a = 5");
	expect_norm("a = -0", "a = -0");
	expect_norm("-a > 1", "-a > 1");
	expect_norm("- -a > 1", "-(-a) > 1");
	expect_norm("+a > 1", "+a > 1");
	expect_norm("-(a = 1) IS NULL", "-(a = 1) IS NULL");
	expect_norm("-'5' = -5", "-'5' = -5");
	expect_norm("a not in ('4', '4', '5')", "a NOT IN ('4', '4', '5')");
	expect_norm("a in (-1,+2.5e3, 'x')", "a IN (-1, 2.5e3, 'x')");
	expect_norm("a between -1 and +2", "a BETWEEN -1 AND 2");
	expect_norm("a not between b and (c)", "a NOT BETWEEN b AND c");
	expect_norm("a between (b = 1) and (c or d)", "a BETWEEN (b = 1) AND (c OR d)");
	expect_norm("value not contains 'x'", "value NOT CONTAINS 'x'");
	expect_norm("value startswith '' and value endswith 'a'''",
				"(value STARTSWITH '' AND value ENDSWITH 'a''')");
	expect_norm("a = 'x' -- comment\n AND b = 'y'", "(a = 'x' AND b = 'y')");
	expect_norm("a = 1 /* c */ and b = 2", "(a = 1 AND b = 2)");
	expect_norm("a = 1 --x\r AND b = 2", "(a = 1 AND b = 2)");
	expect_norm("a = 1 /* -- */ AND b = 2 -- /* x", "(a = 1 AND b = 2)");
	expect_norm("TRUE", "TRUE");
	expect_norm("null is null", "NULL IS NULL");
	expect_norm("'true'", "'true'");
	/* tag expressions */
	expect_norm(" jueyin1|| noExist ", "jueyin1 || noExist");
	expect_norm(" * ", "*");
	expect_norm("*", "*");
	expect_norm("a", "a");
	expect_norm("TAGS", "TAGS");
	expect_norm("order-created", "order-created");
	expect_norm("a.b", "a.b");
	expect_norm("5 || 5", "5 || 5");
	expect_norm("TRUE || FALSE", "TRUE || FALSE");
	expect_norm("tag\xC3\xA9||x:y||/a/b||@c#d||-x-", "tag\xC3\xA9 || x:y || /a/b || @c#d || -x-");
	/* lone names that are selectors */
	expect_norm("a--b", "(a)");
	expect_norm("(a)", "(a)");
	expect_norm("\"a\"", "(a)");
	expect_norm("((TAGS))", "(TAGS)");
	expect_norm("\"TAGS\"", "(\"TAGS\")");
	expect_norm("\"a b\"", "(\"a b\")");
	expect_norm("'x||y'", "'x||y'");
	expect_norm("\"x||y\"", "(\"x||y\")");
	expect_norm("a = 'x||y'", "a = 'x||y'");
	expect_norm("true", "TRUE");
}

/* expect_eval: the result of text against headers (JSON) and tag */
static void
expect_eval(const char *text, const char *headers_json, const char *tag, int expect)
{
	JVal		h;
	CfError		err;
	char	   *norm = NULL;
	char		msg[800];
	int			r;

	memset(&h, 0, sizeof(h));
	if (!j_parse(headers_json, &h))
	{
		check(false, "eval", "bad headers JSON in the test");
		return;
	}
	r = run_filter(text, strlen(text), &h, tag, tag ? strlen(tag) : 0, &err, &norm);
	snprintf(msg, sizeof(msg), "[%s] with %s tag %s gave %s, expected %s%s%s", text, headers_json,
			 tag ? tag : "(none)", result_name(r), result_name(expect),
			 r == RESULT_SYNTAX_ERROR ? " -- " : "", r == RESULT_SYNTAX_ERROR ? err.message : "");
	check(r == expect, "eval", msg);
	if (norm != NULL)
		check_roundtrip("eval round trip", norm, &h, tag, tag ? strlen(tag) : 0, r);
	free(norm);
	j_free(&h);
}

#define T CF_TRUE
#define F CF_FALSE
#define U CF_UNKNOWN
#define E RESULT_SYNTAX_ERROR

/* test_eval: evaluation rules */
static void
test_eval(void)
{
	/* exact numbers */
	expect_eval("a = 0.1", "{\"a\": \"0.10000000000000000000000000000000000001\"}", NULL, F);
	expect_eval("a > 0.1", "{\"a\": \"0.10000000000000000000000000000000000001\"}", NULL, T);
	expect_eval("a = 9007199254740993", "{\"a\": 9007199254740992}", NULL, F);
	expect_eval("a = 9007199254740993", "{\"a\": \"9007199254740993\"}", NULL, T);
	expect_eval("a = 1e2", "{\"a\": \"100.000\"}", NULL, T);
	expect_eval("a = 12.5e-1", "{\"a\": \"1.25\"}", NULL, T);
	expect_eval("a = 0.00125e3", "{\"a\": \"+1.25\"}", NULL, T);
	expect_eval("a = -0", "{\"a\": \"0.000e99\"}", NULL, T);
	expect_eval("a < 0", "{\"a\": \"-0.0\"}", NULL, F);
	expect_eval("a < -1e-999999999999999999999999", "{\"a\": \"-1\"}", NULL, T);
	expect_eval("a > 1e999999999999999999999999", "{\"a\": \"1e999999999999999999999998\"}", NULL, F);
	expect_eval("a = 1e1000000000000000000000", "{\"a\": \"10e999999999999999999999\"}", NULL, T);
	expect_eval("a = 1e1000000000000000000000", "{\"a\": \"0.1e1000000000000000000001\"}", NULL, T);
	expect_eval("a < 1e1000000000000000000000", "{\"a\": \"0.1e1000000000000000000001\"}", NULL, F);
	expect_eval("a > 1e1000000000000000000000", "{\"a\": \"0.11e1000000000000000000001\"}", NULL, T);
	expect_eval("a > 1e-1000000000000000000000", "{\"a\": \"1e-1000000000000000000001\"}", NULL, F);
	expect_eval("a > 1e-1000000000000000000000", "{\"a\": \"1e1000000000000000000001\"}", NULL, T);
	expect_eval("a > 1e-18", "{\"a\": \"1e18\"}", NULL, T);
	expect_eval("a < 1e-18", "{\"a\": \"1e-19\"}", NULL, T);
	expect_eval("a = 123456789012345678901234567890", "{\"a\": 1.2345678901234567890123456789e29}", NULL, T);
	expect_eval("a > -5", "{\"a\": -4.99999999999999999999}", NULL, T);
	expect_eval("a between -1 and 1", "{\"a\": \"-.5\"}", NULL, T);
	expect_eval("a = 3", "{\"a\": \"3.\"}", NULL, T);
	expect_eval("a = 1e05", "{\"a\": \"100000\"}", NULL, T);
	expect_eval("a = 1e-0", "{\"a\": \"1\"}", NULL, T);
	expect_eval("a > 1e1000000000000000000", "{\"a\": \"1e2000000000000000000\"}", NULL, T);
	expect_eval("a < 1e1000000000000000000", "{\"a\": \"1e2000000000000000000\"}", NULL, F);
	expect_eval("a > 1e2000000000000000000", "{\"a\": \"1e1000000000000000000\"}", NULL, F);
	expect_eval("a > 1e-2000000000000000000", "{\"a\": \"1e1000000000000000000\"}", NULL, T);
	expect_eval("a = 10000000000000000000e999999999999999999", "{\"a\": \"1e1000000000000000018\"}", NULL, T);
	expect_eval("a = 1", "{\"a\": 1-2}", NULL, U);	/* a number text that is not a number */
	expect_eval("a = 3", "{\"a\": \"3e\"}", NULL, U);
	expect_eval("a = 3", "{\"a\": \"0x3\"}", NULL, U);
	expect_eval("a = 3", "{\"a\": \"3L\"}", NULL, U);
	expect_eval("a = 3", "{\"a\": \"Infinity\"}", NULL, U);
	expect_eval("a = 3", "{\"a\": \"\"}", NULL, U);
	expect_eval("a = 3", "{\"a\": \"+\"}", NULL, U);
	expect_eval("a = 3", "{\"a\": \".\"}", NULL, U);
	/* strings */
	expect_eval("a = '3'", "{\"a\": 3}", NULL, T);
	expect_eval("'3' = a", "{\"a\": 3}", NULL, T);
	expect_eval("'3.0' = a", "{\"a\": 3}", NULL, F);
	expect_eval("a <> TRUE", "{\"a\": false}", NULL, T);
	expect_eval("a <> TRUE", "{\"a\": \"True\"}", NULL, F);
	expect_eval("a BETWEEN 1 AND (b = 1)", "{\"a\": 1}", NULL, U);
	expect_eval("a = '3.0'", "{\"a\": 3}", NULL, F);
	expect_eval("a = 'abc'", "{\"a\": 3}", NULL, F);
	expect_eval("a <> 'abc'", "{\"a\": 3}", NULL, T);
	expect_eval("a = 'true'", "{\"a\": true}", NULL, T);
	expect_eval("a = 'TRUE'", "{\"a\": true}", NULL, F);
	expect_eval("a = 'yes'", "{\"a\": true}", NULL, F);
	expect_eval("a > '5'", "{\"a\": 6}", NULL, T);
	expect_eval("a > '5'", "{\"a\": \"6\"}", NULL, T);
	expect_eval("a > 'b'", "{\"a\": \"c\"}", NULL, U);
	expect_eval("a = b", "{\"a\": 3, \"b\": \"3.0\"}", NULL, T);
	expect_eval("a = b", "{\"a\": 3, \"b\": \"x\"}", NULL, U);
	expect_eval("a = b", "{\"a\": true, \"b\": \"True\"}", NULL, T);
	expect_eval("a = b", "{\"a\": true, \"b\": 1}", NULL, U);
	expect_eval("a = b", "{\"a\": [1], \"b\": [1]}", NULL, U);
	expect_eval("'1.0' = 1", "{}", NULL, T);
	expect_eval("'abc' = 1", "{}", NULL, U);
	expect_eval("'x' = 'x'", "{}", NULL, T);
	expect_eval("'2' < '10'", "{}", NULL, T);
	expect_eval("TRUE = 'true'", "{}", NULL, T);
	expect_eval("TRUE = 'yes'", "{}", NULL, U);
	expect_eval("TRUE > FALSE", "{}", NULL, U);
	expect_eval("a = 'x'", "{\"a\": \"x\\u0000y\"}", NULL, F);
	expect_eval("a contains 'y'", "{\"a\": \"x\\u0000y\"}", NULL, T);
	expect_eval("a = '\xC3\xA9'", "{\"a\": \"\\u00e9\"}", NULL, T);
	/* booleans in a boolean context */
	expect_eval("a", "{\"a\": true}", "x", F);	/* a lone name is a tag */
	expect_eval("a", "{\"a\": true}", "a", T);
	expect_eval("a AND TRUE", "{\"a\": true}", NULL, T);
	expect_eval("a AND TRUE", "{\"a\": \"TRUE\"}", NULL, T);
	expect_eval("a AND TRUE", "{\"a\": \"yes\"}", NULL, U);
	expect_eval("a AND TRUE", "{\"a\": 1}", NULL, U);
	expect_eval("a OR FALSE", "{\"a\": false}", NULL, F);
	expect_eval("NOT 'false'", "{}", NULL, T);
	expect_eval("'x'", "{}", NULL, U);
	expect_eval("5", "{}", NULL, U);
	/* three-valued logic */
	expect_eval("a = 1 AND b = 1", "{\"a\": \"2\"}", NULL, F);
	expect_eval("b = 1 AND a = 1", "{\"a\": \"2\"}", NULL, F);
	expect_eval("a = 1 OR b = 1", "{\"a\": \"1\"}", NULL, T);
	expect_eval("b = 1 OR a = 1", "{\"a\": \"1\"}", NULL, T);
	expect_eval("NOT (a = 1 OR b = 1)", "{\"a\": \"2\"}", NULL, U);
	expect_eval("a IS NULL", "{\"a\": null}", NULL, T);
	expect_eval("a IS NULL", "{\"a\": {}}", NULL, F);
	expect_eval("(a = 1) IS NULL", "{}", NULL, T);
	expect_eval("(a = 1) IS NOT NULL", "{\"a\": 2}", NULL, T);
	expect_eval("a = NULL", "{\"a\": 1}", NULL, U);
	expect_eval("NULL = NULL", "{}", NULL, U);
	expect_eval("a in (1, 'x')", "{\"a\": \"x\"}", NULL, T);
	expect_eval("a in (1, 'y')", "{\"a\": \"x\"}", NULL, U);
	expect_eval("a not in (1, 'y')", "{\"a\": \"x\"}", NULL, U);
	expect_eval("a in (1, -2)", "{\"a\": -2}", NULL, T);
	expect_eval("a in ('1', '2')", "{\"a\": 2}", NULL, T);
	expect_eval("a between 1 and 'x'", "{\"a\": 0}", NULL, F);
	expect_eval("a between 1 and 'x'", "{\"a\": 2}", NULL, U);
	expect_eval("a not between 1 and 'x'", "{\"a\": 0}", NULL, T);
	expect_eval("a between 10 and 0", "{\"a\": 5}", NULL, F);
	/* signs */
	expect_eval("-a = -5", "{\"a\": 5}", NULL, T);
	expect_eval("-a = 5", "{\"a\": \"-5\"}", NULL, T);
	expect_eval("+a = 5", "{\"a\": \"5.0\"}", NULL, T);
	expect_eval("-a = 5", "{\"a\": \"x\"}", NULL, U);
	expect_eval("-a = 5", "{\"a\": true}", NULL, U);
	expect_eval("-a IS NULL", "{\"a\": \"x\"}", NULL, T);
	expect_eval("- -a = 5", "{\"a\": 5}", NULL, T);
	expect_eval("-'5' = -5", "{}", NULL, T);
	expect_eval("+a = 'x'", "{\"a\": \"x\"}", NULL, U);
	expect_eval("a = TRUE", "{\"a\": 1}", NULL, U);
	expect_eval("NOT a", "{\"a\": 1}", NULL, U);
	expect_eval("NOT a", "{\"a\": \"true\"}", NULL, F);
	expect_eval("0.1 < 0.10000000000000000001", "{}", NULL, T);
	expect_eval("9007199254740993 <> 9007199254740992", "{}", NULL, T);
	expect_eval("0.5e1 = 5", "{}", NULL, T);
	expect_eval("price > 10 AND region IN ('eu', 'us')", "{\"price\": \"15\", \"region\": \"us\"}", NULL, T);
	expect_eval("a IS NULL OR a <> 'x'", "{}", NULL, T);
	expect_eval("a <> 'x'", "{}", NULL, U);
	expect_eval("a = 1 --x\r AND b = 2", "{\"a\": 1}", NULL, U);
	/* CONTAINS and friends */
	expect_eval("a contains 'aab'", "{\"a\": \"aaaab\"}", NULL, T);
	expect_eval("a contains 'abab'", "{\"a\": \"abaabab\"}", NULL, T);
	expect_eval("a contains 'abac'", "{\"a\": \"abababab\"}", NULL, F);
	expect_eval("a contains 'xx'", "{\"a\": \"x\"}", NULL, F);
	expect_eval("a startswith 'x'", "{\"a\": \"\"}", NULL, F);
	expect_eval("a endswith ''", "{\"a\": \"\"}", NULL, T);
	expect_eval("a contains '.5'", "{\"a\": 1.5}", NULL, T);
	expect_eval("a startswith 'fa'", "{\"a\": false}", NULL, T);
	expect_eval("a contains 'x'", "{\"a\": [\"x\"]}", NULL, U);
	expect_eval("5 contains '5'", "{}", NULL, U);
	expect_eval("TRUE contains 't'", "{}", NULL, U);
	expect_eval("TAGS contains 'ag'", "{}", "tag", T);
	expect_eval("TAGS contains 'ag'", "{}", NULL, U);
	expect_eval("TAGS = ''", "{}", "", T);
	expect_eval("TAGS = 5", "{}", "5.0", T);
	expect_eval("\"TAGS\" = 'x'", "{\"TAGS\": \"x\"}", "y", T);
	expect_eval("TAGS = 'x'", "{\"TAGS\": \"x\"}", "y", F);
	/* tag expressions */
	expect_eval("a || b", "{}", "b", T);
	expect_eval("a || b", "{}", "c", F);
	expect_eval("a || b", "{}", "", F);
	expect_eval("a || b", "{}", NULL, F);
	expect_eval("*", "{}", NULL, T);
	expect_eval("order-created", "{}", "order-created", T);
	expect_eval("TAGS", "{}", "TAGS", T);
	expect_eval("TAGS", "{}", "x", F);
	expect_eval("a b", "{}", "a b", E);
	expect_eval("a=1||b", "{}", "b", E);
}

/* Lookup abort, NULL lookup, NULL filter */
static void
test_lookup(void)
{
	CfError		err;
	CourierFilter *f;
	LookupCtx	lc;
	JVal		h;

	j_parse("{\"a\": \"1\", \"b\": \"2\"}", &h);
	f = cf_parse("a = 1 OR b = 2", 14, &test_allocator, &err);
	lc.headers = &h;
	lc.calls = 0;
	lc.abort_after = 0;
	check(f != NULL && cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_TRUE && lc.calls == 1,
		  "OR stops at the first TRUE", NULL);
	lc.calls = 0;
	lc.abort_after = 1;
	check(cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_UNKNOWN, "lookup abort is UNKNOWN", NULL);
	cf_free(f, &test_allocator);

	f = cf_parse("a = 5 OR b = 2", 14, &test_allocator, &err);
	lc.calls = 0;
	lc.abort_after = 2;
	check(cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_UNKNOWN, "late lookup abort is UNKNOWN", NULL);
	lc.calls = 0;
	lc.abort_after = 0;
	check(cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_TRUE, "no abort is TRUE", NULL);
	check(cf_eval(f, NULL, NULL, NULL, 0, false) == CF_UNKNOWN, "NULL lookup: headers missing", NULL);
	cf_free(f, &test_allocator);

	f = cf_parse("a = 1 AND b = 2", 15, &test_allocator, &err);
	lc.calls = 0;
	lc.abort_after = 2;
	check(cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_UNKNOWN, "abort inside AND is UNKNOWN", NULL);
	cf_free(f, &test_allocator);
	f = cf_parse("a = 5 OR (b = 3 OR c = 1)", 25, &test_allocator, &err);
	lc.calls = 0;
	lc.abort_after = 2;
	check(cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_UNKNOWN, "abort inside OR is UNKNOWN", NULL);
	cf_free(f, &test_allocator);
	f = cf_parse("a || b", 6, &test_allocator, &err);
	check(cf_eval(f, NULL, NULL, NULL, 5, true) == CF_FALSE, "tag NULL with has_tag", NULL);
	cf_free(f, &test_allocator);

	f = cf_parse("a IS NULL", 9, &test_allocator, &err);
	lc.calls = 0;
	lc.abort_after = 1;
	check(cf_eval(f, json_lookup, &lc, NULL, 0, false) == CF_UNKNOWN, "abort in IS NULL is UNKNOWN", NULL);
	cf_free(f, &test_allocator);

	check(cf_eval(NULL, json_lookup, &lc, NULL, 0, false) == CF_UNKNOWN, "NULL filter", NULL);
	check(cf_normalize(NULL, NULL, 0) == 0 && !cf_is_tag_expression(NULL) &&
		  !cf_matches_everything(NULL) && cf_tag_count(NULL) == 0, "NULL filter accessors", NULL);
	cf_free(NULL, &test_allocator);
	j_free(&h);
}

/* The tag API and cf_normalize's snprintf behaviour */
static void
test_api(void)
{
	CfError		err;
	CourierFilter *f;
	size_t		len;
	const char *t;
	char		buf[8];
	size_t		n;

	f = cf_parse(" TagA || TagB||  TagA ", 22, &test_allocator, &err);
	check(f != NULL && cf_is_tag_expression(f) && !cf_matches_everything(f) && cf_tag_count(f) == 3,
		  "tag list", NULL);
	t = cf_tag_at(f, 1, &len);
	check(t != NULL && len == 4 && memcmp(t, "TagB", 4) == 0 && t[4] == '\0', "cf_tag_at", NULL);
	check(cf_tag_at(f, 3, &len) == NULL && len == 0 && cf_tag_at(f, -1, NULL) == NULL,
		  "cf_tag_at out of range", NULL);
	n = cf_normalize(f, buf, sizeof(buf));
	check(n == 20 && strcmp(buf, "TagA ||") == 0, "cf_normalize truncates", buf);
	n = cf_normalize(f, buf, 1);
	check(n == 20 && buf[0] == '\0', "cf_normalize with room for the NUL only", NULL);
	buf[0] = 'x';
	n = cf_normalize(f, buf, 0);
	check(n == 20 && buf[0] == 'x', "cf_normalize with bufsize 0 writes nothing", NULL);
	cf_free(f, &test_allocator);

	f = cf_parse("*", 1, &test_allocator, &err);
	check(f != NULL && cf_is_tag_expression(f) && cf_matches_everything(f) && cf_tag_count(f) == 0 &&
		  cf_eval(f, NULL, NULL, NULL, 0, false) == CF_TRUE, "'*'", NULL);
	cf_free(f, &test_allocator);

	f = cf_parse("a = 1", 5, &test_allocator, &err);
	check(f != NULL && !cf_is_tag_expression(f) && !cf_matches_everything(f) &&
		  cf_tag_count(f) == 0 && cf_tag_at(f, 0, NULL) == NULL, "selector accessors", NULL);
	cf_free(f, &test_allocator);

	f = cf_parse("TRUE", 4, &test_allocator, &err);
	check(f != NULL && !cf_is_tag_expression(f) && !cf_matches_everything(f), "TRUE is a selector", NULL);
	cf_free(f, &test_allocator);
}

/* strings made by repeat(), freed by free_kept() */
static char *kept[256];
static int	nkept = 0;

/* free_kept: free what repeat() made */
static void
free_kept(void)
{
	while (nkept > 0)
		free(kept[--nkept]);
}

/* repeat: head, then s repeated n times, then tail (freed by free_kept) */
static char *
repeat(const char *head, const char *s, int n, const char *tail)
{
	size_t		hl = strlen(head),
				sl = strlen(s),
				tl = strlen(tail);
	char	   *buf = (char *) malloc(hl + sl * (size_t) n + tl + 1);
	char	   *p = buf;
	int			i;

	memcpy(p, head, hl);
	p += hl;
	for (i = 0; i < n; i++)
	{
		memcpy(p, s, sl);
		p += sl;
	}
	memcpy(p, tail, tl + 1);
	if (nkept < (int) (sizeof(kept) / sizeof(kept[0])))
		kept[nkept++] = buf;
	return buf;
}

/* expect_depth: text is accepted (ok) or refused for nesting */
static void
expect_depth(char *text, bool ok, const char *what)
{
	CfError		err;
	CourierFilter *f = cf_parse(text, strlen(text), &test_allocator, &err);
	char		msg[400];

	snprintf(msg, sizeof(msg), "%s: %s", f ? "accepted" : "refused", f ? "" : err.message);
	if (ok)
	{
		check(f != NULL, what, msg);
		if (f != NULL)
		{
			char	   *norm = normalized(f);

			check_roundtrip(what, norm, NULL, NULL, 0,
							(int) cf_eval(f, json_lookup, &(LookupCtx) {NULL, 0, 0}, NULL, 0, false));
			free(norm);
		}
	}
	else
		check(f == NULL && strcmp(err.message, "filter nests too deeply: the limit is 64 levels") == 0 &&
			  err.position > 0, what, msg);
	cf_free(f, &test_allocator);
}

/* test_limits: length and depth */
static void
test_limits(void)
{
	CfError		err;
	CourierFilter *f;
	char	   *s;
	int			i;

	/* length */
	s = repeat("a = '", "x", CF_MAX_TEXT - 6, "'");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f != NULL && strlen(s) == CF_MAX_TEXT, "a filter of CF_MAX_TEXT bytes is accepted", err.message);
	cf_free(f, &test_allocator);
	s = repeat("a = '", "x", CF_MAX_TEXT - 5, "'");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f == NULL && err.position == 0 &&
		  strcmp(err.message, "filter is too long: 8193 bytes, the limit is 8192") == 0,
		  "a longer filter is refused", err.message);
	s = repeat("", " ", 100000, "");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f == NULL && strcmp(err.message, "filter is too long: 100000 bytes, the limit is 8192") == 0,
		  "long white space is refused by length", err.message);

	/* the normalized form has the same limit */
	s = repeat("a<>b", " OR a<>b", 800, "");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f != NULL && cf_normalize(f, NULL, 0) <= CF_MAX_TEXT, "801 conditions: normalized form within the limit",
		  err.message);
	cf_free(f, &test_allocator);
	s = repeat("a<>b", " OR a<>b", 900, "");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f == NULL && err.position == 0 &&
		  strcmp(err.message, "filter is too long: its normalized form is 9008 bytes, the limit is 8192") == 0,
		  "a filter whose normalized form is too long is refused", err.message);
	cf_free(f, &test_allocator);
	s = repeat("t", "||t", 2700, "");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f == NULL && strncmp(err.message, "filter is too long: its normalized form is", 42) == 0,
		  "a tag list whose normalized form is too long is refused", err.message);
	cf_free(f, &test_allocator);

	/* parentheses */
	expect_depth(repeat("", "(", 64, repeat("a = 1", ")", 64, "")), true, "64 parentheses");
	expect_depth(repeat("", "(", 65, "a = 1"), false, "65 parentheses");
	expect_depth(repeat("", "(", 8000, ""), false, "8000 parentheses");
	/* longer than the length limit: still refused cleanly */
	s = repeat("", "(", 100000, "");
	f = cf_parse(s, strlen(s), &test_allocator, &err);
	check(f == NULL && strncmp(err.message, "filter is too long", 18) == 0, "100000 parentheses", err.message);
	/* NOT and signs */
	expect_depth(repeat("", "NOT ", 64, "a"), true, "64 NOTs");
	expect_depth(repeat("", "NOT ", 65, "a"), false, "65 NOTs");
	expect_depth(repeat("", "NOT ", 2000, "a"), false, "2000 NOTs");
	expect_depth(repeat("", "NOT(", 32, repeat("a", ")", 32, "")), true, "32 NOT( (64 levels of text)");
	expect_depth(repeat("a = ", "- ", 64, "5"), true, "64 signs on a literal");
	expect_depth(repeat("a = ", "- ", 65, "5"), false, "65 signs");
	expect_depth(repeat("", "- ", 63, "a = 1"), true, "63 signs on a name");
	expect_depth(repeat("", "- ", 4000, "a"), false, "4000 signs");
	/* tree height without parentheses: comparison chains */
	expect_depth(repeat("a", " < a", 64, ""), true, "64 chained comparisons");
	expect_depth(repeat("a", " < a", 65, ""), false, "65 chained comparisons");
	expect_depth(repeat("a", " = a", 2000, ""), false, "2000 chained comparisons");
	/* long flat lists are one level */
	expect_depth(repeat("a = 0", " OR a = 1", 800, ""), true, "801 ORs");
	expect_depth(repeat("a = 0", " AND (a = 1)", 600, ""), true, "601 ANDs");
	expect_depth(repeat("a IN (0", ", 1", 2000, ")"), true, "an IN list of 2001");
	/* alternating AND / OR nests: one level per parenthesis */
	expect_depth(repeat(repeat("", "a AND (b OR (", 16, "c"), "))", 16, ""), true,
				 "32 alternating levels");
	expect_depth(repeat(repeat("", "a AND (b OR (", 33, "c"), "))", 33, ""), false,
				 "66 alternating levels");
	/* the tree height counts NOT under parentheses too */
	expect_depth(repeat("", "(NOT ", 64, repeat("a", ")", 64, "")), true, "64 (NOT levels");
	expect_depth(repeat("", "(NOT ", 65, repeat("a", ")", 65, "")), false, "65 (NOT levels");

	/* deep BETWEEN bounds */
	expect_depth(repeat("", "a BETWEEN (", 40, repeat("1", ") AND 2", 40, "")), true, "40 nested BETWEENs");

	/* a filter that uses the whole length: 2000 tags */
	s = repeat("t0", " || t", 1300, "");
	for (i = 0; s[i] != '\0'; i++)
		;
	f = cf_parse(s, (size_t) i, &test_allocator, &err);
	check(f != NULL && cf_tag_count(f) == 1301, "1301 tags", err.message);
	cf_free(f, &test_allocator);
	free_kept();
}

/* test_oom: every allocation failure is reported and leaks nothing */
static void
test_oom(void)
{
	static const char *const texts[] = {
		"a = 1",
		"a || b || c",
		"a",
		"*",
		"(a = 1 OR b CONTAINS 'xyz' OR c IN (1, 2, 'x')) AND NOT d BETWEEN -1 AND 2",
		NULL
	};
	int			k;

	for (k = 0; texts[k] != NULL; k++)
	{
		char	   *big = repeat(texts[k], " AND \"some header\" CONTAINS 'a long pattern that needs room'", 60, "");
		const char *variants[2];
		int			v;

		variants[0] = texts[k];
		variants[1] = big;
		for (v = 0; v < 2; v++)
		{
			const char *text = variants[v];
			long		at;
			bool		ok = true;

			if (v == 1 && (strchr(texts[k], '|') != NULL || strcmp(texts[k], "*") == 0 ||
						   strcmp(texts[k], "a") == 0))
				continue;
			for (at = 0; at < 1000; at++)
			{
				CfError		err;
				CourierFilter *f;

				ta_state.live = 0;
				ta_state.count = 0;
				ta_state.fail_at = at;
				f = cf_parse(text, strlen(text), &test_allocator, &err);
				if (f != NULL)
				{
					cf_free(f, &test_allocator);
					ok = ok && ta_state.live == 0;
					break;
				}
				if (strcmp(err.message, "out of memory") != 0 || err.position != 0 || ta_state.live != 0)
				{
					ok = false;
					printf("  at allocation %ld: %s, %ld blocks live\n", at, err.message, ta_state.live);
					break;
				}
			}
			ta_state.fail_at = -1;
			check(ok && at < 1000, "allocation failures", text);
		}
	}
	free_kept();
	{
		CfAllocator bad = {NULL, NULL, NULL};
		CfError		err;

		check(cf_parse("a", 1, &bad, &err) == NULL && cf_parse("a", 1, NULL, &err) == NULL,
			  "no allocator", err.message);
	}
}

/*
 * main
 */
int
main(int argc, char **argv)
{
	if (argc != 2)
	{
		fprintf(stderr, "usage: %s rocketmq-filter-vectors.json\n", argv[0]);
		return 2;
	}
	ta_state.fail_at = -1;
	test_vectors(argv[1]);
	test_errors();
	test_normalize();
	test_eval();
	test_lookup();
	test_api();
	test_limits();
	check(ta_state.live == 0, "every compiled filter was freed", NULL);
	test_oom();
	printf("filter tests: %d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0 ? 1 : 0;
}
