'use strict';
// The lifecycle and security flags: values parsed and checked (a bad value is a usage error
// naming the flag, never a silent default).

const test = require('node:test');
const assert = require('node:assert/strict');
const { parseArgs, UsageError } = require('../lib/args');

test('--call-timeout, --grace, --max-memory, --max-calls, --allowed-hosts, --auth-token-file, --tls-*', () => {
  const o = parseArgs(['c.js', '--call-timeout', '250', '--grace', '0.5', '--max-memory', '512', '--max-calls=1000', '--allowed-hosts', 'LocalHost, app.example', '--auth-token-file', 't', '--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
  assert.equal(o.callTimeout, 250);
  assert.equal(o.grace, 0.5);
  assert.equal(o.maxMemory, 512);
  assert.equal(o.maxCalls, 1000);
  assert.deepEqual(o.allowedHosts, ['localhost', 'app.example']);
  assert.equal(o.authTokenFile, 't');
  assert.equal(o.tlsCert, 'c.pem');
  assert.equal(o.tlsKey, 'k.pem');
  const d = parseArgs(['c.js']);
  assert.equal(d.grace, 10);
  assert.equal(d.callTimeout, undefined);
  assert.equal(d.allowedHosts, null);
  assert.equal(parseArgs(['c.js', '--grace', '0']).grace, 0);
  assert.equal(parseArgs(['c.js', '--call-timeout', '2147483647']).callTimeout, 2147483647);
});

test('bad values are usage errors naming the flag', () => {
  for (const [args, message] of [
    [['--call-timeout', '0'], /--call-timeout takes a whole number of milliseconds/],
    [['--call-timeout', '2147483648'], /--call-timeout/],
    [['--call-timeout', '1.5'], /--call-timeout/],
    [['--call-timeout', 'soon'], /--call-timeout/],
    [['--grace', '-1'], /--grace takes a number of seconds/],
    [['--grace', 'x'], /--grace/],
    [['--max-memory', '0'], /--max-memory takes a number of megabytes above 0/],
    [['--max-calls', '0'], /--max-calls takes a whole number of calls/],
    [['--allowed-hosts', ''], /--allowed-hosts takes host names/],
    [['--allowed-hosts', 'a,,b'], /--allowed-hosts/],
    [['--tls-cert', 'c.pem'], /--tls-cert and --tls-key go together/],
    [['--tls-key', 'k.pem'], /--tls-cert and --tls-key go together/],
    [['--call-timeout', '5', '--call-timeout', '6'], /should only be specified once/],
  ]) {
    assert.throws(() => parseArgs(['c.js', ...args]), (err) => err instanceof UsageError && message.test(err.message), args.join(' '));
  }
});
