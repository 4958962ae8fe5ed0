'use strict';
// Issue 20 items 2 and 3: a draining process answers what arrives on kept connections "not
// run, send again" (503 X-Jshost-Not-Run, Connection: close) and closes idle connections only
// later (the wire contract's item 2).

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { tmpDir, write, startHost, post, waitFor, trackWorkers } = require('../testlib/helpers');

const CONFIG = `
module.exports = {
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    slow: function (data, cb) {
      process.stderr.write('started ' + data.i + '\\n');
      setTimeout(function () { cb(null, 'slow ' + data.i); }, data.ms);
    }
  }
};
`;

const exited = (child) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

test('a request on a kept-alive connection while draining gets 503 X-Jshost-Not-Run; idle connections are closed later', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--grace', '3']);
  trackWorkers(t, host.child.pid);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const send = (name, data) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify(data);
      const req = http.request(`${host.url}/function/${name}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text, socket: req.socket }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const first = await send('echo', { a: 1 });
  assert.equal(first.status, 200);
  const kept = first.socket;
  const inFlight = post(`${host.url}/function/slow`, { i: 7, ms: 1000 }); // keeps the worker draining
  await waitFor(() => /started 7/.test(host.stderr()), { what: 'the slow call to run' });
  process.kill(host.child.pid, 'SIGTERM');
  // The idle kept-alive connection is still open: a request on it is not run, and says so.
  const answer = await waitFor(async () => {
    const r = await send('echo', { b: 2 });
    return r.status === 503 ? r : null;
  }, { what: 'the not-run answer' });
  assert.equal(answer.socket, kept, 'sent on the kept connection');
  assert.equal(answer.headers['x-jshost-not-run'], '1');
  assert.equal(answer.headers.connection, 'close');
  assert.equal(answer.body, 'jshost-node is shutting down: the call was not run; send it again');
  assert.equal((await inFlight).body, 'slow 7');
  assert.deepEqual(await exited(host.child), { code: 0, signal: null });
});
