'use strict';
// Issue 20 item 2: SIGTERM/SIGINT stop accepting, finish the calls in flight (up to --grace),
// (answering what arrives on kept connections "not run": life-notrun.test.js)
// and exit 0; one worker or several.

const test = require('node:test');
const assert = require('node:assert/strict');
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

for (const [signal, args] of [
  ['SIGTERM', []],
  ['SIGINT', ['--workers', '2']],
]) {
  test(`${signal} while six 1.5 s calls run (${args.join(' ') || 'one worker'}): all six answer, then exit 0`, async (t) => {
    const dir = tmpDir(t);
    const config = write(dir, 'host.config.js', CONFIG);
    const host = await startHost(t, config, args);
    trackWorkers(t, host.child.pid);
    const calls = [];
    for (let i = 0; i < 6; i++) calls.push(post(`${host.url}/function/slow`, { i, ms: 1500 }));
    // Every call runs on a worker before the signal.
    await waitFor(() => (host.stderr().match(/started \d/g) || []).length === 6, { what: 'six calls running' });
    const sentAt = Date.now();
    process.kill(host.child.pid, signal);
    const results = await Promise.all(calls.map((c) => c.catch((e) => ({ error: e.message }))));
    assert.deepEqual(
      results.map((r) => [r.status, r.body]),
      [0, 1, 2, 3, 4, 5].map((i) => [200, `slow ${i}`]),
    );
    // No new connection is taken once stopping.
    await waitFor(async () => (await post(`${host.url}/function/echo`, {}).catch((e) => e)).code === 'ECONNREFUSED', { what: 'connections refused' });
    assert.deepEqual(await exited(host.child), { code: 0, signal: null });
    assert.ok(Date.now() - sentAt < 5000);
  });
}

test('--grace 1: a call longer than the grace period is cut; the host exits 0 soon after', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--grace', '1']);
  trackWorkers(t, host.child.pid);
  const long = post(`${host.url}/function/slow`, { i: 0, ms: 20000 }).catch((error) => ({ error }));
  const short = post(`${host.url}/function/slow`, { i: 1, ms: 300 });
  await waitFor(() => /started 0/.test(host.stderr()) && /started 1/.test(host.stderr()), { what: 'both calls to run' });
  const sentAt = Date.now();
  process.kill(host.child.pid, 'SIGTERM');
  assert.equal((await short).body, 'slow 1');
  assert.ok((await long).error, 'the call still running when the grace period ends fails');
  assert.deepEqual(await exited(host.child), { code: 0, signal: null });
  const took = Date.now() - sentAt;
  assert.ok(took >= 900 && took < 4000, `exited after the grace period (${took} ms)`);
});
