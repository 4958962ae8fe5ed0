'use strict';
// The host never dies of an answer (issue 19 item 5): a /batch answer is written item by item,
// so that no string holds the whole answer; an item whose output cannot be encoded fails alone
// (500 naming the reason); a plain answer too large to encode fails its call with a clear 500.
// Each test then checks that the host still serves.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { tmpDir, write, startHost, post } = require('../testlib/helpers');

const MIB = 1 << 20;
// Encoding hundreds of megabytes takes seconds on a loaded machine.
const SLOW = { timeout: 60000 };

// Outputs are built once per process (module level) so that the host holds each only once.
const CONFIG = `
const control = '\\u0001'.repeat(8 * ${MIB});
const big = ['a', 'b'].map((c) => c.repeat(30e6));
let huge = null; // 100 M control characters: escaped, 600 M, past V8's longest string
const hugeControl = () => (huge ??= '\\u0002'.repeat(100e6));
module.exports = { functions: {
  control: function (data, cb) { setImmediate(function () { cb(null, control); }); },
  big: function (data, cb) { cb(null, big[data.i % 2]); },
  huge: function (data, cb) { cb(null, hugeControl()); },
  hugeObject: function (data, cb) { cb(null, { text: hugeControl() }); },
  bigint: function (data, cb) { cb(null, { n: 10n }); },
  echo: function (data, cb) { cb(null, JSON.stringify(data)); }
} };`;

/**
 * POSTs `body` and compares the answer, as it streams in, with `pieces` (strings whose
 * concatenation is the expected body), holding at most one piece and one chunk at a time.
 * Resolves with {status, headers, bytes, mismatch} (mismatch: null or where it differs).
 */
function postAndCompare(url, body, pieces) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      { method: 'POST', host: u.hostname, port: u.port, path: u.pathname, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        const it = pieces[Symbol.iterator]();
        let want = Buffer.alloc(0);
        let pos = 0;
        let bytes = 0;
        let mismatch = null;
        res.on('data', (chunk) => {
          let c = 0;
          while (mismatch === null && c < chunk.length) {
            if (pos === want.length) {
              const next = it.next();
              if (next.done) {
                mismatch = `extra bytes at ${bytes}: ${chunk.subarray(c, c + 80)}`;
                break;
              }
              want = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
              pos = 0;
              continue;
            }
            const k = Math.min(want.length - pos, chunk.length - c);
            if (chunk.compare(want, pos, pos + k, c, c + k) !== 0) {
              mismatch = `differs at byte ${bytes}: got ${chunk.subarray(c, c + 80)}, want ${want.subarray(pos, pos + 80)}`;
            }
            pos += k;
            c += k;
            bytes += k;
          }
        });
        res.on('end', () => {
          if (mismatch === null && (pos !== want.length || !it.next().done)) mismatch = `ends early, after ${bytes} bytes`;
          resolve({ status: res.statusCode, headers: res.headers, bytes, mismatch });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(60000, () => req.destroy(new Error(`no answer from ${url} within 60 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The expected answer pieces: '[', the results' JSON separated by ',', ']' (each encoded once). */
function* answer(results) {
  const encoded = new Map();
  yield '[';
  for (let i = 0; i < results.length; i++) {
    if (i !== 0) yield ',';
    if (!encoded.has(results[i])) encoded.set(results[i], Buffer.from(JSON.stringify(results[i])));
    yield encoded.get(results[i]);
  }
  yield ']';
}

async function stillServes(host) {
  const r = await post(`${host.url}/function/echo`, { still: 'up' });
  assert.deepEqual([r.status, r.body], [200, '{"still":"up"}']);
  assert.doesNotMatch(host.stderr(), /outside any call/);
}

test('/batch: 12 items each answering 8 MiB of control characters (escaped: 576 MB in all)', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', CONFIG));
  const items = Array.from({ length: 12 }, () => ({ function: 'control' }));
  const result = { status: 200, output: '\u0001'.repeat(8 * MIB) };
  const r = await postAndCompare(`${host.url}/batch`, JSON.stringify(items), answer(items.map(() => result)));
  assert.equal(r.status, 200);
  assert.equal(r.mismatch, null);
  assert.ok(r.bytes > 12 * 6 * 8 * MIB, `${r.bytes} bytes`);
  await stillServes(host);
});

test('/batch: 20 items of 30 MB each (600 MB in all)', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', CONFIG));
  const items = Array.from({ length: 20 }, (_, i) => ({ function: 'big', data: { i } }));
  const results = ['a', 'b'].map((c) => ({ status: 200, output: c.repeat(30e6) }));
  const r = await postAndCompare(`${host.url}/batch`, JSON.stringify(items), answer(items.map((_, i) => results[i % 2])));
  assert.equal(r.status, 200);
  assert.equal(r.mismatch, null);
  await stillServes(host);
});

test('/batch: an item whose output cannot be encoded fails alone, with a 500 naming the reason', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', CONFIG));
  const r = await post(`${host.url}/batch`, [
    { function: 'echo', data: { a: 1 } },
    { function: 'huge' },
    { function: 'bigint' },
    { function: 'hugeObject' },
    { function: 'echo', data: { b: 2 } },
  ], undefined, SLOW);
  assert.equal(r.status, 200);
  const results = JSON.parse(r.body);
  assert.deepEqual(results[0], { status: 200, output: '{"a":1}' });
  assert.equal(results[1].status, 500);
  assert.match(results[1].error, /^Error: function "huge": its answer \(100000000 characters\) is too long for a batch answer \(RangeError: Invalid string length\); call it alone/);
  assert.equal(results[2].status, 500);
  assert.match(results[2].error, /^TypeError: Do not know how to serialize a BigInt/);
  assert.equal(results[3].status, 500);
  assert.match(results[3].error, /^Error: function "hugeObject": its output cannot be encoded as JSON \(RangeError: Invalid string length\)/);
  assert.deepEqual(results[4], { status: 200, output: '{"b":2}' });
  await stillServes(host);
});

test('plain calls: an output too large to encode is a clear 500; the host lives', async (t) => {
  const host = await startHost(t, write(tmpDir(t), 'host.config.js', CONFIG));
  const r = await post(`${host.url}/function/hugeObject`, {}, undefined, SLOW);
  assert.equal(r.status, 500);
  assert.match(r.body, /^Error: function "hugeObject": its output cannot be encoded as JSON \(RangeError: Invalid string length\)/);
  const b = await post(`${host.url}/function/bigint`, {});
  assert.equal(b.status, 500);
  assert.match(b.body, /^TypeError: Do not know how to serialize a BigInt/);
  await stillServes(host);
});
