'use strict';
// POST /batch: `[{"function": NAME, "data": {...}, "timeout": MS?}, ...]` -> 200 with one result
// per item, in order: `{"status": 200, "output": "..."}` or `{"status": 404 | 500 | 504,
// "error": "..."}`. Items run concurrently, each in its own call context. An item with a
// `timeout` (ms) is answered 504 when it has not answered by then, so a function that never
// answers holds its batch-mates back no longer than that.

const { Call, invoke } = require('./call');
const { HttpError } = require('./body');

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
    const timeout = item.timeout;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout))) {
      throw new HttpError(400, 'BadRequestError', `batch item ${i}: "timeout" must be a positive number of milliseconds`);
    }
  }
}

/**
 * Runs every item; `onDone(results)` once all have answered. `context(name)` makes the `this`
 * of a call; `onItem(name, status)` is told about each (for --verbose).
 */
function runBatch(items, functions, context, onDone, onItem) {
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
      if (onItem) onItem(name, 404);
      if (--pending === 0) onDone(results);
      continue;
    }
    let timer = null;
    const call = new Call(name, (status, body) => {
      if (timer !== null) clearTimeout(timer);
      results[i] = status === 200 ? { status, output: body } : { status, error: body };
      if (onItem) onItem(name, status);
      if (--pending === 0) onDone(results);
    });
    const { data, timeout } = items[i];
    if (timeout !== undefined) timer = setTimeout(() => call.expire(timeout), timeout);
    invoke(call, fn, context(name), data === undefined ? {} : data);
  }
}

module.exports = { validate, runBatch };
