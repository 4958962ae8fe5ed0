'use strict';
// The manager (--manager): js-host 0.12's /manager/stop and /host/* endpoints, starting
// jshost-node hosts keyed by absolute config path, without js-host's races:
// - every operation on one config runs after the previous one finished (a lock per config),
//   so concurrent /host/start requests start one host: the first starts it, the others then
//   answer like js-host does for a running host (500 "Host already running");
// - a host that exits is forgotten together with its stop timer, and a timer only ever acts
//   on the host record that set it (never on a successor's);
// - the manager exits once it has no host left, unless the config sets
//   stopManagerIfNoConnections: false: right away when its last host was stopped by the
//   disconnect timeout (as js-host does), and after `disconnectTimeout` ms without any host
//   when its last host was stopped, crashed or failed to restart (a client may still want to
//   disconnect from the crashed host or start it again).
// Hosts get --exit-on-stdin-close: they die with the manager, even a SIGKILLed one.
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
const KILL_GRACE_MS = 3000;
const PREPARED_UNUSED_MS = 30_000; // a --prepare host not adopted by then is killed

/** A fresh logfile path for a host. */
function hostLogfile() {
  return path.join(os.tmpdir(), `jshost-node-host-${process.pid}-${crypto.randomBytes(6).toString('hex')}.log`);
}

/**
 * The flags a manager run with `opts` passes on to its hosts: its own --workers and --watch, and
 * always --verbose: managed hosts are development hosts, and a developer tailing a managed host's
 * logfile expects a line per request (js-host's hosts log every request); production hosts are
 * run directly and stay quiet unless asked.
 */
function hostFlags(opts) {
  const flags = ['--verbose'];
  if (opts.workers !== undefined) flags.push('--workers', String(opts.workers));
  if (opts.watch) flags.push('--watch');
  return flags;
}

