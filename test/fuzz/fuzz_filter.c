/*-------------------------------------------------------------------------
 *
 * fuzz_filter.c
 *	  libFuzzer harness of the filter library (src/filter.c).
 *
 * The input is a filter text, optionally followed by a NUL byte and bytes
 * that seed the message: which headers exist, their kinds and values (taken
 * from slices of the input, so they often equal the filter's literals), the
 * tag, and whether an allocation fails.  For each input it checks:
 *
 *	- a refused filter has a message and a position within the text;
 *	- an accepted one normalizes to a text that parses again, and
 *	  normalize(parse(normalize(parse(x)))) == normalize(parse(x));
 *	- both compile to filters that give the same result on three messages,
 *	  and NOT (x) gives the three-valued negation of x;
 *	- a tag expression matches exactly the tags it lists;
 *	- cf_normalize truncates like snprintf;
 *	- a failed allocation gives "out of memory" and no block is leaked.
 *
 * Build and run with test/fuzz/run.sh.
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_filter.c
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

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* die if cond is false */
#define FZ_CHECK(cond) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "fuzz_filter: check failed at line %d: %s\n", __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* A counting allocator that can fail one allocation */
typedef struct FzAlloc
{
	long		live;
	long		count;
	long		fail_at;		/* -1: never */
} FzAlloc;

/* The message the lookup callback describes */
typedef struct FzMessage
{
	const char *src;			/* the whole input: values are slices of it */
	size_t		srclen;
	uint32_t	seed;
} FzMessage;

static void *fz_alloc(void *ctx, size_t size);
static void fz_free(void *ctx, void *ptr);
static uint32_t fz_hash(const void *p, size_t n, uint32_t h);
static void fz_slice(const FzMessage *m, uint32_t h, const char **s, size_t *len);
static int	fz_lookup(void *ctx, const char *name, size_t len, CfValue *out);
static char *fz_normalized(const CourierFilter *f, size_t *len);

/* numbers as the server would show them, and some edge cases */
static const char *const fz_numbers[] = {
	"0", "-0", "1", "3", "3.0", "2.5", "-1.5e3", "1e400", "10000000000",
	"0.1", "123456789012345678901234567890", "1E-7", "5", "-6", "100", "1.23"
};

/* fz_alloc: malloc, counted, failing on request */
static void *
fz_alloc(void *ctx, size_t size)
{
	FzAlloc    *a = (FzAlloc *) ctx;
	void	   *p;

	if (a->fail_at >= 0 && a->count >= a->fail_at)
		return NULL;
	a->count++;
	p = malloc(size);
	if (p != NULL)
		a->live++;
	return p;
}

/* fz_free: free, counted */
static void
fz_free(void *ctx, void *ptr)
{
	FzAlloc    *a = (FzAlloc *) ctx;

	a->live--;
	free(ptr);
}

/* fz_hash: FNV-1a */
static uint32_t
fz_hash(const void *p, size_t n, uint32_t h)
{
	const unsigned char *s = (const unsigned char *) p;
	size_t		i;

	h ^= 2166136261u;
	for (i = 0; i < n; i++)
	{
		h ^= s[i];
		h *= 16777619u;
	}
	return h;
}

/* fz_slice: a short slice of the input chosen by h */
static void
fz_slice(const FzMessage *m, uint32_t h, const char **s, size_t *len)
{
	size_t		off,
				n;

	if (m->srclen == 0)
	{
		*s = "";
		*len = 0;
		return;
	}
	off = (h >> 4) % m->srclen;
	n = (h >> 20) % 12;
	if (n > m->srclen - off)
		n = m->srclen - off;
	*s = m->src + off;
	*len = n;
}

