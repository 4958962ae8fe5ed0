'use strict';
// Command-line parsing: js-host 0.12's flags (same names, aliases and value coercion as its
// yargs setup) plus jshost-node's own.

const FLAGS = {
  // name: [alias, takes a value]
  config: ['c', false],
  json: ['j', false],
  port: ['p', true],
  logfile: ['l', true],
  manager: ['m', false],
  detached: ['d', false],
  help: ['h', false],
  version: ['v', false],
  workers: [null, true],
  'exit-on-stdin-close': [null, false],
  socket: [null, true],
  watch: [null, false],
  verbose: [null, false],
  prepare: [null, false],
  'call-timeout': [null, true],
  grace: [null, true],
  'max-memory': [null, true],
  'max-calls': [null, true],
  'allowed-hosts': [null, true],
  'auth-token-file': [null, true],
  'tls-cert': [null, true],
  'tls-key': [null, true],
};
const ALIASES = Object.fromEntries(
  Object.entries(FLAGS).filter(([, [a]]) => a).map(([name, [a]]) => [a, name]),
);

const USAGE = `Usage: jshost-node <config file> [options]

Runs a host for the functions of a js-host config file (js-host 0.12 protocol).

js-host options:
  -p, --port N          run the host or manager at port N (0: the OS picks)
  -c, --config          print the status the process would have as JSON, then exit
  -j, --json            once listening, print the status as JSON on one line
  -m, --manager         run a manager (starts hosts on request) instead of a host
  -d, --detached        run in a detached process; print its status once it listens
  -l, --logfile F       also write the log to F
  -h, --help            show this help
  -v, --version         show the version

jshost-node options:
  --workers N|auto      run N worker processes (auto: one per core); a manager's hosts get it
  --exit-on-stdin-close exit (with every worker) when stdin reaches end of file
  --socket PATH         listen on a Unix domain socket instead of TCP
  --watch               start a new generation of workers when a loaded file changes;
                        a manager's hosts get it
  --verbose             log one line per call (errors are always logged)
  --prepare             with --manager: start a host for the manager's own config at once,
                        kept aside for the first /host/start of that config (killed if
                        unused for 30 s); rejected without --manager
  --call-timeout MS     a call without its own deadline (X-Jshost-Timeout header, batch
                        item "timeout") gets this one; a call that keeps the event loop
                        from turning past its deadline gets its worker replaced
  --grace S             on SIGTERM/SIGINT (and for retired workers) finish the calls in
                        flight for up to S seconds (default 10), then exit
  --max-memory MB       recycle a worker (drain, replace) once its RSS is over MB
  --max-calls N         recycle a worker after N calls
  --allowed-hosts A,B   answer only requests whose Host header names one of these (403)
  --auth-token-file F   every request (but GET /jshost/health) must carry
                        "Authorization: Bearer <the file's content>" (401); F must not be
                        readable or writable by group or others
  --tls-cert F --tls-key F
                        serve HTTPS with this certificate chain and key (PEM)

Example:
  jshost-node host.config.js --port 0 --json`;

class UsageError extends Error {}

// yargs 3 turns numeric-looking values into numbers (so `--port 0` is the number 0).
function coerce(value) {
  return /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$/i.test(value) ? Number(value) : value;
}

/** Parses argv (without node and the script): {configFile, flags...}; throws UsageError. */
function parseArgs(argv) {
  const out = { _: [] };
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i++];
    if (arg === '--') {
      out._.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      out._.push(arg);
      continue;
    }
    let name;
    let inline;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else {
      name = ALIASES[arg.slice(1)];
      if (!name) throw new UsageError(`Unknown argument: ${arg.slice(1)}`);
    }
    if (!(name in FLAGS)) throw new UsageError(`Unknown argument: ${name}`);
    const [, takesValue] = FLAGS[name];
    if (takesValue) {
      const value = inline !== undefined ? inline : argv[i++];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      if (name in out) throw new UsageError(`--${name} should only be specified once`);
      out[name] = coerce(value);
    } else {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      out[name] = true;
    }
  }
  return finish(out);
}

