'use strict';
// --detached: start a detached copy of this command (with --json instead of --detached), wait
// until it prints the expected status, print that and exit 0, leaving the copy running. If the
// copy prints another status or exits first, print its output to stderr, stop it, exit 1.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { BIN } = require('./version');
const { asideEnv } = require('./ca');

const POLL_MS = 50;
const GIVE_UP_MS = 60_000;

function runDetached(argv, expected) {
  const outputFile = path.join(os.tmpdir(), `jshost-node-detached-${process.pid}-${Date.now()}.log`);
  const fd = fs.openSync(outputFile, 'a');
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

  const poll = () => {
    let output = '';
    try {
      output = fs.readFileSync(outputFile, 'utf8');
    } catch {}
    const lines = output.split('\n').map((l) => l.trim());
    if (lines.includes(expected)) {
      process.stdout.write(expected);
      child.unref();
      cleanup();
      return;
    }
    const otherStatus = lines.some((l) => l.startsWith('{"type":'));
    if (otherStatus || exited !== null || Date.now() - started > GIVE_UP_MS) {
      process.stderr.write(output.trim() || `the detached process exited (${exited}) without output`);
      if (exited === null) child.kill();
      cleanup();
      process.exitCode = 1;
      return;
    }
    setTimeout(poll, POLL_MS);
  };
  const cleanup = () => {
    try {
      fs.unlinkSync(outputFile);
    } catch {}
  };
  setTimeout(poll, POLL_MS);
}

module.exports = { runDetached };
