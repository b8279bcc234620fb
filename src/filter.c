/*-------------------------------------------------------------------------
 *
 * filter.c
 *	  Subscription filters: the parser, normalizer and evaluator of
 *	  RocketMQ-style tag expressions and SQL92 selectors.
 *
 * Plain C99 with no PostgreSQL headers: the server (match.c), the unit
 * tests (test/filter) and the fuzzer (test/fuzz) compile this same file.
 * docs/filters.md is the user's description of the language; this comment
 * covers the implementation.
 *
 * Compiling.  cf_parse first decides which form the text has: '*', a tag
 * expression (names joined by '||', or one lone name), or an SQL92
 * selector.  A selector is read by a recursive-descent parser with one
 * token of lookahead into a tree of CfNode.  AND and OR are n-ary (nested
 * ANDs are flattened into one node), so a long list of conditions is one
 * level, not hundreds.  Signs applied to number literals are folded into
 * the literal.  Everything the compiled filter owns (the CourierFilter, its
 * nodes, decoded strings, tables) lives in a chain of chunks taken from the
 * caller's allocator, so cf_free is a walk over that chain and a failed
 * parse leaks nothing.
 *
 * Depth.  Three counts are bounded by CF_MAX_DEPTH, each checked before the
 * parser goes one level deeper: parentheses open at a point of the text,
 * NOT and sign operators enclosing a point, and the height of the tree
 * (a leaf has height 0).  The parser recurses only through parentheses,
 * NOT and signs, so its stack is bounded; the evaluator and normalizer
 * recurse along the tree, so theirs is too.  The normalized text never
 * has more parentheses or prefix operators on a path than the tree has
 * levels, so it always parses again.
 *
 * Evaluation.  cf_eval walks the tree with three-valued logic and allocates
 * nothing: header values are looked up through the caller's callback and
 * used in place, numbers are compared exactly on their decimal text
 * (CfDec), and CONTAINS uses a KMP table built at parse time.
 *
 * IDENTIFICATION
 *	  src/filter.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filter.h"

/*
 * allocation granularity and chunk sizes of a compiled filter: a small
 * first chunk (a backend caches every group's filter, and most fit), then
 * chunks of twice the size, up to CF_CHUNK_SIZE
 */
#define CF_ALIGN		16
#define CF_FIRST_CHUNK_SIZE	1024
#define CF_CHUNK_SIZE	8192

/* numbers with a longer text than this are not numbers (keeps CfDec exact) */
#define CF_NUM_MAXLEN	(SIZE_MAX >> 6)

/* 10^18: exponent differences at least this large are saturated */
#define CF_SAT			INT64_C(1000000000000000000)

/* at most this many bytes of the input are quoted in an error message */
#define CF_EXCERPT		32

/* ----------------------------------------------------------------------
 * Types
 * ----------------------------------------------------------------------
 */

/* One chunk of a compiled filter's memory; data follows the header. */
typedef struct CfChunk
{
	struct CfChunk *next;
	size_t		size;			/* bytes, header included */
	size_t		used;			/* bytes, header included */
} CfChunk;

#define CF_CHUNK_HDR	((sizeof(CfChunk) + CF_ALIGN - 1) & ~((size_t) CF_ALIGN - 1))

/*
 * An exact decimal read from text: value = sign * 0.D * 10^(point + E),
 * where D is the significant digits dig..dend (which may span one '.') and
 * E is the exponent esign * exp (digits, no leading zeros).  Pointers go
 * into the text, which must outlive the CfDec.
 */
typedef struct CfDec
{
	int			sign;			/* -1, 0 or 1; 0 means the value is zero */
	const char *dig;			/* first significant digit */
	const char *dend;			/* just past the last non-zero digit */
	int64_t		point;			/* see above; |point| <= CF_NUM_MAXLEN */
	int			esign;			/* -1, 0 or 1 */
	const char *exp;			/* exponent digits */
	size_t		elen;
} CfDec;

typedef enum CfNodeType
{
	CF_N_NULL,					/* NULL */
	CF_N_BOOL,					/* TRUE or FALSE: bval */
	CF_N_NUM,					/* number literal: num; text is printed */
	CF_N_STR,					/* string literal: text, len */
	CF_N_HEADER,				/* header name: text, len */
	CF_N_TAGS,					/* TAGS, the message's tag */
	CF_N_SIGN,					/* '-' (negate) or '+' arg[0] */
	CF_N_NOT,					/* NOT arg[0] */
	CF_N_AND,					/* list: two or more operands */
	CF_N_OR,					/* list: two or more operands */
	CF_N_CMP,					/* arg[0] op arg[1] */
	CF_N_ISNULL,				/* arg[0] IS [NOT] NULL */
	CF_N_BETWEEN,				/* arg[0] [NOT] BETWEEN arg[1] AND arg[2] */
	CF_N_IN,					/* arg[0] [NOT] IN (list) */
	CF_N_MATCH					/* arg[0] [NOT] CONTAINS|... text */
} CfNodeType;

/* CF_N_CMP operators */
typedef enum CfCmpOp
{
	CF_OP_EQ,
	CF_OP_NE,
	CF_OP_LT,
	CF_OP_LE,
	CF_OP_GT,
	CF_OP_GE
} CfCmpOp;

/* CF_N_MATCH operators */
typedef enum CfMatchOp
{
	CF_M_CONTAINS,
	CF_M_STARTSWITH,
	CF_M_ENDSWITH
} CfMatchOp;

typedef struct CfNode
{
	CfNodeType	type;
	int			op;				/* CfCmpOp or CfMatchOp */
	bool		negate;			/* SIGN: '-'; NUM: printed with '-'; ISNULL,
								 * BETWEEN, IN, MATCH: the NOT form */
	bool		bval;			/* BOOL */
	bool		numok;			/* STR: the string reads as a number (num) */
	int			height;			/* levels below this node; 0 for a leaf */
	struct CfNode *arg[3];
	struct CfNode *list;		/* AND, OR: operands; IN: items */
	struct CfNode *last;		/* last element of list */
	struct CfNode *next;		/* next element in the parent's list */
	const char *text;			/* STR, HEADER, MATCH: bytes; NUM: digits */
	size_t		len;
	const int32_t *kmp;			/* MATCH CONTAINS: KMP failure table */
	CfDec		num;			/* NUM; STR if numok */
} CfNode;

/* A tag of a tag expression (NUL-terminated copy). */
typedef struct CfTag
{
	const char *name;
	size_t		len;
} CfTag;

struct CourierFilter
{
	CfChunk    *chunks;			/* all memory, this struct included */
	bool		is_tags;		/* a tag expression ('*' included) */
	bool		everything;		/* '*' */
	int			ntags;
	CfTag	   *tags;
	CfNode	   *root;			/* SQL92 selector */
};

/* Tokens of the SQL92 form */
typedef enum CfTokType
{
	CF_T_END,
	CF_T_ERROR,					/* the lexer reported an error */
	CF_T_IDENT,
	CF_T_QIDENT,				/* "quoted name" */
	CF_T_STRING,
	CF_T_NUMBER,
	CF_T_LPAREN,
	CF_T_RPAREN,
	CF_T_COMMA,
	CF_T_EQ,
	CF_T_NE,
	CF_T_LT,
	CF_T_LE,
	CF_T_GT,
	CF_T_GE,
	CF_T_PLUS,
	CF_T_MINUS,
	/* keywords */
	CF_T_AND,
	CF_T_OR,
	CF_T_NOT,
	CF_T_BETWEEN,
	CF_T_IN,
	CF_T_IS,
	CF_T_NULL,
	CF_T_TRUE,
	CF_T_FALSE,
	CF_T_CONTAINS,
	CF_T_STARTSWITH,
	CF_T_ENDSWITH
} CfTokType;

typedef struct CfToken
{
	CfTokType	type;
	size_t		start;			/* byte offsets [start, end) in the text */
	size_t		end;
} CfToken;

typedef struct CfKeyword
{
	const char *name;
	CfTokType	type;
} CfKeyword;

static const CfKeyword cf_keywords[] = {
	{"AND", CF_T_AND},
	{"OR", CF_T_OR},
	{"NOT", CF_T_NOT},
	{"BETWEEN", CF_T_BETWEEN},
	{"IN", CF_T_IN},
	{"IS", CF_T_IS},
	{"NULL", CF_T_NULL},
	{"TRUE", CF_T_TRUE},
	{"FALSE", CF_T_FALSE},
	{"CONTAINS", CF_T_CONTAINS},
	{"STARTSWITH", CF_T_STARTSWITH},
	{"ENDSWITH", CF_T_ENDSWITH}
};

#define CF_NKEYWORDS (sizeof(cf_keywords) / sizeof(cf_keywords[0]))

/* Parser state, which also owns the memory being built */
typedef struct CfParser
{
	const char *text;
	size_t		len;
	size_t		pos;			/* lexer position */
	CfToken		tok;			/* current token */
	const CfAllocator *alloc;
	CfChunk    *chunks;
	CfError    *err;
	bool		failed;
	int			parens;			/* parentheses open */
	int			prefix;			/* NOT and signs enclosing this point */
} CfParser;

/* An output buffer with snprintf semantics */
typedef struct CfOut
{
	char	   *buf;
	size_t		size;
	size_t		len;			/* bytes wanted so far */
} CfOut;

/* Kinds of runtime values */
typedef enum CfValKind
{
	CF_V_NULL,					/* NULL, missing, or an unknown truth value */
	CF_V_BOOL,
	CF_V_NUM,
	CF_V_STR,
	CF_V_OTHER					/* JSON object or array */
} CfValKind;

/* A value during evaluation */
typedef struct CfVal
{
	CfValKind	kind;
	bool		header;			/* a header's JSON value (or the tag) */
	bool		literal;		/* a string literal */
	bool		b;				/* BOOL */
	bool		numok;			/* STR: num already holds its value */
	const char *s;				/* STR: bytes; NUM from a header: JSON text */
	size_t		len;
	CfDec		num;			/* NUM */
} CfVal;

/* Evaluation state */
typedef struct CfEval
{
	CfLookup	lookup;
	void	   *ctx;
	const char *tag;
	size_t		taglen;
	bool		has_tag;
	bool		aborted;		/* the lookup asked to stop */
} CfEval;

/* ----------------------------------------------------------------------
 * Prototypes
 * ----------------------------------------------------------------------
 */
static bool cf_isdigit(unsigned char c);
static bool cf_isalpha(unsigned char c);
static bool cf_isspace(unsigned char c);
static bool cf_is_ident_start(unsigned char c);
static bool cf_is_ident_char(unsigned char c);
static bool cf_is_tag_char(unsigned char c);
static unsigned char cf_upper(unsigned char c);
static bool cf_ieq(const char *s, size_t len, const char *upper);
static bool cf_bytes_eq(const char *a, size_t alen, const char *b, size_t blen);
static CfTokType cf_keyword(const char *s, size_t len);

