"use strict";
// Backends for the node --test suite: memory:// always, and the real
// servers whose URLs tests/with-servers.sh exports. With CI=true a missing
// Consul URL fails.
const crypto = require("node:crypto");

function backends() {
  const list = [["memory", `memory://node-${process.pid}`]];
  const consul = process.env.POLYLOCK_TEST_CONSUL_URL;
  if (consul) list.push(["consul", consul]);
  else if (process.env.CI === "true") list.push(["consul", null]);
  for (const [label, variable] of [
    ["ferretdb", "POLYLOCK_TEST_FERRETDB_URL"],
    ["mongodb", "POLYLOCK_TEST_MONGODB_URL"],
  ]) {
    if (process.env[variable]) list.push([label, process.env[variable]]);
  }
  return list;
}

function unique(base) {
  return `node-test/${base}/${crypto.randomUUID()}`;
}

function consulUrl(t) {
  const url = process.env.POLYLOCK_TEST_CONSUL_URL;
  if (!url) {
    if (process.env.CI === "true") throw new Error("POLYLOCK_TEST_CONSUL_URL is not set (CI=true)");
    t.skip("needs POLYLOCK_TEST_CONSUL_URL");
  }
  return url;
}

module.exports = { backends, unique, consulUrl };
