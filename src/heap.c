/*-------------------------------------------------------------------------
 *
 * heap.c
 *	  Direct inserts and updates of pg_courier's own tables, without the
 *	  planner, and the snapshot for direct reads that stand in for SPI
 *	  statements.
 *
 * Log segments and claims are written on every send and every receive, so
 * they skip SPI: a tuple is formed, inserted with table_tuple_insert and
 * indexed with ExecInsertIndexTuples (which also handles the partial key
 * index of the log).  A batch of messages goes in with table_multi_insert,
 * as COPY does: one WAL record per heap page filled instead of one per
 * message, then the index entries of each.  Our tables have no triggers, constraints beyond
 * NOT NULL (which the callers guarantee) or generated columns, so nothing
 * else the executor would do applies.  Unique indexes still check
 * uniqueness.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

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
 * CourierLockClaimTables
 *		RowExclusiveLock on courier.claim and courier.lease, for a call that
 *		may write them, before it touches any of their indexes: the order a
 *		DML statement takes its locks in.  A call that probed an index under
 *		AccessShareLock first and then opened the table to write deadlocked
 *		with a plain REINDEX, which holds ShareLock on the table and wants
 *		the index (review 42; isolation spec review42_reindex_lock_order).
 */
void
CourierLockClaimTables(void)
{
	LockRelationOid(CourierRelid("claim"), RowExclusiveLock);
	LockRelationOid(CourierRelid("lease"), RowExclusiveLock);
}

/*
 * CourierIndexOpen
 *		Open index courier.<relname> for a direct read.  Direct reads use
 *		an index as proof that a row does not exist, so only a valid, ready
 *		and live index will do (DESIGN.md section 5).  The name is looked up
 *		before the lock is taken: if REINDEX CONCURRENTLY swapped the names
 *		in between, the index we locked is the old one, now invalid, and the
 *		name leads to the new one -- look again, as RangeVarGetRelidExtended
 *		does (found by review 32).  The guard refuses DDL that could leave
 *		an invalid index of ours under its own name, so the error should
 *		never be seen.
 */
Relation
CourierIndexOpen(const char *relname, LOCKMODE lockmode)
{
	for (;;)
	{
		Oid			relid = CourierRelid(relname);
		Relation	idx = index_open(relid, lockmode);
		Form_pg_index form = idx->rd_index;

		if (form->indisvalid && form->indisready && form->indislive)
			return idx;
		index_close(idx, lockmode);
		if (CourierRelid(relname) == relid)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("index courier.%s is not valid", relname),
					 errhint("REINDEX INDEX courier.%s.", relname)));
	}
}

/*
 * CourierPushReadSnapshot
 *		Push and return the snapshot an SPI statement started now would read
 *		with (SPI_execute_plan, not read-only: the transaction snapshot -- a
 *		new one under READ COMMITTED -- with the command counter advanced,
 *		so this transaction's own earlier writes are seen).  A direct index
 *		read under it sees exactly the rows that statement would, so it can
 *		stand in for the statement, or tell that the statement would find
 *		nothing.  The caller pops it with PopActiveSnapshot.
 */
