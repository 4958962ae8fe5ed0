'use strict';
// Every host runs as a primary process that owns the listening socket and hands each new
// connection to a worker process (node:cluster) of the current generation, round robin: one
// worker by default, --workers N|auto. The primary runs no config code, so it survives what a
// call does to its worker (a crash, a runaway loop) and keeps the port while it replaces it.
// - Workers load the config; the primary never runs config code. It listens where the first
//   worker says the config wants, so a port or socket stays the same across worker restarts.
// - A worker that dies is replaced with backoff (100 ms doubling to 5 s, reset after 10 s up);
//   only the calls in flight on its connections fail. Connections arriving while no worker is
//   ready wait in the primary; a connection handed to a worker that died before taking it goes
//   to another one.
// - --watch: a change of a loaded file starts a new generation; once all its workers are ready,
//   new connections go to it and the old generation is retired (drains: drain.js; killed
//   2 s after --grace). A generation that fails to start is dropped; the current one keeps
//   serving.
// - A worker that asks to be recycled (--max-memory, --max-calls) gets a successor in its
//   slot; once that is ready it takes the worker's place and the worker drains.
// - Workers report every BEAT_MS (worker.js); a ready worker silent for STUCK_MS is "stuck"
//   (GET /jshost/health says 503). Each report is answered with the whole host's metrics.
// - SIGTERM, SIGINT, SIGHUP: stop listening, every worker drains (--grace), exit 0.
//   --exit-on-stdin-close: the owner is gone; the workers are killed and the primary exits.

// Start-up is on every cold start's critical path: the primary forks its first worker (whose
// Node start-up and config load take most of a host's start) before it loads anything that
// only later steps need (listening, watching, metrics, secrets).
const cluster = require('node:cluster');
const path = require('node:path');
const { Log } = require('./log');
const { restoreForWorkers } = require('./ca');
const stdin = require('./stdin');

/** metrics.js's addFunctions, loaded on first use. */
function addFunctions(into, from) {
  return require('./metrics').addFunctions(into, from);
}

const KILL_AFTER_GRACE_MS = 2000;
const STUCK_MS = 2000;
const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;
const STABLE_MS = 10_000;

class Primary {
  constructor(opts) {
    this.opts = opts;
    this.log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
    this.count = opts.workers === 'auto' ? require('node:os').availableParallelism() : opts.workers || 1;
    this.generation = 0;
    this.current = null; // the generation connections go to
    this.pending = null; // a generation starting (--watch)
    this.server = null;
    this.port = null;
    this.listening = null; // promise
    this.queue = []; // connections waiting for a ready worker
    this.next = 0;
    this.connections = 0;
    this.stopping = false;
    this.graceMs = opts.grace * 1000;
    this.counts = { replacements: 0, recycles: 0, runaways: 0 };
    this.gone = {}; // per-function counters of workers that exited
    this.secrets = null; // {token, tls} once read; sent to every worker in its 'setup' message
    this.watcher = null; // --watch: once the first generation serves
    // What every worker's environment adds to this process's own (see ca.js).
    this.workerEnv = restoreForWorkers();
  }

