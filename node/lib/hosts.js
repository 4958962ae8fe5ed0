'use strict';
// The manager's table of hosts (keyed by absolute config path: one manager serves all of a
// user's projects) and their connections, without js-host's races:
// - every start, stop, restart and connect of one config runs after the previous one finished
//   (locked()), so concurrent /host/start requests start one host: the first starts it, the
//   others then answer like js-host does for a running host (500 "Host already running");
// - a host's start is bounded (the request's `startTimeout`, 30 s by default): a host that has
//   not printed its status by then (a config whose load hangs) is killed and the request
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
// Options (host-options.js): a /host/start for a running host whose options differ in a key
// the request names restarts it with them (same port, logfile and connections) and answers 200
// with `restarted: true`; otherwise js-host's 500 "Host already running". Every host
// description carries the `options` it runs with, after js-host's keys.

const http = require('node:http');
const crypto = require('node:crypto');
const { statusOf } = require('./config');
const { requireLimit } = require('./limit');
const { describe } = require('./log');
const { hostLogfile, refusal } = require('./trust');
const { defaultOptions, askedOptions, changedOptions, hostFlags, killGrace, startTimeout } = require('./host-options');
const { spawnHostProcess, statusLine, awaitStarted, kill, exited, StartTimeout } = require('./launch');
const { Reserve } = require('./prepared');
const { createManagerHandler } = require('./manager-http');

const CRASH_GRACE_MS = 10_000; // a crashed host's clients get this long to restart it

class Manager {
  constructor(config, opts, log, prepared = null) {
    this.config = config; // the effective config (js-host Manager defaults)
    this.opts = opts;
    this.log = log;
    this.limit = requireLimit(config.requestDataLimit);
    this.hosts = new Map(); // absolute config path -> record
    this.locks = new Map(); // absolute config path -> tail of its operation queue
    this.starting = new Map(); // host process still starting -> its absolute config path
    this.exiting = false;
    this.idleTimer = null;
    this.hadHost = false; // it exits when its last host is gone, not before its first one
    this.reserve = new Reserve(log); // --prepare
    if (prepared) this.reserve.keep(prepared);
    this.server = http.createServer(createManagerHandler(this, opts));
  }

  status() {
    return statusOf(this.config, 'Manager');
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

  /** awaitStarted() (launch.js), with `child` counted as starting meanwhile. */
  async started(child, hostKey, logfile, pending, timeout) {
    this.starting.set(child, hostKey);
    try {
      return await awaitStarted(child, { hostKey, logfile, pending, timeout, expected: this.status() });
    } finally {
      this.starting.delete(child);
    }
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
        // Clients still connected to a crashed host are likely to restart it: give them time.
        this.exitIfIdle(record.connections.length > 0 ? Math.max(this.config.disconnectTimeout, CRASH_GRACE_MS) : true);
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
    if (changedOptions(options, defaultOptions(this.opts)).length && this.reserve.holds(hostKey)) {
      await this.reserve.drop('asked for other options');
    }
    const prepared = this.reserve.take(hostKey);
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
   * now (`later` false), after `disconnectTimeout` ms (`later` true) or after `later` ms.
   */
  exitIfIdle(later = true) {
    const delay = later === true ? this.config.disconnectTimeout : later;
    if (!this.config.stopManagerIfNoConnections || !this.hadHost || this.exiting) return;
    clearTimeout(this.idleTimer);
    const check = () => {
      if (this.exiting || this.hosts.size !== 0 || this.locks.size !== 0) return;
      this.log.info('manager: all hosts have stopped; shutting down');
      this.exit(0);
    };
    if (later !== false) this.idleTimer = setTimeout(check, delay);
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
    await Promise.all([...stopping, this.reserve.drop(`manager ${why}`)]);
    this.exit(0);
  }

  exit(code) {
    this.exiting = true;
    this.reserve.dropNow();
    this.server.close(() => process.exit(code));
    this.server.closeIdleConnections();
    setTimeout(() => process.exit(code), 1000).unref();
  }
}

module.exports = { Manager };
