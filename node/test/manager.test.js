'use strict';
// The manager: the same answers as js-host 0.12's manager, hosts that are jshost-node hosts,
// and none of js-host's races (concurrent starts, a crashed host's pending stop timer, a
// manager left running without hosts, hosts orphaned by a killed manager).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { tmpDir, write, spawnLine, request, post, waitFor, alive, childPids, freePort, JS_HOST, JSHOST_NODE, ENV, hostConfig } = require('../testlib/helpers');

async function startManager(t, config, { bin = JSHOST_NODE } = {}) {
  let url = null;
  // js-host's manager leaves its hosts running when killed: stop it through its API first.
  const beforeStop = () => (url ? post(`${url}/manager/stop`, {}, undefined, { timeout: 2000 }) : Promise.resolve());
  const m = await spawnLine(t, bin, [config, '--manager', '--port', '0', '--json'], { beforeStop });
  const status = JSON.parse(m.line);
  url = `http://127.0.0.1:${status.config.port}`;
  return { ...m, status, url, pid: m.child.pid };
}

const api = (m, endpoint, body) => post(`${m.url}${endpoint}`, body);
const json = (r) => JSON.parse(r.body);
const first = (body) => body.split('\n')[0];

test('the manager answers like js-host 0.12', async (t) => {
  const dir = tmpDir(t);
  const managerConfig = write(dir, 'manager.config.js', hostConfig('disconnectTimeout: 200,'));
  const config = write(dir, 'host.config.js', hostConfig('custom: "x",'));
  const [theirs, ours] = await Promise.all([startManager(t, managerConfig, { bin: JS_HOST }), startManager(t, managerConfig)]);
  const both = async (endpoint, body, opts) => {
    const [a, b] = await Promise.all([
      opts ? request(theirs.url + endpoint, opts) : api(theirs, endpoint, body),
      opts ? request(ours.url + endpoint, opts) : api(ours, endpoint, body),
    ]);
    assert.equal(b.status, a.status, `${endpoint}: status (js-host: ${a.status} ${a.body.slice(0, 100)})`);
    return [a, b];
  };
  const same = async (endpoint, body, opts) => {
    const [a, b] = await both(endpoint, body, opts);
    assert.equal(b.body, a.body, endpoint);
    return b;
  };
  const withoutPort = (status) => ({ ...status, config: { ...status.config, port: 'N' } });

  // Status.
  const [sa, sb] = await both('/status', undefined, { method: 'GET' });
  assert.deepEqual(withoutPort(json(sb)), withoutPort(json(sa)));
  assert.equal(json(sb).type, 'Manager');

  // Refusals.
  await same('/host/status', undefined, { method: 'POST' });
  await same('/host/start', {});
  await same('/host/status', { config });
  await same('/host/connect', { config });
  await same('/host/stop', { config });
  await same('/host/restart', { config });
  await same('/host/disconnect', { config });
  await same('/host/disconnect', { config, connection: 'nobody' });
  await same('/nothing', undefined, { method: 'GET' });

  // Start.
  const [a, b] = await both('/host/start', { config });
  const ha = json(a);
  const hb = json(b);
  // js-host's keys in its order, then the options the host runs with (jshost-node's extension).
  assert.deepEqual(Object.keys(ha), ['output', 'logfile', 'config', 'connections']);
  assert.deepEqual(Object.keys(hb), [...Object.keys(ha), 'options']);
  assert.deepEqual(hb.options, { watch: false, workers: null, callTimeout: null, maxMemory: null, maxCalls: null, grace: null });
  assert.equal(hb.config, config);
  assert.deepEqual(hb.connections, []);
  assert.ok(hb.output.endsWith('\n'));
  assert.deepEqual(withoutPort(JSON.parse(hb.output)), withoutPort(JSON.parse(ha.output)));
  const hostUrl = `http://127.0.0.1:${JSON.parse(hb.output).config.port}`;
  const call = await post(`${hostUrl}/function/echo`, { via: 'managed' });
  assert.equal(call.body, '{"via":"managed"}');
  assert.match(call.headers['x-jshost-node'], /features=promise,batch/, 'the managed host is a jshost-node host');
  assert.deepEqual(json(await request(`${hostUrl}/status`, { method: 'GET' })), JSON.parse(hb.output));

  await same('/host/start', { config });
  const [sta, stb] = await both('/host/status', { config });
  assert.equal(json(stb).started, true);
  assert.deepEqual(json(stb).host, hb);
  void sta;

  // Connections.
  const [ca, cb] = await both('/host/connect', { config });
  assert.deepEqual(Object.keys(json(ca)), ['output', 'logfile', 'config', 'connections', 'connection']);
  assert.deepEqual(Object.keys(json(cb)), ['output', 'logfile', 'config', 'connections', 'options', 'connection']);
  const connection = json(cb).connection;
  assert.match(connection, /^\d+-[0-9a-f-]{36}$/);
  assert.deepEqual(json(cb).connections, [connection]);
  const [, cb2] = await both('/host/connect', { config });
  const connection2 = json(cb2).connection;
  const [, d1] = await both('/host/disconnect', { config, connection });
  assert.deepEqual(json(d1), { started: true, config, stopTimeout: null, status: 'Disconnected' });

  // Restart keeps the port, the logfile and the connections.
  const [, rb] = await both('/host/restart', { config });
  assert.equal(json(rb).logfile, hb.logfile);
  assert.deepEqual(json(rb).connections, [connection2]);
  assert.equal(JSON.parse(json(rb).output).config.port, JSON.parse(hb.output).config.port);
  await waitFor(async () => (await post(`${hostUrl}/function/echo`, { after: 'restart' })).status === 200, { what: 'the restarted host' });

  // A config that cannot start.
  const [fa, fb] = await both('/host/start', { config: `${dir}/missing.config.js` });
  assert.match(first(fb.body), /^Error: Error starting child host/);
  assert.match(first(fa.body), /^Error: Error starting child host/);
  assert.match(fb.body, /Cannot find module/);

  // Stop.
  const [, stopped] = await both('/host/stop', { config });
  assert.deepEqual(Object.keys(json(stopped)), ['output', 'logfile', 'config', 'connections', 'options']);
  await same('/host/stop', { config });
  await same('/host/status', { config });
  await same('/manager/stop', undefined, { method: 'POST' });
});

