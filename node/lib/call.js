'use strict';
// Calling one function: callback style `fn(data, cb)` like js-host, a returned Promise (or an
// async function), or a returned value for functions declared with fewer than two parameters.
// Each call runs as its own async context (context.js), so that an error thrown later in a timer
// or I/O callback it scheduled, or a rejection it left unhandled, fails that call (see guard.js).

const { runIn, runOutside, currentCall } = require('./context');

/** The longest delay Node's timers keep (2^31-1 ms): a longer one fires at once. */
const MAX_TIMER_MS = 2147483647;

/**
 * One call in flight. `done(status, body)` is called exactly once, with 200 and the output
 * text, or 500 and the error's stack.
 */
class Call {
  /** Where late callbacks are reported (set by the host). */
  static log = null;

  constructor(name, done) {
    this.name = name;
    this.done = done;
    this.settled = false;
    this.expired = false;
    this.deadlines = null; // the Deadlines (deadlines.js) watching it, if it has a deadline
    this.watched = false; // set by `deadlines` while its deadline is pending
    this.expiredBody = null;
  }

  /**
   * Answers 504 (`expiredBody(name, ms)` is the body) if the call has not answered within `ms`
   * milliseconds, as `deadlines` (deadlines.js) sees; no deadline when `ms` is 0 (see timerMs).
   */
  limit(deadlines, ms, expiredBody) {
    if (ms <= 0) return;
    this.deadlines = deadlines;
    this.expiredBody = expiredBody;
    deadlines.add(this, ms);
  }

  /** Its deadline passed (deadlines.js): answers 504; the function may still answer, ignored. */
  expire() {
    if (this.settled) return;
    this.settled = true;
    this.expired = true;
    this.answer(504, this.expiredBody(this.name, this.timeout));
  }

  /** js-host's callback: `cb(err)` fails, `cb(null, output)` answers. */
  callback() {
    return (err, output) => {
      if (this.settled) {
        // A call that expired (a batch item's timeout) may still answer: that is expected.
        if (!this.expired && Call.log) {
          Call.log.error(new Error(`Function "${this.name}" called its callback more than once`).stack);
        }
        return;
      }
      this.settle(err, output);
    };
  }

  settle(err, output) {
    if (this.settled) return;
    this.settled = true;
    if (err) {
      this.answer(500, errorText(err));
      return;
    }
    let body;
    try {
      body = outputText(output);
    } catch (e) {
      this.answer(500, errorText(isRangeError(e) ? new Error(`function "${this.name}": its output cannot be encoded as JSON (${e})`) : e));
      return;
    }
    this.answer(200, body);
  }

  /** Calls `done` outside the call (the host's work: context.js), and lets go of it. */
  answer(status, body) {
    if (this.watched) this.deadlines.delete(this);
    const done = this.done;
    this.done = null; // the call lives on while resources it marked do
    runOutside(done, status, body);
  }

  fail(err) {
    this.settle(err || new Error(`Function "${this.name}" failed with ${String(err)}`));
  }
}

/** The 504 body of a plain call past its timeout (the wire contract's words). */
const plainExpired = (name, ms) => `function "${name}" did not answer within ${ms} ms`;

/**
 * The milliseconds of a host timer for a call: `value` is a number (a batch item's `timeout`,
 * --call-timeout) or a decimal header value (X-Jshost-Timeout). A missing, malformed,
 * non-positive value, or one above MAX_TIMER_MS, means no timer (0): the client enforces its
 * own deadline, and js-host clients may send anything.
 */
function timerMs(value) {
  let ms = value;
  if (typeof value === 'string') ms = /^[0-9]{1,10}$/.test(value) ? Number(value) : 0;
  else if (typeof value !== 'number') return 0;
  return ms > 0 && ms <= MAX_TIMER_MS ? ms : 0;
}

/** The smaller of two timerMs values, 0 (none) counting as no limit. */
function sooner(a, b) {
  if (a === 0) return b;
  return b === 0 || a < b ? a : b;
}

/** js-host's rules for the output: falsy is an error, objects are JSON, others String(v). */
function outputText(output) {
  if (typeof output === 'string' && output.length !== 0) return output;
  if (!output) throw new Error(`Function failed to provide valid output. Provided: "${safeString(output)}"`);
  if (typeof output === 'object' || typeof output === 'function') {
    const json = JSON.stringify(output);
    if (json === undefined) throw new Error(`Function failed to provide valid output. Provided: "${safeString(output)}"`);
    return json;
  }
  return String(output);
}

/** js-host's error body: the stack, after wrapping a non-Error (`cb('text')`) in an Error. */
function errorText(err) {
  try {
    let e = err;
    if (!(e instanceof Error)) {
      try {
        e = new Error(e);
      } catch {
        e = new Error(safeString(err));
      }
    }
    const stack = e.stack;
    return typeof stack === 'string' ? stack : safeString(e);
  } catch {
    // A Proxy or an object whose getters throw: the failure itself cannot be described.
    return new Error('the function failed with a value that cannot be described').stack;
  }
}

function isRangeError(e) {
  try {
    return e instanceof RangeError;
  } catch {
    return false;
  }
}

function safeString(v) {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/**
 * Runs `fn` for `call` (in its async context); `watchdog` (watchdog.js, or null) is told while
 * its synchronous part runs.
 */
function invoke(call, fn, ctx, data, watchdog) {
  if (watchdog === null) return void runIn(call, run, call, fn, ctx, data);
  watchdog.enter(call.name);
  runIn(call, run, call, fn, ctx, data);
  watchdog.leave();
}

// Everything that touches the function's value (its `then`, even a getter that throws) runs
// inside the call's error handling: it fails the call, never the host.
function run(call, fn, ctx, data) {
  let ret;
  let direct;
  try {
    direct = fn.length < 2;
    ret = fn.call(ctx, data, call.callback());
    if (call.settled) return;
    if (ret !== null && (typeof ret === 'object' || typeof ret === 'function')) {
      const then = ret.then;
      if (typeof then === 'function') {
        then.call(
          ret,
          (value) => {
            // A callback-style async function resolves with undefined and calls cb later.
            if (value === undefined && !direct) return;
            call.settle(null, value);
          },
          (err) => call.fail(err),
        );
        return;
      }
    }
  } catch (err) {
    call.fail(err);
    return;
  }
  if (direct) call.settle(null, ret);
}

module.exports = { Call, invoke, currentCall, outputText, errorText, timerMs, sooner, plainExpired, MAX_TIMER_MS };
