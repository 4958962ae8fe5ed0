'use strict';
// A host: the config's functions behind the HTTP handler. `buildHost` is shared by a single
// process, a cluster worker and `--config`; `runHost` runs a single-process host.

const http = require('node:http');
const { effectiveConfig, statusOf, functionTable, addFunction, loadConfig } = require('./config');
const { requireLimit } = require('./limit');
const { createHandler } = require('./server');
const { Call } = require('./call');
const { Log, describe } = require('./log');
const { NAME, VERSION } = require('./version');
const { features } = require('./args');
const { listen, describeListen } = require('./listen');
const guard = require('./guard');
const stdin = require('./stdin');

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

function newServer(host, opts, log, state) {
  const handler = createHandler(host, { identity: identityHeader(opts), log, verbose: opts.verbose, state });
  return http.createServer(handler);
}

/** A host in this process (no workers). */
async function runHost(opts) {
  const log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
  Call.log = log;
  const { host } = await loadHost(opts, log);
  guard.install(log);
  const server = newServer(host, opts, log, { closing: false });
  if (opts.exitOnStdinClose) {
    stdin.onClose(() => {
      log.info('stdin closed; exiting');
      process.exit(0);
    });
  }
  if (opts.socket !== undefined) {
    // Exit through process.exit so that the socket file is removed.
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => process.exit(0));
  }
  try {
    const port = await listen(server, host.config, opts);
    host.setListeningPort(port);
  } catch (err) {
    log.fatal(`cannot listen at ${describeListen(host.config, opts)}: ${err.message}\n${err.stack}`);
    process.exit(1);
  }
  announce(host, opts, log);
}

/** What js-host prints once listening: the status line with --json, else "Host listening at ...". */
function announce(host, opts, log, statusJson = host.statusJson()) {
  const where = opts.socket !== undefined ? opts.socket : `${host.config.address}:${host.config.port}`;
  log.info(`Host listening at ${where}`);
  process.stdout.write(opts.json ? statusJson + '\n' : `Host listening at ${where}\n`);
}

module.exports = { buildHost, loadHost, runHost, newServer, announce, identityHeader };
