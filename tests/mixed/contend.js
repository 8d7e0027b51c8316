// A Node contender for the mixed-client run (tests/mixed/run.sh): takes the
// lock NAME on URL ROUNDS times and, inside each hold, appends "start node
// TOKEN" and "end node TOKEN" lines to LOG.
//
//   node contend.js URL NAME ROUNDS LOG
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { Client } = require(path.join(__dirname, "..", "..", "bindings-node"));

async function main() {
  const [url, name, rounds, log] = process.argv.slice(2);
  const lock = new Client(url).lock(name);
  for (let i = 0; i < Number(rounds); i++) {
    const lease = await lock.acquire({ timeout: 120000 });
    fs.appendFileSync(log, `start node ${lease.fencingToken}\n`);
    fs.appendFileSync(log, `end node ${lease.fencingToken}\n`);
    await lock.release();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
