'use strict';
// Starting and stopping one host process for a manager: spawned as
// `jshost-node KEY --port PORT --json --logfile F --exit-on-stdin-close FLAGS` in a process
// group of its own (so that a host killed by force takes its workers with it) on a stdin pipe
// the manager holds (so that it dies with the manager, even a SIGKILLed one); started once it
// printed its status line.

const { spawn } = require('node:child_process');
const { BIN } = require('./version');
const { asideEnv } = require('./ca');
const { KILL_GRACE_MS } = require('./host-options');

class StartTimeout extends Error {}

/** Spawns the host process; once it exits, whatever is left in its group (a worker stuck in a loop) is killed. */
function spawnHostProcess(hostKey, port, logfile, flags) {
  const child = spawn(
    process.execPath,
    [BIN, hostKey, '--port', String(port), '--json', '--logfile', logfile, '--exit-on-stdin-close', ...flags],
    // A host's primary makes no TLS connection; its workers get NODE_EXTRA_CA_CERTS back (ca.js).
    { stdio: ['pipe', 'pipe', 'pipe'], env: asideEnv({ ...process.env, NODE_NO_WARNINGS: '1' }), detached: true },
  );
  child.stdin.on('error', () => {});
  child.once('exit', () => killGroup(child));
  return child;
}

function killGroup(child) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is empty.
  }
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Stops a host process: SIGTERM, then after `grace` ms SIGKILL to its group; resolves once it exited. */
function kill(child, grace = KILL_GRACE_MS) {
  if (!child || child.pid === undefined || exited(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = grace > 0 ? setTimeout(() => killGroup(child), grace) : null;
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (grace > 0) child.kill('SIGTERM');
    else killGroup(child);
  });
}

/**
 * Resolves with {line, stdout} once `child` printed its status line (lines before it are what
 * the config printed while loading); rejects if it exits or fails to spawn first.
 */
function statusLine(child) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let done = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      if (!done && stderr.length < 65536) stderr += d;
    });
    let seen = 0; // stdout before this offset holds lines the config printed while loading
    child.stdout.on('data', (d) => {
      if (done) return;
      stdout += d;
      let line;
      for (;;) {
        const nl = stdout.indexOf('\n', seen);
        if (nl === -1) return;
        line = stdout.slice(seen, nl);
        seen = nl + 1;
        if (line.startsWith('{"type":')) break;
      }
      done = true;
      resolve({ line, stdout });
    });
    child.once('exit', (code, signal) => {
      if (done) return;
      done = true;
      const why = signal ? `signal ${signal}` : `code ${code}`;
      reject(new Error(`Error starting child host (it exited with ${why}): ${stderr.trim() || stdout.trim() || 'no output'}`));
    });
    child.once('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

/**
 * Waits (at most `timeout` ms) for `pending`, the status line of `child` starting for
 * `hostKey`, and checks it against `expected` (the manager's status: same protocol version and
 * address): {child, output}. Otherwise kills it (at once if it timed out: it never served a
 * call) and throws (a StartTimeout if it timed out).
 */
async function awaitStarted(child, { hostKey, logfile, pending, timeout, expected }) {
  let timer;
  const timedOut = new Promise((resolve, reject) => {
    const why = `the host for ${hostKey} did not start within ${timeout} ms (is its config's load hanging?); it was killed. Its logfile: ${logfile}`;
    timer = setTimeout(() => reject(new StartTimeout(why)), timeout);
  });
  try {
    return accept(child, await Promise.race([pending, timedOut]), expected);
  } catch (err) {
    await kill(child, err instanceof StartTimeout ? 0 : KILL_GRACE_MS);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function accept(child, { line, stdout }, expected) {
  let status;
  try {
    status = JSON.parse(line);
  } catch {
    child.kill();
    throw new Error(`Unexpected output from child process: ${stdout}`);
  }
  if (status.version !== expected.version || !status.config || status.config.address !== expected.config.address) {
    child.kill();
    throw new Error(`Unexpected output from child process: ${line}`);
  }
  return { child, output: line + '\n' };
}

module.exports = { spawnHostProcess, killGroup, kill, exited, statusLine, awaitStarted, StartTimeout };
