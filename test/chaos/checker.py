"""The exact checker of the chaos test.

Owns the rules.  It reads what committed from the side tables of the database
under test (model.SCHEMA: sent, ptx, delivery, action, ctx), what only the
client knows from the record file (rolled-back and cut-off transactions,
deliveries of rolled-back receives, faults, client errors), the dead letters
and the server logs, and proves per group:

  atomic      a transaction the client saw commit is there, one it saw roll back
              (or a savepoint it rolled back) is not; a cut-off COMMIT is
              resolved from chaos.ptx
  phantom     nothing that did not commit was ever delivered (even to a receive
              that rolled back)
  filter      a filtered group got only matching messages
  lost        every committed message matching a group's filter was delivered in
              a committed receive and then acked or dead-lettered
  double      no message was held by two receivers at once: each committed
              delivery certainly holds its lease from the moment the row was
              returned (clock_timestamp) until the earliest of lease_until and
              the start of a release (ack, nack, set_visibility) by its holder;
              two such intervals of one message must not meet
  attempt     the committed deliveries of a message carry attempts 1, 2, 3, ...
  after-ack   nothing is delivered again after an ack whose COMMIT had returned
  stale       a release by a holder whose lease another receiver has since taken
              changes nothing (issue 7 section 7)
  order       in an ordered group, a message is not handed out before every
              message of its key sent before it (same transaction, lower id; or
              a transaction whose COMMIT had returned before this send started)
              is finished, and two messages of a key are never held at once
  dead        a dead letter had exactly max_attempts committed deliveries
  early       nothing delayed was delivered before it was due
  log         no XX SQLSTATE, PANIC, assertion, or crash in the server logs
  client      no client error outside the expected SQLSTATEs (workload.EXPECTED_ERRORS)

Every bound is conservative (lower bounds on holding, upper bounds on
acquiring), so a reported violation is proven by the records, never a guess.
"""

import bisect
import collections
import json
import re

import psycopg

import model
from model import TOPIC, GROUPS


def f(x):
    return x.timestamp() if x is not None else None


