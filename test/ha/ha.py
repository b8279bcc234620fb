#!/usr/bin/python3
"""High availability on Patroni (issue 8 section 5).

Starts, on 127.0.0.1 only and with every file under WORKDIR: one etcd
(Debian etcd-server) and three Patroni (Debian patroni) nodes running
PostgreSQL 15 from PG_BINDIR with pg_courier preloaded, synchronous_mode on,
use_pg_rewind on and primary_start_timeout 0 (a crashed leader fails over
instead of restarting), synchronous_mode_strict on.  The chaos load (test/chaos/chaos.py: producers of
every kind, consumers of every group, client-side faults) connects with
libpq's host=a,b,c target_session_attrs=read-write and follows the leader.

Then, twice: SIGKILL the leader's postmaster; wait until Patroni promotes
the synchronous standby; wait until the old leader is back as a replica on
the new timeline (Patroni runs pg_rewind); wait for traffic on the new
leader; check that the pg_courier worker runs on the leader and on no
replica.  At the end chaos.py drains and runs the same checker as the chaos
suite over the logs of all three nodes: nothing committed lost, every rule
of test/chaos/checker.py.

    ha.py --work DIR [--port-base 56700] [--bindir DIR] [--seed N]

Ports: PostgreSQL base+1..3, Patroni REST base+11..13, etcd base+20
(client) and base+21 (peer).  Prints ok / not ok lines and ends with
"ha tests: N passed, N failed".  Stops everything it started, whatever
happens.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
CHAOS = os.path.join(HERE, "..", "chaos", "chaos.py")
NODES = ["pgc1", "pgc2", "pgc3"]


class Ha:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.procs = {}
        self.passed = 0
        self.failed = 0
        self.base = a.port_base
        self.pg_port = {n: self.base + 1 + i for i, n in enumerate(NODES)}
        self.api_port = {n: self.base + 11 + i for i, n in enumerate(NODES)}
        self.etcd_client = self.base + 20
        self.etcd_peer = self.base + 21
        self.events = []

    # ------------------------------------------------------------ reporting

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print(f"ok - {what}", flush=True)
        else:
            self.failed += 1
            print(f"not ok - {what}" + (f": {detail}" if detail else ""), flush=True)
        return cond

    def note(self, msg):
        self.events.append((time.time(), msg))
        print(f"ha: {msg}", flush=True)

    # ------------------------------------------------------------ processes

    def node_dir(self, n):
        return os.path.join(self.work, n)

    def start_etcd(self):
        d = os.path.join(self.work, "etcd")
        os.makedirs(d, exist_ok=True)
        cu = f"http://127.0.0.1:{self.etcd_client}"
        pu = f"http://127.0.0.1:{self.etcd_peer}"
        cmd = ["etcd", "--name", "pgc-etcd", "--data-dir", os.path.join(d, "data"),
               "--listen-client-urls", cu, "--advertise-client-urls", cu,
               "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
               "--initial-cluster", f"pgc-etcd={pu}", "--initial-cluster-state", "new",
               "--initial-cluster-token", "pgc-ha-test"]
        self.procs["etcd"] = subprocess.Popen(cmd, stdout=open(os.path.join(d, "etcd.log"), "w"),
                                              stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: self.http_json(f"{cu}/health", quiet=True), 60, "etcd healthy")

    def patroni_yml(self, n):
        d = self.node_dir(n)
        os.makedirs(os.path.join(d, "log"), exist_ok=True)
        os.chmod(d, 0o700)
        cfg = {
            "scope": "pgc",
            "namespace": "/pgc-ha-test/",
            "name": n,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{self.api_port[n]}",
                        "connect_address": f"127.0.0.1:{self.api_port[n]}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_client}"], "protocol": "http"},
            "bootstrap": {
                "dcs": {
                    # failover within seconds: loop_wait + 2 * retry_timeout <= ttl
                    "ttl": 10, "loop_wait": 1, "retry_timeout": 3,
                    # zero loss: commits wait for a synchronous standby, and
                    # only that standby may be promoted
                    "synchronous_mode": True,
                    # and never run without one: with three nodes losing one
                    # standby leaves the other to be synchronous
                    "synchronous_mode_strict": True,
                    # a crashed leader fails over at once instead of restarting
                    # (the default, 300 s, restarts it in place)
                    "primary_start_timeout": 0,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "shared_preload_libraries": "pg_courier",
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "1GB",
                            "max_connections": 80,
                            "max_prepared_transactions": 20,
                            "synchronous_commit": "on",
                            "log_line_prefix": "%m [%p] %e ",
                            "fsync": "off",
                            "courier.segment_size": 1000,
                            "courier.worker_naptime": 20,
                            "courier.maintenance_batch": 200,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
                "pg_hba": ["local all all trust", "host all all 127.0.0.1/32 trust",
                           "host replication all 127.0.0.1/32 trust"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port[n]}",
                "connect_address": f"127.0.0.1:{self.pg_port[n]}",
                "data_dir": os.path.join(d, "data"),
                "bin_dir": self.a.bindir,
                "pgpass": os.path.join(d, "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "pgc-ha"},
                    "replication": {"username": "postgres", "password": "pgc-ha"},
                    "rewind": {"username": "postgres", "password": "pgc-ha"},
                },
                "parameters": {
                    "unix_socket_directories": d,
                    "logging_collector": "on",
                    "log_directory": os.path.join(d, "log"),
                    "log_filename": "postgresql.log",
                    "log_rotation_age": 0,
                    "log_rotation_size": 0,
                },
            },
            "watchdog": {"mode": "off"},
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
        }
        path = os.path.join(d, "patroni.yml")
        with open(path, "w") as fh:
            json.dump(cfg, fh, indent=1)       # JSON is YAML
        return path

    def start_patroni(self, n):
        path = self.patroni_yml(n)
        self.procs[n] = subprocess.Popen(["patroni", path],
                                         stdout=open(os.path.join(self.node_dir(n), "patroni.log"), "a"),
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def stop_all(self):
        for n in NODES:
            p = self.procs.get(n)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n in NODES:
            p = self.procs.get(n)
            if p:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        # a postmaster Patroni left running (it was killed mid-way): stop it
        for n in NODES:
            data = os.path.join(self.node_dir(n), "data")
            pid = self.postmaster_pid(n)
            if pid:
                subprocess.run([os.path.join(self.a.bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = self.procs.get("etcd")
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cores(self):
        """Core files a crashed server process left (run.sh raises ulimit -c):
        each is a failure, with its backtrace when gdb is there."""
        found = []
        for n in NODES:
            d = os.path.join(self.node_dir(n), "data")
            if os.path.isdir(d):
                found += [os.path.join(d, f) for f in os.listdir(d) if f == "core" or f.startswith("core.")]
        # pg_rewind copies a core file from the source's data directory too:
        # count each dump once
        import hashlib
        seen = set()
        unique = []
        for core in found:
            with open(core, "rb") as fh:
                h = hashlib.sha1(fh.read(1 << 20)).hexdigest(), os.path.getsize(core)
            if h in seen:
                print(f"ha: core file {core} (a copy of one above, made by pg_rewind)", flush=True)
                continue
            seen.add(h)
            unique.append(core)
        found = unique
        for core in found:
            print(f"ha: core file {core}", flush=True)
            if subprocess.run(["sh", "-c", "command -v gdb"], stdout=subprocess.DEVNULL).returncode == 0:
                bt = subprocess.run(["gdb", "-batch", "-ex", "bt", os.path.join(self.a.bindir, "postgres"), core],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
                print("\n".join(l for l in bt.splitlines() if l.startswith("#"))[:4000], flush=True)
        self.ok(not found, "no server process dumped core", f"{len(found)} core files")

    # ------------------------------------------------------------ state

    def http_json(self, url, quiet=False):
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return json.loads(r.read().decode() or "{}")
        except Exception as e:          # noqa: BLE001 - down, starting, refusing
            if not quiet:
                print(f"ha: {url}: {e}", flush=True)
            return None

    def cluster(self):
        """Members as Patroni's REST API reports them, asked of any node that answers."""
        for n in NODES:
            c = self.http_json(f"http://127.0.0.1:{self.api_port[n]}/cluster", quiet=True)
            if c and "members" in c:
                return {m["name"]: m for m in c["members"]}
        return {}

    def leader(self):
        for name, m in self.cluster().items():
            if m["role"] == "leader" and m["state"] == "running":
                return name
        return None

    def postmaster_pid(self, n):
        try:
            with open(os.path.join(self.node_dir(n), "data", "postmaster.pid")) as fh:
                pid = int(fh.readline())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def dsn(self, n):
        return f"host=127.0.0.1 port={self.pg_port[n]} user=postgres dbname=postgres connect_timeout=3"

    def all_dsn(self):
        hosts = ",".join("127.0.0.1" for _ in NODES)
        ports = ",".join(str(self.pg_port[n]) for n in NODES)
        return f"host={hosts} port={ports} user=postgres dbname=postgres target_session_attrs=read-write"

    def sql(self, n, q, *p):
        with psycopg.connect(self.dsn(n), autocommit=True) as c:
            return c.execute(q, p).fetchall()

    def wait(self, cond, seconds, what):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                v = cond()
            except psycopg.Error:
                v = None
            if v:
                return v
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {seconds}s waiting for {what}")

    def replicas_streaming(self, leader):
        """Every other node streams from the leader and one is synchronous."""
        rows = self.sql(leader, "SELECT application_name, state, sync_state FROM pg_stat_replication")
        names = {r[0] for r in rows if r[1] == "streaming"}
        sync = {r[0] for r in rows if r[2] == "sync"}
        others = set(NODES) - {leader}
        return names >= others and len(sync) >= 1 and sync

    def sent(self, n):
        return self.sql(n, "SELECT count(*) FROM chaos.sent")[0][0]

    def wait_traffic(self, n, more, what):
        base = self.sent(n)
        try:
            self.wait(lambda: self.sent(n) >= base + more, 180, what)
            return self.ok(True, what)
        except TimeoutError as e:
            return self.ok(False, what, str(e))

    def check_worker(self, leader, what):
        try:
            self.wait(lambda: self.sql(leader, "SELECT count(*) FROM pg_stat_activity"
                                               " WHERE backend_type = 'pg_courier worker'")[0][0] >= 1,
                      60, "the worker on the leader")
            on_leader = True
        except TimeoutError:
            on_leader = False
        self.ok(on_leader, f"{what}: the pg_courier worker runs on the leader {leader}")
        elsewhere = {}
        for n in NODES:
            if n == leader:
                continue
            try:
                elsewhere[n] = self.sql(n, "SELECT count(*) FROM pg_stat_activity"
                                           " WHERE backend_type LIKE 'pg_courier%%'")[0][0]
            except psycopg.Error as e:
                elsewhere[n] = f"unreachable ({str(e).strip()[:80]})"
        self.ok(all(v == 0 for v in elsewhere.values()),
                f"{what}: no pg_courier worker or launcher on the replicas", str(elsewhere))

    # ------------------------------------------------------------ the scenario

    def failover(self, k):
        old = self.leader()
        # the steady state: a synchronous standby, known to Patroni and streaming
        try:
            self.wait(lambda: (lambda s: s and set(s) & {n for n, m in self.cluster().items()
                                                         if m["role"] == "sync_standby"})(
                self.replicas_streaming(old)), 60, "a synchronous standby")
        except TimeoutError as e:
            print(f"ha: {e}; cluster {self.cluster()}", flush=True)
        cl = self.cluster()
        sync = [n for n, m in cl.items() if m["role"] == "sync_standby"]
        tl = cl[old].get("timeline")
        pid = self.postmaster_pid(old)
        self.note(f"failover {k}: SIGKILL the postmaster ({pid}) of leader {old} "
                  f"(timeline {tl}, synchronous standby {sync})")
        os.kill(pid, signal.SIGKILL)
        try:
            new = self.wait(lambda: (lambda l: l if l and l != old else None)(self.leader()), 120,
                            "a new leader")
        except TimeoutError as e:
            self.ok(False, f"failover {k}: Patroni promoted a replica", str(e))
            raise
        self.note(f"failover {k}: {new} is the leader")
        self.ok(new in sync, f"failover {k}: Patroni promoted the synchronous standby ({new})",
                f"promoted {new}, synchronous standby was {sync}")
        # the old leader comes back as a replica of the new one, on its timeline
        try:
            self.wait(lambda: (lambda c: c.get(old, {}).get("state") in ("running", "streaming")
                               and c[old]["role"] != "leader"
                               and c[old].get("timeline") == c.get(new, {}).get("timeline"))(self.cluster()),
                      180, f"{old} back as a replica")
            self.wait(lambda: self.replicas_streaming(new), 120, "every replica streaming")
            rejoined = True
        except TimeoutError as e:
            rejoined = False
            print(f"ha: {e}; cluster {self.cluster()}", flush=True)
        log = open(os.path.join(self.node_dir(old), "patroni.log"), errors="replace").read()
        rewound = len(re.findall(r"INFO: running pg_rewind from \w+\s*$", log, re.M))
        self.ok(rejoined, f"failover {k}: the old leader {old} rejoined as a replica of {new} "
                          f"(pg_rewind runs in its Patroni log so far: {rewound})")
        self.note(f"failover {k}: cluster {json.dumps(self.cluster())}")
        self.wait_traffic(new, 300, f"failover {k}: traffic on the new leader {new}")
        self.check_worker(new, f"after failover {k}")
        return new

    def run(self):
        os.makedirs(self.work, exist_ok=True)
        self.start_etcd()
        self.note(f"etcd on 127.0.0.1:{self.etcd_client}")
        self.start_patroni(NODES[0])
        first = self.wait(self.leader, 120, "the first node to bootstrap and lead")
        self.note(f"{first} bootstrapped the cluster")
        for n in NODES[1:]:
            self.start_patroni(n)
        self.wait(lambda: len([m for m in self.cluster().values() if m["state"] in ("running", "streaming")]) == 3,
                  240, "three running members")
        self.wait(lambda: self.replicas_streaming(first), 120, "replicas streaming, one synchronous")
        self.ok(True, f"a Patroni cluster of three: {json.dumps(self.cluster())}")
        ssn = self.sql(first, "SHOW synchronous_standby_names")[0][0]
        self.ok(ssn not in ("", None), f"synchronous_mode: the leader's synchronous_standby_names is {ssn!r}")
        subprocess.run([sys.executable, CHAOS, "setup", "--dsn", self.all_dsn()], check=True)
        self.check_worker(first, "at the start")

        logs = [os.path.join(self.node_dir(n), "log", "postgresql.log") for n in NODES]
        stop = os.path.join(self.work, "stop")
        cmd = [sys.executable, CHAOS, "run", "--no-setup", "--dsn", self.all_dsn(), "--stop-file", stop,
               "--records", os.path.join(self.work, "records.jsonl"),
               "--report", os.path.join(self.work, "report.txt"), "--scenario", "ha-patroni",
               "--producers", "3", "--consumers", "8", "--max-seconds", "600"]
        for lg in logs:
            cmd += ["--log", lg]
        if self.a.seed:
            cmd += ["--seed", str(self.a.seed)]
        load_out = open(os.path.join(self.work, "chaos.log"), "w")
        load = subprocess.Popen(cmd, stdout=load_out, stderr=subprocess.STDOUT)
        self.procs["load"] = load
        try:
            leader = first
            self.wait_traffic(leader, 300, f"traffic on the leader {leader}")
            for k in (1, 2):
                leader = self.failover(k)
            self.wait_traffic(leader, 200, f"traffic on {leader} with both replicas back")
        finally:
            open(stop, "w").close()
            try:
                load.wait(300)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait()
        out = open(os.path.join(self.work, "chaos.log"), errors="replace").read()
        m = re.search(r"^chaos summary: .*$", out, re.M)
        summary = m.group(0) if m else None
        print(out[-3000:] if load.returncode else "\n".join(out.splitlines()[-12:]), flush=True)
        self.ok(summary is not None, "the checker printed its summary")
        self.ok(load.returncode == 0, f"the checker found nothing (report: {self.work}/report.txt)")
        self.ok(bool(summary and " lost=0 " in summary), "nothing committed was lost")
        self.check_worker(leader, "at the end")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--port-base", type=int, default=int(os.environ.get("HA_PORT_BASE", 56700)))
    p.add_argument("--bindir", default=os.environ.get("PG_BINDIR") or "/usr/lib/postgresql/15/bin")
    p.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED") or 0) or None)
    a = p.parse_args()
    ha = Ha(a)
    try:
        ha.run()
    except Exception as e:          # noqa: BLE001 - reported as a failure, then cleaned up
        import traceback
        traceback.print_exc()
        ha.ok(False, f"the scenario ran to its end ({e})")
    finally:
        p = ha.procs.get("load")
        if p and p.poll() is None:
            p.kill()
        ha.stop_all()
    ha.cores()
    print(f"ha tests: {ha.passed} passed, {ha.failed} failed", flush=True)
    return 0 if ha.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