static void cf_out_bytes(CfOut *o, const char *s, size_t n);
static void cf_out_str(CfOut *o, const char *s);
static void cf_out_uint(CfOut *o, size_t v);
static void cf_out_quoted(CfOut *o, const char *s, size_t n, char q);
static void cf_out_excerpt(CfOut *o, const char *s, size_t n);
static size_t cf_out_finish(CfOut *o);

static void cf_error(CfParser *p, size_t offset, bool syntax, const char *m1,
					 const char *m2, const char *m3);
static void cf_error_token(CfParser *p, const char *before, const char *after);
static void cf_describe_token(CfParser *p, CfOut *o);
static void cf_error_depth(CfParser *p, size_t offset);

static void *cf_alloc(CfParser *p, size_t size);
static void cf_free_chunks(CfChunk *c, const CfAllocator *a);
static char *cf_copy(CfParser *p, const char *s, size_t n);
static char *cf_unquote(CfParser *p, const CfToken *t, size_t *len);

static bool cf_dec_parse(const char *s, size_t len, CfDec *d);
static int	cf_mag_cmp(const char *x, size_t xn, const char *y, size_t yn);
static int64_t cf_mag_value(const char *d, size_t n);
static int64_t cf_mag_sub(const char *x, size_t xn, const char *y, size_t yn);
static int64_t cf_exp_diff(const CfDec *a, const CfDec *b);
static int	cf_digits_cmp(const CfDec *a, const CfDec *b);
static int	cf_dec_cmp(const CfDec *a, const CfDec *b);

static bool cf_skip_space(CfParser *p);
static void cf_lex_number(CfParser *p, size_t start);
static void cf_lex_quoted(CfParser *p, size_t start, char q);
static void cf_next(CfParser *p);

static CfNode *cf_new_node(CfParser *p, CfNodeType type);
static bool cf_set_height(CfParser *p, CfNode *n, int h, size_t offset);
static bool cf_list_add(CfParser *p, CfNode *n, CfNode *child, size_t offset);
static CfNode *cf_parse_or(CfParser *p, const char *what);
static CfNode *cf_parse_chain(CfParser *p, const char *what, CfTokType op, CfNodeType kind,
							  CfNode *(*operand) (CfParser *, const char *), const char *after);
static CfNode *cf_parse_and(CfParser *p, const char *what);
static CfNode *cf_parse_not(CfParser *p, const char *what);
static CfNode *cf_parse_eq(CfParser *p, const char *what);
static CfNode *cf_parse_rel(CfParser *p, const char *what);
static CfNode *cf_parse_in_list(CfParser *p, CfNode *n);
static CfNode *cf_parse_unary(CfParser *p, const char *what);
static CfNode *cf_parse_primary(CfParser *p, const char *what);
static CfNode *cf_binary(CfParser *p, CfNodeType type, int op, CfNode *l,
						 CfNode *r, size_t offset);
static CfNode *cf_unary_node(CfParser *p, CfNodeType type, CfNode *arg,
							 size_t offset);
static void cf_negate_number(CfNode *n);
static CfNode *cf_number_node(CfParser *p, const CfToken *t);
static CfNode *cf_string_node(CfParser *p, const CfToken *t);
static int32_t *cf_kmp_table(CfParser *p, const char *pat, size_t m);
static void cf_trailing_error(CfParser *p);

static bool cf_tag_name(const char *s, size_t n, bool lone);
static int	cf_parse_tags(CfParser *p, CourierFilter *f, size_t b, size_t e);

static bool cf_is_comparison(const CfNode *n);
static void cf_print_ident(CfOut *o, const char *s, size_t n);
static void cf_print_node(CfOut *o, const CfNode *n, bool paren_cmp);

static CfResult cf_not(CfResult a);
static bool cf_as_bool(const CfVal *v, bool *b);
static bool cf_as_num(const CfVal *v, CfDec *d);
static bool cf_as_text(const CfVal *v, const char **s, size_t *len);
static CfResult cf_compare(int op, const CfVal *x, const CfVal *y);
static bool cf_contains(const char *h, size_t n, const char *pat, size_t m,
						const int32_t *fail);
static CfResult cf_match(const CfNode *n, const CfVal *x);
static void cf_eval_value(CfEval *e, const CfNode *n, CfVal *v);
static CfResult cf_eval_bool(CfEval *e, const CfNode *n);

/* ----------------------------------------------------------------------
 * Characters and strings (ASCII only, no locale)
 * ----------------------------------------------------------------------
 */

/* cf_isdigit: '0'..'9' */
static bool
cf_isdigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* cf_isalpha: ASCII letters */
static bool
cf_isalpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* cf_isspace: the white space that separates tokens and is trimmed */
static bool
cf_isspace(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* cf_is_ident_start: first character of a bare identifier */
static bool
cf_is_ident_start(unsigned char c)
{
	return cf_isalpha(c) || c == '_' || c == '$';
}

/* cf_is_ident_char: later characters of a bare identifier */
static bool
cf_is_ident_char(unsigned char c)
{
	return cf_is_ident_start(c) || cf_isdigit(c);
}

/* cf_is_tag_char: characters a tag of a tag expression may contain */
static bool
cf_is_tag_char(unsigned char c)
{
	return cf_is_ident_char(c) || c >= 0x80 || c == '-' || c == '.' ||
		c == ':' || c == '/' || c == '@' || c == '#';
}

/* cf_upper: ASCII upper case */
static unsigned char
cf_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char) (c - 'a' + 'A') : c;
}

/* cf_ieq: does s (len bytes) equal the upper-case word, ignoring case? */
static bool
cf_ieq(const char *s, size_t len, const char *upper)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (upper[i] == '\0' || cf_upper((unsigned char) s[i]) != (unsigned char) upper[i])
			return false;
	}
	return upper[len] == '\0';
}

/* cf_bytes_eq: byte equality that tolerates NULL pointers of length 0 */
static bool
cf_bytes_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	return alen == 0 || memcmp(a, b, alen) == 0;
}

/* cf_keyword: the keyword token of an identifier, or CF_T_IDENT */
static CfTokType
cf_keyword(const char *s, size_t len)
{
	size_t		i;

	if (len < 2 || len > 10)
		return CF_T_IDENT;
	for (i = 0; i < CF_NKEYWORDS; i++)
	{
		if (cf_ieq(s, len, cf_keywords[i].name))
			return cf_keywords[i].type;
	}
	return CF_T_IDENT;
}

/* ----------------------------------------------------------------------
 * Output buffers (normalized text and error messages)
 * ----------------------------------------------------------------------
 */

/* cf_out_init: start an empty output of size bytes at buf */
static void
cf_out_init(CfOut *o, char *buf, size_t size)
{
	o->buf = buf;
	o->size = size;
	o->len = 0;
}

