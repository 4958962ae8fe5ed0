'use strict';
// Small pure modules: size limits (the `bytes` package's syntax), command-line parsing,
// status building (js-host's defaults, key order and hidden keys), output rules.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { parseLimit, requireLimit } = require('../lib/limit');
const { parseArgs, features, UsageError } = require('../lib/args');
const { effectiveConfig, statusOf } = require('../lib/config');
const { outputText, errorText } = require('../lib/call');
const { parseJson } = require('../lib/body');

test('requestDataLimit: b, kb, mb, gb (any case, optional space, decimals), bare numbers', () => {
  const bytes = require(path.join(__dirname, '..', '..', 'node_modules', 'bytes'));
  for (const v of ['10mb', '1kb', '1KB', '1.5 mb', '2gb', '100b', '2048', '1tb', '0.5kb', 12345, 'abc', '', '10 xb', '-1kb']) {
    assert.equal(parseLimit(v), bytes.parse(v), JSON.stringify(v));
  }
  assert.equal(parseLimit('10mb'), 10 * 1024 * 1024);
  assert.equal(requireLimit(undefined), 100 * 1024);
  assert.throws(() => requireLimit('lots'), /option limit "lots" is invalid/);
});

test('command line', () => {
  const o = parseArgs(['host.config.js', '-p', '0', '--json', '-l', 'x.log', '--workers', '2', '--exit-on-stdin-close']);
  assert.equal(o.configFile, 'host.config.js');
  assert.equal(o.port, 0);
  assert.equal(o.json, true);
  assert.equal(o.logfile, 'x.log');
  assert.equal(o.workers, 2);
  assert.equal(o.exitOnStdinClose, true);
  assert.equal(parseArgs(['c.js', '--port=9010']).port, 9010);
  assert.equal(parseArgs(['c.js', '-d']).json, true, '--detached implies --json');
  assert.equal(parseArgs(['c.js', '--workers', 'auto']).workers, 'auto');
  assert.deepEqual(features(parseArgs(['c.js', '--workers', '2', '--socket', 's', '--watch'])), ['promise', 'batch', 'workers', 'socket', 'watch']);
  assert.deepEqual(features(parseArgs(['c.js'])), ['promise', 'batch']);
  assert.throws(() => parseArgs([]), /Not enough non-option arguments/);
  assert.throws(() => parseArgs(['c.js', '--bogus']), UsageError);
  assert.throws(() => parseArgs(['c.js', '-l', 'a', '-l', 'b']), /only be specified once/);
  assert.throws(() => parseArgs(['c.js', '--workers', '0']), /--workers/);
  assert.equal(parseArgs(['c.js', '--manager', '--workers', '2']).workers, 2, 'a manager passes --workers on to its hosts');
});

test('status: defaults appended in js-host order, hidden keys removed, functions as names', () => {
  const fn = () => {};
  const config = effectiveConfig({ custom: 1, port: undefined, silent: true, functions: { a: fn, b: fn } });
  const status = statusOf(config, 'Host');
  assert.equal(JSON.stringify(status), '{"type":"Host","version":"0.12.0","config":{"custom":1,"port":"9009","functions":["a","b"],"address":"127.0.0.1","requestDataLimit":"10mb"}}');
  assert.equal(statusOf(effectiveConfig({ x: 1 }), 'Host').config.functions, null);
  assert.equal(statusOf(effectiveConfig({ x: 1 }, { port: 0 }), 'Host').config.port, 0);
  const manager = statusOf(effectiveConfig({ disconnectTimeout: 1, functions: { a: fn } }, { manager: true }), 'Manager');
  assert.deepEqual(Object.keys(manager.config), ['functions', 'address', 'port', 'requestDataLimit']);
});

test('outputs and errors follow js-host', () => {
  assert.equal(outputText('x'), 'x');
  assert.equal(outputText({ a: 1 }), '{"a":1}');
  assert.equal(outputText(5), '5');
  for (const v of [0, '', null, undefined, false, NaN]) assert.throws(() => outputText(v), /Function failed to provide valid output/);
  assert.match(errorText('text'), /^Error: text\n/);
  assert.match(errorText(new TypeError('t')), /^TypeError: t\n/);
  assert.deepEqual(parseJson(''), {});
  assert.deepEqual(parseJson(' [1]'), [1]);
  assert.throws(() => parseJson('null'), /Unexpected token 'n', "null" is not valid JSON/);
  assert.throws(() => parseJson('  '), /Unexpected end of JSON input/);
});

test('this.req.query is the parsed query string, as Express gives it, parsed only when read', () => {
  const http = require('node:http');
  const { installQuery, parse } = require('../lib/query');
  assert.deepEqual(parse('/function/f?hash=ab12&x=%C3%A9'), { hash: 'ab12', x: 'é' });
  assert.deepEqual(parse('/function/f'), {});
  installQuery();
  const req = new http.IncomingMessage(null);
  req.url = '/function/f?hash=0123';
  assert.equal(Object.getOwnPropertyDescriptor(req, 'query'), undefined, 'not parsed before use');
  assert.equal(req.query.hash, '0123');
  req.query = { replaced: true };
  assert.deepEqual(req.query, { replaced: true });
});