/* fz_lookup: a header's value, a pure function of its name and the seed */
static int
fz_lookup(void *ctx, const char *name, size_t len, CfValue *out)
{
	const FzMessage *m = (const FzMessage *) ctx;
	uint32_t	h = fz_hash(name, len, m->seed);

	memset(out, 0, sizeof(*out));
	switch (h % 10)
	{
		case 0:
			out->kind = CFV_MISSING;
			break;
		case 1:
			out->kind = CFV_NULL;
			break;
		case 2:
		case 3:
			out->kind = CFV_STRING;
			fz_slice(m, h * 31u, &out->str, &out->len);
			break;
		case 4:
			out->kind = CFV_NUMBER;
			out->str = fz_numbers[(h >> 8) % (sizeof(fz_numbers) / sizeof(fz_numbers[0]))];
			out->len = strlen(out->str);
			break;
		case 5:
			/* a number's text that may not be one */
			out->kind = CFV_NUMBER;
			fz_slice(m, h * 17u, &out->str, &out->len);
			break;
		case 6:
			out->kind = CFV_BOOL;
			out->boolean = (h >> 8) & 1;
			break;
		case 7:
			out->kind = CFV_OTHER;
			break;
		case 8:
			out->kind = CFV_STRING;
			out->str = ((h >> 8) & 1) ? "TRUE" : "false";
			out->len = strlen(out->str);
			break;
		default:
			if (((h >> 8) & 7) == 0)
				return 1;		/* abort the evaluation */
			out->kind = CFV_STRING;
			fz_slice(m, h * 7u, &out->str, &out->len);
			break;
	}
	return 0;
}

/* fz_normalized: the normalized text of f (malloc'd) */
static char *
fz_normalized(const CourierFilter *f, size_t *len)
{
	size_t		need = cf_normalize(f, NULL, 0);
	char	   *buf = (char *) malloc(need + 1);

	FZ_CHECK(buf != NULL);
	FZ_CHECK(cf_normalize(f, buf, need + 1) == need);
	FZ_CHECK(strlen(buf) == need);
	*len = need;
	return buf;
}

