'use strict';
// One manager serves all of a user's projects: hosts are keyed by the config's absolute path,
// so two projects (configs of the same name in different directories, different functions) get
// a host each and neither's start, restart or stop touches the other's. A /host/start asking for
// other options (watch, workers) than the running host's restarts it with them.

const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');
const { tmpDir, write, spawnLine, post, request, waitFor, alive, childPids, JSHOST_NODE, hostConfig } = require('../testlib/helpers');

async function startManager(t, config, args = []) {
  let url = null;
  const beforeStop = () => (url ? post(`${url}/manager/stop`, {}, undefined, { timeout: 2000 }) : Promise.resolve());
  const m = await spawnLine(t, JSHOST_NODE, [config, '--manager', '--port', '0', '--json', ...args], { beforeStop });
  url = `http://127.0.0.1:${JSON.parse(m.line).config.port}`;
  return { ...m, url, pid: m.child.pid };
}

const api = (m, endpoint, body) => post(`${m.url}${endpoint}`, body);
const json = (r) => JSON.parse(r.body);
const urlOf = (host) => `http://127.0.0.1:${JSON.parse(host.output).config.port}`;
/** The manager's child running the host at `url` (its functions run in a worker of it). */
async function hostPid(m, url) {
  const worker = Number((await post(`${url}/function/pid`, {})).body);
  return childPids(m.pid).find((pid) => childPids(pid).includes(worker));
}

const projectConfig = (name) => `
module.exports = {
  functions: {
    ${name}: function (data, cb) { cb(null, '${name} says ' + data.x); },
    pid: function (data, cb) { cb(null, String(process.pid)); }
  }
};
`;

test('two projects on one manager each get a host of their own', async (t) => {
  const root = tmpDir(t);
  fs.mkdirSync(path.join(root, 'blog'));
  fs.mkdirSync(path.join(root, 'shop'));
  // The same file name in two directories; the manager runs from the first project's config.
  const blog = write(root, 'blog/host.config.js', projectConfig('render_post'));
  const shop = write(root, 'shop/host.config.js', projectConfig('render_cart'));
  const m = await startManager(t, blog);

  const a = json(await api(m, '/host/start', { config: blog }));
  const b = json(await api(m, '/host/start', { config: shop }));
  assert.notEqual(urlOf(a), urlOf(b));
  assert.equal((await post(`${urlOf(a)}/function/render_post`, { x: 1 })).body, 'render_post says 1');
  assert.equal((await post(`${urlOf(b)}/function/render_cart`, { x: 2 })).body, 'render_cart says 2');
  assert.equal((await post(`${urlOf(a)}/function/render_cart`, { x: 1 })).status, 404, "one project's host has only its functions");
  const shopPid = await hostPid(m, urlOf(b));
  const { connection } = json(await api(m, '/host/connect', { config: shop }));

  // Restarting, then stopping, one project leaves the other as it was.
  assert.equal((await api(m, '/host/restart', { config: blog })).status, 200);
  await waitFor(async () => (await post(`${urlOf(a)}/function/render_post`, { x: 3 })).status === 200, { what: 'the restarted blog host' });
  assert.equal((await api(m, '/host/stop', { config: blog })).status, 200);
  assert.deepEqual(json(await api(m, '/host/status', { config: blog })), { started: false });
  const status = json(await api(m, '/host/status', { config: shop }));
  assert.equal(status.started, true);
  assert.deepEqual(status.host.connections, [connection]);
  assert.equal(await hostPid(m, urlOf(b)), shopPid, 'the shop host is the same process');
  assert.equal((await post(`${urlOf(b)}/function/render_cart`, { x: 4 })).body, 'render_cart says 4');
  assert.equal(m.child.exitCode, null, 'the manager keeps serving the other project');

  // Starting the first project again does not touch the second either.
  assert.equal((await api(m, '/host/start', { config: blog })).status, 200);
  assert.equal(await hostPid(m, urlOf(b)), shopPid);
  await api(m, '/host/stop', { config: blog });
  await api(m, '/host/stop', { config: shop });
});

