'use strict';
// NODE_EXTRA_CA_CERTS, moved aside (lib/ca.js): a manager and a host's primary run without it
// (Node parses the bundle at every start-up; neither makes TLS connections), and the config's
// code in a worker sees exactly what the user set: whether the user's process set it itself or
// moved it aside as JSHOST_NODE_EXTRA_CA_CERTS, as the SDK does.

const fs = require('node:fs');
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { tmpDir, write, spawnLine, startHost, post, request, childPids, trackWorkers, freePort, waitFor, alive, JSHOST_NODE } = require('../testlib/helpers');

const EXTRA = 'NODE_EXTRA_CA_CERTS';
const ASIDE = 'JSHOST_NODE_EXTRA_CA_CERTS';

// What the config sees, at load and in a call.
const CONFIG = `
const seen = () => ({ extra: process.env.${EXTRA} ?? null, aside: process.env.${ASIDE} ?? null });
const atLoad = seen();
module.exports = { functions: { env: () => JSON.stringify({ atLoad, inCall: seen() }) } };
`;

/** The environment of a process as it was started (Linux /proc). */
function startEnv(pid) {
  const env = {};
  for (const entry of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** process.env without either variable, plus `vars`. */
function envWith(vars) {
  const env = { ...process.env, NODE_NO_WARNINGS: '1' };
  delete env[EXTRA];
  delete env[ASIDE];
  return { ...env, ...vars };
}

function fixture(t) {
  const dir = tmpDir(t);
  // An empty bundle: Node loads it without a warning.
  const bundle = write(dir, 'extra-ca.pem', '');
  return { dir, bundle, config: write(dir, 'host.config.js', CONFIG) };
}

async function seenBy(url) {
  const r = await post(`${url}/function/env`, {});
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

/** A manager started with `vars`; its host for its own config: {manager, primary, url}. */
async function managedHost(t, fx, vars) {
  const args = [fx.config, '--manager', '--port', '0', '--json'];
  const m = await spawnLine(t, JSHOST_NODE, args, { env: envWith(vars), beforeStop: () => post(`${url(m)}/manager/stop`, {}) });
  const started = await post(`${url(m)}/host/start`, { config: fx.config });
  assert.equal(started.status, 200, started.body);
  const [primary] = childPids(m.child.pid);
  trackWorkers(t, primary);
  return { manager: m.child.pid, primary, url: `http://127.0.0.1:${JSON.parse(JSON.parse(started.body).output).config.port}` };
}
const url = (m) => `http://127.0.0.1:${JSON.parse(m.line).config.port}`;

for (const [how, vars] of [
  ['the user set NODE_EXTRA_CA_CERTS', (b) => ({ [EXTRA]: b })],
  ['the SDK moved it aside', (b) => ({ [ASIDE]: b })],
]) {
  test(`managed host, ${how}: the worker sees the user's value, the host's primary runs without it`, async (t) => {
    const fx = fixture(t);
    const h = await managedHost(t, fx, vars(fx.bundle));
    const user = { extra: fx.bundle, aside: null };
    assert.deepEqual(await seenBy(h.url), { atLoad: user, inCall: user });
    assert.equal(startEnv(h.primary)[EXTRA], undefined, 'the primary started without NODE_EXTRA_CA_CERTS');
    assert.equal(startEnv(h.primary)[ASIDE], fx.bundle);
    const [worker] = childPids(h.primary);
    assert.equal(startEnv(worker)[EXTRA], fx.bundle);
    assert.equal(startEnv(worker)[ASIDE], undefined);
    // The manager runs with what it was given: without it when it was moved aside.
    assert.equal(startEnv(h.manager)[EXTRA], vars(fx.bundle)[EXTRA]);
  });
}

test('managed host, the user set nothing: the worker sees neither variable', async (t) => {
  const fx = fixture(t);
  const h = await managedHost(t, fx, {});
  const none = { extra: null, aside: null };
  assert.deepEqual(await seenBy(h.url), { atLoad: none, inCall: none });
});

test('a host started with JSHOST_NODE_EXTRA_CA_CERTS gives it to its workers as NODE_EXTRA_CA_CERTS; with NODE_EXTRA_CA_CERTS, they inherit it', async (t) => {
  const fx = fixture(t);
  const user = { extra: fx.bundle, aside: null };
  for (const vars of [{ [ASIDE]: fx.bundle }, { [EXTRA]: fx.bundle }]) {
    const h = await startHost(t, fx.config, ['--workers', '2'], { env: envWith(vars) });
    trackWorkers(t, h.child.pid);
    assert.deepEqual(await seenBy(h.url), { atLoad: user, inCall: user });
    for (const worker of childPids(h.child.pid)) assert.equal(startEnv(worker)[EXTRA], fx.bundle);
  }
  // An empty value is a value: passed on as set.
  const h = await startHost(t, fx.config, [], { env: envWith({ [ASIDE]: '' }) });
  assert.deepEqual(await seenBy(h.url), { atLoad: { extra: '', aside: null }, inCall: { extra: '', aside: null } });
});

test('--detached: the copy (here a manager) starts without NODE_EXTRA_CA_CERTS, its hosts\' workers see it', async (t) => {
  const fx = fixture(t);
  const port = await freePort();
  const config = write(fx.dir, 'fixed.config.js', CONFIG.replace('module.exports = {', `module.exports = { port: ${port},`));
  const manager = `http://127.0.0.1:${port}`;
  let managerPid = null;
  t.after(async () => {
    await post(`${manager}/manager/stop`, {}).catch(() => {});
    if (managerPid !== null) await waitFor(() => !alive(managerPid), { what: 'the detached manager to exit' }).catch(() => process.kill(managerPid, 'SIGKILL'));
  });
  const r = spawnSync(process.execPath, [JSHOST_NODE, config, '--manager', '--detached'], { env: envWith({ [EXTRA]: fx.bundle }), encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  managerPid = JSON.parse((await request(`${manager}/jshost/info`, { method: 'GET' })).body).pid;
  assert.equal(startEnv(managerPid)[EXTRA], undefined, 'the detached manager started without NODE_EXTRA_CA_CERTS');
  assert.equal(startEnv(managerPid)[ASIDE], fx.bundle);
  const started = await post(`${manager}/host/start`, { config });
  assert.equal(started.status, 200, started.body);
  const [primary] = childPids(managerPid);
  trackWorkers(t, primary);
  const user = { extra: fx.bundle, aside: null };
  assert.deepEqual(await seenBy(`http://127.0.0.1:${JSON.parse(JSON.parse(started.body).output).config.port}`), { atLoad: user, inCall: user });
});