class Checker:
    scenario = None

    def __init__(self, dsn, records, logs, async_failover=False):
        self.dsn = dsn
        self.logs = logs
        self.async_failover = async_failover
        self.v = collections.defaultdict(list)      # violation kind -> messages
        self.notes = collections.Counter()          # things counted, not violations
        self.recs = model.read_records(records)
        self.load()

    def bad(self, kind, msg):
        self.v[kind].append(msg)

    # ------------------------------------------------------------ loading

    def load(self):
        with psycopg.connect(self.dsn, autocommit=True) as c:
            self.sent = {}
            for (mid, tx, tag, okey, h, dms, da, ss) in c.execute(
                    "SELECT id, tx, tag, okey, headers, delay_ms, deliver_at, send_start FROM chaos.sent"):
                due = None
                if dms is not None:
                    due = f(ss) + dms / 1000.0
                elif da is not None:
                    due = f(da)
                self.sent[mid] = dict(tx=tx, tag=tag, okey=okey, h=h, due=due, send_start=f(ss))
            self.ptx = {r[0] for r in c.execute("SELECT tx FROM chaos.ptx")}
            self.ctx = {r[0] for r in c.execute("SELECT tx FROM chaos.ctx")}
            self.dl = collections.defaultdict(list)   # (grp, id) -> committed deliveries
            for (tx, g, mid, att, rc, pid, cs, at, lu) in c.execute(
                    "SELECT tx, grp, id, attempt, receipt, pid, call_start, at, lease_until FROM chaos.delivery"):
                self.dl[(g, mid)].append(dict(tx=tx, grp=g, id=mid, att=att, rcpt=rc, pid=pid,
                                              start=f(cs), at=f(at), lu=f(lu)))
            self.acts = collections.defaultdict(list)  # (grp, id) -> committed actions
            for (tx, dtx, kind, g, mid, rc, ms, res, st) in c.execute(
                    "SELECT tx, dtx, kind, grp, id, receipt, arg_ms, result, start FROM chaos.action"):
                self.acts[(g, mid)].append(dict(tx=tx, dtx=dtx, kind=kind, rcpt=rc, ms=ms, res=res,
                                                start=f(st)))
            self.dead = {}
            self.max_attempts = {}
            for (g, mid, atts, died) in c.execute(
                    "SELECT g.name, d.msg_id, d.attempts, d.died_at FROM courier.dead_letter d"
                    " JOIN courier.group_meta g USING (group_id) JOIN courier.topic_meta t USING (topic_id)"
                    " WHERE t.name = %s", (TOPIC,)):
                self.dead[(g, mid)] = dict(attempts=atts, died=f(died))
            for (g, ma) in c.execute(
                    "SELECT g.name, g.max_attempts FROM courier.group_meta g JOIN courier.topic_meta t"
                    " USING (topic_id) WHERE t.name = %s", (TOPIC,)):
                self.max_attempts[g] = ma
            # the Python predicates must agree with the extension's filter engine
            for g, spec in GROUPS.items():
                if spec["filter"] == "*":
                    continue
                server = {r[0] for r in c.execute(
                    "SELECT id FROM chaos.sent WHERE courier.match_filter(%s, headers, tag)", (spec["filter"],))}
                mine = {mid for mid, m in self.sent.items() if spec["pred"](m["tag"], m["h"])}
                if server != mine:
                    self.bad("filter", f"group {g}: the checker's predicate and match_filter disagree on "
                                       f"{len(server ^ mine)} messages, e.g. {sorted(server ^ mine)[:5]}")
            self.api = model.Api(c)
            self.groups_at_end = [
                f"{g}: backlog {b}, in_flight {i}, delayed {d}, retrying {r}, dead {dl}"
                for (g, b, i, d, r, dl) in c.execute(
                    "SELECT grp, backlog, in_flight, delayed, retrying, dead_letters FROM courier.groups"
                    " WHERE topic = %s ORDER BY grp", (TOPIC,))]
            self.c_find = None
            self.conn_dsn = self.dsn

    # ------------------------------------------------------------ rules

    def crash_between(self, t_rolled_back, mid):
        """Whether a server crash (injected or not) lies between the rollback
        and the send that committed message mid under the same id."""
        sent_t = self.sent[mid].get("send_start")
        crashes = [f["t"] for f in self.recs if f["k"] == "fault"
                   and any(w in f.get("kind", "") for w in ("crash", "failover", "promot", "kill_primary"))]
        lo = t_rolled_back if t_rolled_back is not None else 0
        hi = sent_t if sent_t is not None else float("inf")
        if "failover" in (self.scenario or ""):
            return True         # the primary is killed outside these records
        return any(lo - 1 <= t <= hi for t in crashes)

    def check_atomic(self):
        """Producer outcomes: the client's view against the side tables."""
        self.client_committed = set()   # ids whose COMMIT the client saw return
        self.client_lost = set()
        self.rolled_back = set()
        self.commit_done = {}           # tx -> client time after its COMMIT returned
        resolved = {r["tx"]: r for r in self.recs if r["k"] == "resolved"}
        for r in self.recs:
            if r["k"] != "ptx":
                continue
            tx = r["tx"]
            self.rolled_back.update(r["rb"])
            if r["out"] == "commit":
                self.client_committed.update(r["ids"])
                self.commit_done[tx] = r["done"]
                if tx not in self.ptx:
                    if self.async_failover:
                        self.client_lost.update(r["ids"])
                        self.notes["transactions lost with the old primary"] += 1
                    else:
                        self.bad("atomic", f"producer tx {tx}: COMMIT returned but the transaction is gone "
                                           f"({len(r['ids'])} messages)")
                for mid in r["ids"]:
                    if tx in self.ptx and mid not in self.sent:
                        self.bad("atomic", f"producer tx {tx} committed without its message {mid}")
            elif r["out"] == "rollback":
                if tx in self.ptx:
                    self.bad("atomic", f"producer tx {tx} rolled back but is committed")
            else:
                self.notes["producer commits cut off (resolved from chaos.ptx)"] += 1
                if tx in resolved and resolved[tx]["commit"] != (tx in self.ptx):
                    self.bad("atomic", f"prepared tx {tx}: resolved as commit={resolved[tx]['commit']} "
                                       f"but chaos.ptx says {tx in self.ptx}")
            for mid in r["rb"]:
                if mid in self.sent:
                    if self.sent[mid]["tx"] != tx and self.crash_between(r.get("done"), mid):
                        # An id handed to a transaction that rolled back (or was
                        # cut off) may be handed out again after a crash, like a
                        # sequence value whose WAL was never flushed; an id of a
                        # committed message never is (docs/design.md).
                        self.notes["ids of rolled-back sends handed out again after a crash"] += 1
                    else:
                        self.bad("atomic", f"message {mid} of a rolled-back savepoint/transaction is committed")
        # consumer transactions (receives, acks) the client saw commit
        for r in self.recs:
            if r["k"] == "ctx" and r["out"] == "commit" and r["tx"] not in self.ctx:
                if self.async_failover:
                    self.notes["consumer transactions lost with the old primary"] += 1
                else:
                    self.bad("atomic", f"consumer tx {r['tx']}: COMMIT returned but the transaction is gone")
        for mid, m in self.sent.items():
            if m["tx"] not in self.ptx:
                self.bad("atomic", f"message {mid} committed without its transaction's ptx row")

    def check_phantoms_and_delays(self):
        """Every delivery (committed or not) is of a committed message, due, and matching."""
        client_dlv = [r for r in self.recs if r["k"] == "dlv"]
        self.ctx_out = {r["tx"]: r for r in self.recs if r["k"] == "ctx"}
        self.rolled_back_dlv = 0
        every = [(d["grp"], d["id"], d["at"]) for ds in self.dl.values() for d in ds]
        every += [(r["grp"], r["id"], r["at"]) for r in client_dlv]
        for r in client_dlv:
            if r["tx"] not in self.ctx:
                self.rolled_back_dlv += 1
        seen = set()
        for g, mid, at in every:
            if (g, mid, at) in seen:
                continue
            seen.add((g, mid, at))
            m = self.sent.get(mid)
            if m is None:
                if self.async_failover and mid in self.client_lost:
                    self.notes["deliveries of messages lost with the old primary"] += 1
                elif mid in self.rolled_back:
                    self.bad("phantom", f"group {g} got message {mid} of a rolled-back transaction or savepoint")
                else:
                    self.bad("phantom", f"group {g} got message {mid}, which never committed")
                continue
            if m["due"] is not None and at < m["due"]:
                self.bad("early", f"group {g} got message {mid} {m['due'] - at:.3f}s before it was due")
            if g in GROUPS and not GROUPS[g]["pred"](m["tag"], m["h"]):
                self.bad("filter", f"group {g} got message {mid} (tag {m['tag']}, headers {m['h']}) "
                                   f"that its filter does not match")

    def hold_end(self, d, acts):
        """Earliest moment delivery d can have stopped holding its lease."""
        end = d["lu"] if d["lu"] is not None else float("inf")
        for a in acts:
            if a["dtx"] != d["tx"] or a["start"] < d["at"] - 1e-6:
                continue
            if a["res"] == "t" or (a["kind"] == "ack_many" and self.full(a)):
                end = min(end, a["start"] + (a["ms"] or 0) / 1000.0)
        return end

    @staticmethod
    def full(a):
        n, m = a["res"].split("/")
        return n == m

    def finished_at(self, g, mid):
        """Lower bound of when (g, mid) was finished (acked or dead), or None."""
        best = None
        for a in self.acts.get((g, mid), []):
            if (a["kind"] == "ack" and a["res"] == "t") or (a["kind"] == "ack_many" and self.full(a)):
                best = a["start"] if best is None else min(best, a["start"])
        dead = self.dead.get((g, mid))
        if dead is not None:
            best = dead["died"] if best is None else min(best, dead["died"])
        return best

    def check_leases(self):
        """Exclusive leases, attempts, why each redelivery happened, stale releases."""
        self.why = collections.Counter()
        self.redeliveries = 0
        for (g, mid), ds in self.dl.items():
            ds.sort(key=lambda d: d["at"])
            acts = self.acts.get((g, mid), [])
            for k, d in enumerate(ds):
                if d["att"] != k + 1:
                    self.bad("attempt", f"group {g} message {mid}: committed delivery #{k + 1} "
                                        f"(tx {d['tx']}, pid {d['pid']}) has attempt {d['att']}")
                    break
            for d1, d2 in zip(ds, ds[1:]):
                self.redeliveries += 1
                end = self.hold_end(d1, acts)
                mine = [a for a in acts if a["dtx"] == d1["tx"] and a["start"] <= d2["at"]]
                if d2["at"] < end:
                    self.bad("double", f"group {g} message {mid}: held by tx {d1['tx']} (pid {d1['pid']}, "
                                       f"attempt {d1['att']}) and tx {d2['tx']} (pid {d2['pid']}, attempt "
                                       f"{d2['att']}) at once: the second got it {d2['at'] - d1['at']:.4f}s "
                                       f"after the first, {end - d2['at']:.3f}s before the first lease could end")
                    self.why["unexplained"] += 1
                elif any(a["kind"] == "nack" and a["res"] == "t" for a in mine):
                    self.why["nack"] += 1
                elif any(a["kind"] == "setvis" and a["res"] == "t" for a in mine):
                    self.why["set_visibility"] += 1
                else:
                    self.why["expiry"] += 1
                # delivered again after an ack whose COMMIT had returned
                for a in acts:
                    ok = (a["kind"] == "ack" and a["res"] == "t") or (a["kind"] == "ack_many" and self.full(a))
                    done = self.ctx_out.get(a["tx"], {}).get("done")
                    if ok and done is not None and done < d2["start"] and a["start"] >= d1["at"]:
                        self.bad("after-ack", f"group {g} message {mid}: acked by tx {a['tx']} (committed) and "
                                              f"delivered again to tx {d2['tx']} attempt {d2['att']}")
                        break
            # a release by a holder after someone else took the message
            for a in acts:
                if a["res"] != "t" and not (a["kind"] == "ack_many" and self.full(a)):
                    continue
                if a["kind"] == "ack_many" and self.api.receipts:
                    continue      # ack by ids is the documented operator override
                holder = [d for d in ds if d["tx"] == a["dtx"]]
                if not holder:
                    continue
                later = [d for d in ds if d["at"] > holder[0]["at"] and d["tx"] != a["dtx"]
                         and d["at"] < a["start"]]
                if later:
                    self.bad("stale", f"group {g} message {mid}: {a['kind']} by the holder of tx {a['dtx']} "
                                      f"(lease ran out) succeeded while tx {later[-1]['tx']} held it"
                                      f"{' (with a receipt)' if a['rcpt'] else ''}")

    def check_dead(self):
        for (g, mid), dead in self.dead.items():
            ma = self.max_attempts.get(g)
            n = len(self.dl.get((g, mid), []))
            if ma is None:
                continue
            if g in GROUPS and (n != ma or dead["attempts"] != ma):
                self.bad("dead", f"group {g} message {mid} dead-lettered after {n} committed deliveries "
                                 f"(attempts column {dead['attempts']}, max_attempts {ma})")
        for (g, mid), ds in self.dl.items():
            ma = GROUPS.get(g, {}).get("max_attempts")
            if ma is not None and any(d["att"] > ma for d in ds):
                self.bad("dead", f"group {g} message {mid} delivered with attempt > max_attempts {ma}")

    def check_order(self):
        """Ordered group: send order per key, one message of a key at a time."""
        g = next(name for name, s in GROUPS.items() if s["ordered"])
        bykey = collections.defaultdict(list)
        for mid, m in self.sent.items():
            if m["okey"] is not None:
                bykey[m["okey"]].append(mid)
        for key, mids in bykey.items():
            # one at a time: sweep the certain-hold intervals of the key's deliveries
            ds = sorted((d for mid in mids for d in self.dl.get((g, mid), [])), key=lambda d: d["at"])
            active = []
            for d in ds:
                active = [(end, m2) for (end, m2) in active if end > d["at"]]
                other = [m2 for (end, m2) in active if m2 != d["id"]]
                if other:
                    self.bad("order", f"key {key}: message {d['id']} handed out while message {other[0]} "
                                      f"of the same key was held")
                active.append((self.hold_end(d, self.acts.get((g, d["id"]), [])), d["id"]))
            # send order: m1 sent before m2 => m2 not delivered before m1 finished
            fin = {mid: self.finished_at(g, mid) for mid in mids}
            done_sorted = sorted(((self.commit_done[self.sent[mid]["tx"]], mid) for mid in mids
                                  if self.commit_done.get(self.sent[mid]["tx"]) is not None))
            times = [t for t, _ in done_sorted]
            prefix = []     # (latest finish so far or inf if unfinished, which message)
            worst = (float("-inf"), None)
            for t, mid in done_sorted:
                fm = fin[mid] if fin[mid] is not None else float("inf")
                if fm > worst[0]:
                    worst = (fm, mid)
                prefix.append(worst)
            bytx = collections.defaultdict(list)
            for mid in mids:
                bytx[self.sent[mid]["tx"]].append(mid)
            overtaken = collections.defaultdict(list)   # m1 -> messages handed out before it finished
            for mid in mids:
                dls = self.dl.get((g, mid), [])
                if not dls:
                    continue
                first = min(d["at"] for d in dls)
                i = bisect.bisect_left(times, self.sent[mid]["send_start"])
                blockers = []
                if i > 0:
                    blockers.append(prefix[i - 1])
                for m1 in bytx[self.sent[mid]["tx"]]:
                    if m1 < mid:
                        blockers.append((fin[m1] if fin[m1] is not None else float("inf"), m1))
                for fm, m1 in blockers:
                    if m1 != mid and first < fm:
                        overtaken[m1].append(mid)
                        break
            for m1, later in sorted(overtaken.items()):
                self.bad("order", f"key {key}: {len(later)} message(s) (first {min(later)}) handed out before "
                                  f"message {m1}, sent before them, was finished"
                                  f"{' (it never was)' if fin[m1] is None else ''}")

    def check_lost(self):
        """After the drain: every committed matching message delivered and finished.
        For each loss the report adds what courier.find says about it now (a
        message the extension believes 'acked' that nobody acked is the
        signature of a walker that passed over it)."""
        self.lost = collections.Counter()
        lost = []
        for g, spec in GROUPS.items():
            for mid, m in self.sent.items():
                if not spec["pred"](m["tag"], m["h"]):
                    continue
                ds = self.dl.get((g, mid))
                if not ds:
                    lost.append((g, mid, "never delivered"))
                elif self.finished_at(g, mid) is None:
                    acts = [a for a in self.acts.get((g, mid), []) if a["res"] == "t" or a["kind"] == "ack_many"]
                    last = acts[-1]["kind"] if acts else "nothing"
                    lost.append((g, mid, f"delivered {len(ds)}x, last successful call: {last}, "
                                         f"never delivered again nor acked"))
        with psycopg.connect(self.dsn, autocommit=True) as c:
            for g, mid, why in lost:
                states = [r[0] for r in c.execute(
                    "SELECT state FROM courier.find(%s, id => %s) WHERE grp = %s", (TOPIC, mid, g))]
                if why.startswith("delivered") and "ack_many" in why and states == ["acked"]:
                    continue          # acked by ack(ids[]) whose count left open which ids
                self.lost[why.split(",")[0]] += 1
                m = self.sent[mid]
                self.bad("lost", f"group {g}: committed message {mid} (tx {m['tx']}, sent "
                                 f"{m['send_start']:.3f}): {why}; find says "
                                 f"{states[0] if states else 'nothing (segment reclaimed)'}")

    def check_logs(self):
        self.log_states = collections.Counter()
        self.log_crash_recoveries = 0
        # '%m [%p] %e ' then the level; a STATEMENT/DETAIL line repeats the
        # SQLSTATE of its error, so only the error lines themselves count
        pat_state = re.compile(r"^\S+ \S+ \S+ \[\d+\] (\w{5}) (ERROR|FATAL|PANIC|WARNING):")
        for path in self.logs:
            try:
                lines = open(path, errors="replace").read().splitlines()
            except OSError as e:
                self.bad("log", f"cannot read {path}: {e}")
                continue
            for line in lines:
                m = pat_state.match(line)
                if m and m.group(1) != "00000":
                    self.log_states[m.group(1)] += 1
                if m and m.group(1).startswith("XX"):
                    self.bad("log", f"{path}: {line[:400]}")
                elif "PANIC:" in line or "TRAP:" in line or "stack smashing" in line:
                    self.bad("log", f"{path}: {line[:400]}")
                elif re.search(r"terminated by signal|terminated by exception|exited with exit code [^01]", line):
                    self.bad("log", f"{path}: {line[:400]}")
                if "was not properly shut down" in line or "database system was interrupted" in line:
                    self.log_crash_recoveries += 1

    def check_client(self):
        for r in self.recs:
            if r["k"] == "err":
                self.bad("client", f"{r['who']} ({r['ctx']}): {r['sqlstate']} {r['msg']}")

    # ------------------------------------------------------------ summary

    def run(self):
        self.check_atomic()
        self.check_phantoms_and_delays()
        self.check_leases()
        self.check_dead()
        self.check_order()
        self.check_lost()
        self.check_logs()
        self.check_client()

    def summary(self, seconds, scenario, seed):
        faults = collections.Counter()
        for r in self.recs:
            if r["k"] == "fault":
                faults[r["kind"]] += 1
        if seconds is None:
            ts = [r["t"] for r in self.recs if r["k"] in ("start", "load_end")]
            seconds = (max(ts) - min(ts)) if len(ts) >= 2 else 0
        deliveries = sum(len(ds) for ds in self.dl.values())
        dup = ",".join(f"{k}:{n}" for k, n in sorted(self.why.items())) or "-"
        fl = ",".join(f"{k}:{n}" for k, n in sorted(faults.items())) or "-"
        viol = ",".join(f"{k}:{len(v)}" for k, v in sorted(self.v.items())) or "-"
        nv = sum(len(v) for v in self.v.values())
        line = (f"chaos summary: scenario={scenario} seed={seed} api={self.api.describe()} "
                f"seconds={seconds:.0f} messages={len(self.sent)} deliveries={deliveries} "
                f"rolled_back_deliveries={self.rolled_back_dlv} faults={fl} "
                f"lost={sum(self.lost.values())} duplicated={self.redeliveries}({dup}) "
                f"dead={len([k for k in self.dead if k[0] in GROUPS])} "
                f"violations={nv}({viol})")
        if self.async_failover:
            line += f" async_lost_commits={len(self.client_lost)}"
        return nv == 0, line

    def details(self, limit=20):
        out = []
        for kind, msgs in sorted(self.v.items()):
            out.append(f"  {kind}: {len(msgs)}")
            for m in msgs[:limit]:
                out.append(f"    {m}")
        for k, n in sorted(self.notes.items()):
            out.append(f"  note: {k}: {n}")
        if self.log_states:
            out.append("  server log SQLSTATEs: " + ", ".join(f"{k}:{n}" for k, n in sorted(self.log_states.items())))
        out.append(f"  crash recoveries in the server logs: {self.log_crash_recoveries}")
        out.append("  courier.groups after the drain: " + "; ".join(self.groups_at_end))
        return "\n".join(out)


def check(dsn, records, logs, async_failover=False, seconds=None, scenario="chaos", seed=None, report=None):
    """Run every rule; return (ok, text ending with the one summary line)."""
    c = Checker(dsn, records, logs, async_failover)
    c.scenario = scenario
    c.run()
    ok, line = c.summary(seconds, scenario, seed)
    det = c.details()
    if report:
        with open(report, "w") as fh:
            fh.write(line + "\n" + c.details(limit=10**9) + "\n")
    return ok, det + "\n" + line
