// A Node contender for the mixed-client run (tests/mixed/run.sh): takes the
// lock NAME on URL ROUNDS times and, inside each hold, appends "start node
// TOKEN NS", holds it HOLD_MS milliseconds (the workload), then appends "end
// node TOKEN NS" to LOG. TOKEN is the fencing token, "-" when the backend
// has none (LDLM); NS is process.hrtime.bigint(): libuv's uv_hrtime, which on
// Linux is clock_gettime(CLOCK_MONOTONIC), the clock every contender reads
// (tests/mixed/check.py; run.sh's clock probe checks they agree).
//
//   node contend.js URL NAME ROUNDS LOG HOLD_MS
//   node contend.js clock        print "node NS" (the clock probe)
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { setTimeout: sleep } = require("node:timers/promises");

/** Appends "WHAT node TOKEN NS" to LOG in one write. */
function record(log, what, token) {
  const tokenText = token === null || token === undefined ? "-" : String(token);
  fs.appendFileSync(log, `${what} node ${tokenText} ${process.hrtime.bigint()}\n`);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 1 && args[0] === "clock") {
    console.log(`node ${process.hrtime.bigint()}`);
    return;
  }
  const { Client } = require(path.join(__dirname, "..", "..", "bindings-node"));
  const [url, name, rounds, log, holdMs] = args;
  const lock = new Client(url).lock(name);
  for (let i = 0; i < Number(rounds); i++) {
    const lease = await lock.acquire({ timeout: 120000 });
    record(log, "start", lease.fencingToken);
    await sleep(Number(holdMs));
    record(log, "end", lease.fencingToken);
    await lock.release();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
