'use strict';
// Beyond js-host 0.12, one host (a primary and its one worker): async functions, errors in async code mapped to their
// call, /batch, the identity header and /jshost/info, quiet logs and --verbose, --logfile,
// ES module configs, --socket.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, write, startHost, spawnLine, request, post, waitFor, childPids, alive } = require('../testlib/helpers');

const CONFIG = `
module.exports = {
  requestDataLimit: '2kb',
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    never: function (data, cb) {},
    asyncFn: async function (data) { await null; return 'async ' + data.n; },
    asyncObj: async (data) => ({ n: data.n }),
    promise: function (data) { return new Promise(function (r) { setTimeout(function () { r('promised'); }, 5); }); },
    direct: function (data) { return 'direct ' + data.n; },
    directNumber: (data) => 7,
    directFalsy: (data) => 0,
    rejects: async function () { throw new Error('rejected here'); },
    rejectsText: function () { return Promise.reject('just text'); },
    asyncCallback: async function (data, cb) { setTimeout(function () { cb(null, 'cb after ' + data.n); }, 5); },
    timerThrow: function (data, cb) { setTimeout(function () { throw new Error('thrown in a timer'); }, 5); },
    ioThrow: function (data, cb) { require('fs').stat(__filename, function () { throw new Error('thrown in I/O'); }); },
    unhandled: function (data, cb) { Promise.reject(new Error('nobody handles this')); },
    wait: function (data, cb) { setTimeout(function () { cb(null, 'waited ' + data.ms); }, data.ms); },
    err: function (data, cb) { cb(new Error('boom')); }
  }
};
process.on('SIGUSR2', function () { throw new Error('an error that belongs to no call'); });
`;