/*
 * LLVMFuzzerTestOneInput
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FzAlloc		st = {0, 0, -1};
	CfAllocator a;
	CfError		err;
	const char *text = (const char *) data;
	const uint8_t *nul = (const uint8_t *) memchr(data, 0, size);
	size_t		textlen = nul ? (size_t) (nul - data) : size;
	const uint8_t *tail = nul ? nul + 1 : data + size;
	size_t		taillen = size - (size_t) (tail - data);
	CourierFilter *f,
			   *f2;
	char	   *n1,
			   *n2;
	size_t		l1,
				l2;
	FzMessage	m;
	int			v;

	a.alloc = fz_alloc;
	a.free = fz_free;
	a.ctx = &st;

	f = cf_parse(text, textlen, &a, &err);
	if (f == NULL)
	{
		FZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		FZ_CHECK(err.message[0] != '\0');
		FZ_CHECK(err.position >= 0 && (size_t) err.position <= textlen + 1);
		FZ_CHECK(st.live == 0);
		return 0;
	}

	/* normalize, parse again, normalize again: the same text */
	n1 = fz_normalized(f, &l1);
	{
		char		small[16];
		size_t		k = (l1 / 2) % sizeof(small) + 1;

		FZ_CHECK(cf_normalize(f, small, k) == l1);
		FZ_CHECK(strlen(small) == (l1 < k - 1 ? l1 : k - 1));
		FZ_CHECK(memcmp(small, n1, strlen(small)) == 0);
	}
	f2 = cf_parse(n1, l1, &a, &err);
	if (f2 == NULL)
	{
		fprintf(stderr, "normalized text does not parse: [%s]: %s\n", n1, err.message);
		FZ_CHECK(f2 != NULL);
	}
	n2 = fz_normalized(f2, &l2);
	if (l1 != l2 || memcmp(n1, n2, l1) != 0)
	{
		fprintf(stderr, "normalization is not stable:\n  [%s]\n  [%s]\n", n1, n2);
		FZ_CHECK(false);
	}
	FZ_CHECK(cf_is_tag_expression(f) == cf_is_tag_expression(f2));
	FZ_CHECK(cf_matches_everything(f) == cf_matches_everything(f2));
	FZ_CHECK(cf_tag_count(f) == cf_tag_count(f2));

	/* the same results, on three messages */
	m.src = (const char *) data;
	m.srclen = size;
	m.seed = fz_hash(tail, taillen, 0);
	for (v = 0; v < 3; v++)
	{
		const char *tag;
		size_t		taglen;
		bool		has_tag;
		CfResult	r1,
					r2;

		m.seed += 0x9E3779B9u * (uint32_t) v;
		fz_slice(&m, m.seed * 13u, &tag, &taglen);
		has_tag = (m.seed >> 3) % 4 != 0;
		if (cf_is_tag_expression(f) && cf_tag_count(f) > 0 && (m.seed & 1))
		{
			/* often use one of the tags */
			tag = cf_tag_at(f, (int) ((m.seed >> 5) % (uint32_t) cf_tag_count(f)), &taglen);
		}
		r1 = cf_eval(f, fz_lookup, &m, tag, taglen, has_tag);
		r2 = cf_eval(f2, fz_lookup, &m, tag, taglen, has_tag);
		FZ_CHECK(r1 == CF_TRUE || r1 == CF_FALSE || r1 == CF_UNKNOWN);
		FZ_CHECK(r1 == r2);

		if (cf_is_tag_expression(f))
		{
			/* a tag expression matches exactly its tags */
			bool		want = cf_matches_everything(f);
			int			i;

			for (i = 0; i < cf_tag_count(f) && has_tag && !want; i++)
			{
				size_t		l;
				const char *t = cf_tag_at(f, i, &l);

				FZ_CHECK(t != NULL && l > 0 && t[l] == '\0');
				want = (l == taglen && memcmp(t, tag, l) == 0);
			}
			FZ_CHECK(r1 == (want ? CF_TRUE : CF_FALSE));
		}
		else if (l1 + 8 <= CF_MAX_TEXT)
		{
			/* NOT (x) is the three-valued negation of x */
			char	   *neg = (char *) malloc(l1 + 8);
			CourierFilter *fn;

			FZ_CHECK(neg != NULL);
			memcpy(neg, "NOT (", 5);
			memcpy(neg + 5, n1, l1);
			neg[l1 + 5] = ')';
			fn = cf_parse(neg, l1 + 6, &a, &err);
			if (fn != NULL)
			{
				CfResult	rn = cf_eval(fn, fz_lookup, &m, tag, taglen, has_tag);

				FZ_CHECK(rn == (r1 == CF_UNKNOWN ? CF_UNKNOWN : r1 == CF_TRUE ? CF_FALSE : CF_TRUE));
				cf_free(fn, &a);
			}
			else
				FZ_CHECK(strcmp(err.message, "filter nests too deeply: the limit is 64 levels") == 0);
			free(neg);
		}
	}

	/* a failed allocation: "out of memory", nothing leaked */
	if (taillen > 0 && (tail[0] & 1))
	{
		FzAlloc		st2 = {0, 0, (long) (tail[0] >> 1)};
		CfAllocator a2 = a;
		CourierFilter *f3;

		a2.ctx = &st2;
		f3 = cf_parse(text, textlen, &a2, &err);
		if (f3 == NULL)
			FZ_CHECK(strcmp(err.message, "out of memory") == 0 && err.position == 0);
		else
		{
			size_t		l3;
			char	   *n3 = fz_normalized(f3, &l3);

			FZ_CHECK(l3 == l1 && memcmp(n3, n1, l1) == 0);
			free(n3);
			cf_free(f3, &a2);
		}
		FZ_CHECK(st2.live == 0);
	}

	free(n1);
	free(n2);
	cf_free(f, &a);
	cf_free(f2, &a);
	FZ_CHECK(st.live == 0);
	return 0;
}
