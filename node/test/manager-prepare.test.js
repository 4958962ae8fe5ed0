'use strict';
// The manager's --prepare: a host for the manager's own config spawned at start-up and adopted by
// the first /host/start of that config, with the same answer as start(); a prepared host that
// failed gives start()'s own error; an unused one is killed with the manager, never outlives it
// (even a SIGKILLed one), and never makes the manager exit (or stay) on its own.

const fs = require('node:fs');
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const { tmpDir, write, spawnLine, post, waitFor, alive, stop, childPids, JSHOST_NODE, ENV, hostConfig } = require('../testlib/helpers');

// Loads in the manager, throws in the hosts it starts.
const throwingConfig = (extra = '') => `
if (!process.argv.includes('--manager')) throw new Error('this config refuses to run a host');
${hostConfig(extra)}`;

/** Pids of the live processes whose command line names `file` (each test has its own fixture). */
function processesOf(file) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes(file) && alive(Number(entry))) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/**
 * The processes of one test: after it, its managers are stopped (/manager/stop, then SIGTERM),
 * then every process left that names one of `configs` is killed (a safety net: none should be).
 */
function fixture(t, ...configs) {
  const fx = { t, managers: [] };
  t.after(async () => {
    await Promise.all(
      fx.managers.map(async (m) => {
        await post(`${m.url}/manager/stop`, {}, undefined, { timeout: 2000 }).catch(() => {});
        await stop(m.child);
      }),
    );
    const left = () => configs.flatMap(processesOf);
    await waitFor(() => left().length === 0, { timeout: 4000, what: 'the processes of the test to exit' }).catch(() => {
      for (const pid of left()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    });
  });
  return fx;
}

/** A manager for `config` (`--port 0 --json --verbose` plus `args`), stopped after the test. */
async function startManager(fx, config, args = []) {
  const m = await spawnLine(fx.t, JSHOST_NODE, [config, '--manager', '--port', '0', '--json', '--verbose', ...args]);
  const url = `http://127.0.0.1:${JSON.parse(m.line).config.port}`;
  fx.managers.push({ url, child: m.child });
  return { ...m, url, pid: m.child.pid };
}

const api = (m, endpoint, body) => post(`${m.url}${endpoint}`, body);
const json = (r) => JSON.parse(r.body);
const hostUrl = (answer) => `http://127.0.0.1:${JSON.parse(answer.output).config.port}`;
const preparedReady = (m, config) => waitFor(() => m.stderr().includes(`the prepared host for ${config} is ready`), { timeout: 10000, what: 'the prepared host' });
const exited = (child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve)));

test('/host/start adopts the prepared host: the same answer as start(), a working host', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const other = write(dir, 'other.config.js', hostConfig());
  const fx = fixture(t, config, other);
  const m = await startManager(fx, config, ['--prepare']);
  await preparedReady(m, config);
  const [preparedPid] = childPids(m.pid);
  assert.deepEqual(childPids(m.pid), [preparedPid], 'one prepared host, not yet a host');
  assert.deepEqual(json(await api(m, '/host/status', { config })), { started: false });

  // Another config: started as usual, the prepared host stays aside.
  const o = await api(m, '/host/start', { config: other });
  assert.equal(o.status, 200, o.body);
  assert.equal(childPids(m.pid).length, 2);
  assert.ok(childPids(m.pid).includes(preparedPid));

  const r = await api(m, '/host/start', { config });
  assert.equal(r.status, 200, r.body);
  const answer = json(r);
  assert.deepEqual(Object.keys(answer), ['output', 'logfile', 'config', 'connections', 'options']);
  assert.deepEqual(Object.keys(answer), Object.keys(json(o)));
  assert.equal(answer.config, config);
  assert.deepEqual(answer.connections, []);
  assert.ok(answer.output.endsWith('}\n') && answer.output.indexOf('\n') === answer.output.length - 1, answer.output);
  const status = JSON.parse(answer.output);
  assert.equal(status.type, 'Host');
  assert.deepEqual(status.config.functions, ['echo', 'pid']);
  // The same status a host started as usual prints, but for its port.
  const usual = JSON.parse(json(o).output);
  assert.deepEqual({ ...status, config: { ...status.config, port: 0 } }, { ...usual, config: { ...usual.config, port: 0 } });
  assert.match(answer.logfile, /jshost-node-host-\d+-[0-9a-f]+\.log$/);
  assert.ok(fs.existsSync(answer.logfile));
  assert.notEqual(answer.logfile, json(o).logfile);

  const url = hostUrl(answer);
  // A function runs in a worker of the host's primary (the manager's child).
  assert.deepEqual(childPids(preparedPid), [Number((await post(`${url}/function/pid`, {})).body)], 'the prepared process was adopted');
  assert.equal((await post(`${url}/function/echo`, { a: 1 })).body, '{"a":1}');
  assert.deepEqual(json(await api(m, '/host/status', { config })), { started: true, host: answer });
  assert.equal(json(await api(m, '/host/connect', { config })).output, answer.output);

  // Only the first start adopts: again → "already running"; after a stop, a fresh process.
  const again = await api(m, '/host/start', { config });
  assert.deepEqual([again.status, again.body], [500, 'Host already running']);
  assert.equal((await api(m, '/host/stop', { config })).status, 200);
  assert.ok(!alive(preparedPid));
  const fresh = await api(m, '/host/start', { config });
  assert.equal(fresh.status, 200, fresh.body);
  const freshWorker = Number((await post(`${hostUrl(json(fresh))}/function/pid`, {})).body);
  assert.ok(alive(freshWorker) && !childPids(preparedPid).includes(freshWorker), 'a fresh process');
  assert.match(m.stderr(), /manager: adopting the prepared host for /);
});

