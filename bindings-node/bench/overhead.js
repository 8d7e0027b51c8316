// Node vs native Rust: median tryAcquire + release on memory:// (the Rust
// side is core/benches/try_acquire_release.rs through the blocking API; the
// two run alternately in chunks), and handoff latency on MongoDB (holder's
// release starts → a parked waiter holds) next to mongo-dlock's default
// 5 s poll period.
//
//   tests/with-servers.sh node bindings-node/bench/overhead.js
//
// POLYLOCK_BENCH_ITERATIONS sets the samples (default 2000; handoffs: /10).
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

async function nodeSamples(url, count) {
  const lock = new Client(url).lock(`bench/node-try-${process.pid}`);
  const samples = [];
  for (let i = 0; i < WARMUP + count; i++) {
    const started = process.hrtime.bigint();
    await lock.tryAcquire();
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
    const waiting = waiter.acquire({ timeout: 60000 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // let it park
    const started = process.hrtime.bigint();
    await holder.release();
    await waiting;
    if (i >= 2) samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    await waiter.release();
  }
  return samples;
}

(async () => {
  const perChunk = Math.max(1, Math.floor(ITERATIONS / CHUNKS));
  const ours = [];
  const native = [];
  for (let i = 0; i < CHUNKS; i++) {
    native.push(...rustSamples("memory://", perChunk));
    ours.push(...(await nodeSamples("memory://", perChunk)));
  }
  const [n, r] = [median(ours), median(native)];
  console.log(`memory:// tryAcquire + release, ${perChunk * CHUNKS} samples per side in ${CHUNKS} alternating chunks`);
  console.log(`  Node ${n.toFixed(1)} µs   native Rust (blocking API) ${r.toFixed(1)} µs   ratio ${(n / r).toFixed(2)}`);
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
