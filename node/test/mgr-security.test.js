'use strict';
// The manager runs only its own user's code and answers only requests meant for it:
// - a config that another user owns, or that group or others may write (so another user could
//   put code in it), is refused with a 403 that names the file, its owner and mode, and never runs;
// - the logfiles of its hosts (call data, stack traces) are 0600 in the user's private directory,
//   which must be the user's alone;
// - a request whose Host header is not a loopback name or address (DNS rebinding: a web page whose
//   name now points at 127.0.0.1) gets a 403 and changes nothing.
// The "another user" cases hand files to `nobody`, which needs root (CI runs as root): skipped,
// saying so, otherwise.

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const test = require('node:test');
const assert = require('node:assert/strict');
const { tmpDir, write, spawnLine, post, request, childPids, JSHOST_NODE, ENV, hostConfig } = require('../testlib/helpers');

const NOBODY = 65534;
const notRoot = process.getuid() === 0 ? false : 'handing a file to another user (nobody) needs root';

async function startManager(t, config, { env = ENV } = {}) {
  let url = null;
  const beforeStop = () => (url ? post(`${url}/manager/stop`, {}, undefined, { timeout: 2000 }) : Promise.resolve());
  const m = await spawnLine(t, JSHOST_NODE, [config, '--manager', '--port', '0', '--json'], { beforeStop, env });
  const port = JSON.parse(m.line).config.port;
  url = `http://127.0.0.1:${port}`;
  return { ...m, url, port, pid: m.child.pid };
}

const api = (m, endpoint, body) => post(`${m.url}${endpoint}`, body);
const json = (r) => JSON.parse(r.body);

/** A config that records that it ran (and as whom) in `mark`. */
const recordingConfig = (mark) => `
require('fs').writeFileSync(${JSON.stringify(mark)}, 'ran as uid ' + process.getuid());
${hostConfig()}`;

test("another user's config is refused and never runs", { skip: notRoot }, async (t) => {
  const dir = tmpDir(t);
  const mark = path.join(dir, 'ran');
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const m = await startManager(t, managerConfig);
  const theirs = write(dir, 'theirs.config.js', recordingConfig(mark));
  fs.chownSync(theirs, NOBODY, NOBODY);

  const refusals = [
    // The file itself, by its name and by the name Node resolves (no extension).
    [theirs, theirs],
    [path.join(dir, 'theirs.config'), theirs],
  ];
  // A symbolic link of ours to their file.
  fs.symlinkSync(theirs, path.join(dir, 'link.config.js'));
  refusals.push([path.join(dir, 'link.config.js'), theirs]);
  // Their symbolic link to a file of ours.
  const ours = write(dir, 'ours.config.js', recordingConfig(mark));
  fs.symlinkSync(ours, path.join(dir, 'their-link.config.js'));
  fs.lchownSync(path.join(dir, 'their-link.config.js'), NOBODY, NOBODY);
  refusals.push([path.join(dir, 'their-link.config.js'), path.join(dir, 'their-link.config.js')]);

  for (const [config, named] of refusals) {
    for (const endpoint of ['/host/start', '/host/status', '/host/start']) {
      const r = await api(m, endpoint, { config });
      if (endpoint === '/host/status') {
        assert.deepEqual(json(r), { started: false });
        continue;
      }
      assert.equal(r.status, 403, `${config}: ${r.body}`);
      assert.ok(r.body.startsWith(`refusing to run ${config}`), r.body);
      assert.ok(r.body.includes(named), r.body);
      assert.match(r.body, /owned by uid 65534 \(nobody\), not by uid 0 \(root\) who runs this manager/);
    }
  }
  assert.deepEqual(childPids(m.pid), [], 'no host was spawned');
  assert.ok(!fs.existsSync(mark), 'the config never ran');
  // Our own file runs (the check is not a refusal of everything).
  assert.equal((await api(m, '/host/start', { config: ours })).status, 200);
  assert.equal(fs.readFileSync(mark, 'utf8'), 'ran as uid 0');
  await api(m, '/host/stop', { config: ours });
});