/* cf_out_bytes: append n bytes, keeping room for the NUL */
static void
cf_out_bytes(CfOut *o, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (o->size > 0 && o->len < o->size - 1)
	{
		size_t		room = o->size - 1 - o->len;

		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

/* cf_out_str: append a C string */
static void
cf_out_str(CfOut *o, const char *s)
{
	cf_out_bytes(o, s, strlen(s));
}

/* cf_out_uint: append a number in decimal */
static void
cf_out_uint(CfOut *o, size_t v)
{
	char		tmp[32];
	size_t		i = sizeof(tmp);

	do
	{
		tmp[--i] = (char) ('0' + v % 10);
		v /= 10;
	} while (v > 0);
	cf_out_bytes(o, tmp + i, sizeof(tmp) - i);
}

/* cf_out_quoted: append s between quotes q, doubling q inside */
static void
cf_out_quoted(CfOut *o, const char *s, size_t n, char q)
{
	size_t		i,
				run = 0;

	cf_out_bytes(o, &q, 1);
	for (i = 0; i < n; i++)
	{
		if (s[i] == q)
		{
			cf_out_bytes(o, s + run, i + 1 - run);
			cf_out_bytes(o, &q, 1);
			run = i + 1;
		}
	}
	cf_out_bytes(o, s + run, n - run);
	cf_out_bytes(o, &q, 1);
}

/*
 * cf_out_excerpt: append at most CF_EXCERPT bytes of s for a message,
 * cut at a UTF-8 character boundary, with control bytes shown as '?'.
 */
static void
cf_out_excerpt(CfOut *o, const char *s, size_t n)
{
	size_t		i,
				m = n;

	if (m > CF_EXCERPT)
	{
		m = CF_EXCERPT;
		while (m > 0 && ((unsigned char) s[m] & 0xC0) == 0x80)
			m--;
	}
	for (i = 0; i < m; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7F)
			cf_out_bytes(o, "?", 1);
		else
			cf_out_bytes(o, s + i, 1);
	}
	if (m < n)
		cf_out_str(o, "...");
}

/* cf_out_finish: NUL-terminate; returns the full length wanted */
static size_t
cf_out_finish(CfOut *o)
{
	if (o->size > 0)
		o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
	return o->len;
}

/* ----------------------------------------------------------------------
 * Errors
 * ----------------------------------------------------------------------
 */

/*
 * cf_error: record the first error: "syntax error at position N: m1m2m3"
 * when syntax, else just the message.  offset is 0-based; the position
 * reported is offset + 1.
 */
static void
cf_error(CfParser *p, size_t offset, bool syntax, const char *m1,
		 const char *m2, const char *m3)
{
	CfOut		o;

	if (p->failed)
		return;
	p->failed = true;
	p->tok.type = CF_T_ERROR;
	p->err->position = (int) (offset + 1);
	cf_out_init(&o, p->err->message, sizeof(p->err->message));
	if (syntax)
	{
		cf_out_str(&o, "syntax error at position ");
		cf_out_uint(&o, offset + 1);
		cf_out_str(&o, ": ");
	}
	cf_out_str(&o, m1);
	if (m2)
		cf_out_str(&o, m2);
	if (m3)
		cf_out_str(&o, m3);
	cf_out_finish(&o);
}

/* cf_describe_token: name the current token for a message */
static void
cf_describe_token(CfParser *p, CfOut *o)
{
	const CfToken *t = &p->tok;

	if (t->type == CF_T_END)
		cf_out_str(o, "end of input");
	else if (t->type >= CF_T_AND)
	{
		size_t		i;

		for (i = 0; i < CF_NKEYWORDS; i++)
			if (cf_keywords[i].type == t->type)
				cf_out_str(o, cf_keywords[i].name);
	}
	else if (t->type == CF_T_STRING || t->type == CF_T_QIDENT)
		cf_out_excerpt(o, p->text + t->start, t->end - t->start);
	else
	{
		cf_out_str(o, "'");
		cf_out_excerpt(o, p->text + t->start, t->end - t->start);
		cf_out_str(o, "'");
	}
}

/*
 * cf_error_token: a syntax error at the current token:
 * before + <the token> + after.
 */
static void
cf_error_token(CfParser *p, const char *before, const char *after)
{
	char		desc[CF_EXCERPT * 2];
	CfOut		o;

	cf_out_init(&o, desc, sizeof(desc));
	cf_describe_token(p, &o);
	cf_out_finish(&o);
	cf_error(p, p->tok.start, true, before, desc, after);
}

/* cf_error_depth: the nesting limit was passed at offset */
static void
cf_error_depth(CfParser *p, size_t offset)
{
	char		limit[24];
	CfOut		o;

	cf_out_init(&o, limit, sizeof(limit));
	cf_out_uint(&o, CF_MAX_DEPTH);
	cf_out_str(&o, " levels");
	cf_out_finish(&o);
	cf_error(p, offset, false, "filter nests too deeply: the limit is ", limit, NULL);
}

/*
 * cf_descend: count one more level in *depth (p->parens or p->prefix), or
 * report the nesting limit at offset and return false
 */
static bool
cf_descend(CfParser *p, int *depth, size_t offset)
{
	if (*depth >= CF_MAX_DEPTH)
	{
		cf_error_depth(p, offset);
		return false;
	}
	(*depth)++;
	return true;
}

/* ----------------------------------------------------------------------
 * Memory of a compiled filter
 * ----------------------------------------------------------------------
 */

/*
 * cf_alloc: zeroed, aligned memory from the filter's chunks; NULL (with
 * the error set) when the allocator fails.
 */
static void *
cf_alloc(CfParser *p, size_t size)
{
	CfChunk    *c = p->chunks;
	void	   *mem;

	if (p->failed)
		return NULL;
	if (size > SIZE_MAX / 4)
	{
		cf_error(p, 0, false, "out of memory", NULL, NULL);
		p->err->position = 0;
		return NULL;
	}
	size = (size + CF_ALIGN - 1) & ~((size_t) CF_ALIGN - 1);
	if (c == NULL || c->size - c->used < size)
	{
		size_t		csize = CF_CHUNK_HDR + size;
		CfChunk    *nc;

		/* chunks double from the first one's size up to CF_CHUNK_SIZE */
		size_t		want = c == NULL ? CF_FIRST_CHUNK_SIZE :
			(c->size < CF_CHUNK_SIZE / 2 ? c->size * 2 : CF_CHUNK_SIZE);

		if (csize < want)
			csize = want;
		nc = (CfChunk *) p->alloc->alloc(p->alloc->ctx, csize);
		if (nc == NULL)
		{
			cf_error(p, 0, false, "out of memory", NULL, NULL);
			p->err->position = 0;
			return NULL;
		}
		nc->size = csize;
		nc->used = CF_CHUNK_HDR;
		if (c != NULL && csize > CF_CHUNK_SIZE)
		{
			/* a big block: keep filling the current chunk afterwards */
			nc->next = c->next;
			c->next = nc;
		}
		else
		{
			nc->next = c;
			p->chunks = nc;
		}
		c = nc;
	}
	mem = (char *) c + c->used;
	c->used += size;
	memset(mem, 0, size);
	return mem;
}

/* cf_free_chunks: give every chunk of a chain back to the allocator */
static void
cf_free_chunks(CfChunk *c, const CfAllocator *a)
{
	while (c != NULL)
	{
		CfChunk    *next = c->next;

		a->free(a->ctx, c);
		c = next;
	}
}

/* cf_copy: a NUL-terminated copy of n bytes */
static char *
cf_copy(CfParser *p, const char *s, size_t n)
{
	char	   *d = (char *) cf_alloc(p, n + 1);

	if (d != NULL && n > 0)
		memcpy(d, s, n);
	return d;
}

/*
 * cf_unquote: the contents of a quoted token ('string' or "name") with
 * doubled quotes made single, NUL-terminated.
 */
static char *
cf_unquote(CfParser *p, const CfToken *t, size_t *len)
{
	const char *s = p->text + t->start + 1;
	size_t		n = t->end - t->start - 2;
	char		q = p->text[t->start];
	char	   *d = (char *) cf_alloc(p, n + 1);
	size_t		i,
				j = 0;

	if (d == NULL)
		return NULL;
	for (i = 0; i < n; i++)
	{
		d[j++] = s[i];
		if (s[i] == q)
			i++;				/* the lexer guarantees the pair */
	}
	d[j] = '\0';
	*len = j;
	return d;
}

/* ----------------------------------------------------------------------
 * Exact decimals
 * ----------------------------------------------------------------------
 */

/*
 * cf_dec_parse: read s as a number: [+-] digits [. digits] or [+-] . digits,
 * then optionally e [+-] digits.  Nothing else, no spaces.  Returns false
 * if s is not such a number.
 */
static bool
cf_dec_parse(const char *s, size_t len, CfDec *d)
{
	size_t		i = 0,
				j,
				ib,
				ie,
				fb,
				fe;
	int			sign = 1;

	memset(d, 0, sizeof(*d));
	if (len == 0 || len > CF_NUM_MAXLEN)
		return false;
	if (s[0] == '+' || s[0] == '-')
	{
		sign = (s[0] == '-') ? -1 : 1;
		i = 1;
	}
	ib = i;
	while (i < len && cf_isdigit((unsigned char) s[i]))
		i++;
	ie = i;
	fb = fe = i;
	if (i < len && s[i] == '.')
	{
		fb = ++i;
		while (i < len && cf_isdigit((unsigned char) s[i]))
			i++;
		fe = i;
	}
	if (ie == ib && fe == fb)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		int			es = 1;
		size_t		eb;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
		{
			es = (s[i] == '-') ? -1 : 1;
			i++;
		}
		eb = i;
		while (i < len && cf_isdigit((unsigned char) s[i]))
			i++;
		if (i == eb)
			return false;
		while (eb < i && s[eb] == '0')
			eb++;
		d->esign = (eb < i) ? es : 0;
		d->exp = s + eb;
		d->elen = i - eb;
	}
	if (i != len)
		return false;

	/* the first significant digit fixes the point */
	for (j = ib; j < ie && d->dig == NULL; j++)
	{
		if (s[j] != '0')
		{
			d->dig = s + j;
			d->point = (int64_t) (ie - j);
		}
	}
	for (j = fb; j < fe && d->dig == NULL; j++)
	{
		if (s[j] != '0')
		{
			d->dig = s + j;
			d->point = -(int64_t) (j - fb);
		}
	}
	if (d->dig == NULL)
	{
		d->sign = 0;			/* zero, whatever the exponent */
		return true;
	}
	/* and the last one ends the digits */
	for (j = fe; j > fb && d->dend == NULL; j--)
	{
		if (s[j - 1] != '0')
			d->dend = s + j;
	}
	for (j = ie; j > ib && d->dend == NULL; j--)
	{
		if (s[j - 1] != '0')
			d->dend = s + j;
	}
	d->sign = sign;
	return true;
}

/* cf_mag_cmp: compare two digit strings without leading zeros */
static int
cf_mag_cmp(const char *x, size_t xn, const char *y, size_t yn)
{
	int			c;

	if (xn != yn)
		return xn < yn ? -1 : 1;
	if (xn == 0)
		return 0;
	c = memcmp(x, y, xn);
	return (c > 0) - (c < 0);
}

/* cf_mag_value: a digit string's value, saturated at CF_SAT */
static int64_t
cf_mag_value(const char *d, size_t n)
{
	int64_t		v = 0;
	size_t		i;

	if (n > 18)
		return CF_SAT;
	for (i = 0; i < n; i++)
		v = v * 10 + (d[i] - '0');
	return v;
}

/*
 * cf_mag_sub: x - y for digit strings without leading zeros, exact when its
 * magnitude is below CF_SAT, else +-CF_SAT.  Linear in the lengths.
 */
static int64_t
cf_mag_sub(const char *x, size_t xn, const char *y, size_t yn)
{
	int			c = cf_mag_cmp(x, xn, y, yn);
	const char *l = x,
			   *s = y;
	size_t		ln = xn,
				sn = yn,
				i;
	int64_t		acc = 0,
				scale = 1;
	int			borrow = 0;

	if (c == 0)
		return 0;
	if (c < 0)
	{
		l = y;
		ln = yn;
		s = x;
		sn = xn;
	}
	for (i = 0; i < ln; i++)
	{
		int			dg = (l[ln - 1 - i] - '0') - (i < sn ? s[sn - 1 - i] - '0' : 0) - borrow;

		borrow = dg < 0;
		if (borrow)
			dg += 10;
		if (i < 18)
		{
			acc += dg * scale;
			scale *= 10;
		}
		else if (dg != 0)
			return c > 0 ? CF_SAT : -CF_SAT;
	}
	return c > 0 ? acc : -acc;
}

/* cf_exp_diff: a's exponent minus b's, saturated at +-CF_SAT */
static int64_t
cf_exp_diff(const CfDec *a, const CfDec *b)
{
	int64_t		s;

	if (b->esign == 0)
		return a->esign * cf_mag_value(a->exp, a->elen);
	if (a->esign == 0)
		return -b->esign * cf_mag_value(b->exp, b->elen);
	if (a->esign != b->esign)
	{
		s = cf_mag_value(a->exp, a->elen) + cf_mag_value(b->exp, b->elen);
		if (s > CF_SAT)
			s = CF_SAT;
		return a->esign * s;
	}
	return a->esign * cf_mag_sub(a->exp, a->elen, b->exp, b->elen);
}

/* cf_digits_cmp: compare the significant digits of a and b */
static int
cf_digits_cmp(const CfDec *a, const CfDec *b)
{
	const char *x = a->dig,
			   *y = b->dig;

	for (;;)
	{
		if (x < a->dend && *x == '.')
			x++;
		if (y < b->dend && *y == '.')
			y++;
		if (x >= a->dend || y >= b->dend)
			break;
		if (*x != *y)
			return *x < *y ? -1 : 1;
		x++;
		y++;
	}
	if (x < a->dend)
		return 1;
	if (y < b->dend)
		return -1;
	return 0;
}

/* cf_dec_cmp: compare two decimals exactly: -1, 0 or 1 */
static int
cf_dec_cmp(const CfDec *a, const CfDec *b)
{
	int64_t		d;
	int			c;

	if (a->sign != b->sign)
		return a->sign < b->sign ? -1 : 1;
	if (a->sign == 0)
		return 0;

	/* the magnitudes: first the scale, 10^(point + exponent) ... */
	d = cf_exp_diff(a, b);
	if (d >= CF_SAT)
		c = 1;
	else if (d <= -CF_SAT)
		c = -1;
	else
	{
		d -= b->point - a->point;
		c = (d > 0) - (d < 0);
	}
	/* ... then the digits */
	if (c == 0)
		c = cf_digits_cmp(a, b);
	return a->sign > 0 ? c : -c;
}

