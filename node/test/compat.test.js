'use strict';
// Side by side: js-host 0.12 and jshost-node on the same config fixture get the same requests
// and must give the same status codes and bodies (stacks compared by their first line, as
// they name different files; js-host's HTML error pages are reduced to their text).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { tmpDir, write, startHost, request, post, JS_HOST, JSHOST_NODE, ENV } = require('../testlib/helpers');

const CONFIG = `
module.exports = {
  customProp: 'x',
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    obj: function (data, cb) { cb(null, { a: 1, b: [1, 2] }); },
    arr: function (data, cb) { cb(null, [1, 'two']); },
    num: function (data, cb) { cb(null, 42); },
    bool: function (data, cb) { cb(null, true); },
    falsy: function (data, cb) { cb(null, 0); },
    empty: function (data, cb) { cb(null, ''); },
    undef: function (data, cb) { cb(null); },
    nul: function (data, cb) { cb(null, null); },
    err: function (data, cb) { cb(new Error('boom')); },
    text: function (data, cb) { cb('plain text error'); },
    thrower: function (data, cb) { throw new Error('sync throw'); },
    twice: function (data, cb) { cb(null, 'first'); cb(null, 'second'); },
    ctx: function (data, cb) { cb(null, Object.keys(this).join(',') + ' ' + this.name); },
    circular: function (data, cb) { var o = {}; o.o = o; cb(null, o); },
    later: function (data, cb) { setTimeout(function () { cb(null, 'later ' + data.n); }, 5); }
  }
};
`;

// js-host answers some errors with an HTML page: compare its text.
function text(body) {
  const m = /<pre>([\s\S]*)<\/pre>/.exec(body);
  if (!m) return body;
  return m[1]
    .replace(/<br>/g, '\n')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}
const firstLine = (body) => text(body).split('\n')[0];

const JSON_HEADERS = { 'content-type': 'application/json' };
const BIG = JSON.stringify({ s: 'x'.repeat(11 * 1024 * 1024) });

