'use strict';
// Listening at the config's address and port, or at --socket PATH (a stale socket file left
// by a dead process is replaced; a live one is an EADDRINUSE error).

const fs = require('node:fs');
const net = require('node:net');
const { listenPort } = require('./config');

function describeListen(config, opts) {
  return opts.socket !== undefined ? opts.socket : `${config.address}:${config.port}`;
}

/** Listens; resolves with the port (TCP) or 0 (socket). */
async function listen(server, config, opts) {
  if (opts.socket !== undefined) {
    try {
      await listenOnce(server, { path: opts.socket });
    } catch (err) {
      if (err.code !== 'EADDRINUSE' || (await isLive(opts.socket))) throw err;
      fs.unlinkSync(opts.socket);
      await listenOnce(server, { path: opts.socket });
    }
    const path = opts.socket;
    process.on('exit', () => {
      try {
        fs.unlinkSync(path);
      } catch {}
    });
    return 0;
  }
  await listenOnce(server, { port: listenPort(config.port), host: config.address });
  return server.address().port;
}

function listenOnce(server, options) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    server.once('error', onError);
    server.listen(options, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}

function isLive(path) {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

module.exports = { listen, describeListen };