/** Spawns `jshost-node KEY --port PORT --json --logfile F --exit-on-stdin-close FLAGS`. */
function spawnHostProcess(hostKey, port, logfile, flags) {
  const child = spawn(
    process.execPath,
    [BIN, hostKey, '--port', String(port), '--json', '--logfile', logfile, '--exit-on-stdin-close', ...flags],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  child.stdin.on('error', () => {});
  return child;
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
  const logfile = hostLogfile();
  log.info(`manager: preparing a host for ${key} (port 0, logfile ${logfile})`);
  let child;
  try {
    child = spawnHostProcess(key, 0, logfile, hostFlags(opts));
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
    if (this.exiting) {
      res.setHeader('Connection', 'close');
      return this.send(res, 503, 'the manager is stopping', TEXT_TYPE);
    }
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
      this.route(req, res, method, key, rawPath, body).catch((e) => {
        this.log.error(`manager: ${method} ${rawPath} failed:\n${describe(e)}`);
        if (!res.headersSent) this.send(res, 500, describe(e));
      });
    });
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
    const [status, answer] = await this.locked(hostKey, () => handler.call(this, hostKey, configText, body));
    if (typeof answer === 'string') this.send(res, status, answer);
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

  describe(record) {
    return { output: record.output, logfile: record.logfile, config: record.config, connections: record.connections };
  }

  unknown(configText) {
    return [500, `No known host with config: ${configText}`];
  }

  // --- hosts ---

  /** Spawns a host on `port`; resolves with {child, output} once it printed its status. */
  async spawnHost(hostKey, port, logfile) {
    this.log.info(`manager: starting a host for ${hostKey} (port ${port}, logfile ${logfile})`);
    const child = spawnHostProcess(hostKey, port, logfile, hostFlags(this.opts));
    return this.accept(child, await statusLine(child));
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
    await this.kill(prepared.child);
    fs.rmSync(prepared.logfile, { force: true });
  }

  /**
   * Waits for the prepared host's status line: {child, output} as spawnHost() gives, or null
   * (after killing it) if it failed to start or has exited since.
   */
  async adopt(prepared) {
    this.log.info(`manager: adopting the prepared host for ${prepared.key} (pid ${prepared.child.pid}, logfile ${prepared.logfile})`);
    await prepared.settled;
    let error = prepared.result.error;
    if (!error && exited(prepared.child)) error = new Error(`it exited (${prepared.child.signalCode || prepared.child.exitCode})`);
    if (!error) {
      try {
        return this.accept(prepared.child, prepared.result);
      } catch (err) {
        error = err;
      }
    }
    this.log.info(`manager: the prepared host for ${prepared.key} is not usable (${error.message.split('\n')[0]}); starting one as usual`);
    await this.kill(prepared.child);
    return null;
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

  /** Stops a host process: SIGTERM, SIGKILL after a grace period; resolves once it exited. */
  kill(child) {
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  async start(hostKey, configText) {
    if (this.hosts.has(hostKey)) return [500, 'Host already running'];
    const prepared = this.takePrepared(hostKey);
    let started = prepared && (await this.adopt(prepared));
    let logfile = prepared && prepared.logfile;
    if (!started) {
      logfile = hostLogfile();
      try {
        started = await this.spawnHost(hostKey, 0, logfile);
      } catch (err) {
        this.log.error(`manager: error starting the host for ${hostKey}:\n${describe(err)}`);
        return [500, describe(err)];
      }
    }
    const record = { key: hostKey, config: configText, output: started.output, logfile, connections: [], stopTimer: null, child: null };
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
    await this.kill(child);
    this.log.info(`manager: stopped the host for ${hostKey}`);
    return [200, answer];
  }

  async restart(hostKey, configText) {
    const record = this.hosts.get(hostKey);
    if (!record) return this.unknown(configText);
    const old = record.child;
    record.child = null;
    await this.kill(old);
    const port = JSON.parse(record.output).config.port;
    let started;
    try {
      started = await this.spawnHost(hostKey, port, record.logfile);
    } catch (err) {
      this.log.error(`manager: error restarting the host for ${hostKey}:\n${describe(err)}`);
      this.forget(record);
      return [500, describe(err)];
    }
    record.output = started.output;
    this.attach(record, started.child);
    return [200, this.describe(record)];
  }

  async hostStatus(hostKey) {
    const record = this.hosts.get(hostKey);
    if (!record) return [200, { started: false }];
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
   * The disconnect timeout of `record` ran out: stop it if it is still that host and unused. When
   * it is the manager's last host and nothing else is in progress, the manager is gone at once
   * (it stops listening before the host has exited), as js-host's is: clients check that the
   * manager stopped right after the disconnect timeout.
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
      await this.kill(child);
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
    const children = [...this.hosts.values()].map((r) => {
      const c = r.child;
      r.child = null;
      clearTimeout(r.stopTimer);
      return c;
    });
    this.hosts.clear();
    await Promise.all([...children.map((c) => this.kill(c)), this.dropPrepared(`manager ${why}`)]);
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
  try {
    const { config } = await loadConfig(opts.configFile);
    manager = new Manager(effectiveConfig(config, { manager: true, port: opts.port }), opts, log, prepared);
  } catch (err) {
    log.fatal(`cannot start a manager for ${opts.configFile}:\n${describe(err)}`);
    if (prepared) prepared.child.kill('SIGKILL');
    process.exit(1);
  }
  process.on('SIGTERM', () => manager.shutdown('SIGTERM'));
  process.on('SIGINT', () => manager.shutdown('SIGINT'));
  try {
    listenPort(manager.config.port);
    const port = await listen(manager.server, manager.config, opts);
    if (opts.socket === undefined && String(manager.config.port) === '0') manager.config.port = port;
  } catch (err) {
    log.fatal(`cannot listen at ${describeListen(manager.config, opts)}: ${err.message}\n${err.stack}`);
    if (manager.prepared) manager.prepared.child.kill('SIGKILL');
    process.exit(1);
  }
  const where = opts.socket !== undefined ? opts.socket : `${manager.config.address}:${manager.config.port}`;
  log.info(`Manager listening at ${where}`);
  process.stdout.write(opts.json ? JSON.stringify(manager.status()) + '\n' : `Manager listening at ${where}\n`);
}

module.exports = { runManager, Manager, PREPARED_UNUSED_MS };
