'use strict';
// A cluster worker: loads the config, reports the files it loaded and where the config wants
// to listen, then serves the connections the primary hands it (it never listens itself).
// - A watchdog thread (watchdog.js) kills it when a call keeps its event loop from turning past
//   the call's deadline; the primary replaces it.
// - Every BEAT_MS it sends the primary its metrics (the primary's answer carries the whole
//   cluster's, for GET /metrics and GET /jshost/health), and asks to be recycled once over
//   --max-memory or --max-calls.
// - "drain" (the primary retires it, or is stopping) and SIGTERM/SIGINT/SIGHUP drain its
//   connections (drain.js), then it exits 0. A worker told to hand connections back (a newer
//   worker serves) gives the primary the connections it has not read from; one stopping with
//   the host takes them and answers "not run" to what arrives.

const { Log } = require('./log');
const { Call } = require('./call');
const guard = require('./guard');
const { loadHost, newServer } = require('./host');
const { Watchdog } = require('./watchdog');
const { Metrics, render } = require('./metrics');
const { Connections } = require('./drain');

const BEAT_MS = 500;
const RECYCLE_RETRY_MS = 10_000;

/** A message to the primary; dropped once the channel is closed (the primary is gone). */
function tell(msg) {
  if (process.connected) process.send(msg, (err) => void err);
}

async function runWorker(setup) {
  const { opts, generation, workers } = setup;
  const log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
  Call.log = log;
  const graceMs = opts.grace * 1000;
  let connections = null; // once serving
  let handBack = true;
  let cluster = null; // the primary's last view of the whole host

  // Signals and "drain" are handled from the start: a worker still loading its config just exits.
  const drain = (why, giveBack) => {
    if (connections === null) process.exit(0);
    handBack = giveBack;
    log.info(`draining (${why}): ${connections.count} connection(s) open, up to ${opts.grace} s`);
    connections.drain(graceMs, (reason) => {
      log.info(`drained (${reason}); exiting`);
      process.exit(0);
    });
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => {
      // Sent to this worker alone (not with the primary): have a successor take over.
      if (connections !== null) tell({ type: 'recycle', why: signal });
      drain(signal, false);
    });
  }
  // The channel to the primary closes only when the primary is gone (killed, even SIGKILLed:
  // a graceful stop drains through a message first). The host was stopped: stop serving now,
  // so that clients see its connections close instead of a host that half lives on.
  process.on('disconnect', () => process.exit(1));
  let secrets;
  const gotSecrets = new Promise((resolve) => (secrets = resolve));
  const early = (msg) => {
    if (msg && msg.type === 'setup') secrets(msg);
    else if (msg && msg.type === 'drain' && connections === null) process.exit(0);
  };
  process.on('message', early);

  const { loaded, host } = await loadHost(opts, log, { workers, generation });
  guard.install(log);
  const setupMsg = await gotSecrets;

  const metrics = new Metrics();
  const watchdog = new Watchdog({ logfile: log.file, prefix: `${log.name}[${process.pid}]` });
  let calls = 0;
  let recycling = false;
  const recycle = (why) => {
    if (recycling) return;
    recycling = true;
    log.info(`asking to be recycled (${why})`);
    tell({ type: 'recycle', why });
  };
  const hooks = {
    start(name) {
      const started = metrics.start();
      if (opts.maxCalls !== undefined && ++calls >= opts.maxCalls) recycle(`${calls} calls, --max-calls ${opts.maxCalls}`);
      return { name, started };
    },
    end(token, status) {
      metrics.end(token.name, token.started, status);
    },
  };
  const state = { closing: false, draining: false };
  host.health = () => {
    const stuck = cluster ? cluster.stuck : 0;
    const status = state.draining || (cluster && cluster.stopping) ? 'draining' : stuck > 0 ? 'stuck' : 'ok';
    return {
      status: status === 'ok' ? 200 : 503,
      body: JSON.stringify({ status, workers: cluster ? cluster.metrics.workers.length : 1, stuck, pid: process.pid }),
    };
  };
  host.metrics = () => {
    const view = cluster ? cluster.metrics : { workers: [], gone: {}, replacements: 0, recycles: 0, runaways: 0 };
    const own = metrics.snapshotLive();
    return render({ ...view, workers: [...view.workers.filter((w) => w.pid !== process.pid), own] });
  };
  const tls = setupMsg.tls || null;
  const server = newServer(host, opts, log, state, {
    hooks,
    watchdog,
    authToken: setupMsg.token ? Buffer.from(setupMsg.token, 'base64') : null,
    tls,
  });
  connections = new Connections(server, state, tls !== null);

  process.removeListener('message', early);
  process.on('message', (msg, socket) => {
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'conn') {
      if (!socket) return;
      const giveBack = state.draining && handBack;
      // Told before anything is read from it.
      tell({ type: 'took', id: msg.id, accepted: !giveBack });
      if (giveBack) return void socket.destroy();
      connections.add(socket);
      server.emit('connection', socket);
    } else if (msg.type === 'start') {
      host.setListeningPort(msg.port);
      tell({ type: 'ready', status: host.statusJson() });
      beat();
    } else if (msg.type === 'drain') {
      drain(msg.why, msg.handBack);
    } else if (msg.type === 'cluster') {
      cluster = msg;
    } else if (msg.type === 'recycle-failed') {
      // Its successor did not start (say, the config is broken now): ask again later.
      setTimeout(() => (recycling = false), RECYCLE_RETRY_MS).unref();
    }
  });

  const beat = () => {
    if (!process.connected) return;
    const snapshot = metrics.snapshot();
    if (opts.maxMemory !== undefined && snapshot.rss > opts.maxMemory * 1024 * 1024) {
      recycle(`resident memory ${Math.round(snapshot.rss / 1048576)} MB, --max-memory ${opts.maxMemory}`);
    }
    tell({ type: 'beat', metrics: snapshot });
  };
  setInterval(beat, BEAT_MS).unref();

  tell({
    type: 'loaded',
    address: host.config.address,
    port: host.config.port,
    files: loaded.files(),
  });
}

module.exports = { runWorker, BEAT_MS };
