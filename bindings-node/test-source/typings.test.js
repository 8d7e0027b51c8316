"use strict";
// Checks of the source tree rather than of the installed package (they need
// its dev dependencies): index.d.ts is what tsc generates from the JSDoc in
// index.js. bindings-node/run-tests.sh runs these in bindings-node/ and the
// package's own tests (test/) against the installed tarball.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const SOURCE = path.resolve(__dirname, "..");

test("index.d.ts is what tsc generates from index.js", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "polylock-types-"));
  const tsc = path.join(SOURCE, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", path.join(SOURCE, "tsconfig.types.json"), "--outDir", out], { cwd: SOURCE });
  const generated = fs.readFileSync(path.join(out, "index.d.ts"), "utf8");
  fs.rmSync(out, { recursive: true });
  assert.equal(fs.readFileSync(path.join(SOURCE, "index.d.ts"), "utf8"), generated, "index.d.ts is stale: run npm run types and copy types-out/index.d.ts");
});
