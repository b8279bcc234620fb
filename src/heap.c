/*-------------------------------------------------------------------------
 *
 * heap.c
 *	  Direct inserts into pg_courier's own tables, without the planner.
 *
 * Log segments and claims are written on every send and every receive, so
 * they skip SPI: a tuple is formed, inserted with table_tuple_insert and
 * indexed with ExecInsertIndexTuples (which also handles the partial key
 * index of the log).  Our tables have no triggers, constraints beyond
 * NOT NULL (which the callers guarantee) or generated columns, so nothing
 * else the executor would do applies.  Unique indexes still check
 * uniqueness.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pg_courier.h"

/*
 * CourierRelid
 *		OID of a table of schema courier.
 */
Oid
CourierRelid(const char *relname)
{
	Oid			nsp = get_namespace_oid("courier", false);
	Oid			relid = get_relname_relid(relname, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "pg_courier table courier.%s is missing", relname);
	return relid;
}

/*
 * CourierInserterBegin
 *		Prepare to insert tuples into rel (opened by the caller with
 *		RowExclusiveLock).
 */
void
CourierInserterBegin(CourierInserter *ins, Relation rel)
{
	ins->rel = rel;
	ins->estate = CreateExecutorState();
	ins->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(ins->rri, rel, 0, NULL, 0);
	ExecOpenIndices(ins->rri, false);
	ins->slot = ExecInitExtraTupleSlot(ins->estate, RelationGetDescr(rel), &TTSOpsHeapTuple);
	ins->cid = GetCurrentCommandId(true);
}

/*
 * CourierInserterInsert
 *		Insert one tuple and its index entries.  values and nulls have natts
 *		entries, which must match the table.
 */
void
CourierInserterInsert(CourierInserter *ins, Datum *values, bool *nulls, int natts)
{
	HeapTuple	tup;

	if (RelationGetDescr(ins->rel)->natts != natts)
		elog(ERROR, "table %s has %d columns, expected %d",
			 RelationGetRelationName(ins->rel), RelationGetDescr(ins->rel)->natts, natts);
	tup = heap_form_tuple(RelationGetDescr(ins->rel), values, nulls);
	ExecStoreHeapTuple(tup, ins->slot, true);
	table_tuple_insert(ins->rel, ins->slot, ins->cid, 0, NULL);
	if (ins->rri->ri_NumIndices > 0)
	{
		List	   *recheck;

		recheck = ExecInsertIndexTuples(ins->rri, ins->slot, ins->estate,
										false, false, NULL, NIL);
		list_free(recheck);
	}
	ExecClearTuple(ins->slot);
	ResetPerTupleExprContext(ins->estate);
}

/*
 * CourierInserterEnd
 *		Release what CourierInserterBegin set up (not the relation).
 */
void
CourierInserterEnd(CourierInserter *ins)
{
	ExecCloseIndices(ins->rri);
	ExecResetTupleTable(ins->estate->es_tupleTable, false);
	FreeExecutorState(ins->estate);
	pfree(ins->rri);
}

/*
 * CourierInsertTuple
 *		Insert a single tuple into rel.
 */
void
CourierInsertTuple(Relation rel, Datum *values, bool *nulls, int natts)
{
	CourierInserter ins;

	CourierInserterBegin(&ins, rel);
	CourierInserterInsert(&ins, values, nulls, natts);
	CourierInserterEnd(&ins);
}
