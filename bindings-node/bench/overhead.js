// Node vs native Rust: median tryAcquire + release on memory:// and on
// every backend whose test URL is set (the Rust side is
// core/benches/try_acquire_release.rs through the blocking API; the two run
// alternately in chunks), and handoff latency on MongoDB (holder's release
// starts → a parked waiter holds) next to mongo-dlock's default 5 s poll
// period.
//
//   node bindings-node/scripts/build.js    # the release addon
//   tests/with-servers.sh node bindings-node/bench/overhead.js
//   taskset -c 0 node bindings-node/bench/overhead.js   # both sides on one CPU
//
// Unpinned, the Rust side's median swings with how its threads land on the
// CPUs (on a busy 2-core machine 7–11 µs on memory://); pinned, both sides
// pay a context switch per hop and the ratio is steady.
//
// POLYLOCK_BENCH_ITERATIONS sets the samples (default 2000; servers and
// handoffs: /10).
"use strict";
const { execFileSync } = require("node:child_process");
const path = require("node:path");
const { Client } = require("..");

const REPO = path.resolve(__dirname, "../..");
const ITERATIONS = Number(process.env.POLYLOCK_BENCH_ITERATIONS || 2000);
const CHUNKS = 5;
const WARMUP = 20;

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

/** One Lock per URL, so chunks reuse its client (as the Rust side does per run). */
const locks = new Map();

/** Tries that found the lock busy, per URL. */
const busy = new Map();

async function nodeSamples(url, count) {
  if (!locks.has(url)) locks.set(url, new Client(url).lock(`bench/node-try-${process.pid}`));
  const lock = locks.get(url);
  const samples = [];
  for (let i = 0; i < WARMUP + count; i++) {
    const started = process.hrtime.bigint();
    // A try that finds the lock busy (nobody else takes it) is counted, not released.
    if (!(await lock.tryAcquire())) {
      busy.set(url, (busy.get(url) || 0) + 1);
      continue;
    }
    await lock.release();
    if (i >= WARMUP) samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return samples;
}

function rustSamples(url, count) {
  const out = execFileSync(
    "cargo",
    ["bench", "-q", "--locked", "-p", "polylock", "--bench", "try_acquire_release", "--", url],
    { cwd: REPO, env: { ...process.env, POLYLOCK_BENCH_ITERATIONS: String(count) } },
  ).toString();
  const line = out.split("\n").find((l) => l.startsWith(`samples ${url} `));
  return line.split(" ").slice(2).map(Number);
}

async function handoffs(url, count) {
  const name = `bench/node-handoff-${process.pid}`;
  const holder = new Client(url).lock(name);
  const waiter = new Client(url).lock(name);
  const samples = [];
  for (let i = 0; i < count + 2; i++) {
    await holder.acquire({ timeout: 60000 });
    let parked;
    const waitStarted = new Promise((resolve) => (parked = resolve));
    const waiting = waiter.acquire({ timeout: 60000, onWaitStarted: () => parked() });
    await waitStarted;
    const started = process.hrtime.bigint();
    await holder.release();
    await waiting;
    if (i >= 2) samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    await waiter.release();
  }
  return samples;
}

/** Node and Rust samples of `url`, alternating in chunks; prints the medians. */
async function compare(url, iterations) {
  const perChunk = Math.max(1, Math.floor(iterations / CHUNKS));
  const ours = [];
  const native = [];
  for (let i = 0; i < CHUNKS; i++) {
    native.push(...rustSamples(url, perChunk));
    ours.push(...(await nodeSamples(url, perChunk)));
  }
  const [n, r] = [median(ours), median(native)];
  console.log(`${url} tryAcquire + release, ${perChunk * CHUNKS} samples per side in ${CHUNKS} alternating chunks`);
  console.log(`  Node ${n.toFixed(1)} µs   native Rust (blocking API) ${r.toFixed(1)} µs   ratio ${(n / r).toFixed(2)}`);
}

(async () => {
  await compare("memory://", ITERATIONS);
  for (const variable of [
    "POLYLOCK_TEST_CONSUL_URL",
    "POLYLOCK_TEST_LDLM_URL",
    "POLYLOCK_TEST_FERRETDB_URL",
    "POLYLOCK_TEST_MONGODB_URL",
    "POLYLOCK_TEST_POSTGRES_URL",
  ]) {
    if (process.env[variable]) await compare(process.env[variable], Math.max(CHUNKS, Math.floor(ITERATIONS / 10)));
  }
  for (const [url, count] of busy) console.log(`${url.split("://")[0]}: ${count} tries found the lock busy (no other holder)`);
  const mongo = process.env.POLYLOCK_TEST_FERRETDB_URL || process.env.POLYLOCK_TEST_MONGODB_URL;
  if (mongo) {
    const count = Math.max(5, Math.floor(ITERATIONS / 10));
    const samples = await handoffs(mongo, count);
    const m = median(samples);
    console.log(`MongoDB handoff (release starts → waiter holds), ${count} samples: median ${m.toFixed(1)} ms`);
    console.log(`  vs mongo-dlock's default 5000 ms poll period (mean wait 2500 ms): ${(2500 / m).toFixed(0)}x faster than its mean`);
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
