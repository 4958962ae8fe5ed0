'use strict';
// Which call the running code belongs to, so that an error thrown later in a timer or I/O
// callback a call scheduled, or a rejection it left unhandled, fails that call (guard.js).
//
// What AsyncLocalStorage does, for less. ALS looks up the current async resource and writes
// its store on every async resource the process creates (timers, ticks, the HTTP server's
// own...); on Node 20 that cost ~6% of the CPU of an echo call. Here a call's synchronous code
// runs with `running` set, and an init hook marks only the async resources created while a
// call's code runs: directly, or in a callback of a resource already marked. The host's own
// work for a call (sending its answer) runs outside it, so a call that answers synchronously
// without scheduling anything marks nothing. Looking up the current resource (the costly part)
// is only done while some call that marked a resource may be alive. Such calls join a
// generation, an object each of them refers to (as each marked resource refers to its call);
// a FinalizationRegistry tells when a generation is garbage collected, and with it all its
// calls: then no callback can belong to them. (Registering every call instead made the GC keep
// calls longer and run more major collections, which cost more than the hook saved.)

const { createHook, executionAsyncResource } = require('node:async_hooks');

const CALL = Symbol('jshost.call');

// The call whose synchronous code is running; null while the host works for a call (what it
// starts belongs to no call); undefined otherwise (the current async resource decides).
let running;
// How many generations are still alive (not garbage collected).
let alive = 0;
const collected = new FinalizationRegistry(() => {
  alive--;
});
const GENERATION_CALLS = 1024; // calls a generation takes
// The generation calls join now, held weakly (it must die with its calls).
let current = null;

/** The generation a call that marks its first resource joins. */
function generation() {
  let g = current === null ? undefined : current.deref();
  if (g === undefined || g.calls === GENERATION_CALLS) {
    g = { calls: 0 };
    current = new WeakRef(g);
    alive++;
    collected.register(g, undefined);
  }
  g.calls++;
  return g;
}

let hook = null;

function init(asyncId, type, triggerAsyncId, resource) {
  let call = running;
  if (call === undefined) {
    if (alive === 0) return;
    call = executionAsyncResource()[CALL];
    if (call === undefined) return;
  } else if (call === null) {
    return;
  }
  resource[CALL] = call;
  if (call.generation === null) call.generation = generation();
}

/** `fn(a, b, c, d)` as code of `call`, an object with a `generation` field (initially null). */
function runIn(call, fn, a, b, c, d) {
  if (hook === null) hook = createHook({ init }).enable();
  const outer = running;
  running = call;
  try {
    return fn(a, b, c, d);
  } finally {
    running = outer;
  }
}

/** `fn(a, b)` as the host's own code: async work it starts belongs to no call. */
function runOutside(fn, a, b) {
  const outer = running;
  running = null;
  try {
    return fn(a, b);
  } finally {
    running = outer;
  }
}

/** The call the running code belongs to, if any. */
function currentCall() {
  if (running !== undefined) return running === null ? undefined : running;
  return alive === 0 ? undefined : executionAsyncResource()[CALL];
}

module.exports = { runIn, runOutside, currentCall };
