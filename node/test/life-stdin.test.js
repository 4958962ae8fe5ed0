'use strict';
// Issue 20 item 4: --exit-on-stdin-close is armed before the config loads, so a host whose
// config never finishes loading (a top-level await that never settles) dies with its owner;
// so does a manager's --prepare host.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { tmpDir, write, waitFor, alive, childPids, stop, JSHOST_NODE, ENV } = require('../testlib/helpers');

const HANGS = `await new Promise(() => {});\nexport default { functions: { echo: async (d) => JSON.stringify(d) } };\n`;

/** All descendants of `pid`. */
function descendants(pid) {
  const out = [];
  for (const c of childPids(pid)) out.push(c, ...descendants(c));
  return out;
}

// Runs `jshost-node ...args` from a middle process that holds its stdin pipe and prints its pid.
function owned(t, args) {
  const script = `
    const { spawn } = require('node:child_process');
    const c = spawn(process.execPath, ${JSON.stringify([JSHOST_NODE, ...args])}, { stdio: ['pipe', 'inherit', 'inherit'] });
    process.stdout.write('PID ' + c.pid + '\\n');
    setInterval(() => {}, 1000);
  `;
  const middle = spawn(process.execPath, ['-e', script], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stop(middle, 'SIGKILL'));
  let out = '';
  middle.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  return { middle, pid: () => (/^PID (\d+)\n/.exec(out) || [])[1] };
}

async function killOwnerAndExpectAllGone(t, middle, host, expectedProcesses) {
  // The host's processes exist (the primary and its worker, both stuck loading the config).
  const all = await waitFor(() => {
    const d = descendants(host);
    return d.length >= expectedProcesses - 1 ? [host, ...d] : null;
  }, { timeout: 10000, what: 'the host and its worker' });
  t.after(() => all.forEach((p) => alive(p) && process.kill(p, 'SIGKILL')));
  middle.kill('SIGKILL');
  await waitFor(() => !all.some(alive), { timeout: 1000, interval: 10, what: `${all} to exit` });
}

test('a host whose config hangs in a top-level await dies when its owner does', async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.mjs', HANGS);
  const { middle, pid } = owned(t, [config, '--exit-on-stdin-close', '--port', '0', '--json']);
  const host = Number(await waitFor(pid, { what: 'the host pid' }));
  await killOwnerAndExpectAllGone(t, middle, host, 2);
});

test("a manager's --prepare host whose config hangs dies with a SIGKILLed manager", async (t) => {
  const dir = tmpDir(t);
  const config = write(dir, 'host.config.mjs', HANGS);
  const manager = spawn(process.execPath, [JSHOST_NODE, config, '--manager', '--prepare', '--port', '0'], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stop(manager, 'SIGKILL'));
  // The manager (which loads the same hanging config), its prepared host and that host's worker.
  const all = await waitFor(() => {
    const d = descendants(manager.pid);
    return d.length >= 2 ? [manager.pid, ...d] : null;
  }, { timeout: 10000, what: 'the prepared host and its worker' });
  t.after(() => all.forEach((p) => alive(p) && process.kill(p, 'SIGKILL')));
  manager.kill('SIGKILL');
  await waitFor(() => !all.some(alive), { timeout: 1000, interval: 10, what: `${all} to exit` });
  assert.ok(all.length >= 3);
});
