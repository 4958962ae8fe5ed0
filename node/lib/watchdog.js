'use strict';
// Runaway calls. A call that keeps its worker's event loop from turning past its deadline (a
// synchronous loop, a catastrophic regex) cannot be stopped from inside: no timer of that
// thread runs. A watchdog thread shares a small buffer with the main thread: the main thread
// writes when its loop last turned and the earliest deadline among the calls in flight (and that
// call's name); the thread checks a few times a second and, when the loop has not turned since
// before that deadline and the deadline is past by more than MARGIN_MS, logs
// `function "NAME" ran away: ...` and SIGKILLs the process. The cluster primary replaces it;
// only the calls on that process lose their connection. The thread also ends a worker whose
// primary is gone (a stuck worker would not see its IPC channel close).
//
// Cost on the main thread: nothing for calls without a deadline; for calls with one, a Set
// insert and delete, and a scan of the calls in flight when the earliest of them ends.

const { Worker } = require('node:worker_threads');

const TICK_MS = 50; // how often the main thread says its loop turns, while deadlines are pending
const MARGIN_MS = 3 * TICK_MS; // a loop that turns reports it within this
const NAME_BYTES = 240;
// Float64 slots: [0] last turn (Date.now()), [1] earliest deadline (0: none), [2] its timeout,
// [3] the length of its name; then the name's UTF-8 bytes.
const SLOTS = 4;
const ENCODER = new TextEncoder();

const THREAD = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { buffer, logfile, prefix, margin, check } = workerData;
const parent = process.ppid;
const f = new Float64Array(buffer, 0, ${SLOTS});
const nameBytes = new Uint8Array(buffer, ${SLOTS * 8});
setInterval(() => {
  // The primary is gone (even SIGKILLed) and this worker's loop is stuck: nobody else ends it.
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
  const deadline = f[1];
  if (deadline === 0) return;
  const now = Date.now();
  const lastTurn = f[0];
  if (now < deadline + margin || lastTurn >= deadline) return;
  const name = Buffer.from(nameBytes.subarray(0, f[3])).toString('utf8');
  const line = new Date(now).toISOString() + ' ' + prefix + ' error: function ' + JSON.stringify(name) +
    ' ran away: it kept the event loop from turning ' + (now - deadline) + ' ms past its deadline (' + f[2] +
    ' ms); the event loop last turned ' + (now - lastTurn) + ' ms ago; replacing this process (pid ' + process.pid + ')\\n';
  try { fs.writeSync(2, line); } catch {}
  if (logfile) { try { fs.appendFileSync(logfile, line); } catch {} }
  process.kill(process.pid, 'SIGKILL');
}, check);
`;

class Watchdog {
  /** `logfile`: absolute path or undefined; `prefix`: the log's "jshost-node[pid]". */
  constructor({ logfile, prefix }) {
    const buffer = new SharedArrayBuffer(SLOTS * 8 + NAME_BYTES);
    this.f = new Float64Array(buffer, 0, SLOTS);
    this.nameBytes = new Uint8Array(buffer, SLOTS * 8);
    this.calls = new Set(); // calls in flight with a deadline
    this.earliest = null;
    this.timer = null;
    this.thread = new Worker(THREAD, {
      eval: true,
      workerData: { buffer, logfile, prefix, margin: MARGIN_MS, check: TICK_MS },
      stdout: false,
      stderr: false,
    });
    this.thread.unref();
  }

  /** A call with a timeout (ms) starts; returns what `end` takes. */
  start(name, timeout) {
    const now = Date.now();
    const call = { name, timeout, deadline: now + timeout };
    this.calls.add(call);
    this.f[0] = now;
    if (this.earliest === null || call.deadline < this.earliest.deadline) this.publish(call);
    if (this.timer === null) this.timer = setInterval(() => this.tick(), TICK_MS).unref();
    return call;
  }

  end(call) {
    if (!this.calls.delete(call)) return;
    this.f[0] = Date.now();
    if (call === this.earliest) this.recompute();
  }

  tick() {
    const now = Date.now();
    this.f[0] = now;
    // A call past its deadline while the loop turns was answered 504 (or is waiting on I/O):
    // not a runaway; stop watching it.
    for (const call of this.calls) if (call.deadline <= now) this.calls.delete(call);
    this.recompute();
  }

  recompute() {
    let earliest = null;
    for (const call of this.calls) if (earliest === null || call.deadline < earliest.deadline) earliest = call;
    this.publish(earliest);
    if (earliest === null && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  publish(call) {
    this.earliest = call;
    if (call === null) {
      this.f[1] = 0;
      return;
    }
    const { written } = ENCODER.encodeInto(call.name, this.nameBytes);
    this.f[3] = written;
    this.f[2] = call.timeout;
    this.f[1] = call.deadline;
  }
}

module.exports = { Watchdog };
