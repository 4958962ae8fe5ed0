'use strict';
// A host: the config's functions behind the HTTP handler. `buildHost` is shared by cluster
// workers and `--config`.

const http = require('node:http');
const { effectiveConfig, statusOf, functionTable, addFunction, loadConfig } = require('./config');
const { requireLimit } = require('./limit');
const { createHandler } = require('./server');
const { describe } = require('./log');
const { NAME, VERSION } = require('./version');
const { features } = require('./args');

/**
 * The host for a loaded config. `opts` are the command-line options; `info` = {workers,
 * generation}. Throws on an invalid config (as js-host refuses to start).
 */
function buildHost(userConfig, opts, log, info = { workers: 1, generation: 1 }) {
  const config = effectiveConfig(userConfig, { port: opts.port });
  const functions = functionTable(config.functions);
  const limit = requireLimit(config.requestDataLimit);
  let statusJson = null;
  const host = {
    config,
    functions,
    limit,
    /** Call once the real port is known (the status then carries it when the config said 0). */
    setListeningPort(port) {
      if (opts.socket === undefined && String(config.port) === '0') config.port = port;
      statusJson = null;
    },
    status: () => statusOf(config, 'Host'),
    statusJson: () => (statusJson ??= JSON.stringify(statusOf(config, 'Host'))),
    infoJson: () =>
      JSON.stringify({
        name: NAME,
        version: VERSION,
        features: features(opts),
        workers: info.workers,
        generation: info.generation,
        pid: process.pid,
      }),
    // What js-host passes as `this.host`: enough of its Host for config code.
    api: {
      config,
      functions,
      logger: log.logger,
      addFunction: (name, fn) => addFunction(functions, name, fn),
      getStatus: () => statusOf(config, 'Host'),
      getAddress: () => `${config.address}:${config.port}`,
      getUrl: () => `http://${config.address}:${config.port}`,
    },
  };
  if (typeof config.extendHost === 'function') config.extendHost(host.api);
  return host;
}

function identityHeader(opts) {
  return `${VERSION}; features=${features(opts).join(',')}`;
}

/** Loads the config and builds the host, or logs why not and exits 1. */
async function loadHost(opts, log, info) {
  try {
    const loaded = await loadConfig(opts.configFile);
    return { loaded, host: buildHost(loaded.config, opts, log, info) };
  } catch (err) {
    log.fatal(`cannot start a host for ${opts.configFile}:\n${describe(err)}`);
    process.exit(1);
  }
}

/**
 * The HTTP (or, with `extra.tls` = {cert, key}, HTTPS) server for `host`; it never listens
 * itself: a worker emits 'connection' with the sockets the primary hands it.
 * `extra`: {hooks, watchdog, authToken, tls}.
 */
function newServer(host, opts, log, state, extra = {}) {
  const handler = createHandler(host, {
    identity: identityHeader(opts),
    log,
    verbose: opts.verbose,
    state,
    callTimeout: opts.callTimeout,
    hooks: extra.hooks,
    watchdog: extra.watchdog || null,
    allowedHosts: opts.allowedHosts,
    authToken: extra.authToken || null,
  });
  // node:https (and TLS) is loaded only when used: it adds to every host's start-up.
  return extra.tls ? require('node:https').createServer({ cert: extra.tls.cert, key: extra.tls.key }, handler) : http.createServer(handler);
}

module.exports = { buildHost, loadHost, newServer, identityHeader };
