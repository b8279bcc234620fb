/*-------------------------------------------------------------------------
 *
 * match.c
 *	  Subscription filters inside the server: compiling a group's filter
 *	  with the standalone parser (filter.c), evaluating it against a
 *	  message's jsonb headers and tag, and the SQL functions check_filter
 *	  and match_filter.
 *
 * Filters are parsed once, when a group is created or altered, and stored
 * in normalized form; each backend compiles the stored text when it loads
 * its catalog cache (catalog.c).  Filter text never reaches SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_check_filter);
PG_FUNCTION_INFO_V1(courier_match_filter);

/* scratch memory for evaluations, reset after each one */
static MemoryContext eval_cxt = NULL;

static void *filter_alloc(void *ctx, size_t size);
static void filter_free(void *ctx, void *ptr);
static int	jsonb_lookup(void *ctx, const char *name, size_t len, CfValue *out);

/*
 * filter_alloc / filter_free
 *		The parser's allocator: palloc in the context given as ctx.
 */
static void *
filter_alloc(void *ctx, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) ctx, size, MCXT_ALLOC_NO_OOM);
}

static void
filter_free(void *ctx, void *ptr)
{
	pfree(ptr);
}

/*
 * CourierCompileFilter
 *		Parse filter text into cxt.  Syntax errors are raised as
 *		syntax_error with the parser's message (position and expectation).
 *		If normalized is not NULL it receives the normalized text (palloc'd
 *		in the current context).  Returns NULL for a filter that matches
 *		everything ('*').
 */
CourierFilter *
CourierCompileFilter(const char *ftext, MemoryContext cxt, char **normalized)
{
	CfAllocator alloc;
	CfError		err;
	CourierFilter *f;

	alloc.alloc = filter_alloc;
	alloc.free = filter_free;
	alloc.ctx = cxt;
	memset(&err, 0, sizeof(err));
	f = cf_parse(ftext, strlen(ftext), &alloc, &err);
	if (f == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s", err.message),
				 errdetail("The filter was: %s", ftext)));
	if (normalized)
	{
		size_t		need = cf_normalize(f, NULL, 0);
		char	   *buf = palloc(need + 1);

		cf_normalize(f, buf, need + 1);
		*normalized = buf;
	}
	if (cf_matches_everything(f))
	{
		cf_free(f, &alloc);
		return NULL;
	}
	return f;
}

/*
 * jsonb_lookup
 *		The filter engine's view of a header: one key of the jsonb object.
 */
static int
jsonb_lookup(void *ctx, const char *name, size_t len, CfValue *out)
{
	Jsonb	   *headers = (Jsonb *) ctx;
	JsonbValue	key;
	JsonbValue *v;

	memset(out, 0, sizeof(CfValue));
	if (headers == NULL || !JB_ROOT_IS_OBJECT(headers))
	{
		out->kind = CFV_MISSING;
		return 0;
	}
	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = (int) len;
	v = findJsonbValueFromContainer(&headers->root, JB_FOBJECT, &key);
	if (v == NULL)
	{
		out->kind = CFV_MISSING;
		return 0;
	}
	switch (v->type)
	{
		case jbvNull:
			out->kind = CFV_NULL;
			break;
		case jbvString:
			out->kind = CFV_STRING;
			out->str = v->val.string.val;
			out->len = v->val.string.len;
			break;
		case jbvNumeric:
			{
				char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(v->val.numeric)));

				out->kind = CFV_NUMBER;
				out->str = s;
				out->len = strlen(s);
				break;
			}
		case jbvBool:
			out->kind = CFV_BOOL;
			out->boolean = v->val.boolean;
			break;
		default:
			out->kind = CFV_OTHER;
			break;
	}
	return 0;
}

/*
 * CourierEvalFilter
 *		Evaluate a compiled filter against headers (jsonb or 0) and tag
 *		(text or 0).  A NULL filter matches everything.
 */
CfResult
CourierEvalFilter(CourierFilter *filter, Datum headers, Datum tag)
{
	MemoryContext old;
	CfResult	result;
	Jsonb	   *h = NULL;
	text	   *t = NULL;

	if (filter == NULL)
		return CF_TRUE;
	if (eval_cxt == NULL)
		eval_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier filter evaluation",
										 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(eval_cxt);
	if (headers != (Datum) 0)
		h = DatumGetJsonbP(headers);
	if (tag != (Datum) 0)
		t = DatumGetTextPP(tag);
	result = cf_eval(filter, jsonb_lookup, h,
					 t ? VARDATA_ANY(t) : NULL, t ? VARSIZE_ANY_EXHDR(t) : 0, t != NULL);
	MemoryContextSwitchTo(old);
	MemoryContextReset(eval_cxt);
	return result;
}

/*
 * courier_check_filter
 *		check_filter(text) -> the normalized filter, or a syntax error.
 */
Datum
courier_check_filter(PG_FUNCTION_ARGS)
{
	char	   *ftext = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *normalized;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "filter check",
											  ALLOCSET_SMALL_SIZES);

	(void) CourierCompileFilter(ftext, cxt, &normalized);
	MemoryContextDelete(cxt);
	PG_RETURN_TEXT_P(cstring_to_text(normalized));
}

/*
 * courier_match_filter
 *		match_filter(filter, headers, tag) -> true, false or NULL (unknown)
 */
Datum
courier_match_filter(PG_FUNCTION_ARGS)
{
	char	   *ftext;
	MemoryContext cxt;
	CourierFilter *f;
	CfResult	r;
	Datum		headers = (Datum) 0;
	Datum		tag = (Datum) 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ftext = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *h = PG_GETARG_JSONB_P(1);

		if (!JB_ROOT_IS_OBJECT(h) || JB_ROOT_IS_SCALAR(h))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("headers must be a JSON object")));
		headers = PointerGetDatum(h);
	}
	if (!PG_ARGISNULL(2))
		tag = PointerGetDatum(PG_GETARG_TEXT_PP(2));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "filter match", ALLOCSET_SMALL_SIZES);
	f = CourierCompileFilter(ftext, cxt, NULL);
	r = CourierEvalFilter(f, headers, tag);
	MemoryContextDelete(cxt);
	if (r == CF_UNKNOWN)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(r == CF_TRUE);
}