/* ----------------------------------------------------------------------
 * Lexer of the SQL92 form
 * ----------------------------------------------------------------------
 */

/* cf_skip_space: skip white space and comments; false on an error */
static bool
cf_skip_space(CfParser *p)
{
	const char *s = p->text;

	for (;;)
	{
		while (p->pos < p->len && cf_isspace((unsigned char) s[p->pos]))
			p->pos++;
		if (p->pos + 1 < p->len && s[p->pos] == '-' && s[p->pos + 1] == '-')
		{
			while (p->pos < p->len && s[p->pos] != '\n' && s[p->pos] != '\r')
				p->pos++;
		}
		else if (p->pos + 1 < p->len && s[p->pos] == '/' && s[p->pos + 1] == '*')
		{
			size_t		i = p->pos + 2;

			while (i + 1 < p->len && !(s[i] == '*' && s[i + 1] == '/'))
				i++;
			if (i + 1 >= p->len)
			{
				cf_error(p, p->pos, true, "unterminated comment", NULL, NULL);
				return false;
			}
			p->pos = i + 2;
		}
		else
			return true;
	}
}

/*
 * cf_lex_number: a number at start: digits [. digits*] [exponent], or
 * . digits [exponent]; an integer may end in L (Java's long suffix).  An
 * integer with a leading zero, or a number run into letters, digits or a
 * dot, is an invalid number.
 */
