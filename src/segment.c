/*-------------------------------------------------------------------------
 *
 * segment.c
 *	  The segments of a topic's log: opening them safely, which ones may
 *	  hold a given id, and reading messages back.
 *
 * A topic's log is a list of tables courier.log_<topic>_<n>.  A rotation
 * (maint.c) creates a new table; senders move to it on their own once they
 * see it in the catalog (send.c), and they choose the segment and allocate
 * ids under the topic's LWLock, with the shared cur_seg_no only growing:
 * every id of segment k is below every id of segment k + 1.
 *
 * We do not store segment boundaries.  Each backend learns, lazily, a lower
 * bound of the smallest id of a segment and (once the segment is sealed) an
 * upper bound of its largest.  Both come from the id index plus the
 * senders' allocation marks read beforehand (send.c), so an id that was
 * handed out but not yet inserted is never outside the bounds.
 *
 * Never trust a relation's shape or an index's completeness (DESIGN.md
 * section 5): every open checks the table's columns (a DBA may have altered
 * it, although the guard in guard.c refuses that), and the id index is
 * chosen the way the executor chooses indexes -- valid, ready and live --
 * each time, never cached across invalidations.  So REINDEX CONCURRENTLY,
 * or one that failed and left an invalid index behind, cannot make a walker
 * read an incomplete index.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"

#include "pg_courier.h"

/* The columns every segment table has, in order */
static const struct
{
	const char *name;
	Oid			type;
}			seg_columns[Natts_seg] =
{
	{"id", INT8OID},
	{"sent_at", TIMESTAMPTZOID},
	{"deliver_at", TIMESTAMPTZOID},
	{"tag", TEXTOID},
	{"keys", TEXTARRAYOID},
	{"headers", JSONBOID},
	{"body", JSONBOID}
};

static int64 probe_end(CourierSegment *seg, ScanDirection dir);
static int64 sequence_last(Oid seqrelid);

/*
 * CourierTopicSharedLoad
 *		Fill a topic's shared entry from the catalog after a (re)start:
 *		next_id from the sequence (which is above every id ever handed out,
 *		even after a crash), the current segment from the newest row of
 *		courier.segment.
 */
void
CourierTopicSharedLoad(CourierTopic *topic, CourierTopicShared *ts)
{
	int64		reserved;
	int			newest;

	if (topic->nsegments == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("topic \"%s\" has no log segment", topic->name)));

	reserved = sequence_last(topic->seq_relid);

	/*
	 * The topic's owner may have moved the sequence backwards with setval()
	 * (acl.c): never below an id the log holds.  One index probe per segment
	 * from the newest back to one that has a row, only where ids are handed
	 * out (not on a standby, which reloads often).
	 */
	if (!RecoveryInProgress())
	{
		int			i;

		for (i = topic->nsegments - 1; i >= 0; i--)
		{
			int64		last = probe_end(&topic->segments[i], BackwardScanDirection);

			if (last > 0)
			{
				reserved = Max(reserved, last);
				break;
			}
		}
	}

	newest = CourierNewestCommittedSegment(topic);
	LWLockAcquire(&ts->lock, LW_EXCLUSIVE);
	if (!ts->valid)
	{
		ts->seq_relid = topic->seq_relid;
		ts->next_id = reserved + 1;
		ts->reserved = reserved;
		if (newest >= 0)
			ts->cur_seg_no = Max(ts->cur_seg_no, topic->segments[newest].seg_no);
		/* on a standby, replay moves on: reload next time (and after promotion) */
		ts->valid = !RecoveryInProgress();
	}
	LWLockRelease(&ts->lock);
}

/*
 * sequence_last
 *		The last id a topic's sequence handed out (start - 1 if none), read straight
 *		from its page.  pg_sequence_last_value() would do, but it opens the
 *		sequence the way nextval() does: RowExclusiveLock kept to the end of
 *		the transaction -- a long poll would sleep holding it, and
 *		drop_topic would wait for the sleeper.  We hold AccessShareLock only
 *		while reading.  The page holds the true last value (after a crash,
 *		the value WAL had logged, which is ahead of every id handed out).
 */
