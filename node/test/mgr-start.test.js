'use strict';
// The manager and hosts that never finish starting (a config whose top-level await never
// settles): a start is bounded by its start-up timeout (the host killed, 500 naming the config
// and the logfile), /host/status and /host/disconnect answer at once during a start, the config's
// lock is free again afterwards, and SIGTERM/SIGINT on the manager stop every host it started,
// hung and prepared ones included, leaving no process behind.

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const test = require('node:test');
const assert = require('node:assert/strict');
const { tmpDir, write, spawnLine, post, waitFor, alive, childPids, JSHOST_NODE, hostConfig } = require('../testlib/helpers');

// An ES module config whose load never ends in a host (a timer keeps the event loop turning, as
// a real hang would: a connection that never answers); a manager loads it at once.
const hangingConfig = `
if (!process.argv.includes('--manager')) await new Promise(() => setInterval(() => {}, 60000));
export default { functions: { echo: (data, cb) => cb(null, JSON.stringify(data)) } };
`;
const esmConfig = `export default { functions: { echo: (data, cb) => cb(null, JSON.stringify(data)) } };\n`;

/** Pids of the live processes whose command line names a file in `dir` (the test's fixture). */
function processesIn(dir) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(dir + '/') && alive(Number(entry))) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/**
 * After the test (once its manager was stopped: call after startManager): no process of the
 * fixture is left (killed if one is, and the test fails).
 */
function noLeftovers(t, dir) {
  t.after(async () => {
    const left = await waitFor(() => processesIn(dir).length === 0, { timeout: 15000, what: `the processes of ${dir} to exit` }).then(
      () => [],
      () => processesIn(dir),
    );
    for (const pid of left) process.kill(pid, 'SIGKILL');
    assert.deepEqual(left, [], 'processes left behind');
  });
}

async function startManager(t, config, args = []) {
  let url = null;
  const beforeStop = () => (url ? post(`${url}/manager/stop`, {}, undefined, { timeout: 2000 }) : Promise.resolve());
  const m = await spawnLine(t, JSHOST_NODE, [config, '--manager', '--port', '0', '--json', '--verbose', ...args], { beforeStop });
  url = `http://127.0.0.1:${JSON.parse(m.line).config.port}`;
  return { ...m, url, pid: m.child.pid };
}

// Requests that must answer at once get 5 s; a start they would wait for takes 60 s.
const api = (m, endpoint, body, timeout = 60000) => post(`${m.url}${endpoint}`, body, undefined, { timeout });
const quick = (m, endpoint, body) => api(m, endpoint, body, 5000);
const json = (r) => JSON.parse(r.body);
const exited = (child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve)));

test('a start that hangs is killed after its start-up timeout: 500 naming the config and the logfile', async (t) => {
  const dir = tmpDir(t);
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const config = write(dir, 'hang.config.mjs', hangingConfig);
  const m = await startManager(t, managerConfig);
  noLeftovers(t, dir);
  const r = await api(m, '/host/start', { config, startTimeout: 1000 });
  assert.equal(r.status, 500, r.body);
  assert.match(r.body, /did not start within 1000 ms/);
  assert.ok(r.body.includes(config), r.body);
  const logfile = /Its logfile: (\S+)/.exec(r.body)[1];
  assert.ok(fs.existsSync(logfile), `the logfile ${logfile} exists`);
  assert.deepEqual(json(await quick(m, '/host/status', { config })), { started: false });
  await waitFor(() => processesIn(dir).filter((pid) => pid !== m.pid).length === 0, { what: 'the hung host to be gone' });
  // The lock is free: a fixed config starts.
  fs.writeFileSync(config, esmConfig);
  const fixed = await api(m, '/host/start', { config });
  assert.equal(fixed.status, 200, fixed.body);
  // A start-up timeout that is not a whole number of milliseconds: 400.
  const bad = await api(m, '/host/start', { config: managerConfig, startTimeout: 'soon' });
  assert.equal(bad.status, 400);
  assert.match(bad.body, /startTimeout/);
});

