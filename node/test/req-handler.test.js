'use strict';
// createHandler's options (wire contract item 4), on an in-process node:http server: draining
// (503 "not run" for what has not started), hooks around every call, allowedHosts (403),
// authToken (401; /jshost/health exempt; never logged), /jshost/health and /metrics.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { tmpDir, request, post, waitFor } = require('../testlib/helpers');
const { createHandler } = require('../lib/server');
const { Log } = require('../lib/log');

const JSON_HEADERS = { 'content-type': 'application/json' };
const NOT_RUN = 'jshost-node is shutting down: the call was not run; send it again';

function functions(extra = {}) {
  return Object.assign(Object.create(null), {
    echo: (data, cb) => cb(null, JSON.stringify(data)),
    never: (data, cb) => {},
    ...extra,
  });
}

/** An in-process server for `createHandler(host, options)`: {url, log (its logfile text)}. */
async function serve(t, options = {}, hostExtra = {}) {
  const logfile = path.join(tmpDir(t), 'host.log');
  const host = { functions: functions(options.functions), limit: 1 << 20, api: {}, statusJson: () => '{"type":"Host"}', infoJson: () => '{}', ...hostExtra };
  const log = new Log({ logfile });
  const server = http.createServer(createHandler(host, { identity: 'test', log, verbose: false, ...options }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${server.address().port}`, log: () => fs.readFileSync(logfile, 'utf8') };
}

test('draining: requests not yet running get 503 "not run" with Connection: close; calls running finish', async (t) => {
  const state = { closing: false, draining: false };
  let release;
  const slow = (data, cb) => (release = () => cb(null, 'finished'));
  const { url } = await serve(t, { state, functions: { slow } }, { health: () => ({ status: 503, body: '{"status":"draining"}' }) });
  const running = post(`${url}/function/slow`, {});
  await waitFor(() => release !== undefined, { what: 'the slow call to start' });

  // A request whose body is still arriving when draining starts has not started to run.
  const u = new URL(url);
  const arriving = new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/function/echo', agent: false, headers: { ...JSON_HEADERS, 'content-length': 9 } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.write('{"a":');
    req.flushHeaders();
    setImmediate(() => {
      state.draining = true;
      req.end('123}');
    });
  });
  const r = await arriving;
  assert.deepEqual([r.status, r.body, r.headers['x-jshost-not-run'], r.headers.connection], [503, NOT_RUN, '1', 'close']);

  for (const [method, p, body] of [['POST', '/function/echo', '{"b":1}'], ['POST', '/batch', '[{"function":"echo"}]'], ['GET', '/status'], ['POST', '/function/nope', '{}']]) {
    const res = await request(`${url}${p}`, { method, headers: JSON_HEADERS, body });
    assert.deepEqual([res.status, res.body, res.headers['x-jshost-not-run'], res.headers.connection], [503, NOT_RUN, '1', 'close'], `${method} ${p}`);
  }
  const health = await request(`${url}/jshost/health`, { method: 'GET' });
  assert.deepEqual([health.status, health.body, health.headers['x-jshost-not-run']], [503, '{"status":"draining"}', undefined]);

  release();
  const done = await running;
  assert.deepEqual([done.status, done.body], [200, 'finished']);
});

test('hooks: start(name) and end(token, status) around every call, plain and batched; the watchdog sees each deadline', async (t) => {
  const events = [];
  let next = 0;
  const hooks = {
    start: (name) => {
      events.push(['start', name]);
      return ++next;
    },
    end: (token, status) => events.push(['end', token, status]),
  };
  // What the watchdog is told: the earliest pending deadline's timeout (or none), and the calls
  // whose synchronous part runs.
  const watchdog = {
    watch: (call) => events.push(['watch', call === null ? null : call.timeout]),
    enter: (name) => events.push(['enter', name]),
    leave: () => events.push(['leave']),
  };
  const { url } = await serve(t, { hooks, watchdog, callTimeout: 5000 });
  await post(`${url}/function/echo`, { a: 1 }, { ...JSON_HEADERS, 'x-jshost-timeout': '300' });
  await post(`${url}/function/echo`, { a: 1 });
  assert.deepEqual(events, [
    ['start', 'echo'], ['watch', 300], ['enter', 'echo'], ['watch', null], ['end', 1, 200], ['leave'],
    ['start', 'echo'], ['watch', 5000], ['enter', 'echo'], ['watch', null], ['end', 2, 200], ['leave'],
  ]);

  events.length = 0;
  const { url: noDefault } = await serve(t, { hooks, watchdog });
  next = 0;
  const r = await post(`${noDefault}/batch`, [{ function: 'echo' }, { function: 'never', timeout: 20 }, { function: 'unknown' }]);
  assert.deepEqual(JSON.parse(r.body).map((x) => x.status), [200, 504, 404]);
  assert.deepEqual(events, [
    ['start', 'echo'], ['enter', 'echo'], ['end', 1, 200], ['leave'],
    ['start', 'never'], ['watch', 20], ['enter', 'never'], ['leave'],
    ['end', 2, 504], ['watch', null],
  ]);

  // A hook that throws is logged; the call is answered as usual.
  const broken = { start: () => { throw new Error('start broke'); }, end: () => { throw new Error('end broke'); } };
  const b = await serve(t, { hooks: broken });
  const echo = await post(`${b.url}/function/echo`, { ok: 1 });
  assert.deepEqual([echo.status, echo.body], [200, '{"ok":1}']);
  assert.match(b.log(), /hooks.start failed for function echo:\nError: start broke/);
  assert.match(b.log(), /hooks.end failed for function echo:\nError: end broke/);
});

test('allowedHosts: a Host header naming another host is a 403, whatever the route', async (t) => {
  const { url } = await serve(t, { allowedHosts: ['localhost', '127.0.0.1', '::1'] }, { health: () => ({ status: 200, body: '{}' }) });
  for (const host of ['localhost', 'LOCALHOST:9009', '127.0.0.1:1', '[::1]:80', '[::1]']) {
    const r = await post(`${url}/function/echo`, { h: 1 }, { ...JSON_HEADERS, host });
    assert.deepEqual([r.status, r.body], [200, '{"h":1}'], host);
  }
  for (const [host, name] of [['rebind.attacker.example:9009', 'rebind.attacker.example'], ['localhost.evil', 'localhost.evil'], ['[::2]:1', '::2']]) {
    for (const [method, p] of [['POST', '/function/echo'], ['GET', '/jshost/health'], ['GET', '/status']]) {
      const r = await request(`${url}${p}`, { method, headers: { ...JSON_HEADERS, host }, body: method === 'POST' ? '{}' : undefined });
      assert.deepEqual([r.status, r.body, r.headers['content-type']], [403, `Host "${name}" is not allowed`, 'text/plain; charset=utf-8'], `${host} ${p}`);
    }
  }
  const { url: any } = await serve(t, { allowedHosts: null });
  assert.equal((await post(`${any}/function/echo`, {}, { ...JSON_HEADERS, host: 'anything.example' })).status, 200);
});

test('authToken: every request but GET /jshost/health needs the bearer token; it is never logged', async (t) => {
  const token = 'tok-' + 'x'.repeat(40);
  const s = await serve(
    t,
    { authToken: Buffer.from(token), verbose: true },
    { health: () => ({ status: 200, body: '{"status":"ok"}' }), metrics: () => '# TYPE jshost_calls_total counter\njshost_calls_total 1\n' },
  );
  const call = (headers, p = '/function/echo', method = 'POST') =>
    request(`${s.url}${p}`, { method, headers: { ...JSON_HEADERS, ...headers }, body: method === 'POST' ? '{"a":1}' : undefined });
  for (const authorization of [undefined, '', 'Bearer', 'Bearer ', 'Bearer wrong', `Basic ${token}`, `Bearer ${token}x`, `Bearer ${token.slice(1)}`]) {
    const headers = authorization === undefined ? {} : { authorization };
    for (const [p, method] of [['/function/echo', 'POST'], ['/batch', 'POST'], ['/status', 'GET'], ['/metrics', 'GET']]) {
      const r = await call(headers, p, method);
      assert.deepEqual([r.status, r.body, r.headers['www-authenticate']], [401, 'missing or wrong bearer token', 'Bearer'], `${authorization} ${p}`);
    }
  }
  for (const authorization of [`Bearer ${token}`, `bearer ${token}`, `BEARER   ${token}`]) {
    const r = await call({ authorization });
    assert.deepEqual([r.status, r.body], [200, '{"a":1}'], authorization);
  }
  const metrics = await call({ authorization: `Bearer ${token}` }, '/metrics', 'GET');
  assert.deepEqual([metrics.status, metrics.headers['content-type']], [200, 'text/plain; version=0.0.4; charset=utf-8']);
  assert.match(metrics.body, /^jshost_calls_total 1$/m);
  const health = await call({}, '/jshost/health', 'GET');
  assert.deepEqual([health.status, health.body], [200, '{"status":"ok"}'], 'the health probe needs no token');
  const healthSlash = await call({ authorization: 'Bearer wrong' }, '/JSHOST/health/?x=1', 'GET');
  assert.equal(healthSlash.status, 200);
  assert.doesNotMatch(s.log(), /tok-/);
});

test('/jshost/health and /metrics are 404 when the host provides none', async (t) => {
  const { url } = await serve(t);
  for (const p of ['/jshost/health', '/metrics']) {
    const r = await request(`${url}${p}`, { method: 'GET' });
    assert.deepEqual([r.status, r.body], [404, `Cannot GET ${p}`]);
  }
});
