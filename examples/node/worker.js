#!/usr/bin/env node
// A pg_courier worker in Node.js (npm package "pg"): waits for messages,
// handles each one, acks it on success and nacks it with the reason on
// failure; SIGTERM (or Ctrl-C) stops it cleanly after the batch in hand.
//
//   npm install pg
//   COURIER_DSN="postgresql://..." node worker.js
//
// Environment: COURIER_DSN (a postgresql:// URL; unset = the PG* variables),
// COURIER_TOPIC (orders), COURIER_GROUP (shipping_node), COURIER_BATCH (10),
// COURIER_WAIT (seconds a receive waits when there is nothing, 2: also the
// longest a stop takes).  Same contract as examples/python/worker.py: at
// least once, the handler's writes commit with the ack, receipts make a
// late ack or nack harmless.
'use strict';
const { Client } = require('pg');

const topic = process.env.COURIER_TOPIC || 'orders';
const group = process.env.COURIER_GROUP || 'shipping_node';
const batch = Number(process.env.COURIER_BATCH || 10);
const wait = Number(process.env.COURIER_WAIT || 2);
const visibility = '60 seconds';

let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });

// The work.  Runs in the transaction that acks the message.
async function handle(client, msg) {
  const body = msg.body;
  if (body.fail_first_attempt && msg.attempt === 1) {
    throw new Error('carrier API timed out');   // nacked, retried
  }
  await client.query(
    `INSERT INTO shipments (order_id, worker, attempt, message_id)
     VALUES ($1, 'node', $2, $3) ON CONFLICT DO NOTHING`,
    [body.order, msg.attempt, msg.id]);
}

async function main() {
  const client = new Client(process.env.COURIER_DSN ? { connectionString: process.env.COURIER_DSN } : {});
  await client.connect();
  await client.query("SET application_name = 'courier-worker-node'");
  let acked = 0;
  let nacked = 0;
  let leaseLost = 0;
  while (!stopping) {
    // Sleeps in the server until something is receivable or `wait` passes.
    const { rows } = await client.query(
      `SELECT id, attempt, body, receipt FROM courier.receive($1, $2, max_messages => $3,
         visibility_timeout => $4, wait => make_interval(secs => $5))`,
      [topic, group, batch, visibility, wait]);
    for (const row of rows) {
      const msg = { id: row.id, attempt: row.attempt, body: row.body };   // id is a string (bigint)
      try {
        await client.query('BEGIN');
        await handle(client, msg);
        const ack = await client.query('SELECT courier.ack($1, $2, $3, receipt => $4) AS ok',
          [topic, group, row.id, row.receipt]);
        if (!ack.rows[0].ok) {
          // our lease ran out and another worker has the message now: undo our work
          await client.query('ROLLBACK');
          leaseLost++;
          continue;
        }
        await client.query('COMMIT');
        acked++;
      } catch (err) {
        await client.query('ROLLBACK');
        await client.query('SELECT courier.nack($1, $2, $3, reason => $4, receipt => $5)',
          [topic, group, row.id, `${err.name}: ${err.message}`, row.receipt]);
        nacked++;
        console.error(`message ${row.id} attempt ${row.attempt} failed: ${err.message}`);
      }
    }
  }
  await client.end();
  console.log(JSON.stringify({ worker: 'node', acked, nacked, lease_lost: leaseLost }));
}

main().catch((err) => { console.error(err); process.exit(1); });