static int64
sequence_last(Oid seqrelid)
{
	Relation	rel = relation_open(seqrelid, AccessShareLock);
	Buffer		buf;
	Page		page;
	ItemId		lp;
	HeapTupleHeader th;
	Form_pg_sequence_data seq;
	int64		last;

	if (rel->rd_rel->relkind != RELKIND_SEQUENCE)
		elog(ERROR, "relation %u is not a sequence", seqrelid);
	buf = ReadBuffer(rel, 0);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	lp = PageGetItemId(page, FirstOffsetNumber);
	if (!ItemIdIsNormal(lp))
		elog(ERROR, "sequence %u has no tuple", seqrelid);
	th = (HeapTupleHeader) PageGetItem(page, lp);
	seq = (Form_pg_sequence_data) ((char *) th + th->t_hoff);
	last = seq->is_called ? seq->last_value : seq->last_value - 1;
	UnlockReleaseBuffer(buf);
	relation_close(rel, AccessShareLock);
	return last;
}

/*
 * CourierNewestCommittedSegment
 *		Index of the newest segment senders may use: a segment our own
 *		transaction created (a rotation, or the fresh segment of a purge,
 *		that may still roll back) is left out -- unless the topic itself is
 *		ours and uncommitted, and then nobody else can see it anyway.  -1 if
 *		there is none (no segment, or a purge of ours dropped every committed
 *		one).  Raising the shared current segment to an uncommitted one
 *		would strand every sender and reader if it rolled back.
 */
int
CourierNewestCommittedSegment(CourierTopic *topic)
{
	int			i;

	for (i = topic->nsegments - 1; i >= 0; i--)
		if (!topic->segments[i].uncommitted)
			return i;
	return topic->uncommitted ? topic->nsegments - 1 : -1;
}

/*
 * CourierReadAllocation
 *		Under the topic's LWLock: the first id not yet handed out, the
 *		current segment number, and the marks of senders of this topic
 *		(which must be read before looking at the log).  Returns the number
 *		of marks copied into marks[] (CourierState->nmarks entries).
 */
int
CourierReadAllocation(CourierTopic *topic, int64 *next_id, int32 *cur_seg_no,
					  CourierSenderMark *marks)
{
	CourierTopicShared *ts = CourierTopicSharedTryGet(topic->topic_id);
	Oid			instance = CourierInstanceId();
	int			nmarks = 0;
	int			i;

	if (ts == NULL)
	{
		/*
		 * Shared memory has no room for the topic, so no one can send to it
		 * (a send needs the entry): the sequence and the catalog are exact.
		 */
		*next_id = sequence_last(topic->seq_relid) + 1;
		if (cur_seg_no)
			*cur_seg_no = topic->nsegments > 0 ? topic->segments[topic->nsegments - 1].seg_no : 0;
		return 0;
	}
	if (!ts->valid)
		CourierTopicSharedLoad(topic, ts);

	/*
	 * A committed segment newer than the one senders use: make it theirs.
	 * Senders that allocated ids for the old one are marked, and every later
	 * one moves to the new one (send.c), so the old one is sealed now -- and
	 * retention can reclaim it even if nobody sends again.
	 */
	i = CourierNewestCommittedSegment(topic);
	if (i >= 0 && topic->segments[i].seg_no > ts->cur_seg_no)
	{
		LWLockAcquire(&ts->lock, LW_EXCLUSIVE);
		ts->cur_seg_no = Max(ts->cur_seg_no, topic->segments[i].seg_no);
		LWLockRelease(&ts->lock);
	}

	LWLockAcquire(&ts->lock, LW_SHARED);
	*next_id = ts->next_id;
	if (cur_seg_no)
		*cur_seg_no = ts->cur_seg_no;
	for (i = 0; i < CourierState->nmarks; i++)
	{
		CourierSenderMark *m = &CourierState->marks[i];

		if (m->topic_id == topic->topic_id && m->dbid == MyDatabaseId &&
			m->instance == instance)
		{
			pg_read_barrier();
			marks[nmarks] = *m;
			/* a mark cleared while we copied it is harmless to keep */
			marks[nmarks].topic_id = topic->topic_id;
			nmarks++;
		}
	}
	LWLockRelease(&ts->lock);
	return nmarks;
}

/*
 * CourierCheckSegment
 *		Refuse a segment table whose columns are not the ones we create:
 *		we form and deform its tuples ourselves.
 */
