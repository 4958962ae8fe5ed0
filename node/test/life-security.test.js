'use strict';
// Issue 21 items 2 and 5, host side: --allowed-hosts, --auth-token-file (a private, non-empty
// file; the token never logged), --tls-cert/--tls-key (HTTPS, certificates made here).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const https = require('node:https');
const { spawn, execFileSync } = require('node:child_process');
const { tmpDir, write, startHost, request, post, waitFor, trackWorkers, JSHOST_NODE, ENV } = require('../testlib/helpers');

const CONFIG = `module.exports = { functions: { echo: function (data, cb) { cb(null, JSON.stringify(data)); } } };`;

function runToExit(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [JSHOST_NODE, ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('--allowed-hosts: other Host names get 403', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--allowed-hosts', 'LOCALHOST,app.example']);
  trackWorkers(t, host.child.pid);
  const call = (hostHeader) => post(`${host.url}/function/echo`, { a: 1 }, { 'content-type': 'application/json', host: hostHeader });
  assert.equal((await call(`localhost:${host.port}`)).status, 200);
  assert.equal((await call('app.example')).status, 200);
  const denied = await call(`rebind.attacker.example:${host.port}`);
  assert.equal(denied.status, 403);
  assert.equal(denied.body, 'Host "rebind.attacker.example" is not allowed');
  assert.equal((await request(`${host.url}/jshost/health`, { method: 'GET', headers: { host: 'evil.example' } })).status, 403);
});

test('--auth-token-file: bearer token required (not for /jshost/health); never logged; unsafe files refused', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const token = 's3cret-' + Date.now().toString(36);
  const file = path.join(dir, 'token');
  const logfile = path.join(dir, 'host.log');

  fs.writeFileSync(file, token + '\n', { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  const open = await runToExit([config, '--port', '0', '--auth-token-file', file]);
  assert.equal(open.code, 1);
  assert.match(open.out, /readable or writable by group or others \(mode 644\)/);
  fs.writeFileSync(file, '  \n');
  fs.chmodSync(file, 0o600);
  const empty = await runToExit([config, '--port', '0', '--auth-token-file', file]);
  assert.equal(empty.code, 1);
  assert.match(empty.out, /is empty/);
  const missing = await runToExit([config, '--port', '0', '--auth-token-file', path.join(dir, 'nope')]);
  assert.equal(missing.code, 1);
  assert.match(missing.out, /cannot read the --auth-token-file/);

  fs.writeFileSync(file, token + '\n');
  const host = await startHost(t, config, ['--auth-token-file', file, '--logfile', logfile, '--verbose']);
  trackWorkers(t, host.child.pid);
  const call = (headers) => post(`${host.url}/function/echo`, { a: 1 }, { 'content-type': 'application/json', ...headers });
  const none = await call({});
  assert.equal(none.status, 401);
  assert.equal(none.headers['www-authenticate'], 'Bearer');
  assert.equal((await call({ authorization: `Bearer ${token}x` })).status, 401);
  assert.equal((await call({ authorization: `Bearer ${token}` })).status, 200);
  assert.equal((await request(`${host.url}/jshost/health`, { method: 'GET' })).status, 200, 'health needs no token');
  assert.equal((await request(`${host.url}/status`, { method: 'GET' })).status, 401);
  await waitFor(() => fs.existsSync(logfile) && fs.readFileSync(logfile, 'utf8').includes('POST /function/echo'), { what: 'the log' });
  assert.ok(!host.stderr().includes(token) && !fs.readFileSync(logfile, 'utf8').includes(token), 'the token is not logged');
  assert.ok(!fs.readFileSync(`/proc/${host.child.pid}/cmdline`, 'utf8').includes(token));
});

test('--tls-cert/--tls-key: HTTPS with a certificate the test made', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  fs.chmodSync(key, 0o600);
  const both = await runToExit([config, '--port', '0', '--tls-cert', cert]);
  assert.equal(both.code, 1);
  assert.match(both.out, /--tls-cert and --tls-key go together/);
  const host = await startHost(t, config, ['--tls-cert', cert, '--tls-key', key, '--workers', '2']);
  trackWorkers(t, host.child.pid);
  const ca = fs.readFileSync(cert);
  for (let i = 0; i < 3; i++) {
    const r = await new Promise((resolve, reject) => {
      const body = JSON.stringify({ i });
      const req = https.request(`https://127.0.0.1:${host.port}/function/echo`, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.deepEqual(r, { status: 200, body: JSON.stringify({ i }) });
  }
  // Plain HTTP to an HTTPS port gets no answer it could mistake for one.
  const plain = await post(`${host.url}/function/echo`, {}).catch((e) => e);
  assert.ok(plain instanceof Error || plain.status === 400);
});
