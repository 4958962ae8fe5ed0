'use strict';
// The manager (--manager): js-host 0.12's /manager/stop and /host/* endpoints, starting
// jshost-node hosts keyed by absolute config path (one manager serves all of a user's projects),
// without js-host's races:
// - every start, stop, restart and connect of one config runs after the previous one finished
//   (a lock per config), so concurrent /host/start requests start one host: the first starts
//   it, the others then answer like js-host does for a running host (500 "Host already
//   running"); /host/status and /host/disconnect only read or note something and never wait;
// - a host's start is bounded (START_TIMEOUT_MS, or the request's `startTimeout`): a host that
//   has not printed its status by then (a config whose load hangs) is killed and the request
//   answered 500, naming the config and the logfile;
// - a host that exits is forgotten together with its stop timer, and a timer only ever acts
//   on the host record that set it (never on a successor's);
// - the manager exits once it has no host left, unless the config sets
//   stopManagerIfNoConnections: false: at once when the disconnect timeout stopped its last
//   host, and after `disconnectTimeout` ms without any host when its last host was stopped,
//   crashed or failed to restart (a client may still want to disconnect from the crashed host
//   or start it again);
// - a host nobody is connected to any more is killed when its disconnect timeout runs out, as
//   js-host does; SIGTERM, SIGINT, SIGHUP, /manager/stop, /host/stop and /host/restart stop
//   hosts gracefully (SIGTERM, then SIGKILL to its process group once its grace period is
//   over), those still starting and the prepared one included.
// Trust (issue 21): it runs only its own user's code (see refusal(): 403 otherwise, naming the
// file, owner and mode), answers only requests whose Host header is a loopback name or address
// or its configured address (403: a web page cannot drive it through DNS rebinding), and keeps
// its hosts' logfiles 0600 in the user's private directory.
// Options (jshost-node's extension, HOST_OPTIONS): a /host/start or /host/restart may carry
// `options`; the keys it names override the manager's own --watch/--workers (a start) or the
// host's current options (a restart). A /host/start for a running host whose options differ in
// a named key restarts it with them (same port, logfile and connections) and answers 200 with
// `restarted: true`; otherwise js-host's 500 "Host already running". Every host description
// carries the `options` it runs with, after js-host's keys.
// Hosts get --exit-on-stdin-close on a pipe the manager holds: they die with the manager, even
// a SIGKILLed one. Each runs in a process group of its own, so that a host killed by force
// takes its workers with it.
// --prepare: at start-up (before even loading its own config) the manager spawns a host for its
// own config file, exactly as start() would, and keeps it aside; the first /host/start of that
// config adopts it instead of spawning one (a prepared host that failed is dropped and start()
// spawns one as usual, so the answer is today's). It is not a host until adopted: it counts
// for nothing in the exit-when-no-host logic, and is killed when unused for
// PREPARED_UNUSED_MS and whenever the manager exits.

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const { loadConfig, effectiveConfig, statusOf, listenPort } = require('./config');
const { requireLimit } = require('./limit');
const { readJson, HttpError } = require('./body');
const { Log, describe } = require('./log');
const { NAME, VERSION, BIN } = require('./version');
const { features } = require('./args');
const { listen, describeListen } = require('./listen');

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
// A host drains its calls in flight on SIGTERM for up to its --grace (10 s by default).
const DEFAULT_GRACE_S = 10;
const KILL_GRACE_MS = (DEFAULT_GRACE_S + 2) * 1000;
const START_TIMEOUT_MS = 30_000;
const MAX_TIMER_MS = 2147483647; // Node's timers fire at once for longer delays
const PREPARED_UNUSED_MS = 30_000; // a --prepare host not adopted by then is killed

/**
 * The user's private directory ($XDG_RUNTIME_DIR/jshost, else $TMPDIR/jshost-UID), created
 * 0700; throws unless it is a directory of the user's that no one else may enter (another user
 * may have created it first in a shared /tmp).
 */
