'use strict';
// POST /batch: `[{"function": NAME, "data": {...}, "timeout": MS?}, ...]` -> 200 with one result
// per item, in order: `{"status": 200, "output": "..."}` or `{"status": 404 | 500 | 504,
// "error": "..."}`. Items run concurrently, each in its own call context. An item with a
// `timeout` (ms) is answered 504 when it has not answered by then, so a function that never
// answers holds its batch-mates back no longer than that.

const { HttpError } = require('./body');
const { timerMs } = require('./call');

/** Checks a parsed batch; throws a 400 HttpError naming the first problem. */
function validate(items) {
  if (!Array.isArray(items)) {
    throw new HttpError(400, 'BadRequestError', 'a batch is a JSON array of {"function": NAME, "data": {...}}');
  }
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new HttpError(400, 'BadRequestError', `batch item ${i} is not an object`);
    }
    if (typeof item.function !== 'string' || item.function.length === 0) {
      throw new HttpError(400, 'BadRequestError', `batch item ${i} has no "function" name`);
    }
    const data = item.data;
    if (data !== undefined && (data === null || typeof data !== 'object')) {
      throw new HttpError(400, 'BadRequestError', `batch item ${i}: "data" must be an object or an array`);
    }
    // A number too large for a host timer (even 1e999, read as Infinity) means no timer.
    const timeout = item.timeout;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0)) {
      throw new HttpError(400, 'BadRequestError', `batch item ${i}: "timeout" must be a positive number of milliseconds`);
    }
  }
}

/** The 504 body of a batch item past its `timeout`. */
const itemExpired = (name, ms) => `Function "${name}" did not answer within its timeout of ${ms} ms`;

/**
 * Runs every item; `onDone(results)` once all have answered. `startCall(name, fn, data, ms,
 * expired, done)` runs one call (`ms`: its timer, 0 for none; `done(status, body)`);
 * `onUnknown(name)` is told about an item naming no function.
 */
function runBatch(items, functions, startCall, onDone, onUnknown) {
  const results = new Array(items.length);
  let pending = items.length;
  if (pending === 0) {
    onDone(results);
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const name = items[i].function;
    const fn = functions[name];
    if (fn === undefined) {
      results[i] = { status: 404, error: `Not found. Unknown function "${name}"` };
      onUnknown(name);
      if (--pending === 0) onDone(results);
      continue;
    }
    const { data, timeout } = items[i];
    startCall(name, fn, data === undefined ? {} : data, timerMs(timeout), itemExpired, (status, body) => {
      results[i] = status === 200 ? { status, output: body } : { status, error: body };
      if (--pending === 0) onDone(results);
    });
  }
}

module.exports = { validate, runBatch };