test('/host/start with other options restarts the host with them; the same options: "Host already running"', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig().replace("JSON.stringify(data)", "'v1 ' + JSON.stringify(data)"));
  const m = await startManager(t, config);
  const info = async (url) => JSON.parse((await request(`${url}/jshost/info`, { method: 'GET' })).body);
  const features = async (url) => (await post(`${url}/function/echo`, {})).headers['x-jshost-node'];

  const first = json(await api(m, '/host/start', { config, options: { watch: false } }));
  assert.deepEqual(first.options, { watch: false, workers: null, callTimeout: null, maxMemory: null, maxCalls: null, grace: null });
  const url = urlOf(first);
  const { connection } = json(await api(m, '/host/connect', { config }));
  const firstPid = await hostPid(m, url);

  // The same options, or none (js-host's request): js-host's answer.
  for (const body of [{ config }, { config, options: { watch: false } }, { config, options: {} }]) {
    const again = await api(m, '/host/start', body);
    assert.deepEqual([again.status, again.body], [500, 'Host already running']);
  }
  assert.equal(await hostPid(m, url), firstPid);

  // Other options: restarted with them, on the same port and logfile, connections kept.
  const watched = await api(m, '/host/start', { config, options: { watch: true } });
  assert.equal(watched.status, 200, watched.body);
  const w = json(watched);
  assert.equal(w.restarted, true);
  assert.equal(w.options.watch, true);
  assert.equal(urlOf(w), url);
  assert.equal(w.logfile, first.logfile);
  assert.deepEqual(w.connections, [connection]);
  assert.ok(!alive(firstPid), 'the old host is gone');
  assert.match(await features(url), /features=[^;]*\bwatch\b/);
  const { restarted, ...described } = w;
  assert.deepEqual(json(await api(m, '/host/status', { config })).host, described);
  // It does watch: an edit is served.
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace("'v1 '", "'v2 '"));
  await waitFor(async () => (await post(`${url}/function/echo`, { a: 1 })).body === 'v2 {"a":1}', { timeout: 10000, what: 'the edited function' });

  // Options not named keep their value: workers changes, watch stays.
  const two = json(await api(m, '/host/start', { config, options: { workers: 2 } }));
  assert.equal(two.restarted, true);
  assert.deepEqual([two.options.watch, two.options.workers], [true, 2]);
  assert.equal((await info(url)).workers, 2);
  // /host/restart takes options too.
  const one = json(await api(m, '/host/restart', { config, options: { workers: null, watch: false } }));
  assert.deepEqual([one.options.watch, one.options.workers], [false, null]);
  assert.equal((await info(url)).workers, 1);
  assert.doesNotMatch(await features(url), /\bwatch\b/);

  // Options the manager cannot honour: 400, the host untouched.
  const pid = await hostPid(m, url);
  for (const [options, message] of [
    ['watch', /^"options" takes an object, not "watch"$/],
    [{ reload: true }, /^unknown option "reload" \(known: watch, workers, callTimeout, maxMemory, maxCalls, grace\)$/],
    [{ workers: 0 }, /^option "workers" takes a whole number of workers \(1 or more\) or "auto" or null, not 0$/],
    [{ watch: 'yes' }, /^option "watch" takes true or false or null, not "yes"$/],
  ]) {
    const r = await api(m, '/host/start', { config, options });
    assert.equal(r.status, 400, r.body);
    assert.match(r.body, message);
  }
  assert.equal(await hostPid(m, url), pid);
  await api(m, '/host/stop', { config });
});

test('--prepare: a first start asking for other options than the prepared host has gets a host of its own', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const m = await startManager(t, config, ['--prepare', '--verbose']);
  await waitFor(() => m.stderr().includes(`the prepared host for ${config} is ready`), { timeout: 10000, what: 'the prepared host' });
  const [prepared] = childPids(m.pid);
  const r = json(await api(m, '/host/start', { config, options: { workers: 2 } }));
  assert.equal(r.options.workers, 2);
  assert.equal(JSON.parse((await request(`${urlOf(r)}/jshost/info`, { method: 'GET' })).body).workers, 2);
  await waitFor(() => !alive(prepared), { what: 'the prepared host to be stopped' });
  await api(m, '/host/stop', { config });
});