test('/host/start while the prepared host is still starting waits for it; cold start times', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const fx = fixture(t, config);
  // spawn → /host/start answered → first call answered, with and without --prepare, alternating.
  const cold = async (args) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [JSHOST_NODE, config, '--manager', '--port', '0', '--json', ...args], { env: ENV, stdio: ['pipe', 'pipe', 'pipe'] });
    fx.managers.push({ url: 'http://127.0.0.1:1', child });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    const line = await waitFor(() => out.includes('\n') && out.slice(0, out.indexOf('\n')), { timeout: 10000, what: 'the manager' });
    const url = `http://127.0.0.1:${JSON.parse(line).config.port}`;
    fx.managers[fx.managers.length - 1].url = url;
    const r = await post(`${url}/host/start`, { config });
    const started = performance.now() - t0;
    assert.equal(r.status, 200, r.body);
    const hostPid = Number((await post(`${hostUrl(json(r))}/function/pid`, {})).body);
    const called = performance.now() - t0;
    assert.equal((await post(`${url}/manager/stop`, {})).body, 'Stopping...');
    await exited(child);
    await waitFor(() => !alive(hostPid), { timeout: 4000, what: 'the host to exit' });
    return [started, called];
  };
  const runs = { plain: [], prepare: [] };
  for (let i = 0; i < 3; i++) {
    runs.plain.push(await cold([]));
    runs.prepare.push(await cold(['--prepare']));
  }
  const median = (list, k) => list.map((x) => x[k]).sort((a, b) => a - b)[list.length >> 1].toFixed(0);
  for (const [name, list] of Object.entries(runs)) {
    t.diagnostic(`cold start ${name === 'prepare' ? 'with' : 'without'} --prepare: /host/start answered after ${median(list, 0)} ms, first call after ${median(list, 1)} ms (median of ${list.length}: ${list.map((x) => x[0].toFixed(0)).join(', ')})`);
  }
});

test('a prepared host whose config throws: /host/start gives the error start() gives', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', throwingConfig('disconnectTimeout: 200,'));
  const fx = fixture(t, config);
  const normalize = (text) => text.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'TIME').replace(/\[\d+\]/g, '[PID]');

  const plain = await startManager(fx, config);
  const expected = await api(plain, '/host/start', { config });
  assert.equal(expected.status, 500);
  assert.match(expected.body, /^Error: Error starting child host \(it exited with code 1\): .*this config refuses to run a host/s);

  const m = await startManager(fx, config, ['--prepare']);
  await waitFor(() => m.stderr().includes(`the prepared host for ${config} failed to start`), { timeout: 10000, what: 'the prepared host to fail' });
  // Its failure is not a host stopping: the manager stays (it never had a host).
  await new Promise((r) => setTimeout(r, 500)); // > disconnectTimeout: a check that nothing happens
  assert.equal(m.child.exitCode, null);
  const r = await api(m, '/host/start', { config });
  assert.equal(r.status, expected.status);
  assert.equal(normalize(r.body), normalize(expected.body));
  assert.deepEqual(json(await api(m, '/host/status', { config })), { started: false });
  await waitFor(() => childPids(m.pid).length === 0, { timeout: 2000, what: 'no process left under the manager' });
});

