'use strict';
// The options a manager's host runs with (jshost-node's extension of js-host's manager
// protocol): what a /host/start or /host/restart may ask for in `options` and `startTimeout`,
// and the command-line flags they become.

const MAX_TIMER_MS = 2147483647; // Node's timers fire at once for longer delays
const START_TIMEOUT_MS = 30_000;
// A host drains its calls in flight on SIGTERM for up to its --grace (10 s by default).
const DEFAULT_GRACE_S = 10;
const KILL_GRACE_MS = (DEFAULT_GRACE_S + 2) * 1000;

/**
 * The options a host can be asked to run with: name -> [flag, what it takes, accepts(value)].
 * null (or false for watch) leaves the flag out.
 */
const HOST_OPTIONS = {
  watch: ['--watch', 'true or false', (v) => typeof v === 'boolean'],
  workers: ['--workers', 'a whole number of workers (1 or more) or "auto"', (v) => v === 'auto' || (Number.isInteger(v) && v >= 1)],
  callTimeout: ['--call-timeout', `a whole number of milliseconds (1 to ${MAX_TIMER_MS})`, (v) => Number.isInteger(v) && v >= 1 && v <= MAX_TIMER_MS],
  maxMemory: ['--max-memory', 'a number of megabytes above 0', (v) => typeof v === 'number' && v > 0 && Number.isFinite(v)],
  maxCalls: ['--max-calls', 'a whole number of calls (1 or more)', (v) => Number.isInteger(v) && v >= 1],
  grace: ['--grace', 'a number of seconds (0 or more)', (v) => typeof v === 'number' && v >= 0 && v <= MAX_TIMER_MS / 1000],
};

/** The options of a host nobody asked anything of: the manager's own --watch and --workers. */
function defaultOptions(opts) {
  return { watch: !!opts.watch, workers: opts.workers ?? null, callTimeout: null, maxMemory: null, maxCalls: null, grace: null };
}

/** The options a request names (`body.options`): {name: value} for those keys, or a 400 message. */
function askedOptions(body) {
  const asked = body.options;
  if (asked === undefined || asked === null) return {};
  if (typeof asked !== 'object' || Array.isArray(asked)) return `"options" takes an object, not ${JSON.stringify(asked)}`;
  const out = {};
  for (const [name, value] of Object.entries(asked)) {
    const spec = HOST_OPTIONS[name];
    if (!spec) return `unknown option "${name}" (known: ${Object.keys(HOST_OPTIONS).join(', ')})`;
    if (value !== null && !spec[2](value)) return `option "${name}" takes ${spec[1]} or null, not ${JSON.stringify(value)}`;
    out[name] = name === 'watch' ? !!value : value;
  }
  return out;
}

/** The names of the options `asked` gives a value other than `current`'s. */
function changedOptions(asked, current) {
  return Object.keys(asked).filter((name) => asked[name] !== current[name]);
}

/**
 * The flags of a host run with `options`, and always --verbose: managed hosts are development
 * hosts, and a developer tailing a managed host's logfile expects a line per request (js-host's
 * hosts log every request); production hosts are run directly and stay quiet unless asked.
 */
function hostFlags(options) {
  const flags = ['--verbose'];
  for (const [name, [flag]] of Object.entries(HOST_OPTIONS)) {
    const value = options[name];
    if (value === null || value === false) continue;
    flags.push(flag);
    if (value !== true) flags.push(String(value));
  }
  return flags;
}

/** How long a host run with `options` may take to exit on SIGTERM: its grace period, and 2 s. */
function killGrace(options) {
  return ((options && options.grace) ?? DEFAULT_GRACE_S) * 1000 + 2000;
}

/** The start-up timeout a /host/start or /host/restart asks for (`startTimeout`, ms), or a 400 message. */
function startTimeout(body) {
  const ms = body.startTimeout;
  if (ms === undefined || ms === null) return START_TIMEOUT_MS;
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_TIMER_MS) return `"startTimeout" takes a whole number of milliseconds (1 to ${MAX_TIMER_MS}), not ${JSON.stringify(ms)}`;
  return ms;
}

module.exports = { defaultOptions, askedOptions, changedOptions, hostFlags, killGrace, startTimeout, KILL_GRACE_MS };
