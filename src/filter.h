/*-------------------------------------------------------------------------
 *
 * filter.h
 *	  Subscription filters: RocketMQ-style tag expressions and SQL92
 *	  selectors over a message's headers and tag.  Parser, normalizer and
 *	  evaluator.
 *
 * This is a standalone library in plain C99 with no PostgreSQL headers, so
 * that the same code runs inside the server (match.c) and under libFuzzer
 * (test/fuzz).  All memory of a compiled filter comes from the caller's
 * allocator; evaluation allocates nothing and recurses at most
 * CF_MAX_DEPTH levels.  docs/filters.md describes the language.
 *
 * IDENTIFICATION
 *	  src/filter.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef COURIER_FILTER_H
#define COURIER_FILTER_H

#include <stdbool.h>
#include <stddef.h>

/* A compiled filter (opaque). */
typedef struct CourierFilter CourierFilter;

/* All memory of a compiled filter goes through this. */
typedef struct CfAllocator
{
	void	   *(*alloc) (void *ctx, size_t size);	/* NULL => "out of memory" */
	void		(*free) (void *ctx, void *ptr);
	void	   *ctx;
} CfAllocator;

/* What went wrong in cf_parse. */
typedef struct CfError
{
	int			position;		/* 1-based byte position of the error; 0 if n/a */
	char		message[256];	/* full text, ready for errmsg */
} CfError;

/* Three-valued result: a message matches only when the filter is CF_TRUE. */
typedef enum CfResult
{
	CF_FALSE = 0,
	CF_TRUE = 1,
	CF_UNKNOWN = 2
} CfResult;

/* A header's value as the lookup callback reports it. */
typedef enum CfValueKind
{
	CFV_MISSING,				/* no such key */
	CFV_NULL,					/* JSON null */
	CFV_STRING,
	CFV_NUMBER,
	CFV_BOOL,
	CFV_OTHER					/* JSON object or array */
} CfValueKind;

typedef struct CfValue
{
	CfValueKind kind;
	const char *str;			/* CFV_STRING: the string (not NUL-terminated,
								 * may contain NUL); CFV_NUMBER: the JSON
								 * number's text, e.g. "-1.5e3" */
	size_t		len;
	bool		boolean;		/* CFV_BOOL */
} CfValue;

/*
 * Look up header `name` (len bytes) and fill *out.  Return 0 on success,
 * non-zero to abort the evaluation (its result is then CF_UNKNOWN).  What
 * *out points to must stay valid until cf_eval returns.
 */
typedef int (*CfLookup) (void *ctx, const char *name, size_t len, CfValue *out);

#define CF_MAX_TEXT		8192	/* longest filter text, in bytes */
#define CF_MAX_DEPTH	64		/* deepest nesting (see docs/filters.md) */

/* Compile filter text; NULL on error with *err filled (err may be NULL). */
extern CourierFilter *cf_parse(const char *text, size_t len, const CfAllocator *a,
							   CfError *err);

/* Release a compiled filter (NULL is allowed). */
extern void cf_free(CourierFilter *f, const CfAllocator *a);

/* Is f a tag expression ('*' or tags joined by '||')? */
extern bool cf_is_tag_expression(const CourierFilter *f);

/* Is f the tag expression '*', which matches every message? */
extern bool cf_matches_everything(const CourierFilter *f);

/*
 * Write f's normalized text to buf: at most bufsize - 1 bytes and a NUL
 * (nothing if bufsize is 0).  Returns the full length, excluding the NUL,
 * as snprintf does.
 */
extern size_t cf_normalize(const CourierFilter *f, char *buf, size_t bufsize);

/*
 * Evaluate f against one message: headers through lookup(ctx, ...), and its
 * tag (taglen bytes) when has_tag.  Allocates nothing.
 */
extern CfResult cf_eval(const CourierFilter *f, CfLookup lookup, void *ctx,
						const char *tag, size_t taglen, bool has_tag);

/* Tag expressions: how many tags (0 for '*' and for SQL selectors) ... */
extern int	cf_tag_count(const CourierFilter *f);

/* ... and tag i (0-based) with its length; NULL if i is out of range. */
extern const char *cf_tag_at(const CourierFilter *f, int i, size_t *len);

#endif							/* COURIER_FILTER_H */
