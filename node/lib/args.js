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
  // A manager passes --workers and --watch on to the hosts it starts.
  return opts;
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