test('beyond js-host: one process', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const logfile = path.join(dir, 'host.log');
  const host = await startHost(t, config, ['--logfile', logfile]);
  const call = (name, data = {}) => post(`${host.url}/function/${name}`, data);

  await t.test('async functions, promises and direct return values', async () => {
    assert.deepEqual(await pick(call('asyncFn', { n: 1 })), [200, 'async 1']);
    assert.deepEqual(await pick(call('asyncObj', { n: 2 })), [200, '{"n":2}']);
    assert.deepEqual(await pick(call('promise')), [200, 'promised']);
    assert.deepEqual(await pick(call('direct', { n: 3 })), [200, 'direct 3']);
    assert.deepEqual(await pick(call('directNumber')), [200, '7']);
    assert.deepEqual(await pick(call('asyncCallback', { n: 4 })), [200, 'cb after 4']);
    const falsy = await call('directFalsy');
    assert.equal(falsy.status, 500);
    assert.match(falsy.body, /^Error: Function failed to provide valid output. Provided: "0"/);
    const rejected = await call('rejects');
    assert.equal(rejected.status, 500);
    assert.match(rejected.body, /^Error: rejected here\n {4}at /);
    const text = await call('rejectsText');
    assert.equal(text.status, 500);
    assert.match(text.body, /^Error: just text/);
  });

  await t.test('errors in async callbacks and unhandled rejections fail their call only', async () => {
    const slow = call('wait', { ms: 300 });
    for (const [name, message] of [
      ['timerThrow', 'thrown in a timer'],
      ['ioThrow', 'thrown in I/O'],
      ['unhandled', 'nobody handles this'],
    ]) {
      const r = await call(name);
      assert.equal(r.status, 500, name);
      assert.match(r.body, new RegExp(`^Error: ${message}\\n {4}at `), name);
    }
    assert.deepEqual(await pick(slow), [200, 'waited 300'], 'a concurrent call is not affected');
    assert.deepEqual(await pick(call('echo', { still: 'up' })), [200, '{"still":"up"}']);
    assert.match(host.stderr(), /thrown in a timer/, 'the error is logged');
  });

  await t.test('/batch: results in order, items concurrent', async () => {
    const started = Date.now();
    const r = await post(`${host.url}/batch`, [
      { function: 'wait', data: { ms: 300 } },
      { function: 'echo', data: { a: 1 } },
      { function: 'nope', data: {} },
      { function: 'err' },
      { function: 'wait', data: { ms: 300 } },
      { function: 'asyncFn', data: { n: 5 } },
      { function: 'timerThrow', data: {} },
      { function: 'echo' },
    ]);
    const took = Date.now() - started;
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    const results = JSON.parse(r.body);
    assert.deepEqual(results[0], { status: 200, output: 'waited 300' });
    assert.deepEqual(results[1], { status: 200, output: '{"a":1}' });
    assert.deepEqual(results[2], { status: 404, error: 'Not found. Unknown function "nope"' });
    assert.equal(results[3].status, 500);
    assert.match(results[3].error, /^Error: boom\n/);
    assert.deepEqual(results[4], { status: 200, output: 'waited 300' });
    assert.deepEqual(results[5], { status: 200, output: 'async 5' });
    assert.equal(results[6].status, 500);
    assert.match(results[6].error, /^Error: thrown in a timer/);
    assert.deepEqual(results[7], { status: 200, output: '{}' });
    assert.ok(took < 580, `the two 300 ms items ran concurrently (took ${took} ms)`);
    assert.equal((await post(`${host.url}/batch`, [])).body, '[]');
  });

  await t.test('/batch: an item past its timeout is a 504 and holds its batch-mates back no longer', async () => {
    const started = Date.now();
    const r = await post(`${host.url}/batch`, [
      { function: 'never', data: {}, timeout: 150 },
      { function: 'echo', data: { a: 1 } },
      { function: 'echo', data: { b: 2 }, timeout: 5000 },
    ]);
    const took = Date.now() - started;
    assert.equal(r.status, 200);
    const results = JSON.parse(r.body);
    assert.equal(results[0].status, 504);
    assert.match(results[0].error, /did not answer within its timeout of 150 ms/);
    assert.deepEqual(results[1], { status: 200, output: '{"a":1}' });
    assert.deepEqual(results[2], { status: 200, output: '{"b":2}' });
    assert.ok(took >= 140 && took < 2000, `answered when the hung item expired (took ${took} ms)`);
    for (const bad of [0, -1, 'soon']) {
      const res = await post(`${host.url}/batch`, [{ function: 'echo', data: {}, timeout: bad }]);
      assert.equal(res.status, 400, String(bad));
    }
  });

  await t.test('/batch: malformed batches are a 400, a body over requestDataLimit a 413', async () => {
    for (const body of ['{"function":"echo"}', 'null', '[{"data":{}}]', '[1]', '[{"function":"echo","data":null}]', '[{"function":"echo","data":"x"}]', '[', '']) {
      const r = await post(`${host.url}/batch`, body);
      assert.equal(r.status, 400, body);
    }
    const big = [{ function: 'echo', data: { s: 'x'.repeat(3000) } }];
    assert.equal((await post(`${host.url}/batch`, big)).status, 413);
  });

  await t.test('requestDataLimit ("2kb") applies to calls', async () => {
    assert.equal((await call('echo', { s: 'x'.repeat(1500) })).status, 200);
    const r = await call('echo', { s: 'x'.repeat(2100) });
    assert.equal(r.status, 413);
    assert.equal(r.body, 'PayloadTooLargeError: request entity too large');
  });

  await t.test('identity header on every response; GET /jshost/info', async () => {
    const responses = [
      await request(`${host.url}/status`, { method: 'GET' }),
      await call('echo'),
      await call('nope'),
      await post(`${host.url}/function/echo`, '{bad'),
      await request(`${host.url}/elsewhere`, { method: 'GET' }),
      await post(`${host.url}/batch`, []),
    ];
    for (const r of responses) assert.match(r.headers['x-jshost-node'], /^0\.\d+\.\d+; features=promise,batch$/);
    const info = JSON.parse((await request(`${host.url}/jshost/info`, { method: 'GET' })).body);
    assert.deepEqual(info, {
      name: 'jshost-node',
      version: require('../package.json').version,
      features: ['promise', 'batch'],
      workers: 1,
      generation: 1,
      pid: childPids(host.child.pid)[0],
    });
  });

  await t.test('quiet: no log line per call; errors go to stderr and the logfile', async () => {
    const before = host.stderr();
    for (let i = 0; i < 5; i++) await call('echo', { i });
    assert.equal(host.stderr(), before, 'successful calls log nothing');
    await call('err');
    await waitFor(() => host.stderr().length > before.length, { what: 'the error on stderr' });
    assert.match(host.stderr().slice(before.length), /function err produced an error:\nError: boom/);
    const log = fs.readFileSync(logfile, 'utf8');
    assert.match(log, /function err produced an error:\nError: boom/);
    assert.match(log, /Host listening at 127\.0\.0\.1:\d+/);
  });

  await t.test('an error that belongs to no call is logged, its worker exits 1 and is replaced', async () => {
    const [worker] = childPids(host.child.pid);
    process.kill(worker, 'SIGUSR2');
    await waitFor(() => !alive(worker), { what: 'the worker to exit' });
    await waitFor(() => /exited with code 1; replacing it/.test(host.stderr()), { what: 'the replacement' });
    assert.match(host.stderr(), /outside any call; exiting:\nError: an error that belongs to no call/);
    assert.match(fs.readFileSync(logfile, 'utf8'), /an error that belongs to no call/);
    await waitFor(async () => (await call('echo', { back: 1 })).body === '{"back":1}', { what: 'a call on the new worker' });
    assert.notEqual(childPids(host.child.pid)[0], worker);
  });
});