static void
cf_lex_number(CfParser *p, size_t start)
{
	const char *s = p->text;
	size_t		n = p->len,
				i = start,
				intlen;
	bool		isfloat = false;

	while (i < n && cf_isdigit((unsigned char) s[i]))
		i++;
	intlen = i - start;
	if (i < n && s[i] == '.')
	{
		isfloat = true;
		i++;
		while (i < n && cf_isdigit((unsigned char) s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		j = i + 1;

		if (j < n && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j < n && cf_isdigit((unsigned char) s[j]))
		{
			isfloat = true;
			i = j;
			while (i < n && cf_isdigit((unsigned char) s[i]))
				i++;
		}
	}
	if (!isfloat && i < n && (s[i] == 'l' || s[i] == 'L'))
		i++;
	if ((!isfloat && intlen > 1 && s[start] == '0') ||
		(i < n && (cf_is_ident_char((unsigned char) s[i]) || s[i] == '.')))
	{
		CfOut		o;
		char		buf[CF_EXCERPT * 2];

		while (i < n && (cf_is_ident_char((unsigned char) s[i]) || s[i] == '.'))
			i++;
		cf_out_init(&o, buf, sizeof(buf));
		cf_out_excerpt(&o, s + start, i - start);
		cf_out_finish(&o);
		cf_error(p, start, true, "invalid number '", buf, "'");
		return;
	}
	p->tok.type = CF_T_NUMBER;
	p->tok.end = i;
	p->pos = i;
}

/* cf_lex_quoted: a 'string' or "name" at start, '' or "" inside */
static void
cf_lex_quoted(CfParser *p, size_t start, char q)
{
	size_t		i = start + 1;

	for (;;)
	{
		while (i < p->len && p->text[i] != q)
			i++;
		if (i >= p->len)
		{
			cf_error(p, start, true,
					 q == '\'' ? "unterminated string" : "unterminated quoted name",
					 NULL, NULL);
			return;
		}
		if (i + 1 < p->len && p->text[i + 1] == q)
			i += 2;
		else
			break;
	}
	p->tok.type = (q == '\'') ? CF_T_STRING : CF_T_QIDENT;
	p->tok.end = i + 1;
	p->pos = i + 1;
}

/* cf_next: read the next token into p->tok (CF_T_ERROR on an error) */
static void
cf_next(CfParser *p)
{
	const char *s = p->text;
	unsigned char c;
	unsigned char c2;

	if (p->failed)
		return;
	if (!cf_skip_space(p))
		return;
	p->tok.start = p->pos;
	p->tok.end = p->pos + 1;
	if (p->pos >= p->len)
	{
		p->tok.type = CF_T_END;
		p->tok.end = p->pos;
		return;
	}
	c = (unsigned char) s[p->pos];
	c2 = (p->pos + 1 < p->len) ? (unsigned char) s[p->pos + 1] : 0;

	if (cf_is_ident_start(c))
	{
		size_t		i = p->pos + 1;

		while (i < p->len && cf_is_ident_char((unsigned char) s[i]))
			i++;
		p->tok.type = cf_keyword(s + p->pos, i - p->pos);
		p->tok.end = i;
		p->pos = i;
		return;
	}
	if (cf_isdigit(c) || (c == '.' && cf_isdigit(c2)))
	{
		cf_lex_number(p, p->pos);
		return;
	}
	if (c == '\'' || c == '"')
	{
		cf_lex_quoted(p, p->pos, (char) c);
		return;
	}

	p->tok.type = CF_T_ERROR;
	switch (c)
	{
		case '(':
			p->tok.type = CF_T_LPAREN;
			break;
		case ')':
			p->tok.type = CF_T_RPAREN;
			break;
		case ',':
			p->tok.type = CF_T_COMMA;
			break;
		case '+':
			p->tok.type = CF_T_PLUS;
			break;
		case '-':
			p->tok.type = CF_T_MINUS;
			break;
		case '=':
			if (c2 == '=')
				cf_error(p, p->pos, true, "'==' is not an operator, use '='", NULL, NULL);
			else
				p->tok.type = CF_T_EQ;
			break;
		case '<':
			if (c2 == '>' || c2 == '=')
			{
				p->tok.type = (c2 == '>') ? CF_T_NE : CF_T_LE;
				p->tok.end++;
			}
			else
				p->tok.type = CF_T_LT;
			break;
		case '>':
			if (c2 == '=')
			{
				p->tok.type = CF_T_GE;
				p->tok.end++;
			}
			else
				p->tok.type = CF_T_GT;
			break;
		case '!':
			if (c2 == '=')
				cf_error(p, p->pos, true, "'!=' is not an operator, use '<>'", NULL, NULL);
			break;
		case '&':
			if (c2 == '&')
				cf_error(p, p->pos, true, "'&&' is not an operator, use AND", NULL, NULL);
			break;
		case '|':
			if (c2 == '|')
				cf_error(p, p->pos, true,
						 "'||' only joins the tags of a tag expression; use OR between conditions",
						 NULL, NULL);
			break;
		default:
			break;
	}
	if (p->tok.type == CF_T_ERROR && !p->failed)
	{
		/* any other byte: show it, whole if it starts a UTF-8 character */
		CfOut		o;
		char		buf[16];
		size_t		n = 1;

		cf_out_init(&o, buf, sizeof(buf));
		if (c >= 0xC2 && c <= 0xF4)
		{
			size_t		want = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : 2;

			while (n < want && p->pos + n < p->len &&
				   ((unsigned char) s[p->pos + n] & 0xC0) == 0x80)
				n++;
			if (n != want)
				n = 1;
		}
		if (c < 0x20 || c == 0x7F || (c >= 0x80 && n == 1))
		{
			static const char hex[] = "0123456789ABCDEF";
			char		h[5];

			h[0] = '0';
			h[1] = 'x';
			h[2] = hex[c >> 4];
			h[3] = hex[c & 15];
			h[4] = '\0';
			cf_error(p, p->pos, true, "unexpected byte ", h, NULL);
		}
		else
		{
			cf_out_str(&o, "'");
			cf_out_bytes(&o, s + p->pos, n);
			cf_out_str(&o, "'");
			cf_out_finish(&o);
			cf_error(p, p->pos, true, "unexpected character ", buf, NULL);
		}
		return;
	}
	if (!p->failed)
		p->pos = p->tok.end;
}

/* ----------------------------------------------------------------------
 * Parser of the SQL92 form
 *
 *	or		:= and (OR and)*
 *	and		:= not (AND not)*
 *	not		:= NOT not | eq
 *	eq		:= rel ( ('=' | '<>') rel | IS [NOT] NULL )*
 *	rel		:= unary ( ('<' | '<=' | '>' | '>=') unary
 *					 | [NOT] BETWEEN unary AND unary
 *					 | [NOT] IN '(' item (',' item)* ')'
 *					 | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string )*
 *	unary	:= ('-' | '+') unary | primary
 *	primary := number | string | TRUE | FALSE | NULL | name | TAGS | '(' or ')'
 *	item	:= string | ['-' | '+'] number
 *
 * Each function takes `what`: what the caller expects, for the message when
 * the text has nothing there ("a value after '='").
 * ----------------------------------------------------------------------
 */

/* cf_new_node: a zeroed node */
static CfNode *
cf_new_node(CfParser *p, CfNodeType type)
{
	CfNode	   *n = (CfNode *) cf_alloc(p, sizeof(CfNode));

	if (n != NULL)
		n->type = type;
	return n;
}

/* cf_set_height: raise n's height to h, within the limit */
static bool
cf_set_height(CfParser *p, CfNode *n, int h, size_t offset)
{
	if (h > CF_MAX_DEPTH)
	{
		cf_error_depth(p, offset);
		return false;
	}
	if (h > n->height)
		n->height = h;
	return true;
}

/*
 * cf_list_add: append an operand to an AND or OR node; an operand of the
 * same kind has its operands moved up instead (a AND (b AND c) is one AND).
 */
static bool
cf_list_add(CfParser *p, CfNode *n, CfNode *child, size_t offset)
{
	CfNode	   *first = child,
			   *last = child;
	int			h = child->height + 1;

	if (child->type == n->type)
	{
		first = child->list;
		last = child->last;
		h = child->height;
	}
	if (n->last != NULL)
		n->last->next = first;
	else
		n->list = first;
	n->last = last;
	last->next = NULL;
	return cf_set_height(p, n, h, offset);
}

/* cf_binary: a node with two operands */
static CfNode *
cf_binary(CfParser *p, CfNodeType type, int op, CfNode *l, CfNode *r,
		  size_t offset)
{
	CfNode	   *n = cf_new_node(p, type);
	int			h = (l->height > r->height ? l->height : r->height) + 1;

	if (n == NULL || !cf_set_height(p, n, h, offset))
		return NULL;
	n->op = op;
	n->arg[0] = l;
	n->arg[1] = r;
	return n;
}

/* cf_unary_node: a node with one operand */
static CfNode *
cf_unary_node(CfParser *p, CfNodeType type, CfNode *arg, size_t offset)
{
	CfNode	   *n = cf_new_node(p, type);

	if (n == NULL || !cf_set_height(p, n, arg->height + 1, offset))
		return NULL;
	n->arg[0] = arg;
	return n;
}

/*
 * cf_parse_chain: operand (op operand)*, for OR (operands: and) and AND
 * (operands: not).  A chain of one operand is that operand; longer chains
 * become one flat n-ary node.
 */
static CfNode *
cf_parse_chain(CfParser *p, const char *what, CfTokType op, CfNodeType kind,
			   CfNode *(*operand) (CfParser *, const char *), const char *after)
{
	CfNode	   *left = operand(p, what);
	CfNode	   *n = NULL;

	if (left == NULL)
		return NULL;
	while (p->tok.type == op)
	{
		size_t		offset = p->tok.start;
		CfNode	   *right;

		cf_next(p);
		right = operand(p, after);
		if (right == NULL)
			return NULL;
		if (n == NULL)
		{
			n = cf_new_node(p, kind);
			if (n == NULL || !cf_list_add(p, n, left, offset))
				return NULL;
		}
		if (!cf_list_add(p, n, right, offset))
			return NULL;
	}
	return n ? n : left;
}

/* cf_parse_or: or := and (OR and)* */
static CfNode *
cf_parse_or(CfParser *p, const char *what)
{
	return cf_parse_chain(p, what, CF_T_OR, CF_N_OR, cf_parse_and, "an expression after OR");
}

/* cf_parse_and: and := not (AND not)* */
static CfNode *
cf_parse_and(CfParser *p, const char *what)
{
	return cf_parse_chain(p, what, CF_T_AND, CF_N_AND, cf_parse_not, "an expression after AND");
}

/* cf_parse_not: not := NOT not | eq (NOT binds looser than comparisons) */
static CfNode *
cf_parse_not(CfParser *p, const char *what)
{
	size_t		offset = p->tok.start;
	CfNode	   *arg;

	if (p->tok.type != CF_T_NOT)
		return cf_parse_eq(p, what);
	if (!cf_descend(p, &p->prefix, offset))
		return NULL;
	cf_next(p);
	arg = cf_parse_not(p, "an expression after NOT");
	p->prefix--;
	if (arg == NULL)
		return NULL;
	return cf_unary_node(p, CF_N_NOT, arg, offset);
}

/* cf_parse_eq: eq := rel ( ('=' | '<>') rel | IS [NOT] NULL )* */
static CfNode *
cf_parse_eq(CfParser *p, const char *what)
{
	CfNode	   *left = cf_parse_rel(p, what);

	while (left != NULL)
	{
		size_t		offset = p->tok.start;

		if (p->tok.type == CF_T_EQ || p->tok.type == CF_T_NE)
		{
			bool		eq = (p->tok.type == CF_T_EQ);
			CfNode	   *right;

			cf_next(p);
			right = cf_parse_rel(p, eq ? "a value after '='" : "a value after '<>'");
			if (right == NULL)
				return NULL;
			left = cf_binary(p, CF_N_CMP, eq ? CF_OP_EQ : CF_OP_NE, left, right, offset);
		}
		else if (p->tok.type == CF_T_IS)
		{
			bool		negate = false;

			cf_next(p);
			if (p->tok.type == CF_T_NOT)
			{
				negate = true;
				cf_next(p);
				if (p->tok.type != CF_T_NULL)
				{
					cf_error_token(p, "expected NULL after IS NOT, found ", NULL);
					return NULL;
				}
			}
			else if (p->tok.type != CF_T_NULL)
			{
				cf_error_token(p, "expected NULL or NOT NULL after IS, found ", NULL);
				return NULL;
			}
			cf_next(p);
			left = cf_unary_node(p, CF_N_ISNULL, left, offset);
			if (left != NULL)
				left->negate = negate;
		}
		else
			break;
	}
	return left;
}

/*
 * cf_parse_rel: rel := unary ( ('<' | '<=' | '>' | '>=') unary
 *	| [NOT] BETWEEN unary AND unary | [NOT] IN (...)
 *	| [NOT] CONTAINS|STARTSWITH|ENDSWITH string )*
 */
static CfNode *
cf_parse_rel(CfParser *p, const char *what)
{
	CfNode	   *left = cf_parse_unary(p, what);

	while (left != NULL)
	{
		size_t		offset = p->tok.start;
		bool		negate = false;
		CfNode	   *n;

		switch (p->tok.type)
		{
			case CF_T_LT:
			case CF_T_LE:
			case CF_T_GT:
			case CF_T_GE:
				{
					static const char *const after[] = {
						"a value after '<'", "a value after '<='",
						"a value after '>'", "a value after '>='"
					};
					int			k = p->tok.type - CF_T_LT;
					CfNode	   *right;

					cf_next(p);
					right = cf_parse_unary(p, after[k]);
					if (right == NULL)
						return NULL;
					left = cf_binary(p, CF_N_CMP, CF_OP_LT + k, left, right, offset);
					continue;
				}
			case CF_T_NOT:
				negate = true;
				cf_next(p);
				if (p->tok.type != CF_T_BETWEEN && p->tok.type != CF_T_IN &&
					p->tok.type != CF_T_CONTAINS && p->tok.type != CF_T_STARTSWITH &&
					p->tok.type != CF_T_ENDSWITH)
				{
					cf_error_token(p, "expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT, found ",
								   NULL);
					return NULL;
				}
				break;
			case CF_T_BETWEEN:
			case CF_T_IN:
			case CF_T_CONTAINS:
			case CF_T_STARTSWITH:
			case CF_T_ENDSWITH:
				break;
			default:
				return left;
		}

		if (p->tok.type == CF_T_BETWEEN)
		{
			CfNode	   *lo,
					   *hi;
			int			h;

			cf_next(p);
			lo = cf_parse_unary(p, "a value after BETWEEN");
			if (lo == NULL)
				return NULL;
			if (p->tok.type != CF_T_AND)
			{
				cf_error_token(p, "expected AND after the lower bound of BETWEEN, found ", NULL);
				return NULL;
			}
			cf_next(p);
			hi = cf_parse_unary(p, "a value after BETWEEN ... AND");
			if (hi == NULL)
				return NULL;
			n = cf_new_node(p, CF_N_BETWEEN);
			h = left->height;
			if (lo->height > h)
				h = lo->height;
			if (hi->height > h)
				h = hi->height;
			if (n == NULL || !cf_set_height(p, n, h + 1, offset))
				return NULL;
			n->arg[0] = left;
			n->arg[1] = lo;
			n->arg[2] = hi;
		}
		else if (p->tok.type == CF_T_IN)
		{
			n = cf_unary_node(p, CF_N_IN, left, offset);
			if (n == NULL)
				return NULL;
			cf_next(p);
			if (cf_parse_in_list(p, n) == NULL)
				return NULL;
		}
		else
		{
			static const char *const after[] = {
				"expected a string after CONTAINS, found ",
				"expected a string after STARTSWITH, found ",
				"expected a string after ENDSWITH, found "
			};
			int			op = (int) (p->tok.type - CF_T_CONTAINS);

			cf_next(p);
			if (p->tok.type != CF_T_STRING)
			{
				cf_error_token(p, after[op], NULL);
				return NULL;
			}
			n = cf_unary_node(p, CF_N_MATCH, left, offset);
			if (n == NULL)
				return NULL;
			n->op = op;
			n->text = cf_unquote(p, &p->tok, &n->len);
			if (n->text == NULL)
				return NULL;
			if (op == CF_M_CONTAINS && n->len > 0)
			{
				n->kmp = cf_kmp_table(p, n->text, n->len);
				if (n->kmp == NULL)
					return NULL;
			}
			cf_next(p);
		}
		n->negate = negate;
		left = n;
	}
	return left;
}

/* cf_parse_in_list: '(' item (',' item)* ')' into n->list */
static CfNode *
cf_parse_in_list(CfParser *p, CfNode *n)
{
	if (p->tok.type != CF_T_LPAREN)
	{
		cf_error_token(p, "expected '(' after IN, found ", NULL);
		return NULL;
	}
	cf_next(p);
	for (;;)
	{
		CfNode	   *item;
		bool		minus = false;

		if (p->tok.type == CF_T_MINUS || p->tok.type == CF_T_PLUS)
		{
			minus = (p->tok.type == CF_T_MINUS);
			cf_next(p);
			if (p->tok.type != CF_T_NUMBER)
			{
				cf_error_token(p, "expected a number after the sign in the IN list, found ", NULL);
				return NULL;
			}
		}
		if (p->tok.type == CF_T_NUMBER)
			item = cf_number_node(p, &p->tok);
		else if (p->tok.type == CF_T_STRING)
			item = cf_string_node(p, &p->tok);
		else
		{
			cf_error_token(p, "expected a string or a number in the IN list, found ", NULL);
			return NULL;
		}
		if (item == NULL)
			return NULL;
		if (minus)
			cf_negate_number(item);
		if (n->last != NULL)
			n->last->next = item;
		else
			n->list = item;
		n->last = item;
		cf_next(p);
		if (p->tok.type == CF_T_RPAREN)
			break;
		if (p->tok.type != CF_T_COMMA)
		{
			cf_error_token(p, "expected ',' or ')' in the IN list, found ", NULL);
			return NULL;
		}
		cf_next(p);
	}
	cf_next(p);
	return n;
}

/* cf_parse_unary: unary := ('-' | '+') unary | primary */
static CfNode *
cf_parse_unary(CfParser *p, const char *what)
{
	size_t		offset = p->tok.start;
	bool		minus;
	CfNode	   *arg,
			   *n;

	if (p->tok.type != CF_T_MINUS && p->tok.type != CF_T_PLUS)
		return cf_parse_primary(p, what);
	minus = (p->tok.type == CF_T_MINUS);
	if (!cf_descend(p, &p->prefix, offset))
		return NULL;
	cf_next(p);
	arg = cf_parse_unary(p, minus ? "a value after '-'" : "a value after '+'");
	p->prefix--;
	if (arg == NULL)
		return NULL;
	if (arg->type == CF_N_NUM)
	{
		/* a signed number literal is a literal */
		if (minus)
			cf_negate_number(arg);
		return arg;
	}
	n = cf_unary_node(p, CF_N_SIGN, arg, offset);
	if (n != NULL)
		n->negate = minus;
	return n;
}

/* cf_negate_number: a number literal, negated */
static void
cf_negate_number(CfNode *n)
{
	n->negate = !n->negate;
	n->num.sign = -n->num.sign;
}

/* cf_number_node: a number literal from token t */
static CfNode *
cf_number_node(CfParser *p, const CfToken *t)
{
	CfNode	   *n = cf_new_node(p, CF_N_NUM);
	size_t		len = t->end - t->start;
	char	   *d;
	size_t		i;

	if (n == NULL)
		return NULL;
	if (p->text[t->end - 1] == 'l' || p->text[t->end - 1] == 'L')
		len--;
	d = cf_copy(p, p->text + t->start, len);
	if (d == NULL)
		return NULL;
	for (i = 0; i < len; i++)
	{
		if (d[i] == 'E')
			d[i] = 'e';
	}
	n->text = d;
	n->len = len;
	(void) cf_dec_parse(d, len, &n->num);	/* the lexer checked the form */
	return n;
}

/* cf_string_node: a string literal from token t */
static CfNode *
cf_string_node(CfParser *p, const CfToken *t)
{
	CfNode	   *n = cf_new_node(p, CF_N_STR);

	if (n == NULL)
		return NULL;
	n->text = cf_unquote(p, t, &n->len);
	if (n->text == NULL)
		return NULL;
	n->numok = cf_dec_parse(n->text, n->len, &n->num);
	return n;
}

/* cf_kmp_table: the KMP failure function of a CONTAINS pattern */
static int32_t *
cf_kmp_table(CfParser *p, const char *pat, size_t m)
{
	int32_t    *fail = (int32_t *) cf_alloc(p, m * sizeof(int32_t));
	size_t		i;
	int32_t		k = 0;

	if (fail == NULL)
		return NULL;
	fail[0] = 0;
	for (i = 1; i < m; i++)
	{
		while (k > 0 && pat[i] != pat[k])
			k = fail[k - 1];
		if (pat[i] == pat[k])
			k++;
		fail[i] = k;
	}
	return fail;
}

/* cf_parse_primary: a literal, a name, TAGS or a parenthesized expression */
static CfNode *
cf_parse_primary(CfParser *p, const char *what)
{
	CfNode	   *n = NULL;
	size_t		offset = p->tok.start;

	switch (p->tok.type)
	{
		case CF_T_NUMBER:
			n = cf_number_node(p, &p->tok);
			break;
		case CF_T_STRING:
			n = cf_string_node(p, &p->tok);
			break;
		case CF_T_TRUE:
		case CF_T_FALSE:
			n = cf_new_node(p, CF_N_BOOL);
			if (n != NULL)
				n->bval = (p->tok.type == CF_T_TRUE);
			break;
		case CF_T_NULL:
			n = cf_new_node(p, CF_N_NULL);
			break;
		case CF_T_IDENT:
			if (p->tok.end - p->tok.start == 4 && memcmp(p->text + offset, "TAGS", 4) == 0)
				n = cf_new_node(p, CF_N_TAGS);
			else
			{
				n = cf_new_node(p, CF_N_HEADER);
				if (n != NULL)
				{
					n->len = p->tok.end - p->tok.start;
					n->text = cf_copy(p, p->text + offset, n->len);
					if (n->text == NULL)
						return NULL;
				}
			}
			break;
		case CF_T_QIDENT:
			n = cf_new_node(p, CF_N_HEADER);
			if (n != NULL)
			{
				n->text = cf_unquote(p, &p->tok, &n->len);
				if (n->text == NULL)
					return NULL;
			}
			break;
		case CF_T_LPAREN:
			if (!cf_descend(p, &p->parens, offset))
				return NULL;
			cf_next(p);
			n = cf_parse_or(p, "an expression after '('");
			p->parens--;
			if (n == NULL)
				return NULL;
			if (p->tok.type != CF_T_RPAREN)
			{
				char		buf[80];
				CfOut		o;

				cf_out_init(&o, buf, sizeof(buf));
				cf_out_str(&o, "expected ')' to close the '(' at position ");
				cf_out_uint(&o, offset + 1);
				cf_out_str(&o, ", found ");
				cf_out_finish(&o);
				cf_error_token(p, buf, NULL);
				return NULL;
			}
			break;
		case CF_T_ERROR:
			return NULL;
		default:
			{
				char		buf[96];
				CfOut		o;

				cf_out_init(&o, buf, sizeof(buf));
				cf_out_str(&o, "expected ");
				cf_out_str(&o, what);
				cf_out_str(&o, ", found ");
				cf_out_finish(&o);
				cf_error_token(p, buf, NULL);
				return NULL;
			}
	}
	if (n == NULL)
		return NULL;
	cf_next(p);
	return n;
}

/* cf_trailing_error: input is left after a complete expression */
static void
cf_trailing_error(CfParser *p)
{
	const CfToken *t = &p->tok;
	const char *hint = NULL;

	if (t->type == CF_T_RPAREN)
	{
		cf_error(p, t->start, true, "unmatched ')'", NULL, NULL);
		return;
	}
	if (t->type == CF_T_MINUS && t->start > 0 && t->end < p->len &&
		cf_is_ident_char((unsigned char) p->text[t->start - 1]) &&
		cf_is_ident_char((unsigned char) p->text[t->end]))
		hint = " (a header name with '-' must be quoted: \"user-id\")";
	else if (t->type == CF_T_PLUS || t->type == CF_T_MINUS)
		hint = " (filters have no arithmetic)";
	else if (t->type == CF_T_IDENT && cf_ieq(p->text + t->start, t->end - t->start, "LIKE"))
		hint = " (LIKE is not supported; use CONTAINS, STARTSWITH or ENDSWITH)";
	cf_error_token(p, "unexpected ", hint ? hint : " after a complete expression");
}

/* ----------------------------------------------------------------------
 * Tag expressions
 * ----------------------------------------------------------------------
 */

/*
 * cf_tag_name: is s a tag name?  Tag characters only and no "--".  A lone
 * name (a tag expression of one tag) must also not look like the start of
 * a selector: no leading digit, '-' or '.', and not a keyword.
 */
static bool
cf_tag_name(const char *s, size_t n, bool lone)
{
	size_t		i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
	{
		if (!cf_is_tag_char((unsigned char) s[i]))
			return false;
		if (s[i] == '-' && i + 1 < n && s[i + 1] == '-')
			return false;
	}
	if (lone)
	{
		if (cf_isdigit((unsigned char) s[0]) || s[0] == '-' || s[0] == '.')
			return false;
		if (cf_keyword(s, n) != CF_T_IDENT)
			return false;
	}
	return true;
}

/*
 * cf_parse_tags: read text[b, e) (trimmed, not '*') as a tag expression.
 * Returns 1 if it is one (stored in f), 0 if it is not (so it is a
 * selector), -1 on an error (a tag list with an empty part or a '*').
 */
static int
cf_parse_tags(CfParser *p, CourierFilter *f, size_t b, size_t e)
{
	const char *s = p->text;
	size_t		i,
				ps,
				nparts = 0,
				bad_at = 0;
	bool		has_bar = false,
				bad = false;
	const char *bad_msg = NULL;

	for (i = b; i + 1 < e; i++)
	{
		if (s[i] == '|' && s[i + 1] == '|')
		{
			has_bar = true;
			break;
		}
	}
	if (!has_bar)
	{
		if (!cf_tag_name(s + b, e - b, true))
			return 0;
		nparts = 1;
	}
	else
	{
		/* classify the parts between the '||' separators */
		ps = b;
		for (;;)
		{
			size_t		pe = ps,
						tb,
						te;
			bool		last;

			while (pe < e && !(pe + 1 < e && s[pe] == '|' && s[pe + 1] == '|'))
				pe++;
			last = (pe >= e);
			tb = ps;
			te = pe;
			while (tb < te && cf_isspace((unsigned char) s[tb]))
				tb++;
			while (te > tb && cf_isspace((unsigned char) s[te - 1]))
				te--;
			if (te == tb || (te - tb == 1 && s[tb] == '*'))
			{
				if (!bad)
				{
					bad = true;
					if (te > tb)
					{
						bad_at = tb;
						bad_msg = "'*' cannot be combined with other tags";
					}
					else
					{
						bad_at = last ? ps - 2 : pe;
						bad_msg = "empty tag in tag expression";
					}
				}
			}
			else if (!cf_tag_name(s + tb, te - tb, false))
				return 0;
			nparts++;
			if (last)
				break;
			ps = pe + 2;
		}
		if (bad)
		{
			cf_error(p, bad_at, true, bad_msg, NULL, NULL);
			return -1;
		}
	}

	f->tags = (CfTag *) cf_alloc(p, nparts * sizeof(CfTag));
	if (f->tags == NULL)
		return -1;
	ps = b;
	for (i = 0; i < nparts; i++)
	{
		size_t		pe = ps,
					tb,
					te;

		while (pe < e && !(pe + 1 < e && s[pe] == '|' && s[pe + 1] == '|'))
			pe++;
		tb = ps;
		te = pe;
		while (tb < te && cf_isspace((unsigned char) s[tb]))
			tb++;
		while (te > tb && cf_isspace((unsigned char) s[te - 1]))
			te--;
		f->tags[i].name = cf_copy(p, s + tb, te - tb);
		if (f->tags[i].name == NULL)
			return -1;
		f->tags[i].len = te - tb;
		ps = pe + 2;
	}
	f->ntags = (int) nparts;
	f->is_tags = true;
	return 1;
}

/* ----------------------------------------------------------------------
 * The API: compiling and freeing
 * ----------------------------------------------------------------------
 */

/*
 * cf_too_long: the length-limit error, "filter is too long: <what><n>
 * bytes, the limit is <CF_MAX_TEXT>".
 */
static void
cf_too_long(CfError *err, const char *what, size_t n)
{
	CfOut		o;

	cf_out_init(&o, err->message, sizeof(err->message));
	cf_out_str(&o, "filter is too long: ");
	cf_out_str(&o, what);
	cf_out_uint(&o, n);
	cf_out_str(&o, " bytes, the limit is ");
	cf_out_uint(&o, CF_MAX_TEXT);
	cf_out_finish(&o);
	err->position = 0;
}

/*
 * cf_parse
 *		Compile filter text.  NULL on error, with *err filled.
 */
CourierFilter *
cf_parse(const char *text, size_t len, const CfAllocator *a, CfError *err)
{
	CfError		dummy;
	CfParser	p;
	CourierFilter *f;
	const char *nul;
	size_t		b = 0,
				e = len;

	if (err == NULL)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	memset(&p, 0, sizeof(p));
	p.text = text;
	p.len = len;
	p.alloc = a;
	p.err = err;
	if (text == NULL)
		len = p.len = e = 0;

	if (a == NULL || a->alloc == NULL || a->free == NULL)
	{
		cf_error(&p, 0, false, "out of memory", NULL, NULL);
		err->position = 0;
		return NULL;
	}
	if (len > CF_MAX_TEXT)
	{
		cf_too_long(err, "", len);
		return NULL;
	}
	nul = len > 0 ? (const char *) memchr(text, '\0', len) : NULL;
	if (nul != NULL)
	{
		cf_error(&p, (size_t) (nul - text), true, "the filter contains a NUL byte", NULL, NULL);
		return NULL;
	}
	while (b < e && cf_isspace((unsigned char) text[b]))
		b++;
	while (e > b && cf_isspace((unsigned char) text[e - 1]))
		e--;
	if (b == e)
	{
		cf_error(&p, 0, false, "filter is empty", NULL, NULL);
		err->position = 0;
		return NULL;
	}

	f = (CourierFilter *) cf_alloc(&p, sizeof(CourierFilter));
	if (f != NULL)
	{
		if (e - b == 1 && text[b] == '*')
		{
			f->is_tags = true;
			f->everything = true;
		}
		else if (cf_parse_tags(&p, f, b, e) == 0)
		{
			cf_next(&p);
			f->root = cf_parse_or(&p, "an expression");
			if (f->root != NULL && p.tok.type != CF_T_END)
				cf_trailing_error(&p);
			else if (f->root == NULL && !p.failed)
				cf_error(&p, 0, true, "expected an expression", NULL, NULL);
		}
	}
	if (!p.failed)
	{
		/* the normalized text must parse again, so it has the same limit */
		size_t		nlen = cf_normalize(f, NULL, 0);

		if (nlen > CF_MAX_TEXT)
		{
			cf_too_long(err, "its normalized form is ", nlen);
			p.failed = true;
		}
	}
	if (p.failed)
	{
		cf_free_chunks(p.chunks, a);
		return NULL;
	}
	f->chunks = p.chunks;
	return f;
}

/*
 * cf_free
 *		Release a compiled filter.
 */
void
cf_free(CourierFilter *f, const CfAllocator *a)
{
	if (f == NULL || a == NULL)
		return;
	cf_free_chunks(f->chunks, a);
}

/*
 * cf_is_tag_expression
 *		Is f a tag expression ('*' included)?
 */
bool
cf_is_tag_expression(const CourierFilter *f)
{
	return f != NULL && f->is_tags;
}

/*
 * cf_matches_everything
 *		Is f the tag expression '*'?
 */
bool
cf_matches_everything(const CourierFilter *f)
{
	return f != NULL && f->everything;
}

/*
 * cf_tag_count
 *		The number of tags of a tag expression (0 for '*' and selectors).
 */
int
cf_tag_count(const CourierFilter *f)
{
	return (f != NULL && f->is_tags) ? f->ntags : 0;
}

/*
 * cf_tag_at
 *		Tag i of a tag expression, NUL-terminated, with its length.
 */
const char *
cf_tag_at(const CourierFilter *f, int i, size_t *len)
{
	if (f == NULL || !f->is_tags || i < 0 || i >= f->ntags)
	{
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = f->tags[i].len;
	return f->tags[i].name;
}

/* ----------------------------------------------------------------------
 * Normalized text
 *
 * Keywords in upper case, one space around operators, names bare when they
 * can be, every AND, OR and NOT in parentheses, and comparisons in
 * parentheses when they are the operand of NOT, a sign or a comparison.
 * A selector that is just a name is written "(name)", because a lone name
 * is a tag expression.
 * ----------------------------------------------------------------------
 */

/* cf_is_comparison: does n compare (and so get parentheses as an operand)? */
static bool
cf_is_comparison(const CfNode *n)
{
	return n->type == CF_N_CMP || n->type == CF_N_ISNULL ||
		n->type == CF_N_BETWEEN || n->type == CF_N_IN || n->type == CF_N_MATCH;
}

/* cf_print_ident: a header name, bare if it reads back as the same name */
static void
cf_print_ident(CfOut *o, const char *s, size_t n)
{
	bool		bare = n > 0 && cf_is_ident_start((unsigned char) s[0]);
	size_t		i;

	for (i = 1; bare && i < n; i++)
		bare = cf_is_ident_char((unsigned char) s[i]);
	if (bare && (cf_keyword(s, n) != CF_T_IDENT || (n == 4 && memcmp(s, "TAGS", 4) == 0)))
		bare = false;
	if (bare)
		cf_out_bytes(o, s, n);
	else
		cf_out_quoted(o, s, n, '"');
}

/* cf_print_node: n in normalized form */
static void
cf_print_node(CfOut *o, const CfNode *n, bool paren_cmp)
{
	static const char *const cmp_ops[] = {" = ", " <> ", " < ", " <= ", " > ", " >= "};
	static const char *const match_ops[] = {" CONTAINS ", " STARTSWITH ", " ENDSWITH "};
	bool		paren = paren_cmp && cf_is_comparison(n);
	const CfNode *c;

	if (paren)
		cf_out_str(o, "(");
	switch (n->type)
	{
		case CF_N_NULL:
			cf_out_str(o, "NULL");
			break;
		case CF_N_BOOL:
			cf_out_str(o, n->bval ? "TRUE" : "FALSE");
			break;
		case CF_N_NUM:
			if (n->negate)
				cf_out_str(o, "-");
			cf_out_bytes(o, n->text, n->len);
			break;
		case CF_N_STR:
			cf_out_quoted(o, n->text, n->len, '\'');
			break;
		case CF_N_HEADER:
			cf_print_ident(o, n->text, n->len);
			break;
		case CF_N_TAGS:
			cf_out_str(o, "TAGS");
			break;
		case CF_N_SIGN:
			cf_out_str(o, n->negate ? "-" : "+");
			if (n->arg[0]->type == CF_N_SIGN)
			{
				cf_out_str(o, "(");
				cf_print_node(o, n->arg[0], true);
				cf_out_str(o, ")");
			}
			else
				cf_print_node(o, n->arg[0], true);
			break;
		case CF_N_NOT:
			cf_out_str(o, "(NOT ");
			cf_print_node(o, n->arg[0], true);
			cf_out_str(o, ")");
			break;
		case CF_N_AND:
		case CF_N_OR:
			cf_out_str(o, "(");
			for (c = n->list; c != NULL; c = c->next)
			{
				if (c != n->list)
					cf_out_str(o, n->type == CF_N_AND ? " AND " : " OR ");
				cf_print_node(o, c, false);
			}
			cf_out_str(o, ")");
			break;
		case CF_N_CMP:
			cf_print_node(o, n->arg[0], true);
			cf_out_str(o, cmp_ops[n->op]);
			cf_print_node(o, n->arg[1], true);
			break;
		case CF_N_ISNULL:
			cf_print_node(o, n->arg[0], true);
			cf_out_str(o, n->negate ? " IS NOT NULL" : " IS NULL");
			break;
		case CF_N_BETWEEN:
			cf_print_node(o, n->arg[0], true);
			cf_out_str(o, n->negate ? " NOT BETWEEN " : " BETWEEN ");
			cf_print_node(o, n->arg[1], true);
			cf_out_str(o, " AND ");
			cf_print_node(o, n->arg[2], true);
			break;
		case CF_N_IN:
			cf_print_node(o, n->arg[0], true);
			cf_out_str(o, n->negate ? " NOT IN (" : " IN (");
			for (c = n->list; c != NULL; c = c->next)
			{
				if (c != n->list)
					cf_out_str(o, ", ");
				cf_print_node(o, c, true);
			}
			cf_out_str(o, ")");
			break;
		case CF_N_MATCH:
			cf_print_node(o, n->arg[0], true);
			if (n->negate)
				cf_out_str(o, " NOT");
			cf_out_str(o, match_ops[n->op]);
			cf_out_quoted(o, n->text, n->len, '\'');
			break;
	}
	if (paren)
		cf_out_str(o, ")");
}

/*
 * cf_normalize
 *		The normalized text of f, snprintf-style: returns the bytes needed
 *		(excluding the NUL), writes at most bufsize - 1 of them and a NUL.
 */
size_t
cf_normalize(const CourierFilter *f, char *buf, size_t bufsize)
{
	CfOut		o;

	cf_out_init(&o, buf, buf != NULL ? bufsize : 0);
	if (f == NULL)
		;
	else if (f->everything)
		cf_out_str(&o, "*");
	else if (f->is_tags)
	{
		int			i;

		for (i = 0; i < f->ntags; i++)
		{
			if (i > 0)
				cf_out_str(&o, " || ");
			cf_out_bytes(&o, f->tags[i].name, f->tags[i].len);
		}
	}
	else if (f->root->type == CF_N_TAGS || f->root->type == CF_N_HEADER)
	{
		/* a lone name would read back as a tag expression */
		cf_out_str(&o, "(");
		cf_print_node(&o, f->root, false);
		cf_out_str(&o, ")");
	}
	else
		cf_print_node(&o, f->root, false);
	return cf_out_finish(&o);
}

/* ----------------------------------------------------------------------
 * Evaluation
 * ----------------------------------------------------------------------
 */

/* cf_not: three-valued NOT */
static CfResult
cf_not(CfResult a)
{
	return a == CF_UNKNOWN ? CF_UNKNOWN : (a == CF_TRUE ? CF_FALSE : CF_TRUE);
}

/*
 * cf_as_bool: v as a truth value: a boolean, or a string "true" or "false"
 * in any case.  False if v is neither.
 */
static bool
cf_as_bool(const CfVal *v, bool *b)
{
	if (v->kind == CF_V_BOOL)
	{
		*b = v->b;
		return true;
	}
	if (v->kind == CF_V_STR)
	{
		if (cf_ieq(v->s, v->len, "TRUE"))
		{
			*b = true;
			return true;
		}
		if (cf_ieq(v->s, v->len, "FALSE"))
		{
			*b = false;
			return true;
		}
	}
	return false;
}

/* cf_as_num: v as a number: a number, or a string that reads as one */
static bool
cf_as_num(const CfVal *v, CfDec *d)
{
	if (v->kind == CF_V_NUM || (v->kind == CF_V_STR && v->numok))
	{
		*d = v->num;
		return true;
	}
	if (v->kind == CF_V_STR)
		return cf_dec_parse(v->s, v->len, d);
	return false;
}

/*
 * cf_as_text: v as text: a string, or the JSON text of a header's number
 * or boolean.
 */
static bool
cf_as_text(const CfVal *v, const char **s, size_t *len)
{
	if (v->kind == CF_V_STR || (v->kind == CF_V_NUM && v->header))
	{
		*s = v->s;
		*len = v->len;
		return true;
	}
	if (v->kind == CF_V_BOOL && v->header)
	{
		*s = v->b ? "true" : "false";
		*len = v->b ? 4 : 5;
		return true;
	}
	return false;
}

/*
 * cf_compare: x op y, three-valued.  See docs/filters.md, "Comparisons":
 * NULL or an object is unknown; a string literal sees a header's number or
 * boolean as its JSON text; then booleans compare with booleans and
 * "true"/"false", numbers with numbers and numeric strings, by value, and
 * strings with strings (=, <> byte for byte; order only between numbers).
 */
static CfResult
cf_compare(int op, const CfVal *x, const CfVal *y)
{
	CfVal		tx,
				ty;
	int			c;

	if (x->kind == CF_V_NULL || y->kind == CF_V_NULL ||
		x->kind == CF_V_OTHER || y->kind == CF_V_OTHER)
		return CF_UNKNOWN;

	if (x->kind == CF_V_STR && x->literal && y->header && y->kind != CF_V_STR)
	{
		memset(&ty, 0, sizeof(ty));
		ty.kind = CF_V_STR;
		(void) cf_as_text(y, &ty.s, &ty.len);
		y = &ty;
	}
	else if (y->kind == CF_V_STR && y->literal && x->header && x->kind != CF_V_STR)
	{
		memset(&tx, 0, sizeof(tx));
		tx.kind = CF_V_STR;
		(void) cf_as_text(x, &tx.s, &tx.len);
		x = &tx;
	}

	if (x->kind == CF_V_BOOL || y->kind == CF_V_BOOL)
	{
		bool		a,
					b;

		if (!cf_as_bool(x, &a) || !cf_as_bool(y, &b))
			return CF_UNKNOWN;
		if (op == CF_OP_EQ)
			return a == b ? CF_TRUE : CF_FALSE;
		if (op == CF_OP_NE)
			return a != b ? CF_TRUE : CF_FALSE;
		return CF_UNKNOWN;		/* booleans have no order */
	}

	if (x->kind == CF_V_STR && y->kind == CF_V_STR)
	{
		if (op == CF_OP_EQ || op == CF_OP_NE)
		{
			bool		eq = cf_bytes_eq(x->s, x->len, y->s, y->len);

			return (eq == (op == CF_OP_EQ)) ? CF_TRUE : CF_FALSE;
		}
	}

	/* numbers, or ordering strings: both must be numbers */
	{
		CfDec		a,
					b;

		if (!cf_as_num(x, &a) || !cf_as_num(y, &b))
			return CF_UNKNOWN;
		c = cf_dec_cmp(&a, &b);
	}
	switch (op)
	{
		case CF_OP_EQ:
			return c == 0 ? CF_TRUE : CF_FALSE;
		case CF_OP_NE:
			return c != 0 ? CF_TRUE : CF_FALSE;
		case CF_OP_LT:
			return c < 0 ? CF_TRUE : CF_FALSE;
		case CF_OP_LE:
			return c <= 0 ? CF_TRUE : CF_FALSE;
		case CF_OP_GT:
			return c > 0 ? CF_TRUE : CF_FALSE;
		default:
			return c >= 0 ? CF_TRUE : CF_FALSE;
	}
}

/* cf_contains: does h (n bytes) contain pat (m > 0 bytes)?  KMP, O(n + m) */
static bool
cf_contains(const char *h, size_t n, const char *pat, size_t m,
			const int32_t *fail)
{
	size_t		i,
				k = 0;

	if (m > n)
		return false;
	for (i = 0; i < n; i++)
	{
		while (k > 0 && h[i] != pat[k])
			k = (size_t) fail[k - 1];
		if (h[i] == pat[k])
			k++;
		if (k == m)
			return true;
	}
	return false;
}

/* cf_match: x CONTAINS / STARTSWITH / ENDSWITH n's text (before NOT) */
static CfResult
cf_match(const CfNode *n, const CfVal *x)
{
	const char *s;
	size_t		len;
	bool		r;

	if (!cf_as_text(x, &s, &len))
		return CF_UNKNOWN;
	if (n->len == 0)
		r = true;
	else if (n->len > len)
		r = false;
	else if (n->op == CF_M_STARTSWITH)
		r = memcmp(s, n->text, n->len) == 0;
	else if (n->op == CF_M_ENDSWITH)
		r = memcmp(s + len - n->len, n->text, n->len) == 0;
	else
		r = cf_contains(s, len, n->text, n->len, n->kmp);
	return r ? CF_TRUE : CF_FALSE;
}

/* cf_eval_value: the value of n */
static void
cf_eval_value(CfEval *e, const CfNode *n, CfVal *v)
{
	memset(v, 0, sizeof(*v));
	v->kind = CF_V_NULL;
	if (e->aborted)
		return;
	switch (n->type)
	{
		case CF_N_NULL:
			break;
		case CF_N_BOOL:
			v->kind = CF_V_BOOL;
			v->b = n->bval;
			break;
		case CF_N_NUM:
			v->kind = CF_V_NUM;
			v->num = n->num;
			break;
		case CF_N_STR:
			v->kind = CF_V_STR;
			v->literal = true;
			v->s = n->text;
			v->len = n->len;
			v->numok = n->numok;
			v->num = n->num;
			break;
		case CF_N_TAGS:
			if (e->has_tag)
			{
				v->kind = CF_V_STR;
				v->header = true;
				v->s = e->tag != NULL ? e->tag : "";
				v->len = e->tag != NULL ? e->taglen : 0;
			}
			break;
		case CF_N_HEADER:
			{
				CfValue		hv;

				memset(&hv, 0, sizeof(hv));
				hv.kind = CFV_MISSING;
				if (e->lookup == NULL)
					break;
				if (e->lookup(e->ctx, n->text, n->len, &hv) != 0)
				{
					e->aborted = true;
					break;
				}
				v->header = true;
				switch (hv.kind)
				{
					case CFV_STRING:
						v->kind = CF_V_STR;
						v->s = hv.str != NULL ? hv.str : "";
						v->len = hv.str != NULL ? hv.len : 0;
						break;
					case CFV_NUMBER:
						if (hv.str != NULL && cf_dec_parse(hv.str, hv.len, &v->num))
						{
							v->kind = CF_V_NUM;
							v->s = hv.str;
							v->len = hv.len;
						}
						else
							v->kind = CF_V_OTHER;
						break;
					case CFV_BOOL:
						v->kind = CF_V_BOOL;
						v->b = hv.boolean;
						break;
					case CFV_OTHER:
						v->kind = CF_V_OTHER;
						break;
					default:
						break;
				}
				break;
			}
		case CF_N_SIGN:
			{
				CfVal		a;

				cf_eval_value(e, n->arg[0], &a);
				if (cf_as_num(&a, &v->num))
				{
					v->kind = CF_V_NUM;
					if (n->negate)
						v->num.sign = -v->num.sign;
				}
				break;
			}
		default:
			{
				/* a condition used as a value */
				CfResult	r = cf_eval_bool(e, n);

				if (r != CF_UNKNOWN)
				{
					v->kind = CF_V_BOOL;
					v->b = (r == CF_TRUE);
				}
				break;
			}
	}
}

/* cf_eval_bool: the truth value of n */
static CfResult
cf_eval_bool(CfEval *e, const CfNode *n)
{
	CfVal		x,
				y;
	CfResult	r;
	const CfNode *c;

	if (e->aborted)
		return CF_UNKNOWN;
	switch (n->type)
	{
		case CF_N_AND:
		case CF_N_OR:
			{
				/* Kleene: one FALSE decides an AND, one TRUE an OR */
				CfResult	decides = (n->type == CF_N_AND) ? CF_FALSE : CF_TRUE;

				r = (n->type == CF_N_AND) ? CF_TRUE : CF_FALSE;
				for (c = n->list; c != NULL; c = c->next)
				{
					CfResult	cr = cf_eval_bool(e, c);

					if (cr == decides)
						return decides;
					if (cr == CF_UNKNOWN)
						r = CF_UNKNOWN;
					if (e->aborted)
						return CF_UNKNOWN;
				}
				return r;
			}
		case CF_N_NOT:
			return cf_not(cf_eval_bool(e, n->arg[0]));
		case CF_N_CMP:
			cf_eval_value(e, n->arg[0], &x);
			if (x.kind == CF_V_NULL)
				return CF_UNKNOWN;
			cf_eval_value(e, n->arg[1], &y);
			return cf_compare(n->op, &x, &y);
		case CF_N_ISNULL:
			cf_eval_value(e, n->arg[0], &x);
			if (e->aborted)
				return CF_UNKNOWN;
			return ((x.kind == CF_V_NULL) != n->negate) ? CF_TRUE : CF_FALSE;
		case CF_N_BETWEEN:
			cf_eval_value(e, n->arg[0], &x);
			if (x.kind == CF_V_NULL)
				return CF_UNKNOWN;
			cf_eval_value(e, n->arg[1], &y);
			r = cf_compare(CF_OP_GE, &x, &y);
			if (r != CF_FALSE)
			{
				CfResult	r2;

				cf_eval_value(e, n->arg[2], &y);
				r2 = cf_compare(CF_OP_LE, &x, &y);
				if (r2 != CF_TRUE)
					r = r2;
			}
			return n->negate ? cf_not(r) : r;
		case CF_N_IN:
			cf_eval_value(e, n->arg[0], &x);
			if (x.kind == CF_V_NULL)
				return CF_UNKNOWN;
			r = CF_FALSE;
			for (c = n->list; c != NULL && r != CF_TRUE; c = c->next)
			{
				CfResult	cr;

				cf_eval_value(e, c, &y);
				cr = cf_compare(CF_OP_EQ, &x, &y);
				if (cr != CF_FALSE)
					r = cr;
			}
			return n->negate ? cf_not(r) : r;
		case CF_N_MATCH:
			cf_eval_value(e, n->arg[0], &x);
			r = cf_match(n, &x);
			return n->negate ? cf_not(r) : r;
		default:
			{
				bool		b;

				/* a value used as a condition */
				cf_eval_value(e, n, &x);
				if (!cf_as_bool(&x, &b))
					return CF_UNKNOWN;
				return b ? CF_TRUE : CF_FALSE;
			}
	}
}

/*
 * cf_eval
 *		Evaluate f against one message.  Allocates nothing.
 */
CfResult
cf_eval(const CourierFilter *f, CfLookup lookup, void *ctx,
		const char *tag, size_t taglen, bool has_tag)
{
	CfEval		e;
	CfResult	r;
	int			i;

	if (f == NULL)
		return CF_UNKNOWN;
	if (f->everything)
		return CF_TRUE;
	if (f->is_tags)
	{
		if (!has_tag)
			return CF_FALSE;
		if (tag == NULL)
			taglen = 0;
		for (i = 0; i < f->ntags; i++)
		{
			if (cf_bytes_eq(f->tags[i].name, f->tags[i].len, tag, taglen))
				return CF_TRUE;
		}
		return CF_FALSE;
	}
	e.lookup = lookup;
	e.ctx = ctx;
	e.tag = tag;
	e.taglen = taglen;
	e.has_tag = has_tag;
	e.aborted = false;
	r = cf_eval_bool(&e, f->root);
	return e.aborted ? CF_UNKNOWN : r;
}