test('concurrent /host/start requests start one host', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const m = await startManager(t, config);
  const answers = await Promise.all(Array.from({ length: 6 }, () => api(m, '/host/start', { config })));
  const started = answers.filter((r) => r.status === 200);
  assert.equal(started.length, 1, answers.map((r) => `${r.status} ${r.body.slice(0, 40)}`).join('; '));
  for (const r of answers) if (r.status !== 200) assert.equal(r.body, 'Host already running');
  assert.equal(childPids(m.pid).length, 1, 'one host process');
  // A relative spelling of the same path is the same host.
  const status = json(await api(m, '/host/status', { config: `${dir}/./host.config.js` }));
  assert.equal(status.started, true);
  assert.equal(status.host.output, json(started[0]).output);
});

test('a crashed host is forgotten with its stop timer; no orphan', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig('disconnectTimeout: 600,'));
  const m = await startManager(t, config);
  const hostPid = async () => {
    const s = json(await api(m, '/host/status', { config }));
    if (!s.started) return null;
    const url = `http://127.0.0.1:${JSON.parse(s.host.output).config.port}`;
    // The host process is the manager's child; its functions run in a worker of it.
    const worker = Number((await post(`${url}/function/pid`, {})).body);
    return childPids(m.pid).find((pid) => childPids(pid).includes(worker)) ?? null;
  };

  // 1. disconnect (stop timer pending), crash, start again: the old timer must not stop the new host.
  assert.equal((await api(m, '/host/start', { config })).status, 200);
  const { connection } = json(await api(m, '/host/connect', { config }));
  assert.equal(json(await api(m, '/host/disconnect', { config, connection })).stopTimeout, 600);
  const first = await hostPid();
  process.kill(first, 'SIGKILL');
  await waitFor(async () => !json(await api(m, '/host/status', { config })).started, { what: 'the crash to be seen' });
  assert.equal((await api(m, '/host/start', { config })).status, 200);
  const second = await hostPid();
  const c2 = json(await api(m, '/host/connect', { config })).connection;
  await new Promise((r) => setTimeout(r, 900)); // past the first host's stop timer
  assert.equal(await hostPid(), second, 'the new host is still recorded');
  assert.ok(alive(second));

  // 2. crash, disconnect, start: one host, the manager knows it.
  process.kill(second, 'SIGKILL');
  await waitFor(async () => !json(await api(m, '/host/status', { config })).started, { what: 'the second crash to be seen' });
  assert.deepEqual(json(await api(m, '/host/disconnect', { config, connection: c2 })), {
    started: false,
    config,
    stopTimeout: null,
    status: 'Host has already stopped',
  });
  assert.equal((await api(m, '/host/start', { config })).status, 200);
  const third = await hostPid();
  assert.deepEqual(childPids(m.pid), [third], 'no orphan: the manager has exactly the host it knows');
});