test('an unused prepared host is killed when the manager stops', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig('disconnectTimeout: 200,'));
  const other = write(dir, 'other.config.js', hostConfig());
  const fx = fixture(t, config, other);

  await t.test('/manager/stop', async () => {
    const m = await startManager(fx, config, ['--prepare']);
    await preparedReady(m, config);
    const [pid] = childPids(m.pid);
    const logfile = m.stderr().match(/preparing a host for .* \(port 0, logfile (.*)\)/)[1];
    assert.ok(fs.existsSync(logfile));
    assert.equal((await api(m, '/manager/stop', {})).body, 'Stopping...');
    await exited(m.child);
    assert.equal(m.child.exitCode, 0);
    await waitFor(() => !alive(pid), { timeout: 1000, what: 'the prepared host to exit' });
    await waitFor(() => !fs.existsSync(logfile), { timeout: 1000, what: 'its logfile to be removed' });
    assert.match(m.stderr(), /stopping the unused prepared host for .* \(manager \/manager\/stop\)/);
  });

  await t.test('SIGTERM', async () => {
    const m = await startManager(fx, config, ['--prepare']);
    await preparedReady(m, config);
    const [pid] = childPids(m.pid);
    m.child.kill('SIGTERM');
    await exited(m.child);
    await waitFor(() => !alive(pid), { timeout: 1000, what: 'the prepared host to exit' });
  });

  await t.test('exit without hosts, not before a host was started and stopped', async () => {
    const m = await startManager(fx, config, ['--prepare']);
    await preparedReady(m, config);
    const [pid] = childPids(m.pid);
    await new Promise((r) => setTimeout(r, 500)); // > disconnectTimeout: a check that nothing happens
    assert.equal(m.child.exitCode, null, 'the prepared host is not a host: no exit before a host was started');
    assert.equal((await api(m, '/host/start', { config: other })).status, 200);
    assert.equal((await api(m, '/host/stop', { config: other })).status, 200);
    // Its last (and only) host stopped: it exits after disconnectTimeout, the prepared host with it.
    await exited(m.child);
    assert.equal(m.child.exitCode, 0);
    await waitFor(() => !alive(pid), { timeout: 1000, what: 'the prepared host to exit' });
  });
});

test('a SIGKILLed manager leaves no process of its config behind', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const fx = fixture(t, config);

  await t.test('prepared host still starting', async () => {
    const m = await startManager(fx, config, ['--prepare']);
    m.child.kill('SIGKILL');
    await waitFor(() => processesOf(config).length === 0, { timeout: 1000, interval: 10, what: `no process of ${config} left` });
  });

  await t.test('prepared host ready', async () => {
    const m = await startManager(fx, config, ['--prepare']);
    await preparedReady(m, config);
    assert.equal(processesOf(config).length, 2);
    m.child.kill('SIGKILL');
    await waitFor(() => processesOf(config).length === 0, { timeout: 1000, interval: 10, what: `no process of ${config} left` });
  });

  await t.test('prepared host adopted', async () => {
    const m = await startManager(fx, config, ['--prepare']);
    assert.equal((await api(m, '/host/start', { config })).status, 200);
    m.child.kill('SIGKILL');
    await waitFor(() => processesOf(config).length === 0, { timeout: 1000, interval: 10, what: `no process of ${config} left` });
  });
});

test('--prepare needs --manager', async () => {
  const r = spawnSync(process.execPath, [JSHOST_NODE, 'host.config.js', '--prepare'], { env: ENV, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--prepare needs --manager/);
  const help = spawnSync(process.execPath, [JSHOST_NODE, '--help'], { env: ENV, encoding: 'utf8' });
  assert.match(help.stdout, /--prepare/);
});