// [label, path, request options, how to compare bodies: 'exact' | 'first-line']
const CASES = [
  ['echo an object, ?hash=', '/function/echo?hash=0123abcd', { body: '{"a":1,"b":"é"}', headers: JSON_HEADERS }, 'exact'],
  ['echo an array', '/function/echo', { body: '[1,2,{"c":3}]', headers: JSON_HEADERS }, 'exact'],
  ['object output is JSON', '/function/obj', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['array output is JSON', '/function/arr', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['number output', '/function/num', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['boolean output', '/function/bool', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['asynchronous callback', '/function/later', { body: '{"n":7}', headers: JSON_HEADERS }, 'exact'],
  ['this = {name, host, req, res}', '/function/ctx', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['falsy output 0', '/function/falsy', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ["falsy output ''", '/function/empty', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['falsy output undefined', '/function/undef', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['falsy output null', '/function/nul', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['cb(err)', '/function/err', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ["cb('text')", '/function/text', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['synchronous throw', '/function/thrower', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['circular output', '/function/circular', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['callback called twice', '/function/twice', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['unknown function', '/function/nope', { body: '{}', headers: JSON_HEADERS }, 'exact'],
  ['invalid JSON', '/function/echo', { body: '{"a":', headers: JSON_HEADERS }, 'first-line'],
  ['invalid JSON to an unknown function', '/function/nope', { body: '{bad', headers: JSON_HEADERS }, 'first-line'],
  ['null body', '/function/echo', { body: 'null', headers: JSON_HEADERS }, 'first-line'],
  ['string body', '/function/echo', { body: '"str"', headers: JSON_HEADERS }, 'first-line'],
  ['whitespace body', '/function/echo', { body: '   ', headers: JSON_HEADERS }, 'first-line'],
  ['no content-type', '/function/echo', { body: '{"a":1}' }, 'exact'],
  ['text/plain content-type', '/function/echo', { body: '{"a":1}', headers: { 'content-type': 'text/plain' } }, 'exact'],
  ['no body', '/function/echo', { headers: JSON_HEADERS }, 'exact'],
  ['empty body', '/function/echo', { body: '', headers: JSON_HEADERS }, 'exact'],
  ['content-type with charset', '/function/echo', { body: '{"a":1}', headers: { 'content-type': 'application/json; charset=utf-8' } }, 'exact'],
  ['GET on a function', '/function/echo', { method: 'GET' }, 'first-line'],
  ['GET on an unknown function', '/function/nope', { method: 'GET' }, 'first-line'],
  ['11 MB body', '/function/echo', { body: BIG, headers: JSON_HEADERS }, 'first-line'],
  ['11 MB body, not JSON', '/function/echo', { body: BIG, headers: { 'content-type': 'text/plain' } }, 'exact'],
  ['case-insensitive path, trailing slash', '/FUNCTION/echo/', { body: '{"a":2}', headers: JSON_HEADERS }, 'exact'],
  ['escaped name', '/function/ec%68o', { body: '{"a":3}', headers: JSON_HEADERS }, 'exact'],
  ['unknown route', '/nothing', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
  ['POST /status', '/status', { body: '{}', headers: JSON_HEADERS }, 'first-line'],
];

test('js-host 0.12 and jshost-node answer the same', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const [theirs, ours] = await Promise.all([startHost(t, config, [], { bin: JS_HOST }), startHost(t, config)]);

  await t.test('GET /status (the same JSON but for the port)', async () => {
    const [a, b] = await Promise.all([request(theirs.url + '/status', { method: 'GET' }), request(ours.url + '/status', { method: 'GET' })]);
    assert.equal(b.status, 200);
    assert.equal(b.headers['content-type'], a.headers['content-type']);
    const sa = JSON.parse(a.body);
    const sb = JSON.parse(b.body);
    assert.deepEqual(sa, theirs.status);
    assert.deepEqual(sb, ours.status);
    sa.config.port = sb.config.port = 'N';
    assert.deepEqual(sb, sa);
  });

  for (const [label, path, options, compare] of CASES) {
    await t.test(label, async () => {
      const [a, b] = await Promise.all([request(theirs.url + path, options), request(ours.url + path, options)]);
      assert.equal(b.status, a.status, `status (js-host said ${a.status}: ${firstLine(a.body)})`);
      if (compare === 'exact') assert.equal(b.body, a.body);
      else assert.equal(firstLine(b.body), firstLine(a.body));
      assert.ok(!/^\s*</.test(b.body), `jshost-node answers plain text, not HTML: ${b.body.slice(0, 80)}`);
      assert.match(b.headers['x-jshost-node'], /^\d+\.\d+\.\d+; features=promise,batch$/);
    });
  }

  await t.test('a 500 body is the whole stack', async () => {
    const b = await post(ours.url + '/function/err', {});
    assert.match(b.body, /^Error: boom\n {4}at /);
    assert.match(b.body, /host\.config\.js:\d+/);
  });

  await t.test('both still serve after the errors', async () => {
    for (const h of [theirs, ours]) assert.equal((await post(h.url + '/function/echo', { ok: 1 })).body, '{"ok":1}');
  });
});

test('--config prints the same status as js-host', async (t) => {
  const dir = tmpDir(t);
  const configs = {
    'default.js': `module.exports = { functions: { a: function (d, cb) { cb(null, 'a'); } } };`,
    'port.js': `module.exports = { port: 9876, address: '127.0.0.1', custom: { deep: [1, 2] }, requestDataLimit: '1mb', functions: { a: function (d, cb) {} } };`,
    'nofunctions.js': `module.exports = { port: '8000', logger: null, silent: true, outputOnListen: false, disconnectTimeout: 10, stopManagerIfNoConnections: false };`,
    'undefinedport.js': `module.exports = { port: undefined, b: 1, functions: {} };`,
  };
  const run = (bin, args) => {
    const r = spawnSync(process.execPath, [bin, ...args], { env: ENV, cwd: dir, encoding: 'utf8' });
    return r;
  };
  for (const [name, text] of Object.entries(configs)) {
    write(dir, name, text);
    for (const extra of [[], ['--port', '0'], ['-p', '9123'], ['--manager'], ['-m', '-p', '9124']]) {
      const args = [name, '--config', ...extra];
      const a = run(JS_HOST, args);
      const b = run(JSHOST_NODE, args);
      assert.equal(b.status, 0, b.stderr);
      assert.equal(b.stderr, '', 'nothing on stderr (the Python client treats it as an error)');
      assert.deepEqual(JSON.parse(b.stdout), JSON.parse(a.stdout), `${args.join(' ')}`);
      assert.equal(b.stdout, a.stdout, `same text, key order included: ${args.join(' ')}`);
    }
  }
  // Errors: no config file, a config that exports nothing.
  write(dir, 'empty.js', 'module.exports = {};');
  for (const args of [[], ['missing.js', '--config'], ['empty.js', '--config'], ['default.js', '--bogus']]) {
    const a = run(JS_HOST, args);
    const b = run(JSHOST_NODE, args);
    assert.notEqual(b.status, 0, `${args.join(' ')} fails`);
    assert.equal(b.stdout, '');
    if (args[0] === 'empty.js') assert.match(b.stderr, /Config file does not export an object/);
    if (args.length === 0) assert.match(b.stderr, /Not enough non-option arguments/);
    void a;
  }
});

test('without --json, both print "Host listening at ADDRESS:PORT"', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', `module.exports = { functions: { a: function (d, cb) { cb(null, 'a'); } } };`);
  const { spawnLine } = require('../testlib/helpers');
  for (const bin of [JS_HOST, JSHOST_NODE]) {
    const { line } = await spawnLine(t, bin, [config, '-p', '0']);
    assert.match(line, /^Host listening at 127\.0\.0\.1:\d+$/, bin);
  }
});
