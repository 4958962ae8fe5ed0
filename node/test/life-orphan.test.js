'use strict';
// A worker must never outlive its primary, not even a worker stuck in a call (whose event loop
// never sees the IPC channel close): its watchdog thread ends it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { tmpDir, write, startHost, post, waitFor, alive, trackWorkers } = require('../testlib/helpers');

const CONFIG = `module.exports = { functions: {
  pid: function (data, cb) { cb(null, String(process.pid)); },
  forever: function () { for (;;) {} }
} };`;

const call = (url, name, data) => post(`${url}/function/${name}`, data).catch((error) => ({ error }));

test('a worker stuck in a call without a deadline dies when its primary is SIGKILLed', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config);
  const workers = trackWorkers(t, host.child.pid);
  const [worker] = workers();
  assert.equal(Number((await call(host.url, 'pid', {})).body), worker);
  const stuck = call(host.url, 'forever', {});
  await waitFor(async () => (await post(`${host.url}/jshost/info`, {}, {}, { timeout: 200 }).catch(() => null)) === null, { what: 'the worker to be stuck' });
  host.child.kill('SIGKILL');
  await waitFor(() => !alive(worker), { timeout: 2000, interval: 10, what: 'the stuck worker to exit' });
  assert.ok((await stuck).error);
});
