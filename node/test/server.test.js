'use strict';
// Routing of the HTTP handler (lib/server.js, lib/body.js): repeated, alternating, escaped,
// undecodable and unknown names each route as on their first request, and functions added at
// run time are found; a request aborted in the middle of its body leaves the host serving,
// without a word in the log.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { tmpDir, write, startHost, post, request, waitFor } = require('../testlib/helpers');

const CONFIG = `module.exports = { functions: {
  echo: function (data, cb) { cb(null, JSON.stringify(data)); },
  other: function (data, cb) { cb(null, 'other ' + data.n); },
  'café': function (data, cb) { cb(null, 'café ' + data.n); },
  adder: function (data, cb) {
    this.host.addFunction('added', function (d, cb2) { cb2(null, 'added ' + d.n); });
    cb(null, 'ok');
  }
} };`;

test('routing: repeated, escaped, undecodable, unknown and added names', async (t) => {
  const dir = tmpDir(t);
  const host = await startHost(t, write(dir, 'host.config.js', CONFIG));
  const at = async (path, data = {}) => {
    const r = await post(`${host.url}${path}`, data);
    return [r.status, r.body];
  };
  for (let i = 0; i < 3; i++) assert.deepEqual(await at('/function/echo', { i }), [200, `{"i":${i}}`]);
  assert.deepEqual(await at('/function/other', { n: 1 }), [200, 'other 1']);
  assert.deepEqual(await at('/function/echo', { n: 2 }), [200, '{"n":2}']);
  assert.deepEqual(await at('/function/echo?hash=x', { n: 3 }), [200, '{"n":3}']);
  for (let i = 0; i < 2; i++) assert.deepEqual(await at('/function/caf%C3%A9', { n: i }), [200, `café ${i}`]);
  for (let i = 0; i < 2; i++) {
    const [status, body] = await at('/function/%E0%A4%A');
    assert.equal(status, 400);
    assert.equal(body, "URIError: Failed to decode param '%E0%A4%A'");
  }
  for (let i = 0; i < 2; i++) assert.deepEqual(await at('/function/added', { n: i }), [404, 'Not found. Unknown function "added"']);
  assert.deepEqual(await at('/function/adder'), [200, 'ok']);
  for (let i = 0; i < 2; i++) assert.deepEqual(await at('/function/added', { n: i }), [200, `added ${i}`]);
  const get = await request(`${host.url}/function/added`, { method: 'GET' });
  assert.deepEqual([get.status, get.body], [404, 'Cannot GET /function/added']);
});

test('a request aborted in the middle of its body: the host keeps serving and logs nothing', async (t) => {
  const dir = tmpDir(t);
  const host = await startHost(t, write(dir, 'host.config.js', CONFIG));
  const port = Number(new URL(host.url).port);
  const before = host.stderr();
  await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write('POST /function/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
      setTimeout(() => s.destroy(), 50);
    });
    s.on('close', resolve);
    s.on('error', reject);
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual((await post(`${host.url}/function/echo`, { still: 'up' })).body, '{"still":"up"}');
  await waitFor(async () => (await post(`${host.url}/function/echo`, {})).status === 200, { what: 'a call' });
  assert.equal(host.stderr(), before);
});