function privateDir() {
  const uid = process.getuid();
  const dir = process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'jshost') : path.join(os.tmpdir(), `jshost-${uid}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || st.mode & 0o077) {
    const what = st.isDirectory() ? `owned by ${owner(st.uid)}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}` : 'not a directory';
    throw new Error(`the private directory ${dir} is not ${owner(uid)}'s alone (${what}); remove it`);
  }
  return dir;
}

/**
 * A new logfile for a host, created empty and 0600 in the user's private directory: it will
 * hold call data and stack traces.
 */
function hostLogfile() {
  const file = path.join(privateDir(), `jshost-node-host-${process.pid}-${crypto.randomBytes(6).toString('hex')}.log`);
  fs.closeSync(fs.openSync(file, 'wx', 0o600));
  return file;
}

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

/**
 * Spawns `jshost-node KEY --port PORT --json --logfile F --exit-on-stdin-close FLAGS` in a
 * process group of its own (`detached`); once it exits, whatever is left in that group (a
 * worker stuck in a loop) is killed.
 */
function spawnHostProcess(hostKey, port, logfile, flags) {
  const child = spawn(
    process.execPath,
    [BIN, hostKey, '--port', String(port), '--json', '--logfile', logfile, '--exit-on-stdin-close', ...flags],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' }, detached: true },
  );
  child.stdin.on('error', () => {});
  child.once('exit', () => killGroup(child));
  return child;
}

function killGroup(child) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is empty.
  }
}

/** Stops a host process: SIGTERM, then after `grace` ms SIGKILL to its group; resolves once it exited. */
function kill(child, grace = KILL_GRACE_MS) {
  if (!child || child.pid === undefined || exited(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = grace > 0 ? setTimeout(() => killGroup(child), grace) : null;
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (grace > 0) child.kill('SIGTERM');
    else killGroup(child);
  });
}

class StartTimeout extends Error {}

/**
 * Why the manager refuses to run the config at `hostKey`, or null: the file a host would load
 * (Node's resolution of the path, then its real path) must be a regular file owned by the
 * manager's uid, not writable by group or others; a symbolic link asked for must be the
 * manager's user's too. A path that leads to no file is left to the host, which answers as
 * js-host does ("Cannot find module").
 */
function refusal(hostKey) {
  const uid = process.getuid();
  let file;
  try {
    file = fs.realpathSync(require.resolve(hostKey));
  } catch {
    return null;
  }
  const named = file === hostKey ? file : `${hostKey} (${file})`;
  const link = fs.lstatSync(hostKey, { throwIfNoEntry: false });
  if (link && link.isSymbolicLink() && link.uid !== uid) {
    return `refusing to run ${named}: the symbolic link ${hostKey} is owned by ${owner(link.uid)}, not by ${owner(uid)} who runs this manager`;
  }
  const st = fs.statSync(file);
  if (!st.isFile()) return `refusing to run ${named}: it is not a regular file`;
  if (st.uid !== uid) return `refusing to run ${named}: it is owned by ${owner(st.uid)}, not by ${owner(uid)} who runs this manager`;
  if (st.mode & 0o022) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    return `refusing to run ${named}: it is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (mode ${mode}); make it yours alone (chmod go-w ${file})`;
  }
  return null;
}

/** "uid N (name)", the name from /etc/passwd when it is there. */
function owner(uid) {
  try {
    const entry = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.split(':')[2] === String(uid));
    if (entry) return `uid ${uid} (${entry.split(':')[0]})`;
  } catch {}
  return `uid ${uid}`;
}

/**
 * Whether a Host header names a manager configured with `address`: a loopback name or address
 * (localhost, 127.0.0.0/8, [::1]) or `address` itself. No header: not a browser, allowed.
 */
