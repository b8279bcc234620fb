// pg-boss driver for bench/bench.py (pg-boss as its users run it: one Node
// process, pg-boss's own pool, its send / insert / fetch / complete / work API).
//
//   node pgboss.mjs setup QUEUE                      (re)create the queue
//   node pgboss.mjs send QUEUE CLIENTS SECONDS BATCH  N loops of send (BATCH 1) or insert(BATCH jobs)
//   node pgboss.mjs fill QUEUE N                     N jobs, inserted 1000 at a time
//   node pgboss.mjs drain QUEUE CONSUMERS BATCH      fetch(BATCH) + complete(ids) until empty
//   node pgboss.mjs w4 QUEUE PRODUCERS CONSUMERS SECONDS   producers at 1 job per send, work() consumers
//
// Prints one JSON object on stdout.  Connection: PGHOST (socket directory),
// PGPORT, PGUSER, PGDATABASE; the pg-boss package from PGBOSS_DIR/node_modules.
const mod = await import(`${process.env.PGBOSS_DIR}/node_modules/pg-boss/dist/index.js`);
const PgBoss = mod.PgBoss ?? mod.default;

const [cmd, queue, ...args] = process.argv.slice(2);
const BODY = { order: 42, customer: 'c-17', amount: 30 };
const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function boss(max) {
	const b = new PgBoss({
		host: process.env.PGHOST, port: Number(process.env.PGPORT), user: process.env.PGUSER || 'postgres',
		database: process.env.PGDATABASE || 'postgres', max,
		// no cron / scheduling work during a measurement; supervision (expiry,
		// retention) stays on as it does for users
		schedule: false,
	});
	b.on('error', (e) => { console.error('pg-boss error:', e.message); });
	return b;
}

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

if (cmd === 'setup') {
	const b = boss(2);
	await b.start();
	try { await b.deleteQueue(queue); } catch (e) { /* not there */ }
	await b.createQueue(queue);
	await b.stop({ graceful: false, wait: true });
	out({ ok: true });
} else if (cmd === 'send') {
	const [clients, seconds, batch] = args.map(Number);
	const b = boss(clients + 1);
	await b.start();
	const jobs = Array.from({ length: batch }, () => ({ data: BODY }));
	let sent = 0;
	const t0 = now();
	const end = t0 + seconds;
	await Promise.all(Array.from({ length: clients }, async () => {
		while (now() < end) {
			if (batch === 1) { await b.send(queue, BODY); sent += 1; }
			else { await b.insert(queue, jobs); sent += batch; }
		}
	}));
	const secs = now() - t0;
	await b.stop({ graceful: false, wait: true });
	out({ sent, secs });
} else if (cmd === 'fill') {
	const [n] = args.map(Number);
	const b = boss(2);
	await b.start();
	for (let i = 0; i < n; i += 1000) {
		const k = Math.min(1000, n - i);
		await b.insert(queue, Array.from({ length: k }, (_, j) => ({ data: { n: i + j, pad: 'x'.repeat(40) } })));
	}
	await b.stop({ graceful: false, wait: true });
	out({ sent: n });
} else if (cmd === 'drain') {
	const [consumers, batch] = args.map(Number);
	const b = boss(consumers + 1);
	await b.start();
	let received = 0;
	const t0 = now();
	await Promise.all(Array.from({ length: consumers }, async () => {
		for (;;) {
			const jobs = await b.fetch(queue, { batchSize: batch });
			if (!jobs || jobs.length === 0) break;
			let bytes = 0;
			for (const j of jobs) bytes += JSON.stringify(j.data).length;	// read the bodies
			await b.complete(queue, jobs.map((j) => j.id));
			received += jobs.length;
		}
	}));
	const secs = now() - t0;
	await b.stop({ graceful: false, wait: true });
	out({ received, secs });
} else if (cmd === 'w4') {
	const [producers, consumers, seconds] = args.map(Number);
	const b = boss(producers + consumers + 2);
	await b.start();
	let sent = 0, received = 0;
	const lat = [];
	let stopping = false;
	// consumers: pg-boss workers, batches of up to 100, the shortest polling
	// interval pg-boss allows (0.5 s)
	const workers = [];
	for (let i = 0; i < consumers; i++) {
		workers.push(await b.work(queue, { batchSize: 100, pollingIntervalSeconds: 0.5, includeMetadata: true },
			async (jobs) => {
				const t = Date.now();
				for (const j of jobs) lat.push(t - new Date(j.createdOn).getTime());
				received += jobs.length;
			}));
	}
	const t0 = now();
	const end = t0 + seconds;
	await Promise.all(Array.from({ length: producers }, async () => {
		while (now() < end) { await b.send(queue, BODY); sent += 1; }
	}));
	const sendSecs = now() - t0;
	// let the workers take what was sent (at most 3 more seconds), then stop
	for (let i = 0; i < 30 && received < sent; i++) await sleep(100);
	stopping = true;
	const secs = now() - t0;
	await b.offWork(queue, { wait: true });
	await b.stop({ graceful: true, wait: true, timeout: 5000 });
	lat.sort((x, y) => x - y);
	const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
	out({ sent, received, secs, send_secs: sendSecs, p50: pct(0.5), p99: pct(0.99), max: lat.length ? lat[lat.length - 1] : null });
} else {
	console.error(`unknown command ${cmd}`);
	process.exit(2);
}
process.exit(0);
