// The Node contender of the mixed-client fault suite (tests/mixed/run.sh
// has the whole protocol; tests/mixed/contenders.sh builds the addon).
//
//   node contend.js run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP
//   node contend.js clock        print "node NS" (the clock probe)
//
// One Client on URL; one Lock per name of NAMES ("NAME=LIMIT,...": limit 1
// a mutex, more a semaphore), made when first picked. Each round (until the
// file STOP exists, then a "done" line): pick a name with splitmix64 seeded
// by SEED; acquire (20 s timeout); register the lease's onLost listener;
// send "WRITE NAME TOKEN ID" to the fenced store on the Unix socket STORE;
// hold HOLD_MS; write again; release. Every step is one line
// "WHAT node PID ID NAME TOKEN T0 T1 RESULT" appended to LOG in one
// write(2) (fs.writeSync on an O_APPEND descriptor); T0/T1 are
// process.hrtime.bigint(): libuv's uv_hrtime, which on Linux is
// clock_gettime(CLOCK_MONOTONIC). Error kinds are the binding's codes
// lowercased, with LOCK_TIMEOUT, LOCK_LOST and ABORTED as the core's
// timeout, lost and cancelled.
"use strict";
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const { setTimeout: sleep } = require("node:timers/promises");

const LANG = "node";
const ACQUIRE_TIMEOUT_MS = 20000;
const CONNECT_FOR_MS = 30000;
const STORE_TRIES = 5;
const STORE_TIMEOUT_MS = 5000;
const MASK = (1n << 64n) - 1n;
const now = () => process.hrtime.bigint();

/** splitmix64, the PRNG every contender uses to pick names. */
class SplitMix64 {
  constructor(seed) {
    this.state = BigInt(seed) & MASK;
  }
  next() {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }
}

/** The history file, opened O_APPEND; each line is one write. */
class Log {
  constructor(file) {
    this.fd = fs.openSync(file, "a");
  }
  line(what, id, name, token, t0, t1, result) {
    const data = Buffer.from(`${what} ${LANG} ${process.pid} ${id} ${name} ${token} ${t0} ${t1} ${result}\n`);
    const written = fs.writeSync(this.fd, data);
    if (written !== data.length) console.error(`contend (node): short log write (${written} of ${data.length})`);
  }
}

/** A connection to the fenced store, reconnected when it fails. */
class Store {
  constructor(file) {
    this.file = file;
    this.socket = null;
    this.buffer = "";
    this.waiter = null; // (line | null) => void, the pending reply's
  }

  /** One connection attempt: the socket or null. */
  attempt() {
    return new Promise((resolve) => {
      const socket = net.createConnection(this.file);
      const fail = () => {
        socket.destroy();
        resolve(null);
      };
      socket.once("error", fail);
      socket.once("connect", () => {
        socket.off("error", fail);
        resolve(socket);
      });
    });
  }

  /** Up to STORE_TRIES connection attempts, 50 ms apart. */
  async reconnect() {
    this.close();
    for (let i = 0; i < STORE_TRIES; i++) {
      if (i > 0) await sleep(50);
      const socket = await this.attempt();
      if (socket === null) continue;
      socket.setEncoding("utf8");
      socket.on("data", (chunk) => {
        this.buffer += chunk;
        this.deliver();
      });
      const gone = () => {
        if (this.socket === socket) this.close();
      };
      socket.on("error", gone);
      socket.on("close", gone);
      this.socket = socket;
      return;
    }
  }

  deliver() {
    const at = this.buffer.indexOf("\n");
    if (at < 0 || this.waiter === null) return;
    const line = this.buffer.slice(0, at);
    this.buffer = this.buffer.slice(at + 1);
    const waiter = this.waiter;
    this.waiter = null;
    waiter(line);
  }

  close() {
    if (this.socket !== null) this.socket.destroy();
    this.socket = null;
    this.buffer = "";
    if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter(null);
    }
  }

  /** One write: "ok", "stale" or "error" (then reconnected). */
  async write(name, token, id) {
    if (this.socket === null) await this.reconnect();
    if (this.socket === null) return "error";
    const reply = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        resolve(null);
      }, STORE_TIMEOUT_MS);
      this.waiter = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.socket.write(`WRITE ${name} ${token} ${id}\n`);
    });
    if (reply === "OK") return "ok";
    if (reply !== null && reply.startsWith("STALE")) return "stale";
    await this.reconnect();
    return "error";
  }
}

