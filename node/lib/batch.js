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

/**
 * The answer to a batch, in pieces: '[', each result's JSON (after a ',' from the second on),
 * ']'. Each result is encoded as its piece is asked for, and let go of, so that neither the
 * whole answer nor all encoded outputs are ever held at once. A result that cannot be encoded
 * (an output longer, escaped, than V8's longest string) becomes a 500 naming the reason.
 */
function* answerPieces(items, results) {
  yield '[';
  for (let i = 0; i < results.length; i++) {
    const result = results[i];
    results[i] = undefined;
    yield (i === 0 ? '' : ',') + encode(items[i].function, result);
  }
  yield ']';
}

function encode(name, result) {
  try {
    return JSON.stringify(result);
  } catch (err) {
    const text = result.status === 200 ? result.output : result.error;
    const error = new Error(`function "${name}": its answer (${text.length} characters) is too long for a batch answer (${err}); call it alone`);
    return JSON.stringify({ status: 500, error: error.stack });
  }
}

module.exports = { validate, runBatch, answerPieces };
