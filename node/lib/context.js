'use strict';
// Which call the running code belongs to, so that an error thrown later in a timer or I/O
// callback a call scheduled, or a rejection it left unhandled, fails that call (guard.js).
// AsyncLocalStorage carries the call to every async resource its code creates, directly or
// from its callbacks; the host's own work for a call (sending its answer) runs outside it.

const { AsyncLocalStorage } = require('node:async_hooks');

const calls = new AsyncLocalStorage();

/** `fn(a, b, c, d)` as code of `call`. */
function runIn(call, fn, a, b, c, d) {
  return calls.run(call, fn, a, b, c, d);
}

/** `fn(a, b)` as the host's own code: async work it starts belongs to no call. */
function runOutside(fn, a, b) {
  return calls.exit(fn, a, b);
}

/** The call the running code belongs to, if any. */
function currentCall() {
  return calls.getStore();
}

module.exports = { runIn, runOutside, currentCall };
