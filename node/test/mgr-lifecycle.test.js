'use strict';
// The manager's own lifecycle, as clients of js-host 0.12 rely on it: it is gone as soon as the
// disconnect timeout stopped its last host (not once that host has finished exiting), and the
// hosts it starts log a line per request in their logfile.

const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');
const { tmpDir, write, spawnLine, post, request, waitFor, alive, childPids, JSHOST_NODE, hostConfig } = require('../testlib/helpers');

async function startManager(t, config) {
  let url = null;
  const beforeStop = () => (url ? post(`${url}/manager/stop`, {}, undefined, { timeout: 2000 }) : Promise.resolve());
  const m = await spawnLine(t, JSHOST_NODE, [config, '--manager', '--port', '0', '--json'], { beforeStop });
  url = `http://127.0.0.1:${JSON.parse(m.line).config.port}`;
  return { ...m, url, pid: m.child.pid };
}

const api = (m, endpoint, body) => post(`${m.url}${endpoint}`, body);
const json = (r) => JSON.parse(r.body);
const refused = (url) => request(`${url}/status`, { method: 'GET', timeout: 1000 }).then(() => false, (err) => err.code === 'ECONNREFUSED');

test('the disconnect timeout kills its host at once, even one with a call in flight, and the manager exits', async (t) => {
  const dir = tmpDir(t);
  // A host with a call that never ends: a SIGTERM would have it drain for its 10 s grace period.
  const mark = path.join(dir, 'called');
  const hang = `hang: () => { require('fs').writeFileSync(${JSON.stringify(mark)}, ''); return new Promise(() => {}); },`;
  const config = write(dir, 'host.config.js', hostConfig('disconnectTimeout: 200,').replace('functions: {', `functions: { ${hang}`));
  const m = await startManager(t, config);
  const started = json(await api(m, '/host/start', { config }));
  const [hostPid] = childPids(m.pid);
  const workers = childPids(hostPid);
  t.after(() => [hostPid, ...workers].forEach((pid) => alive(pid) && process.kill(pid, 'SIGKILL')));
  const hostUrl = `http://127.0.0.1:${JSON.parse(started.output).config.port}`;
  const call = post(`${hostUrl}/function/hang`, {}).catch(() => 'cut');
  await waitFor(() => fs.existsSync(mark), { what: 'the call to run' });
  const { connection } = json(await api(m, '/host/connect', { config }));
  assert.equal(json(await api(m, '/host/disconnect', { config, connection })).stopTimeout, 200);
  // Within 5 s (half the grace period a drain would take): host, workers and manager gone.
  await waitFor(() => ![hostPid, ...workers].some(alive), { what: 'the host and its workers to be killed' });
  assert.equal(await call, 'cut');
  await waitFor(() => m.child.exitCode !== null, { what: 'the manager to exit' });
  assert.equal(m.child.exitCode, 0);
  assert.ok(await refused(m.url));
});

test('a managed host logs a line per call in its logfile', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.js', hostConfig());
  const m = await startManager(t, config);
  const started = json(await api(m, '/host/start', { config }));
  const url = `http://127.0.0.1:${JSON.parse(started.output).config.port}`;
  assert.equal((await post(`${url}/function/echo`, { n: 1 })).status, 200);
  await waitFor(() => fs.readFileSync(started.logfile, 'utf8').includes('POST /function/echo 200'), { what: `a line for the call in ${started.logfile}` });
  await api(m, '/host/stop', { config });
});