function finish(out) {
  const opts = {
    configFile: out._[0],
    config: !!out.config,
    json: !!out.json || !!out.detached,
    port: out.port,
    logfile: out.logfile === undefined ? undefined : String(out.logfile),
    manager: !!out.manager,
    detached: !!out.detached,
    help: !!out.help,
    version: !!out.version,
    workers: undefined,
    exitOnStdinClose: !!out['exit-on-stdin-close'],
    socket: out.socket === undefined ? undefined : String(out.socket),
    watch: !!out.watch,
    verbose: !!out.verbose,
    prepare: !!out.prepare,
    callTimeout: undefined,
    grace: 10,
    maxMemory: undefined,
    maxCalls: undefined,
    allowedHosts: null,
    authTokenFile: out['auth-token-file'] === undefined ? undefined : String(out['auth-token-file']),
    tlsCert: out['tls-cert'] === undefined ? undefined : String(out['tls-cert']),
    tlsKey: out['tls-key'] === undefined ? undefined : String(out['tls-key']),
  };
  if (opts.help || opts.version) return opts;
  if (opts.configFile === undefined) {
    throw new UsageError('Not enough non-option arguments: got 0, need at least 1');
  }
  if (opts.prepare && !opts.manager) throw new UsageError('--prepare needs --manager');
  if (out.workers !== undefined) {
    const w = out.workers;
    if (w !== 'auto' && !(Number.isInteger(w) && w >= 1)) {
      throw new UsageError(`--workers takes a number of workers (1 or more) or "auto", not ${JSON.stringify(w)}`);
    }
    opts.workers = w;
  }
  if (out['call-timeout'] !== undefined) opts.callTimeout = integer(out, 'call-timeout', 'milliseconds', MAX_TIMER_MS);
  if (out['max-calls'] !== undefined) opts.maxCalls = integer(out, 'max-calls', 'calls', Number.MAX_SAFE_INTEGER);
  if (out['max-memory'] !== undefined) opts.maxMemory = positive(out, 'max-memory', 'megabytes');
  if (out.grace !== undefined) {
    const g = out.grace;
    if (typeof g !== 'number' || !(g >= 0) || g > MAX_TIMER_MS / 1000) {
      throw new UsageError(`--grace takes a number of seconds (0 or more), not ${JSON.stringify(g)}`);
    }
    opts.grace = g;
  }
  if (out['allowed-hosts'] !== undefined) {
    const names = String(out['allowed-hosts']).split(',').map((h) => h.trim().toLowerCase());
    if (names.some((h) => h.length === 0 || /[\s/]/.test(h))) {
      throw new UsageError(`--allowed-hosts takes host names separated by commas, not ${JSON.stringify(out['allowed-hosts'])}`);
    }
    opts.allowedHosts = names;
  }
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  // A manager passes --workers and --watch on to the hosts it starts.
  return opts;
}

// Node's timers fire at once for any delay above 2^31 - 1 ms.
const MAX_TIMER_MS = 2147483647;

function integer(out, name, unit, max) {
  const v = out[name];
  if (!Number.isInteger(v) || v < 1 || v > max) throw new UsageError(`--${name} takes a whole number of ${unit} (1 to ${max}), not ${JSON.stringify(v)}`);
  return v;
}

function positive(out, name, unit) {
  const v = out[name];
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new UsageError(`--${name} takes a number of ${unit} above 0, not ${JSON.stringify(v)}`);
  return v;
}

/** The features a process run with `opts` has on, in the header's order. */
function features(opts) {
  const list = ['promise', 'batch'];
  if (opts.workers !== undefined) list.push('workers');
  if (opts.socket !== undefined) list.push('socket');
  if (opts.watch) list.push('watch');
  return list;
}

module.exports = { parseArgs, features, USAGE, UsageError };
