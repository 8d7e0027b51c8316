"use strict";
// LDLM-only behaviour through the binding: a password server (the `token`
// option), TLS and mutual TLS, no fencing tokens, a lost callback when the
// lease is revoked, and the calls LDLM cannot serve.
const { test } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { Client, PolylockError } = require("polylock");
const { ldlmSetting, unique, revoke, within } = require("./helpers");

async function holdAndRelease(client) {
  const lock = client.lock(unique("ldlm"));
  const lease = await lock.acquire({ timeout: 30000 });
  assert.equal(lease.isHeld, true);
  await lock.release();
}

test("ldlm: a password server wants the password", async (t) => {
  const url = ldlmSetting(t, "POLYLOCK_TEST_LDLM_PASSWORD_URL");
  const password = url && ldlmSetting(t, "POLYLOCK_TEST_LDLM_PASSWORD");
  if (!password) return;
  const saved = process.env.LDLM_PASSWORD;
  delete process.env.LDLM_PASSWORD;
  try {
    await assert.rejects(new Client(url).connect(), (error) => error instanceof PolylockError && error.code === "AUTH");
    await assert.rejects(new Client(url, { token: "not-the-password" }).connect(), (error) => {
      assert.equal(error.code, "AUTH");
      assert.ok(!error.message.includes("not-the-password"), error.message);
      return true;
    });
    // A lock of a client that cannot connect fails with the same error.
    await assert.rejects(new Client(url).lock(unique("ldlm")).tryAcquire(), { code: "AUTH" });
    await holdAndRelease(new Client(url, { token: password }));
  } finally {
    if (saved !== undefined) process.env.LDLM_PASSWORD = saved;
  }
});

test("ldlm: TLS with the server's CA", async (t) => {
  const url = ldlmSetting(t, "POLYLOCK_TEST_LDLM_TLS_URL");
  const certs = url && ldlmSetting(t, "POLYLOCK_TEST_LDLM_TLS_CERTS");
  if (!certs) return;
  await holdAndRelease(new Client(`${url}?ca=${path.join(certs, "ca.pem")}`));
  // The public roots do not know the test CA.
  await assert.rejects(new Client(`${url}?max_retries=0`).connect(), { code: "CONNECTION" });
});

test("ldlm: mutual TLS needs the client certificate", async (t) => {
  const url = ldlmSetting(t, "POLYLOCK_TEST_LDLM_MTLS_URL");
  const certs = url && ldlmSetting(t, "POLYLOCK_TEST_LDLM_MTLS_CERTS");
  if (!certs) return;
  const ca = path.join(certs, "ca.pem");
  await holdAndRelease(
    new Client(`${url}?ca=${ca}&cert=${path.join(certs, "client.pem")}&key=${path.join(certs, "client-key.pem")}`),
  );
  await assert.rejects(new Client(`${url}?ca=${ca}&max_retries=0`).connect(), { code: "AUTH" });
});

test("ldlm: no fencing tokens, and a revoked lease is lost", async (t) => {
  const url = ldlmSetting(t, "POLYLOCK_TEST_LDLM_URL");
  if (!url) return;
  const client = new Client(url);
  const lock = client.lock(unique("ldlm-lost"), { ttl: 6000 });
  const events = [];
  const fired = new Promise((resolve) => lock.onLost((event) => { events.push(event); resolve(); }));
  const lease = await lock.acquire({ timeout: 30000 });
  assert.equal(lease.fencingToken, null);
  const caps = await client.capabilities();
  assert.equal(caps.fencing, false);
  assert.equal(caps.serverWait, true);
  assert.equal(caps.outlivesConnection, false);
  assert.equal(lock.fencingToken, null);
  assert.ok(lease.holder.length > 0); // the LDLM key
  await revoke(url, lock.name, lease.holder);
  await within(fired, 60000, "lost event");
  assert.deepEqual(
    events.map((e) => [e.name, e.holder, e.fencingToken ?? null]),
    [[lock.name, lease.holder, null]],
  );
  assert.equal(lease.isHeld, false);
  await assert.rejects(lease.renew(), { code: "LOCK_LOST" });
});

test("ldlm: what LDLM cannot serve is INVALID_ARGUMENT", async (t) => {
  const url = ldlmSetting(t, "POLYLOCK_TEST_LDLM_URL");
  if (!url) return;
  const client = new Client(url);
  const registry = client.registry(unique("ldlm-registry"));
  await assert.rejects(registry.whereis("db"), { code: "INVALID_ARGUMENT" });
  await assert.rejects(registry.list(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(registry.events().next(), { code: "INVALID_ARGUMENT" });
  await assert.rejects(client.watch(unique("ldlm-watch")).next(), { code: "INVALID_ARGUMENT" });
});
