'use strict';
// --workers: connections spread over worker processes, a dead worker is replaced, and
// --exit-on-stdin-close takes the primary and every worker down when the owner dies.

const test = require('node:test');
const assert = require('node:assert/strict');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { tmpDir, write, startHost, spawnLine, request, post, waitFor, alive, childPids, stop, JSHOST_NODE, ENV } = require('../testlib/helpers');

const CONFIG = `
module.exports = {
  functions: {
    pid: function (data, cb) { cb(null, String(process.pid)); },
    die: function (data, cb) { process.exit(3); },
    wait: function (data, cb) { setTimeout(function () { cb(null, 'waited'); }, data.ms); }
  }
};
process.on('SIGUSR2', function () { throw new Error('belongs to no call'); });
`;

const info = async (url) => JSON.parse((await request(`${url}/jshost/info`, { method: 'GET' })).body);

test('--workers 2 spreads connections and replaces a dead worker', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--workers', '2']);
  assert.deepEqual(Object.keys(host.status), ['type', 'version', 'config']);
  assert.equal(typeof host.status.config.port, 'number');

  const workers = childPids(host.child.pid);
  assert.equal(workers.length, 2);
  const seen = new Set();
  for (let i = 0; i < 6; i++) seen.add(Number((await post(`${host.url}/function/pid`, {})).body));
  assert.deepEqual([...seen].sort(), [...workers].sort(), 'each worker gets connections');

  const i = await info(host.url);
  assert.equal(i.workers, 2);
  assert.deepEqual(i.features, ['promise', 'batch', 'workers']);
  assert.equal(i.generation, 1);

  // A worker that exits in a call: that call fails, the other worker serves, a new one comes.
  const victim = await post(`${host.url}/function/pid`, {}).then((r) => Number(r.body));
  let died = 0;
  while (alive(victim) && died < 10) {
    await post(`${host.url}/function/die`, {}).catch(() => {});
    died++;
  }
  assert.equal((await post(`${host.url}/function/pid`, {})).status, 200);
  await waitFor(() => childPids(host.child.pid).length === 2, { what: 'a replacement worker' });

  // An error that belongs to no call exits that worker; it is replaced too. (A worker that
  // answered a call has loaded the config, which installs the signal handler.)
  const w = Number((await post(`${host.url}/function/pid`, {})).body);
  process.kill(w, 'SIGUSR2');
  await waitFor(() => !alive(w), { what: 'the worker to exit' });
  await waitFor(() => childPids(host.child.pid).length === 2 && !childPids(host.child.pid).includes(w), { what: 'its replacement' });
  await waitFor(async () => (await post(`${host.url}/function/pid`, {})).status === 200, { what: 'a call' });
  assert.match(host.stderr(), /belongs to no call/);
});

test('--workers auto starts one worker per core; works with --socket', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const socketPath = path.join(dir, 'h.sock');
  const { child, line } = await spawnLine(t, JSHOST_NODE, [config, '--workers', 'auto', '--socket', socketPath, '--json']);
  assert.equal(JSON.parse(line).config.port, '9009');
  assert.equal(childPids(child.pid).length, os.availableParallelism());
  const r = await request('http://localhost/jshost/info', { method: 'GET', socketPath });
  assert.deepEqual(JSON.parse(r.body).features, ['promise', 'batch', 'workers', 'socket']);
});

// Starts `jshost-node ...args` from a middle process that holds its stdin pipe; returns
// {middle, primary, line}.
async function startOwned(t, args) {
  const script = `
    const { spawn } = require('node:child_process');
    const c = spawn(process.execPath, ${JSON.stringify([JSHOST_NODE, ...args])}, { stdio: ['pipe', 'inherit', 'inherit'] });
    process.stdout.write('PID ' + c.pid + '\\n');
    setInterval(() => {}, 1000);
  `;
  const middle = spawn(process.execPath, ['-e', script], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  middle.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  t.after(() => stop(middle, 'SIGKILL'));
  const lines = await waitFor(() => {
    const l = out.split('\n');
    return l.length >= 3 ? l : null;
  }, { timeout: 10000, what: 'the host to start' });
  const primary = Number(lines[0].slice(4));
  t.after(() => alive(primary) && process.kill(primary, 'SIGKILL'));
  return { middle, primary, line: lines[1] };
}

test('--exit-on-stdin-close: a SIGKILLed owner takes the host and its 2 workers down within 1 s', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const { middle, primary, line } = await startOwned(t, [config, '--workers', '2', '--exit-on-stdin-close', '--port', '0', '--json']);
  const url = `http://127.0.0.1:${JSON.parse(line).config.port}`;
  assert.equal((await post(`${url}/function/pid`, {})).status, 200);
  const workers = childPids(primary);
  assert.equal(workers.length, 2);
  for (const pid of workers) t.after(() => alive(pid) && process.kill(pid, 'SIGKILL'));
  middle.kill('SIGKILL');
  await waitFor(() => ![primary, ...workers].some(alive), { timeout: 1000, interval: 10, what: 'the primary and both workers to exit' });
});

test('--exit-on-stdin-close without workers', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const { middle, primary } = await startOwned(t, [config, '--exit-on-stdin-close', '--port', '0', '--json']);
  middle.kill('SIGKILL');
  await waitFor(() => !alive(primary), { timeout: 1000, interval: 10, what: 'the host to exit' });
});