void
CourierCheckSegment(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (desc->natts != Natts_seg)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("segment table \"%s\" has been altered", RelationGetRelationName(rel)),
				 errdetail("It has %d columns (some maybe dropped); pg_courier created it with %d.",
						   desc->natts, Natts_seg),
				 errhint("pg_courier's internal tables must not be altered.  Restore the table's "
						 "columns, or drain the topic and create it again.")));
	for (i = 0; i < Natts_seg; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != seg_columns[i].type ||
			strcmp(NameStr(att->attname), seg_columns[i].name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("segment table \"%s\" has been altered", RelationGetRelationName(rel)),
					 errdetail("Column %d is not \"%s\" of type %s.", i + 1, seg_columns[i].name,
							   format_type_be(seg_columns[i].type)),
					 errhint("pg_courier's internal tables must not be altered.")));
	}
}

/*
 * CourierOpenSegment
 *		Open a segment table (with lockmode) and its id index (share lock),
 *		checking the table's shape and choosing an index that is valid,
 *		ready and live.  Returns false, opening nothing, if the table no
 *		longer exists (dropped by retention meanwhile).
 */
bool
CourierOpenSegment(CourierSegment *seg, LOCKMODE lockmode, Relation *relp, Relation *idxp)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;

	rel = try_table_open(seg->relid, lockmode);
	if (rel == NULL)
		return false;
	CourierCheckSegment(rel);

	*idxp = NULL;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = idx->rd_index;

		if (form->indisvalid && form->indisready && form->indislive &&
			idx->rd_rel->relam == BTREE_AM_OID &&
			form->indnatts == 1 && form->indkey.values[0] == Anum_seg_id &&
			RelationGetIndexPredicate(idx) == NIL &&
			RelationGetIndexExpressions(idx) == NIL)
		{
			*idxp = idx;
			break;
		}
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	if (*idxp == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("segment table \"%s\" has no usable index on id",
						RelationGetRelationName(rel)),
				 errhint("REINDEX TABLE %s;",
						 quote_qualified_identifier("courier", RelationGetRelationName(rel)))));
	*relp = rel;
	return true;
}

/*
 * CourierCloseSegment
 *		Close what CourierOpenSegment opened in share mode for reading, and
 *		give the locks back at once: a reader is done with the segment, and
 *		a waiting receive must not sleep holding a lock that DROP TABLE (a
 *		drop_topic, a reclaim) needs.  Only this acquisition is released;
 *		one made earlier in the transaction stays.
 */
