// The Node load process of the soak test (tests/soak/run.sh): drives every
// backend given on the command line through the polylock package (async
// loops on the one JS thread) until STOP_FILE exists or MAX_SECONDS pass,
// and appends its counters to STATS_FILE every few seconds. The workload and
// the stats line format are the same in every language
// (tests/soak/README.md).
//
//   node soak.js STATS_FILE STOP_FILE RUN_ID MAX_SECONDS BACKEND=URL...
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { setTimeout: sleep } = require("node:timers/promises");
const { Client } = require(path.join(__dirname, "..", "..", "bindings-node"));

const LANG = "node";
const STATS_EVERY = 5000;
const WAIT = 60000;
const LEASE_TTL = 3000;
const LEASE_HOLD = 8000;
const SEM_LIMIT = 3;
const MAX_ERROR_LINES = 50;
const PAUSE = Number(process.env.POLYLOCK_SOAK_PAUSE_MS ?? "1000");
const COUNTERS = ["ops", "lost", "lost_after_release", "errors", "waits", "long_holds", "connects", "watch_events"];

let stopped = false;
let errorLines = 0;

/** Sleeps `ms` in short steps; false when told to stop meanwhile. */
async function pause(ms) {
  const end = Date.now() + ms;
  while (!stopped) {
    const left = end - Date.now();
    if (left <= 0) return true;
    await sleep(Math.min(left, 250));
  }
  return false;
}

class Backend {
  constructor(name, url, run) {
    this.name = name;
    this.url = url;
    this.run = run;
    this.counts = Object.fromEntries(COUNTERS.map((key) => [key, 0]));
  }

  error(what, err) {
    this.counts.errors += 1;
    errorLines += 1;
    if (errorLines <= MAX_ERROR_LINES) {
      console.error(`soak (${LANG}): ${this.name}: ${what}: ${err && err.code ? err.code + " " : ""}${err && err.message ? err.message : err}`);
    }
  }
}

/**
 * What a lock's lost listener saw: a loss of the lease held now, or a loss
 * reported for a lease whose release had begun (or an earlier one): a
 * release that succeeds means that lease was not lost, the report is
 * spurious (lost_after_release).
 */
function lossFlag(b, lock) {
  const flag = { lost: false, releasing: true, holder: null };
  lock.onLost((event) => {
    const late = flag.releasing || event.holder !== flag.holder;
    console.error(`soak (${LANG}): ${b.name}: lost callback${late ? " after release began" : ""}: ${event.name} holder ${event.holder}: ${event.reason}`);
    if (late) b.counts.lost_after_release += 1;
    else flag.lost = true;
  });
  return flag;
}

function held(flag, lease) {
  flag.lost = false;
  flag.holder = lease.holder;
  flag.releasing = false;
}

/** Releases the lock's lease, counting a loss (seen while held, or by the release) once. */
async function release(b, lock, flag) {
  flag.releasing = true;
  try {
    await lock.release();
    b.counts.ops += 2;
  } catch (err) {
    if (err && err.code === "LOCK_LOST") {
      console.error(`soak (${LANG}): ${b.name}: release of ${lock.name}: ${err.message}`);
      flag.lost = true;
    } else b.error("release", err);
  }
  if (flag.lost) {
    b.counts.lost += 1;
    console.error(`soak (${LANG}): ${b.name}: lease on ${lock.name} lost`);
  }
}

async function holdShared(b, lock, flag, holdMs) {
  const began = Date.now();
  let lease;
  try {
    lease = await lock.acquire({ timeout: WAIT });
  } catch (err) {
    b.error(`acquire ${lock.name}`, err);
    return;
  }
  held(flag, lease);
  if (Date.now() - began >= 10) b.counts.waits += 1;
  await sleep(holdMs);
  await release(b, lock, flag);
}

