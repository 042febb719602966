// Node's BullMQ on Pagecast's queues, as Bull Board reads them (tests/test_ops_bullmq.py).
//   node pagecast_queues.js <redis url> read                 counts, jobs and workers of both queues
//   node pagecast_queues.js <redis url> add <name> <data>    add a job to the sending queue
//   node pagecast_queues.js <redis url> state <job id>       a sending job's state
//   node pagecast_queues.js <redis url> drain                remove the sending queue's waiting jobs
// Prints one JSON value.
"use strict";
const { Queue } = require("bullmq");

const QUEUES = { sending: "pagecast", webhooks: "pagecast-webhooks" };
const STATES = ["waiting", "prioritized", "active", "delayed", "completed", "failed"];

function connection(url) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number(u.pathname.slice(1) || 0),
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

async function read(queue) {
  const jobs = await queue.getJobs(STATES, 0, 100);
  return {
    counts: await queue.getJobCounts(...STATES),
    jobs: jobs.map((job) => ({ id: job.id, name: job.name, data: job.data })),
    workers: (await queue.getWorkers()).map((w) => ({ name: w.name, rawname: w.rawname })),
  };
}

async function main() {
  const [url, command, ...args] = process.argv.slice(2);
  const queues = {};
  for (const [key, name] of Object.entries(QUEUES)) {
    queues[key] = new Queue(name, { connection: connection(url) });
    // A connection still opening when the command is done and closes it says "Connection is
    // closed" as an 'error' event: without a listener, Node ends the process with it.
    queues[key].on("error", () => {});
  }
  try {
    for (const queue of Object.values(queues)) await queue.waitUntilReady();
    let out;
    if (command === "read") {
      out = {};
      for (const [key, queue] of Object.entries(queues)) out[key] = await read(queue);
    } else if (command === "add") {
      const job = await queues.sending.add(args[0], JSON.parse(args[1]), { priority: 5 });
      out = { id: job.id };
    } else if (command === "state") {
      const job = await queues.sending.getJob(args[0]);
      out = {
        state: await queues.sending.getJobState(args[0]),
        failedReason: job ? job.failedReason || null : null,
      };
    } else if (command === "drain") {
      await queues.sending.drain(true);
      out = { ok: true };
    } else {
      throw new Error(`unknown command ${command}: use read, add, state or drain`);
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    for (const queue of Object.values(queues)) await queue.close();
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
