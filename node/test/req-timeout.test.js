'use strict';
// Call timers (wire contract item 1): a plain call's X-Jshost-Timeout and a batch item's
// `timeout`, with the host-wide callTimeout, the sooner winning. A missing, malformed,
// non-positive or too-large value (> 2^31-1 ms) means no host timer: never one that fires at once.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { tmpDir, write, startHost, post } = require('../testlib/helpers');
const { createHandler } = require('../lib/server');
const { Log } = require('../lib/log');

const FUNCTIONS = `{
  never: function (data, cb) {},
  slow: function (data, cb) { setTimeout(function () { cb(null, 'slow ' + data.n); }, 60); },
  echo: function (data, cb) { cb(null, JSON.stringify(data)); }
}`;

test('plain calls: X-Jshost-Timeout sets a timer; malformed, non-positive or too large sets none', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', `module.exports = { functions: ${FUNCTIONS} };`));
  const call = (name, timeout, data = {}) =>
    post(`${host.url}/function/${name}`, data, { 'content-type': 'application/json', 'x-jshost-timeout': timeout });

  const r = await call('never', '100');
  assert.deepEqual([r.status, r.body], [504, 'function "never" did not answer within 100 ms']);
  for (const bad of ['0', '-5', 'abc', '1.5', '2147483648', '99999999999', '1e3', ' ']) {
    const slow = await call('slow', bad, { n: bad });
    assert.deepEqual([slow.status, slow.body], [200, `slow ${bad}`], `X-Jshost-Timeout: ${JSON.stringify(bad)}`);
  }
  const justFits = await call('slow', '2147483647', { n: 1 });
  assert.deepEqual([justFits.status, justFits.body], [200, 'slow 1']);
  // A call that answers in time is not cut later, and the host keeps serving.
  assert.deepEqual((await call('echo', '50', { a: 1 })).body, '{"a":1}');
});

test('batch items: a timeout above 2^31-1 ms (or 1e999) means no timer; a non-number is a 400', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', `module.exports = { functions: ${FUNCTIONS} };`));
  const raw = (body) => post(`${host.url}/batch`, body);
  const r = await raw(
    '[{"function":"slow","data":{"n":1},"timeout":2147483648},{"function":"slow","data":{"n":2},"timeout":1e999},' +
      '{"function":"slow","data":{"n":3},"timeout":2147483647},{"function":"never","timeout":80}]',
  );
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), [
    { status: 200, output: 'slow 1' },
    { status: 200, output: 'slow 2' },
    { status: 200, output: 'slow 3' },
    { status: 504, error: 'Function "never" did not answer within its timeout of 80 ms' },
  ]);
  for (const bad of ['"soon"', 'null', '[1]', '{}']) {
    const res = await raw(`[{"function":"echo","data":{},"timeout":${bad}}]`);
    assert.equal(res.status, 400, bad);
    assert.match(res.body, /"timeout" must be a positive number of milliseconds/);
  }
});

/** A handler for FUNCTIONS on an in-process node:http server at port 0: its URL. */
async function serve(t, options) {
  const functions = Object.assign(Object.create(null), eval(`(${FUNCTIONS})`));
  const host = { functions, limit: 1 << 20, api: {}, statusJson: () => '{}', infoJson: () => '{}' };
  const log = new Log({});
  const server = http.createServer(createHandler(host, { identity: 'test', log, verbose: false, ...options }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${server.address().port}`;
}

test('callTimeout: a host-wide timer for plain calls and batch items; the sooner timer wins', async (t) => {
  const url = await serve(t, { callTimeout: 100 });
  const headers = (timeout) => ({ 'content-type': 'application/json', ...(timeout ? { 'x-jshost-timeout': timeout } : {}) });
  const plain = await post(`${url}/function/never`, {}, headers());
  assert.deepEqual([plain.status, plain.body], [504, 'function "never" did not answer within 100 ms']);
  const later = await post(`${url}/function/never`, {}, headers('5000'));
  assert.deepEqual([later.status, later.body], [504, 'function "never" did not answer within 100 ms']);
  const sooner = await post(`${url}/function/never`, {}, headers('50'));
  assert.deepEqual([sooner.status, sooner.body], [504, 'function "never" did not answer within 50 ms']);
  const slow = await post(`${url}/function/slow`, { n: 1 }, headers('2147483648'));
  assert.deepEqual([slow.status, slow.body], [200, 'slow 1'], 'a too-large header leaves callTimeout in force, not a 1 ms timer');
  const batch = await post(`${url}/batch`, [
    { function: 'never' },
    { function: 'never', timeout: 30 },
    { function: 'slow', data: { n: 2 }, timeout: 5000 },
  ]);
  assert.deepEqual(JSON.parse(batch.body), [
    { status: 504, error: 'Function "never" did not answer within its timeout of 100 ms' },
    { status: 504, error: 'Function "never" did not answer within its timeout of 30 ms' },
    { status: 200, output: 'slow 2' },
  ]);

  for (const none of [undefined, 0, -1, 2 ** 31, Infinity, NaN]) {
    const u = await serve(t, { callTimeout: none });
    const r = await post(`${u}/function/slow`, { n: 3 }, headers());
    assert.deepEqual([r.status, r.body], [200, 'slow 3'], `callTimeout ${String(none)}: no timer`);
  }
});