const CORE_KINDS = { LOCK_TIMEOUT: "timeout", LOCK_LOST: "lost", ABORTED: "cancelled" };

/** The error's stable kind: the binding's code as the core's kind. */
function kind(err) {
  const code = err && typeof err.code === "string" && err.code !== "" ? err.code : null;
  if (code === null) return (err && err.name ? err.name : "error").toLowerCase();
  return CORE_KINDS[code] || code.toLowerCase();
}

/** A connected client, retrying connection errors for up to CONNECT_FOR_MS. */
async function connect(Client, url) {
  const deadline = Date.now() + CONNECT_FOR_MS;
  for (;;) {
    try {
      return await new Client(url).connect();
    } catch (err) {
      if (kind(err) !== "connection" || Date.now() >= deadline) throw err;
      await sleep(500);
    }
  }
}

async function run(url, logFile, storeFile, namesText, ttlMs, holdMs, seed, stop) {
  const { Client } = require(path.join(__dirname, "..", "..", "bindings-node"));
  const log = new Log(logFile);
  const names = namesText.split(",").map((entry) => {
    const [name, limit] = entry.split("=");
    return [name, Number(limit)];
  });
  const rng = new SplitMix64(seed);
  const client = await connect(Client, url);
  const store = new Store(storeFile);
  await store.reconnect();
  const locks = new Map();
  for (let seq = 1; ; seq++) {
    if (fs.existsSync(stop)) {
      const t = now();
      log.line("done", "-", "-", "-", t, t, "-");
      return;
    }
    const [name, limit] = names[Number(rng.next() % BigInt(names.length))];
    const id = `${LANG}-${process.pid}-${seq}`;
    let lock = locks.get(name);
    if (lock === undefined) {
      lock = client.lock(name, { ttl: Number(ttlMs), limit });
      locks.set(name, lock);
    }

    let t0 = now();
    let lease;
    try {
      lease = await lock.acquire({ timeout: ACQUIRE_TIMEOUT_MS });
    } catch (err) {
      const k = kind(err);
      log.line("acquire", id, name, "-", t0, now(), k === "timeout" ? "timeout" : `error:${k}`);
      if (k !== "timeout") await sleep(100);
      continue;
    }
    let t1 = now();
    const token = lease.fencingToken === null || lease.fencingToken === undefined ? "-" : String(lease.fencingToken);
    log.line("acquire", id, name, token, t0, t1, "ok");

    // Lost: once per lease, never after a normal release.
    let ended = false;
    lease.onLost(() => {
      if (ended) return;
      ended = true;
      const t = now();
      log.line("lost", id, name, token, t, t, "-");
    });

    for (const pause of [Number(holdMs), null]) {
      t0 = now();
      const result = await store.write(name, token, id);
      log.line("write", id, name, token, t0, now(), result);
      if (pause !== null) await sleep(pause);
    }

    // Retried through a server restart (about 15 s): a handle dropped with
    // its lease would keep it until garbage-collected.
    let settled = false;
    for (let i = 0; i < 30 && !settled; i++) {
      if (i >= 2) await sleep(500);
      t0 = now();
      try {
        await lock.release();
      } catch (err) {
        const k = kind(err);
        log.line("release", id, name, token, t0, now(), k === "lost" ? "lost" : `error:${k}`);
        settled = k === "lost";
        continue;
      }
      t1 = now();
      ended = true;
      log.line("release", id, name, token, t0, t1, "ok");
      settled = true;
    }
    // Still held: a new handle next time (a handle holds one lease at a
    // time); the garbage-collected one releases it in the background.
    if (!settled) locks.delete(name);
  }
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 1 && args[0] === "clock") {
    console.log(`${LANG} ${process.hrtime.bigint()}`);
    return;
  }
  if (args.length !== 9 || args[0] !== "run") {
    console.error("usage: contend.js run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP | contend.js clock");
    process.exit(2);
  }
  await run(...args.slice(1));
  process.exit(0);
}

main().catch((err) => {
  console.error("contend (node):", err);
  process.exit(1);
});
