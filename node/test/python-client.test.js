'use strict';
// js-host's Python client (PyPI js-host==0.2.0) calls functions through jshost-node, with
// PATH_TO_BIN pointing at bin/jshost-node.js: against a host it finds running, and with
// USE_MANAGER=True (it starts a detached jshost-node manager, which starts the host; at exit
// the client disconnects and the manager stops the host and itself).
// Skipped, saying so, when the Python package is not importable:
//   pip install js-host==0.2.0 requests optional-django

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { tmpDir, write, spawnLine, post, request, waitFor, freePort, JSHOST_NODE, ENV } = require('../testlib/helpers');

const PYTHON = process.env.PYTHON || 'python3';
const SCRIPT = path.join(__dirname, 'python', 'client.py');

function pythonClientMissing() {
  const r = spawnSync(PYTHON, ['-c', 'import js_host, requests, optional_django'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0) return `the Python js-host client is not importable (pip install js-host==0.2.0 requests optional-django): ${r.stderr.trim().split('\n').pop()}`;
  return null;
}

const config = (port) => `
module.exports = {
  port: ${port},
  disconnectTimeout: 300,
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    hello: async function (data) { return 'Hello, ' + data.name + '!'; },
    fails: function (data, cb) { cb(new Error('failed on purpose')); }
  }
};
`;

function runClient(mode, configFile) {
  const r = spawnSync(PYTHON, [SCRIPT, mode, configFile, JSHOST_NODE], {
    encoding: 'utf8',
    env: { ...ENV, NODE: process.execPath },
    timeout: 30000,
  });
  assert.equal(r.status, 0, `python ${mode}: ${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const missing = pythonClientMissing();

test('the Python client calls a running jshost-node host', { skip: missing || false }, async (t) => {
  const dir = tmpDir(t);
  const port = await freePort();
  const file = write(dir, 'host.config.js', config(port));
  const host = await spawnLine(t, JSHOST_NODE, [file, '--json']);
  assert.equal(JSON.parse(host.line).config.port, port);
  const result = runClient('direct', file);
  assert.equal(result.managed, false);
  assert.deepEqual(JSON.parse(result.echo), { name: 'World', n: [1, 2] });
  assert.equal(result.hello, 'Hello, Py!');
  assert.match(result.error, /failed on purpose/);
  assert.equal(result.status.type, 'Host');
});

test('the Python client with USE_MANAGER=True', { skip: missing || false }, async (t) => {
  const dir = tmpDir(t);
  const port = await freePort();
  const file = write(dir, 'host.config.js', config(port));
  const managerUrl = `http://127.0.0.1:${port}`;
  t.after(() => post(`${managerUrl}/manager/stop`, {}).catch(() => {}));
  const result = runClient('manager', file);
  assert.equal(result.managed, true);
  assert.deepEqual(JSON.parse(result.echo), { name: 'World', n: [1, 2] });
  assert.equal(result.hello, 'Hello, Py!');
  assert.match(result.error, /failed on purpose/);
  const hostUrl = `http://127.0.0.1:${result.status.config.port}`;
  assert.notEqual(result.status.config.port, port, 'the managed host has a port of its own');
  // The client disconnected at exit: the manager stops the host, then itself.
  const gone = async (url) => request(`${url}/status`, { method: 'GET', timeout: 500 }).then(() => false, () => true);
  await waitFor(() => gone(hostUrl), { timeout: 5000, what: 'the managed host to stop' });
  await waitFor(() => gone(managerUrl), { timeout: 5000, what: 'the manager to exit' });
});