test('/host/status and /host/disconnect answer at once while a start or restart hangs', async (t) => {
  const dir = tmpDir(t);
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const config = write(dir, 'host.config.mjs', esmConfig);
  const m = await startManager(t, managerConfig);
  noLeftovers(t, dir);

  // A first start that hangs.
  const hung = write(dir, 'hang.config.mjs', hangingConfig);
  const pending = api(m, '/host/start', { config: hung, startTimeout: 20000 });
  await waitFor(async () => json(await quick(m, '/host/status', { config: hung })).starting === true, { what: 'the status of a starting host' });
  assert.deepEqual(json(await quick(m, '/host/disconnect', { config: hung, connection: 'c' })), {
    started: false,
    config: hung,
    stopTimeout: null,
    status: 'Host has already stopped',
  });

  // A restart whose new host hangs (the config was edited into one that hangs).
  assert.equal((await api(m, '/host/start', { config })).status, 200);
  const { connection } = json(await api(m, '/host/connect', { config }));
  fs.writeFileSync(config, hangingConfig);
  const restart = api(m, '/host/restart', { config, startTimeout: 1500 });
  await waitFor(() => m.stderr().includes(`starting a host for ${config} (port`) && m.stderr().split(`starting a host for ${config}`).length === 3, {
    what: 'the restart to spawn its host',
  });
  const status = json(await quick(m, '/host/status', { config }));
  assert.equal(status.started, true, 'the restarting host keeps its record');
  assert.equal((await quick(m, '/host/disconnect', { config, connection })).status, 200);
  const r = await restart;
  assert.equal(r.status, 500);
  assert.ok(r.body.includes(config) && r.body.includes(status.host.logfile), r.body);
  // The cause fixed, the config starts again at once.
  fs.writeFileSync(config, esmConfig);
  assert.equal((await quick(m, '/host/status', { config })).body, '{"started":false}');
  assert.equal((await api(m, '/host/start', { config })).status, 200);

  // SIGTERM to the manager: the hung first start is stopped and answered too.
  m.child.kill('SIGTERM');
  const answer = await pending.then(
    (res) => `${res.status} ${res.body}`,
    (err) => err.message,
  );
  assert.ok(!answer.startsWith('200'), answer);
  await exited(m.child);
  assert.equal(m.child.exitCode, 0);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal}: the manager stops its running, hung and prepared hosts and exits 0`, async (t) => {
    const dir = tmpDir(t);
      // The manager's own config hangs in hosts: its prepared host never becomes ready.
    const managerConfig = write(dir, 'manager.config.mjs', hangingConfig);
    const running = write(dir, 'running.config.js', hostConfig());
    const hung = write(dir, 'hang.config.mjs', hangingConfig);
    const m = await startManager(t, managerConfig, ['--prepare']);
    noLeftovers(t, dir);
    const started = json(await api(m, '/host/start', { config: running }));
    const hostUrl = `http://127.0.0.1:${JSON.parse(started.output).config.port}`;
    assert.equal((await post(`${hostUrl}/function/echo`, { a: 1 })).body, '{"a":1}');
    const pending = api(m, '/host/start', { config: hung });
    await waitFor(async () => json(await quick(m, '/host/status', { config: hung })).starting === true, { what: 'the hung host to be starting' });
    // The manager, the prepared host, the running one and the hung one (and their workers).
    assert.ok(processesIn(dir).length >= 4, `processes: ${processesIn(dir)}`);
    m.child.kill(signal);
    await exited(m.child);
    assert.equal(m.child.exitCode, 0, m.stderr());
    await pending.catch(() => {});
    await waitFor(() => processesIn(dir).length === 0, { timeout: 15000, what: 'every host to exit' });
  });
}

test('a host whose config hangs dies with a SIGKILLed manager', async (t) => {
  const dir = tmpDir(t);
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const hung = write(dir, 'hang.config.mjs', hangingConfig);
  const m = await startManager(t, managerConfig);
  noLeftovers(t, dir);
  const pending = api(m, '/host/start', { config: hung });
  await waitFor(async () => json(await quick(m, '/host/status', { config: hung })).starting === true, { what: 'the hung host to be starting' });
  m.child.kill('SIGKILL');
  await pending.catch(() => {});
  await waitFor(() => processesIn(dir).length === 0, { timeout: 10000, what: 'the hung host to exit once its stdin closed' });
});

test('a request that reaches a stopping manager gets a 503 and starts nothing', async (t) => {
  const dir = tmpDir(t);
  const mark = path.join(dir, 'called');
  const hang = `hang: () => { require('fs').writeFileSync(${JSON.stringify(mark)}, ''); return new Promise(() => {}); },`;
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const config = write(dir, 'host.config.js', hostConfig().replace('functions: {', `functions: { ${hang}`));
  const other = write(dir, 'other.config.js', hostConfig());
  const m = await startManager(t, managerConfig);
  noLeftovers(t, dir);
  // A host that drains a call that never ends: the manager waits for it while it stops.
  const started = json(await api(m, '/host/start', { config }));
  const [hostPid] = childPids(m.pid);
  const call = post(`http://127.0.0.1:${JSON.parse(started.output).config.port}/function/hang`, {}).catch(() => 'cut');
  await waitFor(() => fs.existsSync(mark), { what: 'the call to run' });
  // A /host/start whose body is still on its way when the manager begins to stop.
  const body = JSON.stringify({ config: other });
  const req = http.request(`${m.url}/host/start`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } });
  const late = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d));
      res.on('end', () => resolve(`${res.statusCode} ${text}`));
    });
    req.on('error', reject);
  });
  let connected = false;
  req.on('socket', (socket) => socket.on('connect', () => (connected = true)));
  req.flushHeaders();
  await waitFor(() => connected, { what: 'the late request to connect' });
  assert.equal((await api(m, '/manager/stop', {})).body, 'Stopping...');
  await waitFor(() => m.stderr().includes('manager: stopping (/manager/stop)'), { what: 'the manager to stop' });
  req.end(body);
  assert.equal(await late, '503 the manager is stopping');
  assert.ok(!processesIn(dir).some((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(other)), 'no host for the late request');
  process.kill(hostPid, 'SIGKILL');
  await call;
  await exited(m.child);
  assert.equal(m.child.exitCode, 0);
});
