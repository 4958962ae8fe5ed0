'use strict';
// Runaway calls. A call that keeps its worker's event loop from turning past its deadline (a
// synchronous loop, a catastrophic regex) cannot be stopped from inside: no timer of that
// thread runs. A watchdog thread shares a small buffer with the main thread, which writes:
// - when its loop last turned (a heartbeat every TICK_MS while a deadline is pending),
// - the earliest deadline pending and its call's name (deadlines.js says when it changes),
// - the name of the call whose synchronous part is running, if any.
// The thread checks every TICK_MS; when the loop has not turned since before that deadline and
// the deadline is past by more than MARGIN_MS, it logs `function "NAME" ran away: ...` and
// SIGKILLs the process. NAME is the call found running; when the loop is stuck in code run after
// an `await` (no call is known to run), it is the call of the missed deadline. The cluster
// primary replaces the process; only the calls on it lose their connection. The thread also ends
// a worker whose primary is gone (a stuck worker would not see its IPC channel close).
//
// Cost on the main thread: a few writes to the buffer per call; the thread starts with the first
// call (a process that never gets one needs none).

const TICK_MS = 50;
const MARGIN_MS = 3 * TICK_MS; // a loop that turns reports it within this
const NAME_BYTES = 240;
// Float64 slots: [0] last turn (Date.now()), [1] earliest deadline (0: none), [2] its timeout,
// [3] the length of its name, [4] the length of the running call's name (0: none known); then
// the two names' UTF-8 bytes, NAME_BYTES each.
const SLOTS = 5;
const ENCODER = new TextEncoder();

const THREAD = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { buffer, logfile, prefix, margin, check } = workerData;
const parent = process.ppid;
const f = new Float64Array(buffer, 0, ${SLOTS});
const bytes = new Uint8Array(buffer, ${SLOTS * 8});
const nameAt = (at, length) => Buffer.from(bytes.subarray(at, at + length)).toString('utf8');
setInterval(() => {
  // The primary is gone (even SIGKILLed) and this worker's loop is stuck: nobody else ends it.
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
  const deadline = f[1];
  if (deadline === 0) return;
  const now = Date.now();
  const lastTurn = f[0];
  if (now < deadline + margin || lastTurn >= deadline) return;
  const late = JSON.stringify(nameAt(0, f[3]));
  const running = f[4] === 0 ? null : JSON.stringify(nameAt(${NAME_BYTES}, f[4]));
  const what = running === null
    ? 'function ' + late + ' ran away: the event loop did not turn for ' + (now - deadline) + ' ms past its deadline (' + f[2] +
      ' ms), in code run after an await (no call was running synchronously; this call had the earliest deadline)'
    : running === late
      ? 'function ' + late + ' ran away: it kept the event loop from turning ' + (now - deadline) + ' ms past its deadline (' + f[2] + ' ms)'
      : 'function ' + running + ' ran away: it kept the event loop from turning ' + (now - deadline) +
        ' ms past the deadline (' + f[2] + ' ms) of a call of function ' + late;
  const line = new Date(now).toISOString() + ' ' + prefix + ' error: ' + what + '; the event loop last turned ' +
    (now - lastTurn) + ' ms ago; replacing this process (pid ' + process.pid + ')\\n';
  try { fs.writeSync(2, line); } catch {}
  if (logfile) { try { fs.appendFileSync(logfile, line); } catch {} }
  process.kill(process.pid, 'SIGKILL');
}, check);
`;

class Watchdog {
  /** `logfile`: absolute path or undefined; `prefix`: the log's "jshost-node[pid]". */
  constructor({ logfile, prefix }) {
    this.workerData = { logfile, prefix, margin: MARGIN_MS, check: TICK_MS };
    this.workerData.buffer = new SharedArrayBuffer(SLOTS * 8 + 2 * NAME_BYTES);
    this.f = new Float64Array(this.workerData.buffer, 0, SLOTS);
    this.lateName = new Uint8Array(this.workerData.buffer, SLOTS * 8, NAME_BYTES);
    this.runningName = new Uint8Array(this.workerData.buffer, SLOTS * 8 + NAME_BYTES, NAME_BYTES);
    this.published = { late: null, running: null }; // the names in the buffer
    this.thread = null;
    this.heartbeat = null;
  }

  /** deadlines.js: `call` ({name, deadline, timeout}) has the earliest pending deadline, or none (null). */
  watch(call) {
    const f = this.f;
    if (call === null) {
      f[1] = 0;
      return; // the heartbeat stops at its next tick
    }
    f[0] = Date.now();
    if (call.name !== this.published.late) f[3] = this.encode(call.name, this.lateName, 'late');
    f[2] = call.timeout;
    f[1] = call.deadline;
    if (this.heartbeat === null) {
      this.heartbeat = setInterval(() => this.beat(), TICK_MS);
      this.heartbeat.unref();
    }
  }

  /** The synchronous part of a call of function `name` starts (call.js). */
  enter(name) {
    if (this.thread === null) this.start();
    this.f[4] = name === this.published.running ? this.runningLength : (this.runningLength = this.encode(name, this.runningName, 'running'));
  }

  /** ... and returns. */
  leave() {
    this.f[4] = 0;
  }

  encode(name, into, which) {
    this.published[which] = name;
    return ENCODER.encodeInto(name, into).written;
  }

  beat() {
    if (this.f[1] === 0) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
      return;
    }
    this.f[0] = Date.now();
  }

  start() {
    // Loaded here, with the first call: a worker's start-up stays short.
    const { Worker } = require('node:worker_threads');
    this.thread = new Worker(THREAD, { eval: true, workerData: this.workerData, stdout: false, stderr: false });
    this.thread.unref();
  }
}

module.exports = { Watchdog };
