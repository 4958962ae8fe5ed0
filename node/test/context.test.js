'use strict';
// Which call the running code belongs to (lib/context.js): the async resources a call creates,
// directly or from its own callbacks, carry it, before and after it answers; what the host
// starts while sending an answer does not.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { runIn, runOutside, currentCall } = require('../lib/context');
const { tmpDir, write, startHost, post, waitFor } = require('../testlib/helpers');

const newCall = (name) => ({ name });
const later = (fn) => new Promise((resolve) => setTimeout(() => resolve(fn()), 1));

test('context: resources created by a call, and by their callbacks, carry it', async () => {
  const a = newCall('a');
  const b = newCall('b');
  assert.equal(currentCall(), undefined);
  const out = {};
  const other = new Promise((resolve) => runIn(b, () => setImmediate(() => resolve(currentCall()))));
  const seen = await new Promise((resolve) => {
    runIn(a, () => {
      out.sync = currentCall();
      setTimeout(() => {
        out.timer = currentCall();
        fs.stat(__filename, () => {
          out.io = currentCall();
          process.nextTick(() => {
            out.tick = currentCall();
            Promise.resolve().then(() => {
              out.promise = currentCall();
              resolve(out);
            });
          });
        });
      }, 1);
    });
  });
  assert.deepEqual(seen, { sync: a, timer: a, io: a, tick: a, promise: a });
  assert.equal(await other, b);
  assert.equal(currentCall(), undefined, 'outside any call again');
  assert.equal(await later(currentCall), undefined, 'a timer of no call');
});

test('context: what the host starts for a call (runOutside) belongs to no call', async () => {
  const c = newCall('c');
  const inside = await new Promise((resolve) => {
    runIn(c, () => {
      runOutside(() => {
        assert.equal(currentCall(), undefined);
        setImmediate(() => resolve(currentCall()));
      });
      assert.equal(currentCall(), c, 'the call again after runOutside');
    });
  });
  assert.equal(inside, undefined);
  // Also from a callback of the call's own resources.
  const fromCallback = await new Promise((resolve) => {
    runIn(c, () => setTimeout(() => runOutside(() => setImmediate(() => resolve(currentCall()))), 1));
  });
  assert.equal(fromCallback, undefined);
});

test('context: an error thrown after the call answered, two callbacks later, is that call\'s', async (t) => {
  const dir = tmpDir(t);
  const config = write(
    dir,
    'host.config.js',
    `module.exports = { functions: {
      echo: function (data, cb) { cb(null, JSON.stringify(data)); },
      answersThenThrows: function (data, cb) {
        cb(null, 'answered ' + data.n);
        setTimeout(function () {
          require('fs').stat(__filename, function () { throw new Error('late error ' + data.n); });
        }, 5);
      },
      throwsWhileOthersRun: function (data, cb) {
        setTimeout(function () { throw new Error('own error'); }, 20);
      }
    } };`,
  );
  const host = await startHost(t, config);
  const call = (name, data = {}) => post(`${host.url}/function/${name}`, data);
  const r = await call('answersThenThrows', { n: 1 });
  assert.equal(r.status, 200);
  assert.equal(r.body, 'answered 1');
  await waitFor(() => /after it answered/.test(host.stderr()), { what: 'the late error logged' });
  assert.match(host.stderr(), /uncaught exception in function answersThenThrows after it answered:\nError: late error 1/);
  // The host keeps serving, and an error fails only its own call while echo calls run.
  const failing = call('throwsWhileOthersRun');
  const echoes = await Promise.all(Array.from({ length: 20 }, (_, i) => call('echo', { i })));
  for (const [i, e] of echoes.entries()) assert.deepEqual([e.status, e.body], [200, JSON.stringify({ i })]);
  const f = await failing;
  assert.equal(f.status, 500);
  assert.match(f.body, /^Error: own error\n/);
  assert.equal((await call('echo', { still: 'up' })).status, 200);
});
