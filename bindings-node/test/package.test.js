"use strict";
// The package as installed: where `require("polylock")` resolves and which
// addon file it loaded (bindings-node/run-tests.sh sets
// POLYLOCK_NODE_INSTALLED=1 when it runs these tests against the tarball
// installed in a scratch project), and the loader's choice among the addon
// files (native.js, with platform.js, copied into a directory of its own).
const { test } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const ENTRY = require.resolve("polylock");
const PACKAGE = path.dirname(ENTRY);
const { platformName, prebuiltFile, SOURCE_BUILT_FILE } = require(path.join(PACKAGE, "platform.js"));

/** The native addon files this process loaded (require keeps them in its cache). */
function loadedAddons() {
  require("polylock");
  return Object.keys(require.cache).filter((file) => file.endsWith(".node"));
}

test("require('polylock') is the installed package, with its prebuilt addon (POLYLOCK_NODE_INSTALLED=1), else the source tree", () => {
  if (process.env.POLYLOCK_NODE_INSTALLED === "1") {
    assert.match(ENTRY, new RegExp(`${path.sep}node_modules${path.sep}polylock${path.sep}index\\.js$`));
    assert.deepEqual(loadedAddons(), [path.join(PACKAGE, prebuiltFile(platformName()))]);
    // The install script found the prebuilt addon loading: it built nothing.
    assert.equal(fs.existsSync(path.join(PACKAGE, SOURCE_BUILT_FILE)), false, "the install script built an addon");
    assert.equal(fs.existsSync(path.join(PACKAGE, "rust", "target")), false);
    assert.equal(fs.existsSync(path.join(PACKAGE, "rust", "Cargo.toml")), true, "the source fallback's crate tree is missing");
  } else {
    assert.equal(ENTRY, path.resolve(__dirname, "..", "index.js"));
    assert.equal(loadedAddons().length, 1);
  }
});

/** A directory holding copies of the loader (native.js, platform.js) and `files`. */
function loaderCopy(t, files = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polylock-loader-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const file of ["native.js", "platform.js"]) fs.copyFileSync(path.join(PACKAGE, file), path.join(dir, file));
  for (const [name, from] of Object.entries(files)) {
    if (Buffer.isBuffer(from)) fs.writeFileSync(path.join(dir, name), from);
    else fs.copyFileSync(from, path.join(dir, name));
  }
  return dir;
}

test("without an addon file the loader's error names each file it looked for", (t) => {
  const dir = loaderCopy(t);
  assert.throws(
    () => require(path.join(dir, "native.js")),
    (error) => {
      assert.ok(error instanceof Error);
      assert.ok(error.message.includes(`no native addon loads on ${platformName()}`), error.message);
      assert.ok(error.message.includes(`${prebuiltFile(platformName())} (prebuilt): not found`), error.message);
      assert.ok(error.message.includes(`${SOURCE_BUILT_FILE} (built from source): not found`), error.message);
      assert.ok(error.message.includes("cargo"), error.message);
      return true;
    },
  );
});

test("a prebuilt addon that does not load gives way to the one built from source", (t) => {
  const [addon] = loadedAddons();
  const dir = loaderCopy(t, {
    [prebuiltFile(platformName())]: Buffer.from("not a shared object"),
    [SOURCE_BUILT_FILE]: addon,
  });
  // Its own process: an addon is loaded once per process.
  const script = `
    const native = require(${JSON.stringify(path.join(dir, "native.js"))});
    const loaded = Object.keys(require.cache).filter((file) => file.endsWith(".node"));
    console.log(JSON.stringify({ loaded, leaseName: typeof native.leaseName }));`;
  const out = JSON.parse(execFileSync(process.execPath, ["-e", script], { timeout: 60000 }).toString());
  assert.deepEqual(out.loaded, [path.join(dir, SOURCE_BUILT_FILE)]);
  assert.equal(out.leaseName, "function");
});
