'use strict';
// Issue 20 items 3 and 5: hand-overs fail no call. Callers on keep-alive connections call
// without pause (sending a request again only when it was answered 503 X-Jshost-Not-Run, as
// the SDK does) while --watch switches generations, or workers are recycled for --max-calls or
// --max-memory; every call must answer 200.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { tmpDir, write, startHost, waitFor, trackWorkers } = require('../testlib/helpers');

/** `n` callers of `name` until `stop()`; resolves {ok, failed: [..], notRun, pids: Set}. */
function load(t, url, n, name, data = {}) {
  let stopping = false;
  const result = { ok: 0, failed: [], notRun: 0, pids: new Set() };
  const once = (agent) =>
    new Promise((resolve) => {
      const body = JSON.stringify(data);
      const req = http.request(`${url}/function/${name}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
      });
      req.on('error', (error) => resolve({ error: error.message }));
      req.end(body);
    });
  const caller = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    while (!stopping) {
      let r = await once(agent);
      for (let i = 0; i < 5 && r.status === 503 && r.headers['x-jshost-not-run'] === '1'; i++) {
        result.notRun++;
        r = await once(agent);
      }
      if (r.status === 200) {
        result.ok++;
        result.pids.add(r.body);
      } else {
        result.failed.push(r.error || `${r.status} ${r.body}`);
      }
    }
  };
  const running = Promise.all(Array.from({ length: n }, caller));
  return {
    result,
    stop: async () => {
      stopping = true;
      await running;
      return result;
    },
  };
}

const CONFIG = (version) => `
module.exports = {
  functions: {
    pid: function (data, cb) { setTimeout(function () { cb(null, '${version} ' + process.pid); }, 2); }
  }
};
`;

test('--watch: 3 edits while 4 callers call: no call fails', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG('v0'));
  const logfile = path.join(dir, 'host.log');
  const host = await startHost(t, config, ['--watch', '--logfile', logfile]);
  trackWorkers(t, host.child.pid);
  const calls = load(t, host.url, 4, 'pid');
  for (let v = 1; v <= 3; v++) {
    await waitFor(() => calls.result.ok > 50 * v, { timeout: 10000, what: 'calls' });
    fs.writeFileSync(config, CONFIG(`v${v}`));
    await waitFor(() => [...calls.result.pids].some((p) => p.startsWith(`v${v} `)), { timeout: 10000, what: `generation ${v + 1} to answer` });
  }
  const r = await calls.stop();
  assert.deepEqual(r.failed, []);
  t.diagnostic(`${r.ok} calls answered, ${r.notRun} not-run answers sent again, 0 failed, ${r.pids.size} worker(s) served`);
  assert.ok(r.ok > 150, `${r.ok} calls`);
  assert.match(fs.readFileSync(logfile, 'utf8'), /generation 4 is serving/);
});

test('--max-calls 40: workers are recycled while 4 callers call; no call fails', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG('v'));
  const logfile = path.join(dir, 'host.log');
  const host = await startHost(t, config, ['--max-calls', '40', '--workers', '2', '--logfile', logfile]);
  const workers = trackWorkers(t, host.child.pid);
  const calls = load(t, host.url, 4, 'pid');
  await waitFor(() => calls.result.pids.size >= 6, { timeout: 20000, what: 'six workers to have served' });
  const r = await calls.stop();
  assert.deepEqual(r.failed, []);
  t.diagnostic(`${r.ok} calls answered, ${r.notRun} not-run answers sent again, 0 failed, ${r.pids.size} worker(s) served`);
  await waitFor(() => workers().length === 2, { what: 'two workers after the recycles' });
  assert.match(fs.readFileSync(logfile, 'utf8'), /recycling worker \d+ \(generation 1\): \d+ calls, --max-calls 40/);
});

test('--max-memory: a worker that grows past it is recycled; no call fails', async (t) => {
  const dir = tmpDir(t);
  const config = write(
    dir,
    'host.config.js',
    `var kept = [];
    module.exports = { functions: {
      leak: function (data, cb) { kept.push(Buffer.alloc(4 * 1024 * 1024, 1)); cb(null, String(process.pid)); }
    } };`,
  );
  const logfile = path.join(dir, 'host.log');
  const host = await startHost(t, config, ['--max-memory', '150', '--logfile', logfile]);
  trackWorkers(t, host.child.pid);
  const calls = load(t, host.url, 2, 'leak');
  await waitFor(() => calls.result.pids.size >= 3, { timeout: 30000, what: 'two recycles' });
  const r = await calls.stop();
  assert.deepEqual(r.failed, []);
  t.diagnostic(`${r.ok} calls answered, ${r.notRun} not-run answers sent again, 0 failed, ${r.pids.size} worker(s) served`);
  assert.match(fs.readFileSync(logfile, 'utf8'), /recycling worker \d+ \(generation 1\): resident memory \d+ MB, --max-memory 150/);
});

test('a recycle whose successor cannot start leaves the worker serving', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG('v'));
  const logfile = path.join(dir, 'host.log');
  const host = await startHost(t, config, ['--max-calls', '3', '--logfile', logfile]);
  const workers = trackWorkers(t, host.child.pid);
  const [worker] = workers();
  fs.writeFileSync(config, 'syntax error here');
  const calls = load(t, host.url, 2, 'pid');
  await waitFor(() => /the successor of worker \d+ exited \(1\) before it was ready; it keeps serving/.test(fs.readFileSync(logfile, 'utf8')), { timeout: 10000, what: 'the failed successor' });
  await waitFor(() => calls.result.ok > 20, { what: 'more calls' });
  const r = await calls.stop();
  assert.deepEqual(r.failed, []);
  t.diagnostic(`${r.ok} calls answered, ${r.notRun} not-run answers sent again, 0 failed, ${r.pids.size} worker(s) served`);
  assert.deepEqual([...r.pids], [`v ${worker}`]);
});
