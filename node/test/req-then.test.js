'use strict';
// A function's value is handled inside its call's error handling (issue 20 item 4): a `then`
// getter that throws (a strict Proxy, some ORM and config objects), any getter that throws
// while the output is encoded, an error value that cannot be described: a 500 on that call,
// plain or batched, and the host serves on.

const test = require('node:test');
const assert = require('node:assert/strict');
const { tmpDir, write, startHost, post } = require('../testlib/helpers');

const CONFIG = `
const strict = () => new Proxy({}, { get(t, key) { throw new TypeError('no property ' + String(key)); } });
const thenThrows = () => new Proxy({ a: 1 }, { get(t, key) { if (key === 'then') throw new Error('then getter threw'); return t[key]; } });
const hostile = () => new Proxy({}, {
  get() { throw new Error('get'); }, getPrototypeOf() { throw new Error('getPrototypeOf'); },
  ownKeys() { throw new Error('ownKeys'); }, has() { throw new Error('has'); },
});
module.exports = { functions: {
  strict: (data) => strict(),
  thenThrows: (data) => thenThrows(),
  asyncThenThrows: async (data) => thenThrows(),
  getterThrows: (data) => ({ get x() { throw new Error('getter threw'); } }),
  cbGetterThrows: function (data, cb) { cb(null, { toJSON() { throw new Error('toJSON threw'); } }); },
  hostileError: function (data, cb) { cb(hostile()); },
  hostileThrown: (data) => { throw hostile(); },
  echo: function (data, cb) { cb(null, JSON.stringify(data)); }
} };`;

const EXPECTED = {
  strict: /^TypeError: no property then\n/,
  thenThrows: /^Error: then getter threw\n/,
  asyncThenThrows: /^Error: then getter threw\n/,
  getterThrows: /^Error: getter threw\n/,
  cbGetterThrows: /^Error: toJSON threw\n/,
  hostileError: /^Error: the function failed with a value that cannot be described\n/,
  hostileThrown: /^Error: the function failed with a value that cannot be described\n/,
};

test('a value whose getters throw fails its call with a 500, plain and batched; the host serves on', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', CONFIG));
  for (const [name, expected] of Object.entries(EXPECTED)) {
    const r = await post(`${host.url}/function/${name}`, {});
    assert.equal(r.status, 500, name);
    assert.match(r.body, expected, name);
  }
  const names = Object.keys(EXPECTED);
  const r = await post(`${host.url}/batch`, [...names.map((name) => ({ function: name })), { function: 'echo', data: { a: 1 } }]);
  assert.equal(r.status, 200);
  const results = JSON.parse(r.body);
  for (const [i, name] of names.entries()) {
    assert.equal(results[i].status, 500, name);
    assert.match(results[i].error, EXPECTED[name], name);
  }
  assert.deepEqual(results[names.length], { status: 200, output: '{"a":1}' });
  const echo = await post(`${host.url}/function/echo`, { still: 'up' });
  assert.deepEqual([echo.status, echo.body], [200, '{"still":"up"}']);
  assert.doesNotMatch(host.stderr(), /outside any call/);
});
