'use strict';
// Issue 20 item 6: GET /jshost/health (200, or 503 while a worker is stuck) and GET /metrics
// (Prometheus text, checked by `promtool check metrics`, summed over the workers).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { tmpDir, write, startHost, request, post, waitFor, trackWorkers } = require('../testlib/helpers');

const CONFIG = `
module.exports = {
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    err: function (data, cb) { cb(new Error('no')); },
    pid: function (data, cb) { cb(null, String(process.pid)); },
    busy: function (data) { var end = Date.now() + data.ms; while (Date.now() < end) {} return 'busy done'; },
    forever: function () { for (;;) {} }
  }
};
`;

const get = (url, path, opts = {}) => request(`${url}${path}`, { method: 'GET', timeout: 1000, ...opts });

/** The value of the sample `name{labels}` in Prometheus text, or undefined. */
function sample(text, series) {
  for (const line of text.split('\n')) {
    const i = line.lastIndexOf(' ');
    if (line.slice(0, i) === series) return Number(line.slice(i + 1));
  }
  return undefined;
}

const PROMTOOL = spawnSync('promtool', ['--version']).error ? null : 'promtool';

test('GET /metrics: calls, errors, durations per function over both workers; promtool accepts it', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--workers', '2', '--call-timeout', '300']);
  const workers = trackWorkers(t, host.child.pid);
  const pids = new Set();
  for (let i = 0; i < 6; i++) pids.add((await post(`${host.url}/function/pid`, {})).body);
  assert.equal(pids.size, 2, 'both workers served calls');
  for (let i = 0; i < 3; i++) assert.equal((await post(`${host.url}/function/err`, {})).status, 500);
  // Workers report every 500 ms; the host's totals show once both have.
  const text = await waitFor(async () => {
    const r = await get(host.url, '/metrics');
    return r.status === 200 && sample(r.body, 'jshost_calls_total{function="pid"}') === 6 && sample(r.body, 'jshost_call_errors_total{function="err"}') === 3 ? r : null;
  }, { what: 'the totals of both workers' });
  assert.match(text.headers['content-type'], /^text\/plain/);
  const body = text.body;
  assert.equal(sample(body, 'jshost_call_errors_total{function="pid"}'), 0);
  assert.equal(sample(body, 'jshost_call_duration_seconds_count{function="pid"}'), 6);
  assert.equal(sample(body, 'jshost_call_duration_seconds_bucket{function="pid",le="+Inf"}'), 6);
  assert.equal(sample(body, 'jshost_workers'), 2);
  for (const pid of workers()) {
    assert.ok(sample(body, `jshost_heap_used_bytes{worker="${pid}"}`) > 0, `heap of worker ${pid}`);
    assert.ok(sample(body, `jshost_event_loop_delay_p99_seconds{worker="${pid}"}`) >= 0);
  }
  assert.equal(sample(body, 'jshost_worker_replacements_total'), 0);
  if (PROMTOOL === null) {
    t.diagnostic('promtool is not installed (Debian: apt-get install prometheus): the format check is skipped');
  } else {
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  }

  // A runaway: replaced, counted, and the counts of the replaced worker are kept.
  await post(`${host.url}/function/forever`, {}).catch(() => {});
  await waitFor(async () => {
    const r = await get(host.url, '/metrics').catch(() => null);
    return r && sample(r.body, 'jshost_worker_runaways_total') >= 1 && sample(r.body, 'jshost_worker_replacements_total') >= 1 && sample(r.body, 'jshost_calls_total{function="pid"}') === 6;
  }, { what: 'the runaway in the metrics' });
});

test('GET /jshost/health: 200 while every worker answers, 503 while one is stuck', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', CONFIG);
  const host = await startHost(t, config, ['--workers', '2']);
  trackWorkers(t, host.child.pid);
  const ok = await get(host.url, '/jshost/health');
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).status, 'ok');
  // One worker busy for 4 s (no deadline: not a runaway); the other says the host is unhealthy.
  const busy = post(`${host.url}/function/busy`, { ms: 4000 });
  const stuck = await waitFor(async () => {
    const r = await get(host.url, '/jshost/health', { timeout: 300 }).catch(() => null);
    return r && r.status === 503 ? r : null;
  }, { timeout: 4000, what: 'a 503 from the other worker' });
  assert.equal(JSON.parse(stuck.body).status, 'stuck');
  assert.equal((await busy).body, 'busy done');
  await waitFor(async () => {
    const [a, b] = await Promise.all([get(host.url, '/jshost/health'), get(host.url, '/jshost/health')]);
    return a.status === 200 && b.status === 200;
  }, { what: 'healthy again' });
});
