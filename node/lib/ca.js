'use strict';
// NODE_EXTRA_CA_CERTS, moved aside. Node parses the bundle it names at every start-up, before
// any of our code runs, and only TLS clients use it: the manager and a host's primary make no
// TLS connections, the config's code in a worker may. So a process that starts a manager or a
// primary may move the variable aside, as JSHOST_NODE_EXTRA_CA_CERTS; the manager passes that on
// to its hosts (moving its own NODE_EXTRA_CA_CERTS aside the same way), and a primary gives it
// back to its workers as NODE_EXTRA_CA_CERTS: the config's code sees exactly what the user set.

const EXTRA = 'NODE_EXTRA_CA_CERTS';
const ASIDE = 'JSHOST_NODE_EXTRA_CA_CERTS';

/** The environment for a manager or a host's primary: `env` with NODE_EXTRA_CA_CERTS moved aside. */
function asideEnv(env) {
  const out = { ...env };
  if (out[EXTRA] !== undefined) {
    // A value already moved aside is the user's; it wins over one set since.
    if (out[ASIDE] === undefined) out[ASIDE] = out[EXTRA];
    delete out[EXTRA];
  }
  return out;
}

/**
 * For a primary: takes the moved-aside value out of this process's environment (which its
 * workers inherit) and returns what a worker's environment must add: {NODE_EXTRA_CA_CERTS}
 * when a value was moved aside, else {}.
 */
function restoreForWorkers(env = process.env) {
  const value = env[ASIDE];
  if (value === undefined) return {};
  delete env[ASIDE];
  return { [EXTRA]: value };
}

module.exports = { asideEnv, restoreForWorkers };
