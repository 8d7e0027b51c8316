"use strict";
// Backends for the node --test suite: memory:// always, and the real
// servers whose URLs tests/with-servers.sh exports (Consul, FerretDB,
// LDLM). In CI (CI set) a missing Consul or LDLM URL fails, except that
// LDLM tests skip when tests/with-servers.sh found no LDLM server binary
// (POLYLOCK_TEST_LDLM_SKIPPED=1).
//
// Tests gate backend differences on the client's capabilities (as the core
// declares them), never on backend names.
//
// The tests load the package as its users do, `require("polylock")`: in the
// source tree that is the package itself (its "exports" allow the
// self-reference); bindings-node/run-tests.sh copies test/ into a scratch
// project where the tarball is installed, so there it is
// node_modules/polylock. There the repository is $POLYLOCK_REPO, and the
// cargo-built helpers come in as $POLYLOCK_CLI and $POLYLOCK_CONTEND (no
// cargo on that PATH).
const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const path = require("node:path");

/** The repository (tests/support/ and cargo builds): $POLYLOCK_REPO, else the tree around test/. */
const REPO = process.env.POLYLOCK_REPO || path.resolve(__dirname, "..", "..");

const LDLM_SKIPPED = 'no LDLM server binary (POLYLOCK_TEST_LDLM_SKIPPED=1; see README "LDLM")';

const inCi = () => Boolean(process.env.CI);
const ldlmSkipped = () => process.env.POLYLOCK_TEST_LDLM_SKIPPED === "1";

/**
 * [label, url, testOptions, caps] per backend; url is null when CI lacks a
 * required server (the test must fail), testOptions skips LDLM without a
 * server binary, and `await caps()` is what the backend can do.
 */
function backends() {
  const list = [["memory", `memory://node-${process.pid}`, {}]];
  for (const [label, variable] of [
    ["consul", "POLYLOCK_TEST_CONSUL_URL"],
    ["ldlm", "POLYLOCK_TEST_LDLM_URL"],
    ["postgres", "POLYLOCK_TEST_POSTGRES_URL"],
  ]) {
    if (process.env[variable]) list.push([label, process.env[variable], {}]);
    else if (label === "ldlm" && ldlmSkipped()) list.push([label, null, { skip: LDLM_SKIPPED }]);
    else if (inCi()) list.push([label, null, {}]);
  }
  for (const [label, variable] of [
    ["ferretdb", "POLYLOCK_TEST_FERRETDB_URL"],
    ["mongodb", "POLYLOCK_TEST_MONGODB_URL"],
  ]) {
    if (process.env[variable]) list.push([label, process.env[variable], {}]);
  }
  return list.map(([label, url, options]) => [label, url, options, capabilitiesOf(url)]);
}

/** A function resolving to the capabilities of the backend at `url` (asked once). */
function capabilitiesOf(url) {
  let asked;
  return () => {
    asked ??= new (require("polylock").Client)(url).capabilities();
    return asked;
  };
}

/** backends() without the per-process memory://. */
function serverBackends() {
  return backends().filter(([label]) => label !== "memory");
}

/** Throws when CI lacks the backend's server. */
function needsUrl(label, url) {
  if (!url) throw new Error(`${label}: its server URL is not set (CI set)`);
}

function unique(base) {
  return `node-test/${base}/${crypto.randomUUID()}`;
}

function consulUrl(t) {
  const url = process.env.POLYLOCK_TEST_CONSUL_URL;
  if (!url) {
    if (inCi()) throw new Error("POLYLOCK_TEST_CONSUL_URL is not set (CI set)");
    t.skip("needs POLYLOCK_TEST_CONSUL_URL");
  }
  return url;
}

/**
 * An LDLM test server setting, or undefined after t.skip(): without an LDLM
 * server binary (also in CI), or without the variable outside CI; in CI a
 * missing variable throws.
 */
function ldlmSetting(t, variable) {
  if (ldlmSkipped()) {
    t.skip(LDLM_SKIPPED);
    return undefined;
  }
  const value = process.env[variable];
  if (!value) {
    if (inCi()) throw new Error(`${variable} is not set (CI set)`);
    t.skip(`needs ${variable}`);
    return undefined;
  }
  return value;
}

/** Cargo's target directory (honours CARGO_TARGET_DIR). */
function cargoTargetDir() {
  const metadata = execFileSync("cargo", ["metadata", "--format-version", "1", "--no-deps"], { cwd: REPO });
  return JSON.parse(metadata.toString()).target_directory;
}

const built = new Set();
/** cargo build -q --locked ARGS in the repository, once per process. */
function cargoBuild(...args) {
  const key = args.join(" ");
  if (built.has(key)) return;
  execFileSync("cargo", ["build", "-q", "--locked", ...args], { cwd: REPO, stdio: "inherit" });
  built.add(key);
}

/** The polylock CLI: $POLYLOCK_CLI, else built from cli/. */
function polylockCli() {
  if (process.env.POLYLOCK_CLI) return process.env.POLYLOCK_CLI;
  cargoBuild("-p", "polylock-cli");
  return path.join(cargoTargetDir(), "debug", "polylock");
}

/** examples/rust/contend.rs, a Rust contender: $POLYLOCK_CONTEND, else built with cargo. */
function contendBin() {
  if (process.env.POLYLOCK_CONTEND) return process.env.POLYLOCK_CONTEND;
  cargoBuild("-p", "polylock", "--example", "contend");
  return path.join(cargoTargetDir(), "debug", "examples", "contend");
}

/**
 * Takes the lease `holder` of `name` away behind its holder's back: on
 * Consul by destroying its session, elsewhere with the polylock CLI
 * (`polylock --url URL release NAME --holder HOLDER`, its own connection).
 */
async function revoke(url, name, holder) {
  if (url.startsWith("consul://")) {
    const response = await fetch(`http://${url.replace("consul://", "")}/v1/session/destroy/${holder}`, { method: "PUT" });
    if (response.status !== 200) throw new Error(`session destroy: HTTP ${response.status}`);
    return;
  }
  execFileSync(polylockCli(), ["--url", url, "release", name, "--holder", holder], { timeout: 120000 });
}

/**
 * Resolves with `promise`, or rejects after `ms` (a bound, not a pause: the
 * timer keeps the process alive while the promise is pending, as thread-safe
 * lost callbacks do not).
 */
async function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

module.exports = {
  REPO,
  backends,
  serverBackends,
  needsUrl,
  unique,
  consulUrl,
  ldlmSetting,
  cargoTargetDir,
  cargoBuild,
  polylockCli,
  contendBin,
  revoke,
  within,
};
