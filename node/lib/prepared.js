'use strict';
// --prepare: as the manager starts (before it loads anything else, its own config included) it
// spawns a host for its own config file exactly as a /host/start would, and keeps it aside; the
// first /host/start of that config adopts it instead of spawning one (a prepared host that
// failed is dropped and a host is spawned as usual, so the answer is the same). It is not a host
// until adopted: it counts for nothing in the exit-when-no-host rule, and is killed when unused
// for PREPARED_UNUSED_MS and whenever the manager exits.

const fs = require('node:fs');
const path = require('node:path');
const { hostLogfile } = require('./trust');
const { defaultOptions, hostFlags } = require('./host-options');
const { spawnHostProcess, statusLine, kill } = require('./launch');
const { describe } = require('./log');

const PREPARED_UNUSED_MS = 30_000;

/**
 * Spawns a host for the manager's own config as a start would; returns
 * {key, logfile, child, settled, result} (`result` once `settled`: {line, stdout} or {error}),
 * or null if it could not even be spawned.
 */
function prepareHost(opts, log) {
  const key = path.resolve(opts.configFile);
  let child;
  let logfile;
  try {
    logfile = hostLogfile();
    child = spawnHostProcess(key, 0, logfile, hostFlags(defaultOptions(opts)));
    log.info(`manager: preparing a host for ${key} (port 0, logfile ${logfile})`);
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

/** The prepared host kept aside, if any. */
class Reserve {
  constructor(log) {
    this.log = log;
    this.prepared = null;
  }

  keep(prepared) {
    this.prepared = prepared;
    prepared.timer = setTimeout(() => this.drop(`unused for ${PREPARED_UNUSED_MS}ms`), PREPARED_UNUSED_MS);
    prepared.child.once('exit', (code, signal) => {
      if (this.prepared !== prepared) return;
      this.release();
      this.log.info(`manager: the prepared host for ${prepared.key} exited (${signal || code}) before it was used`);
    });
  }

  /** Whether the prepared host is the one for `hostKey`. */
  holds(hostKey) {
    return this.prepared !== null && this.prepared.key === hostKey;
  }

  /** Takes the prepared host, if any, out of reserve (and stops its unused timer). */
  release() {
    const prepared = this.prepared;
    if (prepared) {
      this.prepared = null;
      clearTimeout(prepared.timer);
    }
    return prepared;
  }

  /** Takes the prepared host out of reserve if it is the one for `hostKey`. */
  take(hostKey) {
    return this.holds(hostKey) ? this.release() : null;
  }

  /** Kills the prepared host, if any, and removes its logfile; resolves once it exited. */
  async drop(why) {
    const prepared = this.release();
    if (!prepared) return;
    this.log.info(`manager: stopping the unused prepared host for ${prepared.key} (${why})`);
    await kill(prepared.child);
    fs.rmSync(prepared.logfile, { force: true });
  }

  /** The manager is exiting: no waiting, SIGTERM now (--exit-on-stdin-close ends it anyway once the manager is gone). */
  dropNow() {
    const prepared = this.release();
    if (!prepared) return;
    this.log.info(`manager: stopping the unused prepared host for ${prepared.key} (manager exiting)`);
    prepared.child.kill('SIGTERM');
    fs.rmSync(prepared.logfile, { force: true });
  }
}

module.exports = { prepareHost, Reserve, PREPARED_UNUSED_MS };
