/*-------------------------------------------------------------------------
 *
 * segment.c
 *	  The segments of a topic's log: which one senders write to, which ones
 *	  may hold a given id, reading messages back, and starting new segments.
 *
 * A topic's log is a list of tables courier.log_<topic>_<n>.  Senders
 * always insert into the newest (current) one; a rotation (maint.c) creates
 * a new table, and the switch happens when the rotating transaction
 * commits (xact.c).  Ids keep increasing across segments, so every id of
 * segment k is below every id of segment k+1.
 *
 * We do not store segment boundaries.  Instead each backend learns, lazily,
 * a lower bound of the smallest id of a segment and (once the segment is
 * sealed) an upper bound of its largest.  Both come from the id index plus
 * the senders' allocation marks read beforehand (see send.c), so an id that
 * was handed out but not yet inserted is never outside the bounds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
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
#include "utils/syscache.h"

#include "pg_courier.h"

static int64 probe_end(CourierSegment *seg, ScanDirection dir);

/*
 * CourierTopicSharedLoad
 *		Fill a topic's shared entry from the catalog after a (re)start:
 *		next_id from the sequence, the current segment from the newest row
 *		of courier.segment.
 */
void
CourierTopicSharedLoad(CourierTopic *topic, CourierTopicShared *ts)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		last;
	int64		next_id;

	if (topic->nsegments == 0)
		elog(ERROR, "topic \"%s\" has no segment", topic->name);

	/* sequences hand out values above anything ever returned, even after a crash */
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(topic->seq_relid);
	fcinfo->args[0].isnull = false;
	last = pg_sequence_last_value(fcinfo);
	next_id = fcinfo->isnull ? 1 : DatumGetInt64(last) + 1;

	LWLockAcquire(&ts->lock, LW_EXCLUSIVE);
	if (!ts->valid)
	{
		ts->seq_relid = topic->seq_relid;
		ts->next_id = next_id;
		ts->cur_seg_no = topic->segments[topic->nsegments - 1].seg_no;
		ts->cur_seg_relid = topic->segments[topic->nsegments - 1].relid;
		/* on a standby, replay moves on: reload next time (and after promotion) */
		ts->valid = !RecoveryInProgress();
	}
	LWLockRelease(&ts->lock);
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
	CourierTopicShared *ts = CourierTopicSharedGet(topic->topic_id);
	int			nmarks = 0;
	int			i;

	if (!ts->valid)
		CourierTopicSharedLoad(topic, ts);

	LWLockAcquire(&ts->lock, LW_SHARED);
	*next_id = ts->next_id;
	if (cur_seg_no)
		*cur_seg_no = ts->cur_seg_no;
	for (i = 0; i < CourierState->nmarks; i++)
	{
		CourierSenderMark *m = &CourierState->marks[i];

		if (m->topic_id == topic->topic_id && m->dbid == MyDatabaseId)
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
 * CourierSegmentIndex
 *		The unique id index of a segment table (cached).
 */
Oid
CourierSegmentIndex(CourierSegment *seg)
{
	if (!OidIsValid(seg->idxrelid))
	{
		Relation	rel = table_open(seg->relid, AccessShareLock);
		List	   *indexes = RelationGetIndexList(rel);
		ListCell   *lc;

		foreach(lc, indexes)
		{
			Oid			idx = lfirst_oid(lc);
			HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(idx));
			Form_pg_index form;

			if (!HeapTupleIsValid(tup))
				continue;
			form = (Form_pg_index) GETSTRUCT(tup);
			if (form->indisunique && form->indnatts == 1 && form->indkey.values[0] == Anum_seg_id)
				seg->idxrelid = idx;
			ReleaseSysCache(tup);
		}
		list_free(indexes);
		table_close(rel, NoLock);
		if (!OidIsValid(seg->idxrelid))
			elog(ERROR, "segment table %u has no id index", seg->relid);
	}
	return seg->idxrelid;
}

/*
 * probe_end
 *		The smallest (forward) or largest (backward) id in a segment, in
 *		progress or committed, or 0 if it has none.
 */
static int64
probe_end(CourierSegment *seg, ScanDirection dir)
{
	Relation	rel = table_open(seg->relid, AccessShareLock);
	Relation	idx = index_open(CourierSegmentIndex(seg), AccessShareLock);
	SnapshotData dirty;
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		result = 0;

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
	index_close(idx, NoLock);
	table_close(rel, NoLock);
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
	Datum		values[Natts_seg];
	bool		nulls[Natts_seg];

	heap_deform_tuple(tup, slot->tts_tupleDescriptor, values, nulls);
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
}

/*
 * CourierFetchMessage
 *		Read message id of a topic.  Returns false if it is not (or no
 *		longer) in the log, or was not committed.
 */
bool
CourierFetchMessage(CourierTopic *topic, int64 id, CourierPayload *out)
{
	int			i;

	for (i = topic->nsegments - 1; i >= 0; i--)
	{
		CourierSegment *seg = &topic->segments[i];
		Relation	rel;
		Relation	idx;
		IndexScanDesc scan;
		TupleTableSlot *slot;
		ScanKeyData key;
		SnapshotData dirty;
		bool		found = false;

		CourierSegmentBounds(topic, i);
		if (seg->min_lb == 0 || seg->min_lb > id)
			continue;			/* empty, or every id here is larger */
		if (seg->max_ub != 0 && seg->max_ub < id)
			return false;		/* between segments: never existed */

		rel = table_open(seg->relid, AccessShareLock);
		idx = index_open(CourierSegmentIndex(seg), AccessShareLock);
		slot = table_slot_create(rel, NULL);
		InitDirtySnapshot(dirty);
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
		scan = index_beginscan(rel, idx, &dirty, 1, 0);
		index_rescan(scan, &key, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot) &&
			!TransactionIdIsValid(dirty.xmin))
		{
			CourierPayloadFromSlot(slot, out);
			found = true;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(idx, NoLock);
		table_close(rel, NoLock);
		return found;
	}
	return false;
}