Snapshot
CourierPushReadSnapshot(void)
{
	PushActiveSnapshot(GetTransactionSnapshot());
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	return GetActiveSnapshot();
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
	ins->slots = NULL;
	ins->nslots = 0;
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
 * CourierInserterInsertMany
 *		Insert n tuples (at most COURIER_MULTI_INSERT_MAX; the caller
 *		splits larger batches) -- values and nulls hold natts entries per
 *		tuple, one tuple after the other -- with table_multi_insert, then
 *		their index entries.  Tuples are formed in the per-tuple memory
 *		context, which is reset at the end.  Until the index entries are
 *		in, a row is in the heap but not in the indexes; the caller's
 *		allocation mark (send.c) covers its ids meanwhile, as it does for a
 *		single insert.
 */
void
CourierInserterInsertMany(CourierInserter *ins, int n, Datum *values, bool *nulls, int natts)
{
	TupleDesc	desc = RelationGetDescr(ins->rel);
	int			nslots = n;
	TupleTableSlot **slots;
	MemoryContext old;
	int			i;

	if (n < 1 || n > COURIER_MULTI_INSERT_MAX)
		elog(ERROR, "cannot insert %d tuples at once", n);
	if (desc->natts != natts)
		elog(ERROR, "table %s has %d columns, expected %d",
			 RelationGetRelationName(ins->rel), desc->natts, natts);
	/*
	 * Made once per inserter, over a copy of the descriptor: a slot over the
	 * relation's own would pin it in the resource owner, and a thousand pins
	 * cost more to forget than the inserts.
	 */
	if (ins->nslots < nslots)
	{
		TupleDesc	copy;

		old = MemoryContextSwitchTo(ins->estate->es_query_cxt);
		copy = CreateTupleDescCopy(desc);
		ins->slots = ins->slots == NULL ? palloc(sizeof(TupleTableSlot *) * nslots) :
			repalloc(ins->slots, sizeof(TupleTableSlot *) * nslots);
		for (i = ins->nslots; i < nslots; i++)
			ins->slots[i] = ExecInitExtraTupleSlot(ins->estate, copy, &TTSOpsHeapTuple);
		ins->nslots = nslots;
		MemoryContextSwitchTo(old);
	}
	slots = ins->slots;
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(ins->estate));
	for (i = 0; i < n; i++)
		ExecStoreHeapTuple(heap_form_tuple(desc, &values[i * natts], &nulls[i * natts]),
						   slots[i], true);
	table_multi_insert(ins->rel, slots, n, ins->cid, 0, NULL);
	MemoryContextSwitchTo(old);
	for (i = 0; i < n; i++)
	{
		if (ins->rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(ins->rri, slots[i], ins->estate,
											false, false, NULL, NIL));
		ExecClearTuple(slots[i]);
	}
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
 * CourierUpdateTuple
 *		Replace the row version at otid of rel (opened with RowExclusiveLock)
 *		with a tuple of values and nulls (natts entries) -- what "UPDATE ...
 *		WHERE ctid = otid" does, without the executor: heap_update, and the
 *		index entries if it was not a HOT update.  If another transaction
 *		is changing the row, wait for it to end, as an UPDATE would.
 *		Returns false, having changed nothing, if the version is no longer
 *		the row's latest (updated or deleted by a committed transaction, or
 *		already by this command); the caller then locks the row and reads
 *		it again, which under REPEATABLE READ raises the serialization
 *		failure the UPDATE would have raised.
 *
 *		The caller read the version at otid under a snapshot taken inside
 *		the current statement, so the statement's own snapshot keeps this
 *		backend's xmin at or below any transaction that can have made the
 *		version dead since: pruning cannot remove it, and otid still points
 *		at it (or at the version's redirect, never at another row).
 */
bool
CourierUpdateTuple(Relation rel, ItemPointer otid, Datum *values, bool *nulls, int natts)
{
	CourierInserter ins;
	HeapTuple	tup;
	TM_Result	res;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	bool		update_indexes;
	ItemPointerData tid = *otid;

	if (RelationGetDescr(rel)->natts != natts)
		elog(ERROR, "table %s has %d columns, expected %d",
			 RelationGetRelationName(rel), RelationGetDescr(rel)->natts, natts);
	CourierInserterBegin(&ins, rel);
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	ExecStoreHeapTuple(tup, ins.slot, true);
	res = table_tuple_update(rel, &tid, ins.slot, ins.cid, GetActiveSnapshot(), InvalidSnapshot,
							 true, &tmfd, &lockmode, &update_indexes);
	if (res == TM_Ok && update_indexes && ins.rri->ri_NumIndices > 0)
	{
		List	   *recheck;

		recheck = ExecInsertIndexTuples(ins.rri, ins.slot, ins.estate, false, false, NULL, NIL);
		list_free(recheck);
	}
	CourierInserterEnd(&ins);
	switch (res)
	{
		case TM_Ok:
			return true;
		case TM_SelfModified:
		case TM_Updated:
		case TM_Deleted:
			return false;
		default:
			elog(ERROR, "unexpected table_tuple_update status: %u", res);
	}
	return false;				/* keep compiler quiet */
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