test('--verbose logs one line per call', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', `module.exports = { functions: { echo: function (d, cb) { cb(null, 'x'); } } };`);
  const host = await startHost(t, config, ['--verbose']);
  for (let i = 0; i < 3; i++) await post(`${host.url}/function/echo`, {});
  await post(`${host.url}/batch`, [{ function: 'echo' }]);
  await waitFor(() => (host.stderr().match(/POST \/function\/echo 200/g) || []).length === 3, { what: '3 call lines' });
  assert.match(host.stderr(), /POST \/batch echo 200/);
});

test('ES module configs: .mjs and export default in a .js file', async (t) => {
  const dir = tmpDir(t);
  write(dir, 'helper.mjs', `export const greet = (n) => 'hello ' + n;`);
  const mjs = write(dir, 'host.config.mjs', `import { greet } from './helper.mjs';\nexport default { custom: 1, functions: { hi: async (d) => greet(d.n) } };`);
  const js = write(dir, 'esm.config.js', `export default { functions: { hi: async (d) => 'esm ' + d.n } };`);
  for (const [config, expected] of [
    [mjs, 'hello 1'],
    [js, 'esm 1'],
  ]) {
    const host = await startHost(t, config);
    assert.deepEqual(host.status.config.functions, ['hi']);
    assert.deepEqual(await pick(post(`${host.url}/function/hi`, { n: 1 })), [200, expected]);
  }
});

test('--socket: listens on a Unix socket, the status keeps the config address and port', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', `module.exports = { port: 9999, functions: { echo: function (d, cb) { cb(null, JSON.stringify(d)); } } };`);
  const socketPath = path.join(dir, 'host.sock');
  const { line } = await spawnLine(t, require('../testlib/helpers').JSHOST_NODE, [config, '--socket', socketPath, '--json']);
  const status = JSON.parse(line);
  assert.equal(status.config.port, 9999);
  assert.equal(status.config.address, '127.0.0.1');
  const r = await post('http://localhost/function/echo', { via: 'socket' }, undefined, { socketPath });
  assert.equal(r.body, '{"via":"socket"}');
  assert.equal(r.headers['x-jshost-node'].split('=')[1], 'promise,batch,socket');
  const s = await request('http://localhost/status', { method: 'GET', socketPath });
  assert.deepEqual(JSON.parse(s.body), status);
});

async function pick(responsePromise) {
  const r = await responsePromise;
  return [r.status, r.body];
}