async function cycles(b, client, worker) {
  const own = client.lock(`soak/${b.run}/${LANG}/w${worker}/u`);
  const mutex = client.lock(`soak/${b.run}/mutex`);
  const sem = client.lock(`soak/${b.run}/sem`, { limit: SEM_LIMIT });
  const ownFlag = lossFlag(b, own);
  const mutexFlag = lossFlag(b, mutex);
  const semFlag = lossFlag(b, sem);
  let rounds = 0;
  while (!stopped) {
    rounds += 1;
    for (let i = 0; i < 3; i++) {
      try {
        const lease = await own.tryAcquire();
        if (lease === null) {
          b.error("tryAcquire", `${own.name} busy`);
          continue;
        }
        held(ownFlag, lease);
        await release(b, own, ownFlag);
      } catch (err) {
        b.error("tryAcquire", err);
      }
    }
    await holdShared(b, mutex, mutexFlag, 20 + Math.random() * 60);
    await holdShared(b, sem, semFlag, 50 + Math.random() * 100);
    if (worker === 0 && rounds % 3 === 0) await connectCycle(b);
    await pause(PAUSE + (Math.random() * PAUSE) / 2);
  }
}

async function connectCycle(b) {
  try {
    const client = new Client(b.url);
    await client.connect();
    const lock = client.lock(`soak/${b.run}/${LANG}/connect`);
    const flag = lossFlag(b, lock);
    const lease = await lock.tryAcquire();
    if (lease === null) b.error("connect tryAcquire", "busy");
    else {
      held(flag, lease);
      await release(b, lock, flag);
    }
    b.counts.connects += 1;
  } catch (err) {
    b.error("connect", err);
  }
}

async function longLeases(b, client) {
  const lock = client.lock(`soak/${b.run}/${LANG}/lease`, { ttl: LEASE_TTL });
  const flag = lossFlag(b, lock);
  while (!stopped) {
    let lease;
    try {
      lease = await lock.acquire({ timeout: WAIT });
    } catch (err) {
      b.error("acquire lease", err);
      await pause(1000);
      continue;
    }
    held(flag, lease);
    const full = await pause(LEASE_HOLD);
    if (!lock.isHeld) {
      console.error(`soak (${LANG}): ${b.name}: ${lock.name} not held at the end`);
      flag.lost = true;
    }
    await release(b, lock, flag);
    if (full) b.counts.long_holds += 1;
    await pause(1000);
  }
}

/** Watches the shared mutex, counting its events; a new watch every 30 s. */
async function watches(b, client) {
  const name = `soak/${b.run}/mutex`;
  const timedOut = Symbol("timeout");
  while (!stopped) {
    let events;
    try {
      events = client.watch(name);
      await events.ready();
    } catch (err) {
      b.error("watch", err);
      await pause(5000);
      continue;
    }
    const began = Date.now();
    let pending = null;
    try {
      while (!stopped && Date.now() - began < 30000) {
        pending = pending ?? events.next();
        const got = await Promise.race([pending, sleep(1000).then(() => timedOut)]);
        if (got === timedOut) continue;
        pending = null;
        if (got.done) {
          b.error("watch", "the event stream ended");
          break;
        }
        b.counts.watch_events += 1;
      }
    } catch (err) {
      b.error("watch", err);
    }
    try {
      await events.return();
      if (pending) await pending;
    } catch (err) {
      b.error("watch return", err);
    }
  }
}

function writeStats(file, backends) {
  const now = (Date.now() / 1000).toFixed(3);
  const text = backends
    .map((b) => `${now}\t${b.name}\t${COUNTERS.map((key) => `${key}=${b.counts[key]}`).join("\t")}\n`)
    .join("");
  fs.appendFileSync(file, text);
}

async function main() {
  const [stats, stopFile, run, maxSeconds, ...specs] = process.argv.slice(2);
  const backends = [];
  const loops = [];
  for (const spec of specs) {
    const at = spec.indexOf("=");
    const b = new Backend(spec.slice(0, at), spec.slice(at + 1), run);
    const client = new Client(b.url);
    await client.connect();
    const caps = await client.capabilities();
    loops.push(cycles(b, client, 0), cycles(b, client, 1), longLeases(b, client));
    if (caps.eventStream) loops.push(watches(b, client));
    backends.push(b);
  }
  const deadline = Date.now() + Number(maxSeconds) * 1000;
  while (!fs.existsSync(stopFile) && Date.now() < deadline) {
    writeStats(stats, backends);
    await sleep(STATS_EVERY);
  }
  stopped = true;
  const all = Promise.all(loops).then(() => true);
  const done = await Promise.race([all, sleep(WAIT + 30000).then(() => false)]);
  if (!done) backends[0].error("stop", "load loops still running");
  writeStats(stats, backends);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