test('the manager exits when it has no host left', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig('disconnectTimeout: 300,'));

  await t.test('after the disconnect timeout stopped its last host', async () => {
    const m = await startManager(t, config);
    await api(m, '/host/start', { config });
    const [hostPid] = childPids(m.pid);
    const { connection } = json(await api(m, '/host/connect', { config }));
    const d = json(await api(m, '/host/disconnect', { config, connection }));
    assert.equal(d.status, 'Disconnected. Stopping host in 300ms');
    await waitFor(() => m.child.exitCode !== null, { what: 'the manager to exit' });
    assert.equal(m.child.exitCode, 0);
    assert.ok(!alive(hostPid));
  });

  await t.test('after its last host was stopped', async () => {
    const m = await startManager(t, config);
    await api(m, '/host/start', { config });
    await api(m, '/host/stop', { config });
    await waitFor(() => m.child.exitCode !== null, { what: 'the manager to exit' });
  });

  await t.test('not before it had a host', async () => {
    const m = await startManager(t, config);
    await api(m, '/host/status', { config });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(m.child.exitCode, null);
  });
});

test('hosts die with a SIGKILLed manager', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const m = await startManager(t, config);
  await api(m, '/host/start', { config });
  const [hostPid] = childPids(m.pid);
  t.after(() => alive(hostPid) && process.kill(hostPid, 'SIGKILL'));
  m.child.kill('SIGKILL');
  await waitFor(() => !alive(hostPid), { timeout: 1000, what: 'the host to exit' });
});

test('--detached: the handshake prints the status and leaves the manager running', async (t) => {
  const dir = tmpDir(t);
  const port = await freePort();
  const config = write(dir, 'host.config.js', hostConfig(`port: ${port},`));
  t.after(() => post(`http://127.0.0.1:${port}/manager/stop`, {}).catch(() => {}));
  const expected = spawnSync(process.execPath, [JSHOST_NODE, config, '--manager', '--config'], { env: ENV, encoding: 'utf8' }).stdout.trim();
  const r = spawnSync(process.execPath, [JSHOST_NODE, config, '--manager', '--detached'], { env: ENV, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, expected);
  const status = await request(`http://127.0.0.1:${port}/status`, { method: 'GET' });
  assert.equal(status.body, expected);
  // A second one finds the port taken: the copy's error on stderr, naming EADDRINUSE.
  const again = spawnSync(process.execPath, [JSHOST_NODE, config, '--manager', '--detached'], { env: ENV, encoding: 'utf8', timeout: 10000 });
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /EADDRINUSE/);
  assert.equal((await post(`http://127.0.0.1:${port}/manager/stop`, {})).body, 'Stopping...');
});

test('a host whose config prints while loading still starts', async (t) => {
  const dir = tmpDir(t);
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const config = write(dir, 'host.config.js', `console.log('loading my config...');\n${hostConfig()}`);
  const m = await startManager(t, managerConfig);
  const r = await api(m, '/host/start', { config });
  assert.equal(r.status, 200, r.body);
  assert.equal(JSON.parse(json(r).output).type, 'Host');
});
