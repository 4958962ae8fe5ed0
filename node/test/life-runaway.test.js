'use strict';
// Issue 20 item 1: a call that keeps its worker's event loop from turning past its deadline
// gets that worker replaced; only the calls on it fail (their connection closes), the log names
// the function, and other calls are served again within 1 s. The default host (one worker)
// included.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { tmpDir, write, startHost, post, request, waitFor, alive, trackWorkers } = require('../testlib/helpers');

const CONFIG = `
module.exports = {
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    pid: function (data, cb) { cb(null, String(process.pid)); },
    forever: function (data, cb) { for (;;) {} },
    slow: function (data, cb) { setTimeout(function () { cb(null, 'slow done'); }, data.ms); },
    busy: function (data) { var end = Date.now() + data.ms; while (Date.now() < end) {} return 'busy done'; },
    spinAfterAwait: async function (data) { await new Promise(function (r) { setTimeout(r, 10); }); for (;;) {} }
  }
};
`;

/** POST on a fresh connection; resolves {status, body} or {error} when the connection closes. */
function call(url, name, data, headers = {}) {
  return post(`${url}/function/${name}`, data, { 'content-type': 'application/json', ...headers }).then(
    (r) => r,
    (error) => ({ error }),
  );
}

async function servedAgainWithin(url, ms) {
  const from = Date.now();
  await waitFor(async () => (await call(url, 'echo', { back: 1 })).body === '{"back":1}', { timeout: ms, interval: 10, what: `a call answered within ${ms} ms` });
  return Date.now() - from;
}

test('default host: a runaway call (X-Jshost-Timeout) replaces the worker; the host serves again within 1 s', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const logfile = path.join(dir, 'host.log');
  const host = await startHost(t, config, ['--logfile', logfile]);
  const workers = trackWorkers(t, host.child.pid);
  const [first] = workers();
  assert.equal(Number((await call(host.url, 'pid', {})).body), first);

  const inFlight = call(host.url, 'slow', { ms: 5000 }); // on the same worker: it fails too
  const runaway = await call(host.url, 'forever', {}, { 'x-jshost-timeout': '300' });
  assert.ok(runaway.error, 'the runaway call loses its connection');
  assert.ok((await inFlight).error, 'a call in flight on that worker fails too');
  const took = await servedAgainWithin(host.url, 1000);
  assert.ok(took <= 1000);
  assert.ok(!alive(first), 'the stuck worker is gone');
  const [second] = workers();
  assert.notEqual(second, first);
  assert.match(host.stderr(), /function "forever" ran away: /);
  assert.match(fs.readFileSync(logfile, 'utf8'), /function "forever" ran away: /);
  // A call past its deadline while the loop turns is a 504, not a runaway.
  const late = await call(host.url, 'slow', { ms: 400 }, { 'x-jshost-timeout': '100' });
  assert.equal(late.status, 504);
  assert.deepEqual(workers(), [second]);
});

test('--call-timeout: the host-wide deadline; with --workers 2 the other worker serves throughout', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--workers', '2', '--call-timeout', '400']);
  const workers = trackWorkers(t, host.child.pid);
  assert.equal(workers().length, 2);
  // One keep-alive connection per worker (connections go round robin).
  const agents = [new http.Agent({ keepAlive: true, maxSockets: 1 }), new http.Agent({ keepAlive: true, maxSockets: 1 })];
  t.after(() => agents.forEach((a) => a.destroy()));
  const onAgent = (agent, name, data) =>
    new Promise((resolve) => {
      const body = JSON.stringify(data);
      const req = http.request(`${host.url}/function/${name}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode, body: text }));
      });
      req.on('error', (error) => resolve({ error }));
      req.end(body);
    });
  const pids = [Number((await onAgent(agents[0], 'pid', {})).body), Number((await onAgent(agents[1], 'pid', {})).body)];
  assert.notEqual(pids[0], pids[1]);

  const runaway = onAgent(agents[0], 'forever', {});
  // While worker A is stuck, worker B answers every call.
  let served = 0;
  let settled = false;
  runaway.then(() => (settled = true));
  while (!settled) {
    const r = await onAgent(agents[1], 'echo', { n: served });
    assert.equal(r.body, JSON.stringify({ n: served }));
    served++;
  }
  assert.ok((await runaway).error);
  assert.ok(served > 0);
  await waitFor(() => !alive(pids[0]), { what: 'the stuck worker to be gone' });
  assert.match(host.stderr(), /function "forever" ran away: .*400 ms/);
  await servedAgainWithin(host.url, 1000);
  await waitFor(() => workers().length === 2, { what: 'a replacement worker' });
  // A call that is busy but within its deadline is left alone.
  assert.equal((await onAgent(agents[1], 'busy', { ms: 200 })).body, 'busy done');
});

test('a batch item timeout is a deadline too', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config);
  const workers = trackWorkers(t, host.child.pid);
  const [first] = workers();
  const r = await post(`${host.url}/batch`, [{ function: 'echo', data: {} }, { function: 'forever', data: {}, timeout: 200 }]).catch((error) => ({ error }));
  assert.ok(r.error);
  await servedAgainWithin(host.url, 1000);
  assert.ok(!alive(first));
  assert.match(host.stderr(), /function "forever" ran away: /);
});

test('runaway after runaway: the host answers again within 1 s each time', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--call-timeout', '200']);
  trackWorkers(t, host.child.pid);
  for (let i = 0; i < 5; i++) {
    assert.ok((await call(host.url, 'forever', {})).error, `runaway ${i}`);
    await servedAgainWithin(host.url, 1000);
  }
  assert.equal((host.stderr().match(/function "forever" ran away/g) || []).length, 5);
});

test('the log names the call that kept the loop busy, not another call whose deadline it made the host miss', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config);
  trackWorkers(t, host.child.pid);
  // `slow` waits on a timer with a deadline; `forever` has no deadline of its own and never yields.
  const waiting = call(host.url, 'slow', { ms: 5000 }, { 'x-jshost-timeout': '300' });
  const inFlight = async () => /^jshost_calls_in_flight 1$/m.test((await request(`${host.url}/metrics`, { method: 'GET' })).body);
  await waitFor(inFlight, { what: '`slow` to be running' });
  const spinning = call(host.url, 'forever', {});
  assert.ok((await waiting).error);
  assert.ok((await spinning).error);
  await servedAgainWithin(host.url, 1000);
  assert.match(host.stderr(), /function "forever" ran away: it kept the event loop from turning \d+ ms past the deadline \(300 ms\) of a call of function "slow"/);
  assert.doesNotMatch(host.stderr(), /function "slow" ran away/);
});

test('a call stuck after an await: the call with the missed deadline is named, and the log says what is known', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config);
  trackWorkers(t, host.child.pid);
  assert.ok((await call(host.url, 'spinAfterAwait', {}, { 'x-jshost-timeout': '200' })).error);
  await servedAgainWithin(host.url, 1000);
  assert.match(host.stderr(), /function "spinAfterAwait" ran away: .*past its deadline \(200 ms\), in code run after an await/);
});

test('a call without a deadline is never cut while no deadline is missed', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config);
  const workers = trackWorkers(t, host.child.pid);
  const [first] = workers();
  // A deadline that was met just before leaves nothing for the watchdog to act on.
  assert.equal((await call(host.url, 'echo', { a: 1 }, { 'x-jshost-timeout': '100' })).body, '{"a":1}');
  assert.equal((await call(host.url, 'busy', { ms: 600 })).body, 'busy done');
  assert.deepEqual(workers(), [first]);
  assert.doesNotMatch(host.stderr(), /ran away/);
});
