'use strict';
// A cluster worker: loads the config, reports the files it loaded and where the config wants
// to listen, then serves the connections the primary hands it (it never listens itself).
// On "retire" (a newer generation took over) it closes idle connections, answers in-flight
// calls with `Connection: close`, and exits once no connection is left or the grace period ends.

const { Log } = require('./log');
const { Call } = require('./call');
const guard = require('./guard');
const { loadHost, newServer } = require('./host');

async function runWorker(setup) {
  const { opts, generation, workers } = setup;
  const log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
  Call.log = log;
  const { loaded, host } = await loadHost(opts, log, { workers, generation });
  guard.install(log);
  const state = { closing: false };
  const server = newServer(host, opts, log, state);
  const sockets = new Set();
  let exitWhenIdle = false;

  const maybeExit = () => {
    if (exitWhenIdle && sockets.size === 0) process.exit(0);
  };

  process.on('message', (msg, socket) => {
    if (msg && msg.type === 'conn') {
      if (!socket) return;
      // Told before anything is read from it: a retiring worker hands it back.
      process.send({ type: 'took', id: msg.id, accepted: !state.closing });
      if (state.closing) return void socket.destroy();
      sockets.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        maybeExit();
      });
      server.emit('connection', socket);
      return;
    }
    if (msg && msg.type === 'start') {
      host.setListeningPort(msg.port);
      process.send({ type: 'ready', status: host.statusJson() });
    } else if (msg && msg.type === 'retire') {
      state.closing = true;
      exitWhenIdle = true;
      for (const s of sockets) {
        if (!s._httpMessage) s.destroy(); // idle keep-alive connection
      }
      setTimeout(() => {
        log.info(`generation ${generation}: grace period over; closing ${sockets.size} connection(s)`);
        process.exit(0);
      }, msg.grace).unref();
      maybeExit();
    }
  });

  process.send({
    type: 'loaded',
    address: host.config.address,
    port: host.config.port,
    files: loaded.files(),
  });
}

module.exports = { runWorker };
