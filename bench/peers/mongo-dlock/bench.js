// The MongoDB peer of polylock's benchmark harness (bench/run.sh):
// mongo-dlock from npm (a mongo-dlock-style Node client, polling on wait),
// measured on the scenarios of core/benches/scenarios.rs that it supports,
// printed as text and appended as JSON lines (backend, subject, metric,
// value) to POLYLOCK_BENCH_JSON.
//
//   npm ci && node bench.js mongodb://127.0.0.1:27017/
//
// Its waits poll every `wait_lock_period` (default 5 000 ms); the figures
// use that default, as its users get it.
"use strict";
const fs = require("node:fs");
const { promisify } = require("node:util");
const MDL = require("mongo-dlock");

const iterations = Number(process.env.POLYLOCK_BENCH_ITERATIONS || 200);
const seconds = Number(process.env.POLYLOCK_BENCH_SECONDS || 5);
const handoffs = Number(process.env.POLYLOCK_BENCH_POLLING_HANDOFFS || 10);
const SUBJECT = "mongo-dlock";

function emit(metric, value) {
  console.log(`${"mongodb".padEnd(8)} ${SUBJECT.padEnd(22)} ${metric.padEnd(32)} ${value.toFixed(1).padStart(14)}`);
  if (process.env.POLYLOCK_BENCH_JSON) {
    const line = JSON.stringify({ backend: "mongodb", subject: SUBJECT, metric, value });
    fs.appendFileSync(process.env.POLYLOCK_BENCH_JSON, line + "\n");
  }
}

function percentiles(samples) {
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(samples.length * q))];
  return [at(0.5), at(0.99)];
}

function lockOf(locks, id) {
  const l = locks.dlock({ id, exp_delta: 15000 });
  return {
    lock: promisify(l.lock.bind(l)),
    waitLock: promisify(l.wait_lock.bind(l)),
    unlock: promisify(l.unlock.bind(l)),
  };
}

const micros = (start) => Number(process.hrtime.bigint() - start) / 1000;

async function uncontended(locks, run) {
  const l = lockOf(locks, `bench/uncontended-${run}`);
  const samples = [];
  for (let i = 0; i < 20 + iterations; i++) {
    const start = process.hrtime.bigint();
    if (!(await l.lock())) throw new Error("uncontended lock failed");
    await l.unlock();
    if (i >= 20) samples.push(micros(start));
  }
  const [p50, p99] = percentiles(samples);
  emit("uncontended_p50_us", p50);
  emit("uncontended_p99_us", p99);
}

async function handoff(locks, run) {
  const id = `bench/handoff-${run}`;
  const holder = lockOf(locks, id);
  const waiter = lockOf(locks, id);
  const samples = [];
  for (let i = 0; i < handoffs; i++) {
    if (!(await holder.lock())) throw new Error("holder lock failed");
    const got = waiter.waitLock().then(() => process.hrtime.bigint());
    // Let the waiter's first try fail and its poll period start.
    await new Promise((r) => setTimeout(r, 100));
    const released = process.hrtime.bigint();
    await holder.unlock();
    samples.push(Number((await got) - released) / 1000);
    await waiter.unlock();
  }
  const [p50, p99] = percentiles(samples);
  emit("handoff_p50_us", p50);
  emit("handoff_p99_us", p99);
}

async function contended(locks, run, contenders) {
  const id = `bench/contended-${contenders}-${run}`;
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: contenders }, async () => {
      const l = lockOf(locks, id);
      while (Date.now() < deadline) {
        await l.waitLock();
        await l.unlock();
        done++;
      }
    }),
  );
  emit(`throughput_${contenders}_contenders_per_s`, done / (micros(start) / 1e6));
}

async function main() {
  const url = process.argv[2];
  const locks = await promisify(MDL)({ url, db: "polylock_bench_peer", coll: "dlocks" });
  const run = `${process.pid}-${Date.now()}`;
  await uncontended(locks, run);
  await handoff(locks, run);
  await contended(locks, run, 16);
  await promisify(locks.close.bind(locks))();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