function hostAllowed(header, address) {
  if (header === undefined) return true;
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/i.test(header)) return false;
  let name;
  try {
    name = new URL(`http://${header}`).hostname; // canonical: IPv4 forms, IPv6 zeros, case
  } catch {
    return false;
  }
  if (name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name)) return true;
  const own = String(address).toLowerCase();
  return name === own || name === `[${own}]`;
}

/**
 * Resolves with {line, stdout} once `child` printed its status line (lines before it are what
 * the config printed while loading); rejects if it exits or fails to spawn first.
 */
function statusLine(child) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let done = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      if (!done && stderr.length < 65536) stderr += d;
    });
    let seen = 0; // stdout before this offset holds lines the config printed while loading
    child.stdout.on('data', (d) => {
      if (done) return;
      stdout += d;
      let line;
      for (;;) {
        const nl = stdout.indexOf('\n', seen);
        if (nl === -1) return;
        line = stdout.slice(seen, nl);
        seen = nl + 1;
        if (line.startsWith('{"type":')) break;
      }
      done = true;
      resolve({ line, stdout });
    });
    child.once('exit', (code, signal) => {
      if (done) return;
      done = true;
      const why = signal ? `signal ${signal}` : `code ${code}`;
      reject(new Error(`Error starting child host (it exited with ${why}): ${stderr.trim() || stdout.trim() || 'no output'}`));
    });
    child.once('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

/**
 * --prepare: spawns a host for the manager's own config as start() would; returns
 * {key, logfile, child, settled, result} (`result` once `settled`: {line, stdout} or {error}),
 * or null if it could not even be spawned.
 */
function prepareHost(opts, log) {
  const key = path.resolve(opts.configFile);
  let child;
  let logfile;
  try {
    logfile = hostLogfile();
    log.info(`manager: preparing a host for ${key} (port 0, logfile ${logfile})`);
    child = spawnHostProcess(key, 0, logfile, hostFlags(defaultOptions(opts)));
  } catch (err) {
    log.info(`manager: cannot prepare a host for ${key}: ${describe(err)}`);
    return null;
  }
  const prepared = { key, logfile, child, result: null, timer: null };
  prepared.settled = statusLine(child).then(
    (started) => {
      prepared.result = started;
      log.info(`manager: the prepared host for ${key} is ready (pid ${child.pid})`);
    },
    (error) => {
      prepared.result = { error };
      log.info(`manager: the prepared host for ${key} failed to start: ${error.message.split('\n')[0]}`);
    },
  );
  return prepared;
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

class Manager {
  constructor(config, opts, log, prepared = null) {
    this.config = config; // the effective config (js-host Manager defaults)
    this.opts = opts;
    this.log = log;
    this.limit = requireLimit(config.requestDataLimit);
    this.identity = `${VERSION}; features=${features(opts).join(',')}`;
    this.hosts = new Map(); // absolute config path -> record
    this.locks = new Map(); // absolute config path -> tail of its operation queue
    this.starting = new Map(); // host process still starting -> its absolute config path
    this.exiting = false;
    this.idleTimer = null;
    this.hadHost = false; // it exits when its last host is gone, not before its first one
    this.prepared = null; // --prepare: the host kept aside for the first start of its config
    if (prepared) this.keepPrepared(prepared);
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  status() {
    return statusOf(this.config, 'Manager');
  }

  send(res, status, body, type) {
    const headers = ['X-Jshost-Node', this.identity, 'Content-Length', Buffer.byteLength(body)];
    if (type) headers.push('Content-Type', type);
    res.writeHead(status, headers);
    res.end(body);
  }

  json(res, value) {
    this.send(res, 200, JSON.stringify(value), JSON_TYPE);
  }

  handle(req, res) {
    const q = req.url.indexOf('?');
    const rawPath = q === -1 ? req.url : req.url.slice(0, q);
    let key = rawPath.toLowerCase();
    if (key.length > 1 && key.endsWith('/')) key = key.slice(0, -1);
    const method = req.method;
    if (this.opts.socket === undefined && !hostAllowed(req.headers.host, this.config.address)) {
      return this.send(res, 403, `Host ${JSON.stringify(req.headers.host)} is not allowed`, TEXT_TYPE);
    }
    if (this.exiting) return this.stopping(res);
    if ((method === 'GET' || method === 'HEAD') && key === '/status') {
      return this.json(res, this.status());
    }
    if (method === 'GET' && key === '/jshost/info') {
      return this.json(res, { name: NAME, version: VERSION, features: features(this.opts), workers: 1, generation: 1, pid: process.pid });
    }
    readJson(req, this.limit, (err, body) => {
      if (err) {
        if (err instanceof HttpError) return this.send(res, err.status, err.body, TEXT_TYPE);
        return this.send(res, 500, describe(err), TEXT_TYPE);
      }
      if (this.exiting) return this.stopping(res);
      this.route(req, res, method, key, rawPath, body).catch((e) => {
        this.log.error(`manager: ${method} ${rawPath} failed:\n${describe(e)}`);
        if (!res.headersSent) this.send(res, 500, describe(e));
      });
    });
  }

  /** The answer to a request that reaches a manager on its way out: nothing was done. */
  stopping(res) {
    res.setHeader('Connection', 'close');
    this.send(res, 503, 'the manager is stopping', TEXT_TYPE);
  }

  async route(req, res, method, key, rawPath, body) {
    if (method === 'POST' && key === '/manager/stop') {
      this.send(res, 200, 'Stopping...');
      return this.shutdown('/manager/stop');
    }
    const config = body && body.config;
    if (!config) return this.send(res, 500, 'No `config` data provided');
    const action = method === 'POST' && key.startsWith('/host/') ? key.slice(6) : null;
    const handler = action && ACTIONS[action];
    if (!handler) return this.send(res, 404, `Cannot ${method} ${rawPath}`, TEXT_TYPE);
    if (action === 'disconnect' && !body.connection) return this.send(res, 500, 'No `connection` data provided');
    const configText = String(config);
    const hostKey = path.resolve(configText);
    const run = () => handler.call(this, hostKey, configText, body);
    // Status and disconnect only read or note something: never queued behind a start.
    const [status, answer] = await (action === 'status' || action === 'disconnect' ? run() : this.locked(hostKey, run));
    if (status === 400 || status === 403) this.send(res, status, answer, TEXT_TYPE);
    else if (typeof answer === 'string') this.send(res, status, answer);
    else this.json(res, answer);
    this.exitIfIdle();
  }

  /** Runs `fn` after every earlier operation on `key` has finished. */
  locked(key, fn) {
    const previous = this.locks.get(key) || Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.locks.set(key, tail);
    tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  /** [403, why] if the manager must not run the config at `hostKey` (see refusal()), else null. */
  refuse(hostKey) {
    const why = refusal(hostKey);
    if (!why) return null;
    this.log.error(`manager: ${why}`);
    return [403, why];
  }

  describe(record) {
    return { output: record.output, logfile: record.logfile, config: record.config, connections: record.connections, options: record.options };
  }

  unknown(configText) {
    return [500, `No known host with config: ${configText}`];
  }

  // --- hosts ---

  /**
   * Spawns a host on `port`; resolves with {child, output} once it printed its status, or
   * throws (the process gone) if it failed or did not within `timeout` ms.
   */
  async spawnHost(hostKey, port, logfile, options, timeout) {
    if (this.exiting) throw new Error('the manager is stopping');
    const flags = hostFlags(options);
    this.log.info(`manager: starting a host for ${hostKey} (port ${port}, logfile ${logfile}, ${flags.join(' ')})`);
    const child = spawnHostProcess(hostKey, port, logfile, flags);
    return this.started(child, hostKey, logfile, statusLine(child), timeout);
  }

  /**
   * Waits (at most `timeout` ms) for `pending`, the status line of `child` starting for
   * `hostKey`: {child, output}; otherwise kills it (at once if it timed out: it never served a
   * call) and throws.
   */
  async started(child, hostKey, logfile, pending, timeout) {
    this.starting.set(child, hostKey);
    let timer;
    const timedOut = new Promise((resolve, reject) => {
      const why = `the host for ${hostKey} did not start within ${timeout} ms (is its config's load hanging?); it was killed. Its logfile: ${logfile}`;
      timer = setTimeout(() => reject(new StartTimeout(why)), timeout);
    });
    try {
      return this.accept(child, await Promise.race([pending, timedOut]));
    } catch (err) {
      await kill(child, err instanceof StartTimeout ? 0 : KILL_GRACE_MS);
      throw err;
    } finally {
      clearTimeout(timer);
      this.starting.delete(child);
    }
  }

  /** Checks the status line a host printed: {child, output}, or kills it and throws. */
  accept(child, { line, stdout }) {
    let status;
    try {
      status = JSON.parse(line);
    } catch {
      child.kill();
      throw new Error(`Unexpected output from child process: ${stdout}`);
    }
    const mine = this.status();
    if (status.version !== mine.version || !status.config || status.config.address !== mine.config.address) {
      child.kill();
      throw new Error(`Unexpected output from child process: ${line}`);
    }
    return { child, output: line + '\n' };
  }

  // --- the prepared host (--prepare) ---

  keepPrepared(prepared) {
    this.prepared = prepared;
    prepared.timer = setTimeout(() => this.dropPrepared(`unused for ${PREPARED_UNUSED_MS}ms`), PREPARED_UNUSED_MS);
    prepared.child.once('exit', (code, signal) => {
      if (this.prepared !== prepared) return;
      this.releasePrepared();
      this.log.info(`manager: the prepared host for ${prepared.key} exited (${signal || code}) before it was used`);
    });
  }

  /** Takes the prepared host, if any, out of reserve (and stops its unused timer). */
  releasePrepared() {
    const prepared = this.prepared;
    if (prepared) {
      this.prepared = null;
      clearTimeout(prepared.timer);
    }
    return prepared;
  }

  /** Takes the prepared host out of reserve if it is the one for `hostKey`. */
  takePrepared(hostKey) {
    return this.prepared && this.prepared.key === hostKey ? this.releasePrepared() : null;
  }

  /** Kills the prepared host, if any, and removes its logfile; resolves once it exited. */
  async dropPrepared(why) {
    const prepared = this.releasePrepared();
    if (!prepared) return;
    this.log.info(`manager: stopping the unused prepared host for ${prepared.key} (${why})`);
    await kill(prepared.child);
    fs.rmSync(prepared.logfile, { force: true });
  }

  /**
   * Waits (at most `timeout` ms) for the prepared host's status line: {child, output} as
   * spawnHost() gives, or null (after killing it) if it failed to start or has exited since;
   * throws if it timed out.
   */
  async adopt(prepared, timeout) {
    const { child, key, logfile } = prepared;
    this.log.info(`manager: adopting the prepared host for ${key} (pid ${child.pid}, logfile ${logfile})`);
    const pending = prepared.settled.then(() => {
      if (prepared.result.error) throw prepared.result.error;
      if (exited(child)) throw new Error(`it exited (${child.signalCode || child.exitCode})`);
      return prepared.result;
    });
    try {
      return await this.started(child, key, logfile, pending, timeout);
    } catch (err) {
      if (err instanceof StartTimeout) throw err;
      this.log.info(`manager: the prepared host for ${key} is not usable (${err.message.split('\n')[0]}); starting one as usual`);
      return null;
    }
  }

  /** Makes `child` the running process of `record`; its exit forgets the record. */
  attach(record, child) {
    record.child = child;
    child.once('exit', (code, signal) => {
      if (record.child !== child) return; // replaced by a restart, or stopped on purpose
      record.child = null;
      if (this.hosts.get(record.key) === record) {
        this.forget(record);
        this.log.error(`manager: the host for ${record.key} exited (${signal || code}); see ${record.logfile}`);
        this.exitIfIdle();
      }
    });
  }

  forget(record) {
    clearTimeout(record.stopTimer);
    record.stopTimer = null;
    if (this.hosts.get(record.key) === record) this.hosts.delete(record.key);
    this.log.info(`manager: removed the record of the host for ${record.key}`);
  }

  async start(hostKey, configText, body) {
    const asked = askedOptions(body);
    if (typeof asked === 'string') return [400, asked];
    const timeout = startTimeout(body);
    if (typeof timeout === 'string') return [400, timeout];
    const running = this.hosts.get(hostKey);
    if (running) {
      const changed = changedOptions(asked, running.options);
      if (changed.length === 0) return [500, 'Host already running'];
      const was = changed.map((name) => `${name}: ${JSON.stringify(running.options[name])} -> ${JSON.stringify(asked[name])}`).join(', ');
      this.log.info(`manager: /host/start asks the host for ${hostKey} for other options (${was}); restarting it`);
      const [status, answer] = await this.relaunch(running, { ...running.options, ...asked }, timeout);
      return status === 200 ? [200, { ...answer, restarted: true }] : [status, answer];
    }
    const refused = this.refuse(hostKey);
    if (refused) return refused;
    const options = { ...defaultOptions(this.opts), ...asked };
    // The prepared host runs with the manager's own options: of no use for others.
    if (changedOptions(options, defaultOptions(this.opts)).length && this.prepared && this.prepared.key === hostKey) {
      await this.dropPrepared('asked for other options');
    }
    const prepared = this.takePrepared(hostKey);
    let started = null;
    let logfile = null;
    try {
      if (prepared) {
        logfile = prepared.logfile;
        started = await this.adopt(prepared, timeout);
      }
      if (!started) {
        logfile = hostLogfile();
        started = await this.spawnHost(hostKey, 0, logfile, options, timeout);
      }
    } catch (err) {
      this.log.error(`manager: error starting the host for ${hostKey}:\n${describe(err)}`);
      return [500, err instanceof StartTimeout ? err.message : describe(err)];
    }
    const record = { key: hostKey, config: configText, output: started.output, logfile, options, connections: [], stopTimer: null, child: null };
    this.hosts.set(hostKey, record);
    this.hadHost = true;
    this.attach(record, started.child);
    return [200, this.describe(record)];
  }

  async stop(hostKey, configText) {
    const record = this.hosts.get(hostKey);
    if (!record) return this.unknown(configText);
    const answer = this.describe(record);
    const child = record.child;
    record.child = null;
    this.forget(record);
    await kill(child, killGrace(record.options));
    this.log.info(`manager: stopped the host for ${hostKey}`);
    return [200, answer];
  }

  async restart(hostKey, configText, body) {
    const record = this.hosts.get(hostKey);
    if (!record) return this.unknown(configText);
    const asked = askedOptions(body);
    if (typeof asked === 'string') return [400, asked];
    const timeout = startTimeout(body);
    if (typeof timeout === 'string') return [400, timeout];
    return this.relaunch(record, { ...record.options, ...asked }, timeout);
  }

  /**
   * Replaces the process of `record` by one run with `options`, on the same port and logfile,
   * keeping its connections; if that one fails to start, the record is forgotten.
   */
  async relaunch(record, options, timeout) {
    const hostKey = record.key;
    const refused = this.refuse(hostKey);
    if (refused) return refused;
    const old = record.child;
    record.child = null;
    await kill(old, killGrace(record.options));
    const port = JSON.parse(record.output).config.port;
    let started;
    try {
      started = await this.spawnHost(hostKey, port, record.logfile, options, timeout);
    } catch (err) {
      this.log.error(`manager: error restarting the host for ${hostKey}:\n${describe(err)}`);
      this.forget(record);
      return [500, err instanceof StartTimeout ? err.message : describe(err)];
    }
    record.output = started.output;
    record.options = options;
    this.attach(record, started.child);
    return [200, this.describe(record)];
  }

  async hostStatus(hostKey) {
    const record = this.hosts.get(hostKey);
    if (!record) return [200, [...this.starting.values()].includes(hostKey) ? { started: false, starting: true } : { started: false }];
    return [200, { started: true, host: this.describe(record) }];
  }

  async connect(hostKey, configText) {
    const record = this.hosts.get(hostKey);
    if (!record) return this.unknown(configText);
    if (record.stopTimer) {
      clearTimeout(record.stopTimer);
      record.stopTimer = null;
      this.log.info(`manager: the host for ${hostKey} has had its stop timeout cancelled`);
    }
    const connection = `${Date.now()}-${crypto.randomUUID()}`;
    record.connections.push(connection);
    this.log.info(`manager: connection ${connection} opened to the host for ${hostKey}`);
    return [200, { ...this.describe(record), connection }];
  }

  async disconnect(hostKey, configText, body) {
    const connection = body.connection;
    const record = this.hosts.get(hostKey);
    const answer = { started: !!record, config: configText, stopTimeout: null };
    if (!record) {
      answer.status = 'Host has already stopped';
      return [200, answer];
    }
    this.log.info(`manager: connection ${connection} closed to the host for ${hostKey}`);
    const index = record.connections.indexOf(connection);
    if (index !== -1) {
      record.connections.splice(index, 1);
      if (record.connections.length === 0) {
        const timeout = this.config.disconnectTimeout;
        clearTimeout(record.stopTimer);
        record.stopTimer = setTimeout(() => this.stopIdle(record), timeout);
        this.log.info(`manager: the host for ${hostKey} no longer has any connections; stopping it in ${timeout}ms`);
        answer.stopTimeout = timeout;
        answer.status = `Disconnected. Stopping host in ${timeout}ms`;
      }
    }
    answer.status ??= 'Disconnected';
    return [200, answer];
  }

  /**
   * The disconnect timeout of `record` ran out: stop it if it is still that host and unused, at
   * once (SIGKILL to its process group), as js-host does: no client holds a connection to it, so
   * there is nothing to drain, and clients check that the host is gone right after the timeout
   * (a SIGTERM would leave it answering until its primary gets to run its handler: 1 seed-suite
   * run of 6 failed that way on a loaded machine). When it is the manager's last host and nothing
   * else is in progress, the manager stops listening first, then exits.
   */
  stopIdle(record) {
    this.locked(record.key, async () => {
      if (this.hosts.get(record.key) !== record || record.connections.length !== 0) return;
      const child = record.child;
      record.child = null;
      this.forget(record);
      const last = this.config.stopManagerIfNoConnections && this.hosts.size === 0 && this.locks.size === 1;
      if (last) {
        this.log.info('manager: its last host is stopping; shutting down');
        this.stopListening();
      }
      await kill(child, 0);
      this.log.info(`manager: stopped the host for ${record.key} (no connections)`);
      if (last) this.exit(0);
    }).then(() => this.exitIfIdle(false));
  }

  /**
   * Exits once no host is left and nothing is in progress (js-host's stopManagerIfNoConnections):
   * now, or after `disconnectTimeout` ms when `later`.
   */
  exitIfIdle(later = true) {
    if (!this.config.stopManagerIfNoConnections || !this.hadHost || this.exiting) return;
    clearTimeout(this.idleTimer);
    const check = () => {
      if (this.exiting || this.hosts.size !== 0 || this.locks.size !== 0) return;
      this.log.info('manager: all hosts have stopped; shutting down');
      this.exit(0);
    };
    if (later) this.idleTimer = setTimeout(check, this.config.disconnectTimeout);
    else setImmediate(check);
  }

  /** From now on the manager is exiting: no new connection, requests on open ones get a 503. */
  stopListening() {
    this.exiting = true;
    this.server.close();
    this.server.closeIdleConnections();
  }

  async shutdown(why) {
    if (this.exiting) return;
    this.log.info(`manager: stopping (${why}) with ${this.hosts.size} host(s)`);
    this.stopListening();
    const stopping = [...this.hosts.values()].map((r) => {
      const c = r.child;
      r.child = null;
      clearTimeout(r.stopTimer);
      return kill(c, killGrace(r.options));
    });
    this.hosts.clear();
    // Hosts still starting are stopped too (their start then answers 500).
    for (const child of this.starting.keys()) stopping.push(kill(child));
    await Promise.all([...stopping, this.dropPrepared(`manager ${why}`)]);
    this.exit(0);
  }

  exit(code) {
    this.exiting = true;
    const prepared = this.releasePrepared();
    if (prepared) {
      // No waiting here: SIGTERM now; --exit-on-stdin-close ends it anyway once we are gone.
      this.log.info(`manager: stopping the unused prepared host for ${prepared.key} (manager exiting)`);
      prepared.child.kill('SIGTERM');
      fs.rmSync(prepared.logfile, { force: true });
    }
    this.server.close(() => process.exit(code));
    this.server.closeIdleConnections();
    setTimeout(() => process.exit(code), 1000).unref();
  }
}

/** The start-up timeout a /host/start or /host/restart asks for (`startTimeout`, ms), or a 400 message. */
function startTimeout(body) {
  const ms = body.startTimeout;
  if (ms === undefined || ms === null) return START_TIMEOUT_MS;
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_TIMER_MS) return `"startTimeout" takes a whole number of milliseconds (1 to ${MAX_TIMER_MS}), not ${JSON.stringify(ms)}`;
  return ms;
}

const ACTIONS = {
  start: Manager.prototype.start,
  stop: Manager.prototype.stop,
  restart: Manager.prototype.restart,
  status: Manager.prototype.hostStatus,
  connect: Manager.prototype.connect,
  disconnect: Manager.prototype.disconnect,
};

async function runManager(opts) {
  const log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
  // --prepare: spawned first, so that its start-up overlaps the manager's own.
  const prepared = opts.prepare ? prepareHost(opts, log) : null;
  let manager;
  const onSignal = (signal) => {
    if (manager) return manager.shutdown(signal);
    // Still loading its own config: nothing but the prepared host to stop.
    log.info(`manager: stopping (${signal}) while loading its config`);
    kill(prepared && prepared.child).then(() => process.exit(0));
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, onSignal);
  try {
    const { config } = await loadConfig(opts.configFile);
    manager = new Manager(effectiveConfig(config, { manager: true, port: opts.port }), opts, log, prepared);
  } catch (err) {
    log.fatal(`cannot start a manager for ${opts.configFile}:\n${describe(err)}`);
    if (prepared) killGroup(prepared.child);
    process.exit(1);
  }
  try {
    listenPort(manager.config.port);
    const port = await listen(manager.server, manager.config, opts);
    if (opts.socket === undefined && String(manager.config.port) === '0') manager.config.port = port;
  } catch (err) {
    log.fatal(`cannot listen at ${describeListen(manager.config, opts)}: ${err.message}\n${err.stack}`);
    if (manager.prepared) killGroup(manager.prepared.child);
    process.exit(1);
  }
  const where = opts.socket !== undefined ? opts.socket : `${manager.config.address}:${manager.config.port}`;
  log.info(`Manager listening at ${where}`);
  process.stdout.write(opts.json ? JSON.stringify(manager.status()) + '\n' : `Manager listening at ${where}\n`);
}

module.exports = { runManager, Manager, PREPARED_UNUSED_MS };
