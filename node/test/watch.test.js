'use strict';
// --watch: editing a file the config loaded starts a new generation of workers; new
// connections go to it once it is ready, while a call in flight on the old generation still
// completes. A broken edit leaves the current generation serving.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, write, startHost, request, post, waitFor, childPids } = require('../testlib/helpers');

const info = async (url) => JSON.parse((await request(`${url}/jshost/info`, { method: 'GET' })).body);

test('--watch reloads on a change of a required file', async (t) => {
  const dir = tmpDir(t);
  const lib = write(dir, 'lib.js', `module.exports = { a: function (d, cb) { cb(null, 'A1'); } };`);
  const config = write(
    dir,
    'host.config.js',
    `module.exports = { functions: Object.assign({
      slow: function (d, cb) { setTimeout(function () { cb(null, 'slow ' + process.pid); }, d.ms); },
      pid: function (d, cb) { cb(null, String(process.pid)); }
    }, require('./lib.js')) };`,
  );
  const host = await startHost(t, config, ['--watch']);
  const call = (name, data = {}) => post(`${host.url}/function/${name}`, data);
  assert.equal((await call('a')).body, 'A1');
  const oldPid = Number((await call('pid')).body);
  assert.deepEqual((await info(host.url)).features, ['promise', 'batch', 'watch']);

  // A call in flight on generation 1 while lib.js changes.
  const inFlight = call('slow', { ms: 1500 });
  await new Promise((r) => setTimeout(r, 100));
  fs.writeFileSync(lib, `module.exports = { a: function (d, cb) { cb(null, 'A2'); }, b: function (d, cb) { cb(null, 'B'); } };`);
  await waitFor(async () => (await call('b')).status === 200, { timeout: 8000, what: 'the new function b' });
  assert.equal((await call('a')).body, 'A2');
  assert.equal((await info(host.url)).generation, 2);

  const slow = await inFlight;
  assert.equal(slow.status, 200);
  assert.equal(slow.body, `slow ${oldPid}`, 'the old generation finished its call');
  await waitFor(() => childPids(host.child.pid).length === 1, { timeout: 10000, what: 'the old generation to exit' });

  // A broken edit: generation 3 fails to start, generation 2 keeps serving.
  fs.writeFileSync(lib, `module.exports = { a: function (d, cb) { cb(null, 'A3'); } ;;; syntax error`);
  await waitFor(() => /generation 3 is dropped/.test(host.stderr()), { timeout: 8000, what: 'the failed reload' });
  assert.equal((await call('a')).body, 'A2');
  // Fixing it starts generation 4.
  fs.writeFileSync(lib, `module.exports = { a: function (d, cb) { cb(null, 'A4'); } };`);
  await waitFor(async () => (await call('a')).body === 'A4', { timeout: 8000, what: 'the fixed generation' });
  assert.equal((await info(host.url)).generation, 4);

  // Editing the config itself reloads too.
  fs.appendFileSync(config, `\nmodule.exports.functions.c = function (d, cb) { cb(null, 'C'); };\n`);
  await waitFor(async () => (await call('c')).body === 'C', { timeout: 8000, what: 'the config change' });
  assert.deepEqual(JSON.parse((await request(`${host.url}/status`, { method: 'GET' })).body).config.functions, ['slow', 'pid', 'a', 'c']);
  void path;
});

test('--watch follows the files an ES module config imports', async (t) => {
  const dir = tmpDir(t);
  const dep = write(dir, 'dep.mjs', `export const word = 'one';`);
  const config = write(dir, 'host.config.mjs', `import { word } from './dep.mjs';\nexport default { functions: { word: async () => word } };`);
  const host = await startHost(t, config, ['--watch']);
  assert.equal((await post(`${host.url}/function/word`, {})).body, 'one');
  fs.writeFileSync(dep, `export const word = 'two';`);
  await waitFor(async () => (await post(`${host.url}/function/word`, {})).body === 'two', { timeout: 8000, what: 'the edited import' });
});
