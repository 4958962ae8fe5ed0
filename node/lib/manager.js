'use strict';
// The manager (--manager): js-host 0.12's /manager/stop and /host/* endpoints (manager-http.js),
// starting jshost-node hosts for any of its user's configs (hosts.js, launch.js), its own
// config's host prepared at once with --prepare (prepared.js). It runs only its own user's
// configs and keeps its hosts' logfiles private (trust.js).
// Start-up is on a cold start's critical path: with --prepare the host is spawned before the
// manager loads anything else, so that the host's start-up overlaps the manager's own.

const { Log, describe } = require('./log');

async function runManager(opts) {
  const log = new Log({ logfile: opts.logfile, verbose: opts.verbose });
  const prepared = opts.prepare ? require('./prepared').prepareHost(opts, log) : null;
  const { killGroup, kill } = require('./launch');
  let manager;
  const onSignal = (signal) => {
    if (manager) return manager.shutdown(signal);
    // Still loading its own config: nothing but the prepared host to stop.
    log.info(`manager: stopping (${signal}) while loading its config`);
    kill(prepared && prepared.child).then(() => process.exit(0));
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, onSignal);
  const { loadConfig, effectiveConfig, listenPort } = require('./config');
  try {
    const { config } = await loadConfig(opts.configFile);
    const { Manager } = require('./hosts');
    manager = new Manager(effectiveConfig(config, { manager: true, port: opts.port }), opts, log, prepared);
  } catch (err) {
    log.fatal(`cannot start a manager for ${opts.configFile}:\n${describe(err)}`);
    if (prepared) killGroup(prepared.child);
    process.exit(1);
  }
  const { listen, describeListen } = require('./listen');
  try {
    listenPort(manager.config.port);
    const port = await listen(manager.server, manager.config, opts);
    if (opts.socket === undefined && String(manager.config.port) === '0') manager.config.port = port;
  } catch (err) {
    log.fatal(`cannot listen at ${describeListen(manager.config, opts)}: ${err.message}\n${err.stack}`);
    if (manager.reserve.prepared) killGroup(manager.reserve.prepared.child);
    process.exit(1);
  }
  const where = opts.socket !== undefined ? opts.socket : `${manager.config.address}:${manager.config.port}`;
  log.info(`Manager listening at ${where}`);
  process.stdout.write(opts.json ? JSON.stringify(manager.status()) + '\n' : `Manager listening at ${where}\n`);
}

module.exports = { runManager };