void
CourierCloseSegment(Relation rel, Relation idx)
{
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/*
 * probe_end
 *		The smallest (forward) or largest (backward) id in a segment, in
 *		progress or committed, or 0 if it has none (or is gone).
 */
static int64
probe_end(CourierSegment *seg, ScanDirection dir)
{
	Relation	rel;
	Relation	idx;
	SnapshotData dirty;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		result = 0;

	if (!CourierOpenSegment(seg, AccessShareLock, &rel, &idx))
		return 0;
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);
	scan = index_beginscan(rel, idx, &dirty, 0, 0);
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, dir, slot))
	{
		bool		isnull;

		result = DatumGetInt64(slot_getattr(slot, Anum_seg_id, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	CourierCloseSegment(rel, idx);
	return result;
}

/*
 * CourierSegmentBounds
 *		Make sure seg->min_lb (and, for a sealed segment, seg->max_ub) are
 *		known if the segment has any row.  min_lb <= every id the segment
 *		will ever hold; max_ub >= every id it holds or will hold.
 */
void
CourierSegmentBounds(CourierTopic *topic, int segidx)
{
	CourierSegment *seg = &topic->segments[segidx];
	CourierSenderMark *marks;
	int64		next_id;
	int32		cur_seg_no;
	int64		markmin = PG_INT64_MAX;
	int64		markmax = 0;
	int			nmarks;
	int			i;

	if (seg->min_lb != 0 && (seg->max_ub != 0 || segidx == topic->nsegments - 1))
		return;

	marks = palloc(sizeof(CourierSenderMark) * CourierState->nmarks);
	nmarks = CourierReadAllocation(topic, &next_id, &cur_seg_no, marks);
	for (i = 0; i < nmarks; i++)
	{
		markmin = Min(markmin, marks[i].lo);
		markmax = Max(markmax, marks[i].hi);
	}
	pfree(marks);

	if (seg->min_lb == 0)
	{
		int64		m = probe_end(seg, ForwardScanDirection);

		if (m != 0)
			seg->min_lb = Min(m, markmin);
	}
	if (seg->max_ub == 0 && seg->seg_no < cur_seg_no && seg->min_lb != 0)
	{
		/* sealed: nothing allocated from now on can land here */
		int64		m = probe_end(seg, BackwardScanDirection);

		seg->max_ub = Max(m, markmax);
		if (seg->max_ub == 0)
			seg->max_ub = seg->min_lb;
	}
}

/*
 * CourierPayloadFromSlot
 *		Copy a log row out of a slot into palloc'd memory.
 */
void
CourierPayloadFromSlot(TupleTableSlot *slot, CourierPayload *out)
{
	HeapTuple	tup = ExecCopySlotHeapTuple(slot);
	TupleDesc	desc = slot->tts_tupleDescriptor;
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);

	Assert(desc->natts >= Natts_seg);
	heap_deform_tuple(tup, desc, values, nulls);
	memset(out, 0, sizeof(CourierPayload));
	out->id = DatumGetInt64(values[Anum_seg_id - 1]);
	out->sent_at = DatumGetTimestampTz(values[Anum_seg_sent_at - 1]);
	out->has_deliver_at = !nulls[Anum_seg_deliver_at - 1];
	if (out->has_deliver_at)
		out->deliver_at = DatumGetTimestampTz(values[Anum_seg_deliver_at - 1]);
	out->tag = nulls[Anum_seg_tag - 1] ? (Datum) 0 : values[Anum_seg_tag - 1];
	out->keys = nulls[Anum_seg_keys - 1] ? (Datum) 0 : values[Anum_seg_keys - 1];
	out->headers = nulls[Anum_seg_headers - 1] ? (Datum) 0 : values[Anum_seg_headers - 1];
	out->body = values[Anum_seg_body - 1];
	pfree(values);
	pfree(nulls);
}

/*
 * fetch_from
 *		Look id up in one segment (dirty snapshot: only a committed row, or
 *		our own, counts).  Returns false if it is not there or the segment is
 *		gone.
 */
static bool
fetch_from(CourierSegment *seg, int64 id, CourierPayload *out)
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	SnapshotData dirty;
	bool		found = false;

	if (!CourierOpenSegment(seg, AccessShareLock, &rel, &idx))
		return false;			/* dropped by retention meanwhile */
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	scan = index_beginscan(rel, idx, &dirty, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		if (!TransactionIdIsValid(dirty.xmin))
		{
			CourierPayloadFromSlot(slot, out);
			found = true;
			break;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	CourierCloseSegment(rel, idx);
	return found;
}

/*
 * CourierFetchMessage
 *		Read message id of a topic.  Returns false if it is not in the log
 *		(never committed, or its segment was reclaimed).
 *
 *		The segment bounds only say where to look first: if the segment they
 *		point at does not have the id, every segment is asked before we
 *		conclude it is gone (never conclude absence from a hint).
 */
bool
CourierFetchMessage(CourierTopic *topic, int64 id, CourierPayload *out)
{
	int			i;
	int			tried = -1;

	for (i = topic->nsegments - 1; i >= 0; i--)
	{
		CourierSegment *seg = &topic->segments[i];

		CourierSegmentBounds(topic, i);
		if (seg->min_lb == 0 || seg->min_lb > id)
			continue;			/* empty, or every id here is larger */
		if (seg->max_ub != 0 && seg->max_ub < id)
			break;				/* between segments */
		if (fetch_from(seg, id, out))
			return true;
		tried = i;
		break;
	}
	for (i = topic->nsegments - 1; i >= 0; i--)
	{
		if (i == tried)
			continue;
		if (fetch_from(&topic->segments[i], id, out))
		{
			ereport(WARNING,
					(errmsg("pg_courier: message %lld of topic \"%s\" found outside its segment's bounds",
							(long long) id, topic->name)));
			return true;
		}
	}
	return false;
}
