'use strict';
// --detached: start a detached copy of this command (with --json instead of --detached), wait
// until it prints the expected status, print that and exit 0, leaving the copy running. If the
// copy prints another status or exits first, print its output to stderr, stop it, exit 1.
// The copy starts first; the expected status (a load of the config) is worked out while it
// starts. The copy's output goes to a file of the user's private directory (trust.js).

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { BIN } = require('./version');
const { asideEnv } = require('./ca');
const { privateDir } = require('./trust');

// How often the copy's output is read: its status line is waited for, so often enough that
// the wait adds little to its start-up (reading a few lines costs next to nothing).
const POLL_MS = 10;
const GIVE_UP_MS = 60_000;

/** `expectedStatus()` resolves with the status the copy must print (or exits 1 itself). */
async function runDetached(argv, expectedStatus) {
  let outputFile;
  let fd;
  try {
    outputFile = path.join(privateDir(), `jshost-node-detached-${process.pid}-${Date.now()}.log`);
    fd = fs.openSync(outputFile, 'wx', 0o600);
  } catch (err) {
    process.stderr.write(`cannot create the detached process's output file: ${err.message}\n`);
    process.exitCode = 1;
    return;
  }
  const args = argv.filter((a) => a !== '-d' && a !== '--detached');
  args.push('--json');
  const child = spawn(process.execPath, [BIN, ...args], {
    detached: true,
    stdio: ['ignore', fd, fd],
    // The copy is a manager or a host's primary: it starts without the CA bundle (ca.js).
    env: asideEnv({ ...process.env, NODE_NO_WARNINGS: '1' }),
  });
  fs.closeSync(fd);
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = signal || code;
  });
  const started = Date.now();
  const cleanup = () => {
    try {
      fs.unlinkSync(outputFile);
    } catch {}
  };
  // Until the copy is released (its status seen), it goes with this process, whatever ends it
  // (expectedStatus() exits 1 on a config it cannot load).
  let released = false;
  process.on('exit', () => {
    if (released) return;
    if (exited === null) child.kill();
    cleanup();
  });
  const expected = JSON.stringify(await expectedStatus());

  const poll = () => {
    let output = '';
    try {
      output = fs.readFileSync(outputFile, 'utf8');
    } catch {}
    const lines = output.split('\n').map((l) => l.trim());
    if (lines.includes(expected)) {
      process.stdout.write(expected);
      released = true;
      child.unref();
      cleanup();
      return;
    }
    const otherStatus = lines.some((l) => l.startsWith('{"type":'));
    if (otherStatus || exited !== null || Date.now() - started > GIVE_UP_MS) {
      process.stderr.write(output.trim() || `the detached process exited (${exited}) without output`);
      process.exitCode = 1;
      return; // the 'exit' handler stops the copy
    }
    setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
}

module.exports = { runDetached };
