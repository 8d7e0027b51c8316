// The MongoDB peer of polylock's benchmark harness (bench/run.sh):
// mongodb-lock from npm, measured on the scenarios of
// core/benches/scenarios.rs it supports, printed as text and appended as
// JSON lines (backend, subject, metric, value) to POLYLOCK_BENCH_JSON.
//
//   npm ci && node bench.js mongodb://127.0.0.1:27017/
//
// Why this peer: mongo-dlock (npm, the mongo-dlock-style client) installs
// but cannot run on FerretDB v1 — it creates a TTL index
// ("expireAfterSeconds" is not implemented there). mongodb-lock offers
// acquire and release only: no waiting and no renewal, so its waiters poll,
// every POLL_MS (100 ms here; a user picks their own).
"use strict";
const fs = require("node:fs");
const { promisify } = require("node:util");
const { MongoClient } = require("mongodb");
const mongodbLock = require("mongodb-lock");

const iterations = Number(process.env.POLYLOCK_BENCH_ITERATIONS || 200);
const seconds = Number(process.env.POLYLOCK_BENCH_SECONDS || 5);
const POLL_MS = 100;
const SUBJECT = "mongodb-lock";
// The backend's label in the report: one per FerretDB storage handler.
const BACKEND = process.env.POLYLOCK_BENCH_BACKEND || "mongodb";

function emit(metric, value) {
  console.log(`${BACKEND.padEnd(8)} ${SUBJECT.padEnd(22)} ${metric.padEnd(32)} ${value.toFixed(1).padStart(14)}`);
  if (process.env.POLYLOCK_BENCH_JSON) {
    const line = JSON.stringify({ backend: BACKEND, subject: SUBJECT, metric, value });
    fs.appendFileSync(process.env.POLYLOCK_BENCH_JSON, line + "\n");
  }
}

function percentiles(samples) {
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(samples.length * q))];
  return [at(0.5), at(0.99)];
}

const micros = (start) => Number(process.hrtime.bigint() - start) / 1000;
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

function lockOf(collection, name) {
  const l = mongodbLock(collection, name, { timeout: 15000, removeExpired: true });
  const acquire = promisify(l.acquire.bind(l));
  return {
    ensureIndexes: promisify(l.ensureIndexes.bind(l)),
    acquire, // resolves to a code, or null when held elsewhere
    release: promisify(l.release.bind(l)),
    async wait() {
      for (;;) {
        const code = await acquire();
        if (code) return code;
        await pause(POLL_MS);
      }
    },
  };
}

async function uncontended(collection, run) {
  const l = lockOf(collection, `bench/uncontended-${run}`);
  const samples = [];
  for (let i = 0; i < 20 + iterations; i++) {
    const start = process.hrtime.bigint();
    const code = await l.acquire();
    if (!code) throw new Error("uncontended acquire failed");
    await l.release(code);
    if (i >= 20) samples.push(micros(start));
  }
  const [p50, p99] = percentiles(samples);
  emit("uncontended_p50_us", p50);
  emit("uncontended_p99_us", p99);
}

async function handoff(collection, run) {
  const name = `bench/handoff-${run}`;
  const holder = lockOf(collection, name);
  const waiter = lockOf(collection, name);
  const samples = [];
  for (let i = 0; i < Math.min(iterations, 50); i++) {
    const code = await holder.acquire();
    if (!code) throw new Error("holder acquire failed");
    const got = waiter.wait().then((c) => [process.hrtime.bigint(), c]);
    // Release at a random point of the waiter's poll period (it has tried once).
    await pause(POLL_MS * (1 + Math.random()));
    const released = process.hrtime.bigint();
    await holder.release(code);
    const [at, next] = await got;
    samples.push(Number(at - released) / 1000);
    await waiter.release(next);
  }
  const [p50, p99] = percentiles(samples);
  emit("handoff_p50_us", p50);
  emit("handoff_p99_us", p99);
}

async function contended(collection, run, contenders) {
  const name = `bench/contended-${contenders}-${run}`;
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: contenders }, async () => {
      const l = lockOf(collection, name);
      while (Date.now() < deadline) {
        const code = await l.wait();
        await l.release(code);
        done++;
      }
    }),
  );
  emit(`throughput_${contenders}_contenders_per_s`, done / (micros(start) / 1e6));
}

async function main() {
  const client = await MongoClient.connect(process.argv[2], { useUnifiedTopology: true });
  const collection = client.db("polylock_bench_peer").collection("locks");
  await lockOf(collection, "setup").ensureIndexes();
  const run = `${process.pid}-${Date.now()}`;
  await uncontended(collection, run);
  await handoff(collection, run);
  for (const n of [16, 64]) await contended(collection, run, n);
  await client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