test('a config that group or others may write is refused; a restart checks again', async (t) => {
  const dir = tmpDir(t);
  const mark = path.join(dir, 'ran');
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const m = await startManager(t, managerConfig);
  const config = write(dir, 'host.config.js', recordingConfig(mark));
  for (const [mode, who] of [
    [0o664, 'its group'],
    [0o646, 'others'],
    [0o666, 'others'],
  ]) {
    fs.chmodSync(config, mode);
    const r = await api(m, '/host/start', { config });
    assert.equal(r.status, 403, r.body);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(r.body, `refusing to run ${config}: it is writable by ${who} (mode 0${mode.toString(8)}); make it yours alone (chmod go-w ${config})`);
  }
  assert.ok(!fs.existsSync(mark), 'the config never ran');
  assert.deepEqual(childPids(m.pid), []);

  // Made private, it starts; made writable again, a restart is refused and the host keeps running.
  fs.chmodSync(config, 0o644);
  const started = await api(m, '/host/start', { config });
  assert.equal(started.status, 200, started.body);
  fs.chmodSync(config, 0o664);
  fs.rmSync(mark);
  const restart = await api(m, '/host/restart', { config });
  assert.equal(restart.status, 403);
  assert.ok(!fs.existsSync(mark), 'the restart did not run it');
  const hostUrl = `http://127.0.0.1:${JSON.parse(json(started).output).config.port}`;
  assert.equal((await post(`${hostUrl}/function/echo`, { still: 'running' })).body, '{"still":"running"}');
  assert.equal(json(await api(m, '/host/status', { config })).started, true);
  await api(m, '/host/stop', { config });
});

/** GET /status with this Host header. */
function statusWithHost(m, host) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: m.port, path: '/status', method: 'GET', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

test('requests for another Host (DNS rebinding) get a 403 and change nothing', async (t) => {
  const dir = tmpDir(t);
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const config = write(dir, 'host.config.js', hostConfig());
  const m = await startManager(t, managerConfig);
  const rebound = `rebind.attacker.example:${m.port}`;

  const stop = await request(`${m.url}/manager/stop`, { headers: { host: rebound, 'content-type': 'application/json' }, body: '{}' });
  assert.equal(stop.status, 403);
  assert.equal(stop.body, `Host "${rebound}" is not allowed`);
  const start = await request(`${m.url}/host/start`, { headers: { host: rebound, 'content-type': 'application/json' }, body: JSON.stringify({ config }) });
  assert.equal(start.status, 403);
  assert.deepEqual(childPids(m.pid), [], 'no host was started');
  assert.equal(m.child.exitCode, null);
  assert.equal((await request(`${m.url}/status`, { method: 'GET' })).status, 200, 'the manager keeps running');

  for (const host of [`localhost:${m.port}`, 'LOCALHOST', `127.0.0.1:${m.port}`, '127.9.9.9', `[::1]:${m.port}`, '[0:0:0:0:0:0:0:1]']) {
    assert.equal(await statusWithHost(m, host), 200, `Host ${host}`);
  }
  for (const host of ['localhost.attacker.example', '127.0.0.1.nip.io', 'evil@localhost', '10.0.0.1', '[::2]', `attacker.example:${m.port}`]) {
    assert.equal(await statusWithHost(m, host), 403, `Host ${host}`);
  }
});

test("hosts' logfiles are 0600 in a private directory; a directory others may enter is refused", async (t) => {
  const dir = tmpDir(t);
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const env = { ...ENV, TMPDIR: tmp };
  delete env.XDG_RUNTIME_DIR;
  const managerConfig = write(dir, 'manager.config.js', hostConfig());
  const config = write(dir, 'host.config.js', hostConfig());
  const m = await startManager(t, managerConfig, { env });
  const started = json(await api(m, '/host/start', { config }));
  const mine = path.join(tmp, `jshost-${process.getuid()}`);
  assert.equal(path.dirname(started.logfile), mine);
  assert.equal(fs.statSync(mine).mode & 0o777, 0o700);
  assert.equal(fs.statSync(started.logfile).mode & 0o777, 0o600);
  const hostUrl = `http://127.0.0.1:${JSON.parse(started.output).config.port}`;
  assert.equal((await post(`${hostUrl}/function/echo`, { a: 1 })).status, 200);
  assert.match(fs.readFileSync(started.logfile, 'utf8'), /POST \/function\/echo 200/);
  assert.equal(fs.statSync(started.logfile).mode & 0o777, 0o600, 'still 0600 once the host wrote to it');
  await api(m, '/host/stop', { config });

  // Another user could enter it (as if they had created it first): no host starts.
  fs.chmodSync(mine, 0o777);
  const open = await api(m, '/host/start', { config });
  assert.equal(open.status, 500);
  assert.ok(open.body.includes(`the private directory ${mine} is not uid ${process.getuid()}`), open.body);
  assert.match(open.body, /mode 0777\); remove it/);
  assert.deepEqual(childPids(m.pid), []);
  if (process.getuid() === 0) {
    fs.chmodSync(mine, 0o700);
    fs.chownSync(mine, NOBODY, NOBODY);
    const theirs = await api(m, '/host/start', { config });
    assert.equal(theirs.status, 500);
    assert.match(theirs.body, /owned by uid 65534 \(nobody\), mode 0700/);
  }
  fs.chmodSync(mine, 0o700);
  fs.chownSync(mine, process.getuid(), process.getgid());
});
