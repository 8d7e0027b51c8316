"use strict";
// Lost callbacks, watch streams, process lifetime, a Rust contender, and
// the generated typings.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync, spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { Client } = require("..");
const { unique, consulUrl } = require("./helpers");

const PACKAGE = path.resolve(__dirname, "..");
const REPO = path.resolve(PACKAGE, "..");

test("onLost fires once when the Consul session is destroyed", async (t) => {
  const url = consulUrl(t);
  if (!url) return;
  const lock = new Client(url).lock(unique("lost"));
  const events = [];
  const fired = new Promise((resolve) => lock.onLost((event) => { events.push(event); resolve(); }));
  const lease = await lock.acquire();
  const response = await fetch(`http://${url.replace("consul://", "")}/v1/session/destroy/${lease.holder}`, { method: "PUT" });
  assert.equal(response.status, 200);
  // The callback's thread-safe function does not keep the process alive
  // (by design); this timer does, until the event comes.
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("no lost event in 60 s")), 60000);
  });
  try {
    await Promise.race([fired, timeout]);
  } finally {
    clearTimeout(timer);
  }
  assert.equal(events.length, 1);
  assert.equal(events[0].name, lock.name);
  assert.ok(events[0].reason.length > 0);
  assert.equal(lease.isHeld, false);
  await assert.rejects(lock.release(), { code: "LOCK_LOST" });
});

test("watch streams lock and unlock events", async () => {
  const url = `memory://node-watch-${process.pid}`;
  const client = new Client(url);
  const name = unique("watch");
  const events = client.watch(name);
  const lock = client.lock(name);
  await lock.acquire();
  await lock.release();
  const seen = [];
  for await (const event of events) {
    seen.push(event.kind);
    if (seen.length === 2) break; // calls return(): the stream closes
  }
  assert.deepEqual(seen, ["acquired", "released"]);
});

test("lost callbacks do not keep the process alive", () => {
  const script = `
    const { Client } = require(${JSON.stringify(PACKAGE)});
    (async () => {
      const lock = new Client("memory://").lock("held-at-exit");
      await lock.acquire();
      lock.onLost(() => console.log("lost"));
      console.log("holding");
    })();`;
  const out = execFileSync(process.execPath, ["-e", script], { timeout: 60000 }).toString();
  assert.match(out, /holding/);
});

test("mutual exclusion with a Rust contender", async (t) => {
  const url = consulUrl(t);
  if (!url) return;
  execFileSync("cargo", ["build", "-q", "--locked", "-p", "polylock", "--example", "contend"], { cwd: REPO, stdio: "inherit" });
  const name = unique("mixed");
  const log = path.join(os.tmpdir(), `polylock-node-mixed-${process.pid}.log`);
  fs.rmSync(log, { force: true });
  const rounds = 15;
  const rust = spawn(path.join(REPO, "target/debug/examples/contend"), [url, name, String(rounds), log], { stdio: "inherit" });
  const exited = new Promise((resolve) => rust.on("exit", resolve));
  const lock = new Client(url).lock(name);
  for (let i = 0; i < rounds; i++) {
    const lease = await lock.acquire({ timeout: 120000 });
    fs.appendFileSync(log, `start node ${lease.fencingToken}\n`);
    fs.appendFileSync(log, `end node ${lease.fencingToken}\n`);
    await lock.release();
  }
  assert.equal(await exited, 0);
  const words = fs.readFileSync(log, "utf8").split(/\s+/).filter(Boolean);
  const records = [];
  for (let i = 0; i < words.length; i += 3) records.push(words.slice(i, i + 3));
  assert.equal(records.length, 4 * rounds);
  const tokens = [];
  for (let i = 0; i < records.length; i += 2) {
    const [start, end] = [records[i], records[i + 1]];
    assert.deepEqual([start[0], end[0], start[1], start[2]], ["start", "end", end[1], end[2]]);
    tokens.push(BigInt(start[2]));
  }
  for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1]);
  assert.deepEqual(new Set(records.map((r) => r[1])), new Set(["node", "rust"]));
  fs.rmSync(log);
});

test("index.d.ts is what tsc generates from index.js", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "polylock-types-"));
  const tsc = path.join(PACKAGE, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", path.join(PACKAGE, "tsconfig.types.json"), "--outDir", out], { cwd: PACKAGE });
  const generated = fs.readFileSync(path.join(out, "index.d.ts"), "utf8");
  fs.rmSync(out, { recursive: true });
  assert.equal(fs.readFileSync(path.join(PACKAGE, "index.d.ts"), "utf8"), generated, "index.d.ts is stale: run npm run types and copy types-out/index.d.ts");
});