  start() {
    // First, so that a config that hangs in its load never outlives the owner.
    if (this.opts.exitOnStdinClose) stdin.onClose(() => this.exitWithWorkers('stdin closed'));
    cluster.setupPrimary({
      exec: path.join(__dirname, 'worker-main.js'),
      args: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    process.on('SIGTERM', () => this.shutdown('SIGTERM'));
    process.on('SIGINT', () => this.shutdown('SIGINT'));
    process.on('SIGHUP', () => this.shutdown('SIGHUP'));
    this.current = this.newGeneration();
    // The first worker starts meanwhile; it waits for its 'setup' message only once its config
    // is loaded.
    const { readSecrets, SecretError } = require('./secrets');
    try {
      this.secrets = readSecrets(this.opts);
    } catch (err) {
      if (!(err instanceof SecretError)) throw err;
      this.log.fatal(err.message);
      for (const w of Object.values(cluster.workers)) if (w && !w.isDead()) w.process.kill('SIGKILL');
      return this.exitNow(1);
    }
    for (const s of this.current.slots) this.sendSetup(s.worker);
    // Loaded while the first worker starts, not once it says where to listen.
    require('./listen');
  }

  sendSetup(worker) {
    worker.send({ type: 'setup', token: this.secrets.token, tls: this.secrets.tls });
  }

  newGeneration() {
    const gen = { id: ++this.generation, slots: [], ready: false, failed: false, files: new Set() };
    for (let slot = 0; slot < this.count; slot++) {
      gen.slots.push({ worker: null, ready: false, successor: null, backoff: BACKOFF_START_MS, startedAt: 0 });
      this.fork(gen, slot);
    }
    return gen;
  }

  fork(gen, slot, successor = false) {
    const s = gen.slots[slot];
    const setup = { opts: this.opts, generation: gen.id, workers: this.count };
    const worker = cluster.fork({ ...this.workerEnv, JSHOST_NODE_WORKER: JSON.stringify(setup) });
    if (successor) {
      s.successor = worker;
    } else {
      s.worker = worker;
      s.ready = false;
      s.startedAt = Date.now();
    }
    if (this.secrets !== null) this.sendSetup(worker);
    // Connections handed to this worker that it has not taken yet (id -> socket).
    worker.jshostPending = new Map();
    worker.jshostBeat = { at: Date.now(), metrics: null };
    // A message sent to a worker that just died fails with EPIPE, as an 'error' event: never
    // let that take the primary down (its exit is handled below).
    worker.on('error', (err) => this.log.info(`worker ${worker.process.pid}: ${err.message}`));
    worker.on('message', (msg) => this.onMessage(gen, slot, worker, msg));
    worker.on('exit', (code, signal) => this.onExit(gen, slot, worker, code, signal));
    // Once its channel is closed, every message it sent has arrived: what it did not take
    // goes to another worker. A channel with a handle in flight may never report 'disconnect':
    // the exit (plus a moment for its last messages) does too.
    worker.on('disconnect', () => this.reclaim(worker));
    worker.on('exit', () => setTimeout(() => this.reclaim(worker), 50));
    return worker;
  }

  async onMessage(gen, slot, worker, msg) {
    if (!msg || typeof msg !== 'object') return;
    const s = gen.slots[slot];
    if (msg.type === 'took') {
      const socket = worker.jshostPending.get(msg.id);
      if (socket === undefined) return;
      worker.jshostPending.delete(msg.id);
      if (msg.accepted) socket.destroy(); // the worker has its own copy: drop ours (no FIN)
      else this.dispatch(socket);
    } else if (msg.type === 'loaded') {
      for (const f of msg.files) gen.files.add(f);
      try {
        await this.ensureListening(msg);
      } catch {
        return;
      }
      if ((s.worker === worker || s.successor === worker) && worker.isConnected()) worker.send({ type: 'start', port: this.port });
    } else if (msg.type === 'ready') {
      if (s.successor === worker) return this.takeOver(gen, slot);
      if (s.worker !== worker) return;
      s.ready = true;
      if (!gen.ready && gen.slots.every((x) => x.ready)) this.activate(gen, msg.status);
      else if (gen === this.current) this.drain();
    } else if (msg.type === 'beat') {
      worker.jshostBeat = { at: Date.now(), metrics: msg.metrics };
      if (worker.isConnected()) worker.send(this.view());
    } else if (msg.type === 'recycle') {
      if (s.worker !== worker || s.successor !== null || gen.retired || gen.failed || this.stopping) return;
      this.log.info(`recycling worker ${worker.process.pid} (generation ${gen.id}): ${msg.why}`);
      this.counts.recycles++;
      this.fork(gen, slot, true);
    }
  }

  /** The successor in `slot` is ready: it serves, the worker it replaces drains. */
  takeOver(gen, slot) {
    const s = gen.slots[slot];
    const old = s.worker;
    s.worker = s.successor;
    s.successor = null;
    s.ready = true;
    s.startedAt = Date.now();
    if (old && !old.isDead()) this.retireWorker(old, 'recycled', true);
    this.drain();
  }

  /** What workers are told after each beat: stuck workers, and the host's metrics. */
  view() {
    const now = Date.now();
    let stuck = 0;
    const workers = [];
    const serving = this.serving();
    for (const w of serving) {
      if (now - w.jshostBeat.at > STUCK_MS) stuck++;
      if (w.jshostBeat.metrics) workers.push(w.jshostBeat.metrics);
    }
    // Workers still draining (or starting) count towards the totals, so that they never go down.
    let gone = this.gone;
    for (const w of Object.values(cluster.workers)) {
      if (!w || w.isDead() || serving.includes(w) || !w.jshostBeat || !w.jshostBeat.metrics) continue;
      if (gone === this.gone) gone = addFunctions({}, this.gone);
      addFunctions(gone, w.jshostBeat.metrics.functions);
    }
    return { type: 'cluster', stuck, stopping: this.stopping, metrics: { workers, gone, ...this.counts } };
  }

  /** The ready workers of the current generation. */
  serving() {
    const gen = this.current;
    return gen && gen.ready ? gen.slots.filter((s) => s.ready && s.worker && !s.worker.isDead()).map((s) => s.worker) : [];
  }

  /** Tells `w` to drain (handing back connections it has not read from when `handBack`). */
  retireWorker(w, why, handBack) {
    if (!w.isConnected()) return;
    w.send({ type: 'drain', why, handBack });
    setTimeout(() => {
      if (!w.isDead()) w.process.kill('SIGKILL');
    }, this.graceMs + KILL_AFTER_GRACE_MS).unref();
  }

  ensureListening(where) {
    if (!this.listening) {
      const net = require('node:net');
      const { listen, describeListen } = require('./listen'); // loaded by start()
      const config = { address: where.address, port: where.port };
      this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.dispatch(socket));
      this.listening = listen(this.server, config, this.opts).then(
        (port) => {
          this.port = port;
          this.config = config;
        },
        (err) => {
          this.log.fatal(`cannot listen at ${describeListen(config, this.opts)}: ${err.message}\n${err.stack}`);
          this.exitNow(1);
          throw err;
        },
      );
    } else if (this.config && (where.address !== this.config.address || String(where.port) !== String(this.config.port))) {
      this.log.error(`the config now asks for ${where.address}:${where.port}; keeping ${this.config.address}:${this.config.port} until a restart`);
    }
    return this.listening;
  }

  activate(gen, statusJson) {
    gen.ready = true;
    if (gen.id === 1) {
      announce(JSON.parse(statusJson).config, this.opts, this.log, statusJson);
    } else {
      const old = this.current;
      this.pending = null;
      this.current = gen;
      this.log.info(`generation ${gen.id} is serving; retiring generation ${old.id}`);
      this.retire(old);
    }
    if (this.opts.watch) {
      if (this.watcher === null) {
        const { Watcher } = require('./watch');
        this.watcher = new Watcher((file) => this.reload(file), this.log);
      }
      this.watcher.set([...gen.files]);
    }
    this.drain();
  }

  retire(gen) {
    gen.retired = true;
    for (const s of gen.slots) {
      if (s.worker) this.retireWorker(s.worker, `generation ${gen.id} retired`, true);
      if (s.successor && !s.successor.isDead()) s.successor.process.kill('SIGKILL');
    }
  }

  reload(file) {
    if (this.stopping) return;
    this.log.info(`${file} changed; starting generation ${this.generation + 1}`);
    if (this.pending) this.abandon(this.pending, 'a newer change');
    this.pending = this.newGeneration();
  }

  abandon(gen, why) {
    gen.failed = true;
    this.log.error(`generation ${gen.id} is dropped (${why}); generation ${this.current.id} keeps serving`);
    for (const s of gen.slots) {
      for (const w of [s.worker, s.successor]) if (w && !w.isDead()) w.process.kill('SIGKILL');
    }
    if (this.pending === gen) this.pending = null;
    // Keep watching what the failed generation loaded, to retry when it is fixed.
    if (this.watcher) this.watcher.set([...new Set([...this.current.files, ...gen.files])]);
  }

  onExit(gen, slot, worker, code, signal) {
    const s = gen.slots[slot];
    const last = worker.jshostBeat.metrics;
    if (last) addFunctions(this.gone, last.functions);
    if (s.successor === worker) {
      // A successor that died before it was ready: the worker it was for keeps serving and
      // may ask again.
      s.successor = null;
      if (this.stopping) return;
      this.log.error(`the successor of worker ${s.worker.process.pid} exited (${signal || code}) before it was ready; it keeps serving`);
      if (s.worker.isConnected()) s.worker.send({ type: 'recycle-failed' });
      return;
    }
    if (s.worker !== worker) return;
    s.ready = false;
    if (this.stopping || gen.retired || gen.failed) return;
    const why = signal ? `signal ${signal}` : `code ${code}`;
    if (!gen.ready) {
      if (gen.id === 1) {
        this.log.fatal(`a worker exited (${why}) before the host was ready; stopping`);
        return this.exitWithWorkers('start-up failed', 1);
      }
      return this.abandon(gen, `a worker exited with ${why} while starting`);
    }
    this.counts.replacements++;
    // A worker kills itself with SIGKILL when a call runs away (watchdog.js).
    if (signal === 'SIGKILL') this.counts.runaways++;
    if (s.successor !== null) return this.takeOverWhenReady(gen, slot);
    const lived = Date.now() - s.startedAt;
    if (lived > STABLE_MS) s.backoff = BACKOFF_START_MS;
    const delay = s.backoff;
    // A runaway call says nothing about the next start: no longer waits for the next one.
    if (signal !== 'SIGKILL') s.backoff = Math.min(s.backoff * 2, BACKOFF_MAX_MS);
    this.log.error(`worker ${worker.process.pid} (generation ${gen.id}) exited with ${why}; replacing it in ${delay}ms`);
    setTimeout(() => {
      if (!this.stopping && !gen.retired && !gen.failed) this.fork(gen, slot);
    }, delay);
  }

  /** The worker in `slot` died while its successor starts: the successor takes the slot. */
  takeOverWhenReady(gen, slot) {
    const s = gen.slots[slot];
    s.worker = s.successor;
    s.successor = null;
    s.startedAt = Date.now();
    // Its 'ready' now arrives as the slot's own worker's.
  }

  dispatch(socket) {
    const gen = this.current;
    const ready = gen && gen.ready ? gen.slots.filter((s) => s.ready && s.worker.isConnected()) : [];
    if (ready.length === 0) {
      this.queue.push(socket);
      socket.once('close', () => {
        const i = this.queue.indexOf(socket);
        if (i !== -1) this.queue.splice(i, 1);
      });
      return;
    }
    const worker = ready[this.next++ % ready.length].worker;
    // keepOpen: the primary keeps its copy until the worker says it took the connection, so
    // that a connection sent to a worker that dies first is not lost (or left hanging).
    const id = ++this.connections;
    worker.jshostPending.set(id, socket);
    worker.send({ type: 'conn', id }, socket, { keepOpen: true }, (err) => {
      if (err && worker.jshostPending.delete(id)) this.dispatch(socket);
    });
  }

  reclaim(worker) {
    const sockets = [...worker.jshostPending.values()];
    worker.jshostPending.clear();
    for (const socket of sockets) if (!socket.destroyed) this.dispatch(socket);
  }

  drain() {
    const waiting = this.queue.splice(0);
    for (const socket of waiting) if (!socket.destroyed) this.dispatch(socket);
  }

  /** SIGTERM, SIGINT, SIGHUP: stop listening; every worker drains (--grace); exit 0. */
  shutdown(why) {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info(`stopping (${why}): the workers finish their calls in flight (up to ${this.opts.grace} s)`);
    if (this.watcher) this.watcher.close();
    if (this.server) this.server.close();
    const alive = Object.values(cluster.workers).filter((w) => w && !w.isDead());
    if (alive.length === 0) return this.exitNow(0);
    let left = alive.length;
    for (const w of alive) {
      w.once('exit', () => {
        if (--left === 0) this.exitNow(0);
      });
      // Connections still arriving go to the draining workers, which answer "not run".
      this.retireWorker(w, why, false);
    }
    setTimeout(() => this.exitNow(0), this.graceMs + KILL_AFTER_GRACE_MS + 500).unref();
    this.drain();
  }

  /** The owner is gone or start-up failed: no one to finish calls for; kill and exit. */
  exitWithWorkers(why, code = 0) {
    if (this.stopping === 'now') return;
    this.stopping = 'now';
    this.log.info(`stopping (${why})`);
    for (const w of Object.values(cluster.workers)) if (w && !w.isDead()) w.process.kill('SIGKILL');
    this.exitNow(code);
  }

  exitNow(code) {
    process.exit(code);
  }
}

/** What js-host prints once listening: the status line with --json, else "Host listening at ...". */
function announce(config, opts, log, statusJson) {
  const where = opts.socket !== undefined ? opts.socket : `${config.address}:${config.port}`;
  log.info(`Host listening at ${where}`);
  process.stdout.write(opts.json ? statusJson + '\n' : `Host listening at ${where}\n`);
}

function runPrimary(opts) {
  new Primary(opts).start();
}

module.exports = { runPrimary };
