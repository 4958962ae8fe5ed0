'use strict';
// --workers N|auto and --watch: a primary process that owns the listening socket and hands each
// new connection to a worker process (node:cluster) of the current generation, round robin.
// - Workers load the config; the primary never runs config code. It listens where the first
//   worker says the config wants, so a port or socket stays the same across worker restarts.
// - A worker that dies is replaced with backoff (100 ms doubling to 5 s, reset after 10 s up);
//   only the calls in flight on its connections fail. Connections arriving while no worker is
//   ready wait in the primary; a connection handed to a worker that died before taking it goes
//   to another one.
// - --watch: a change of a loaded file starts a new generation; once all its workers are ready,
//   new connections go to it and the old generation is retired (finishes in-flight calls, then
//   exits; killed after GRACE_MS). A generation that fails to start is dropped; the current one
//   keeps serving.
// - --exit-on-stdin-close, SIGTERM, SIGINT: every worker is stopped and the primary exits.

const cluster = require('node:cluster');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Log } = require('./log');
const { listen, describeListen } = require('./listen');
const { announce } = require('./host');
const { Watcher } = require('./watch');
const stdin = require('./stdin');

const GRACE_MS = 10_000;
const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;
const STABLE_MS = 10_000;

class Primary {
  constructor(opts) {
    this.opts = opts;
    this.log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
    this.count = opts.workers === 'auto' ? os.availableParallelism() : opts.workers || 1;
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
    this.watcher = opts.watch ? new Watcher((file) => this.reload(file), this.log) : null;
  }

  start() {
    cluster.setupPrimary({
      exec: path.join(__dirname, 'worker-main.js'),
      args: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    if (this.opts.exitOnStdinClose) stdin.onClose(() => this.shutdown('stdin closed'));
    process.on('SIGTERM', () => this.shutdown('SIGTERM'));
    process.on('SIGINT', () => this.shutdown('SIGINT'));
    process.on('SIGHUP', () => this.shutdown('SIGHUP'));
    this.current = this.newGeneration();
  }

  newGeneration() {
    const gen = { id: ++this.generation, slots: [], ready: false, failed: false, files: new Set() };
    for (let slot = 0; slot < this.count; slot++) {
      gen.slots.push({ worker: null, ready: false, backoff: BACKOFF_START_MS, startedAt: 0 });
      this.fork(gen, slot);
    }
    return gen;
  }

  fork(gen, slot) {
    const s = gen.slots[slot];
    s.ready = false;
    s.startedAt = Date.now();
    const setup = { opts: this.opts, generation: gen.id, workers: this.count };
    const worker = cluster.fork({ JSHOST_NODE_WORKER: JSON.stringify(setup) });
    s.worker = worker;
    // Connections handed to this worker that it has not taken yet (id -> socket).
    worker.jshostPending = new Map();
    worker.on('message', (msg) => this.onMessage(gen, slot, worker, msg));
    worker.on('exit', (code, signal) => this.onExit(gen, slot, worker, code, signal));
    // Once its channel is closed, every message it sent has arrived: what it did not take
    // goes to another worker. A channel with a handle in flight may never report 'disconnect':
    // the exit (plus a moment for its last messages) does too.
    worker.on('disconnect', () => this.reclaim(worker));
    worker.on('exit', () => setTimeout(() => this.reclaim(worker), 50));
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
      if (s.worker === worker && worker.isConnected()) worker.send({ type: 'start', port: this.port });
    } else if (msg.type === 'ready') {
      if (s.worker !== worker) return;
      s.ready = true;
      if (!gen.ready && gen.slots.every((x) => x.ready)) this.activate(gen, msg.status);
      else if (gen === this.current) this.drain();
    }
  }

  ensureListening(where) {
    if (!this.listening) {
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
      const statusConfig = JSON.parse(statusJson).config;
      announce({ config: statusConfig }, this.opts, this.log, statusJson);
    } else {
      const old = this.current;
      this.pending = null;
      this.current = gen;
      this.log.info(`generation ${gen.id} is serving; retiring generation ${old.id}`);
      this.retire(old);
    }
    if (this.watcher) this.watcher.set([...gen.files]);
    this.drain();
  }

  retire(gen) {
    gen.retired = true;
    for (const s of gen.slots) {
      const w = s.worker;
      if (!w || !w.isConnected()) continue;
      w.send({ type: 'retire', grace: GRACE_MS });
      setTimeout(() => {
        if (!w.isDead()) w.process.kill('SIGKILL');
      }, GRACE_MS + 2000).unref();
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
    for (const s of gen.slots) if (s.worker && !s.worker.isDead()) s.worker.process.kill('SIGKILL');
    if (this.pending === gen) this.pending = null;
    // Keep watching what the failed generation loaded, to retry when it is fixed.
    if (this.watcher) this.watcher.set([...new Set([...this.current.files, ...gen.files])]);
  }

  onExit(gen, slot, worker, code, signal) {
    const s = gen.slots[slot];
    if (s.worker !== worker) return;
    s.ready = false;
    if (this.stopping || gen.retired || gen.failed) return;
    const why = signal ? `signal ${signal}` : `code ${code}`;
    if (!gen.ready) {
      if (gen.id === 1) {
        this.log.fatal(`a worker exited (${why}) before the host was ready; stopping`);
        return this.shutdown('start-up failed', 1);
      }
      return this.abandon(gen, `a worker exited with ${why} while starting`);
    }
    const lived = Date.now() - s.startedAt;
    if (lived > STABLE_MS) s.backoff = BACKOFF_START_MS;
    const delay = s.backoff;
    s.backoff = Math.min(s.backoff * 2, BACKOFF_MAX_MS);
    this.log.error(`worker ${worker.process.pid} (generation ${gen.id}) exited with ${why}; replacing it in ${delay}ms`);
    setTimeout(() => {
      if (!this.stopping && !gen.retired && !gen.failed) this.fork(gen, slot);
    }, delay);
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

  shutdown(why, code = 0) {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info(`stopping (${why})`);
    if (this.watcher) this.watcher.close();
    if (this.server) this.server.close();
    const alive = Object.values(cluster.workers).filter((w) => w && !w.isDead());
    if (alive.length === 0) return this.exitNow(code);
    let left = alive.length;
    for (const w of alive) {
      w.once('exit', () => {
        if (--left === 0) this.exitNow(code);
      });
      w.process.kill('SIGTERM');
    }
    setTimeout(() => {
      for (const w of alive) if (!w.isDead()) w.process.kill('SIGKILL');
      this.exitNow(code);
    }, 2000).unref();
  }

  exitNow(code) {
    process.exit(code);
  }
}

function runPrimary(opts) {
  new Primary(opts).start();
}

module.exports = { runPrimary };
