'use strict';
// Errors that escape a function: an exception thrown in a callback a call scheduled (timer,
// I/O) or an unhandled rejection of that call fails that call with a 500 and the host keeps
// serving. An error that belongs to no call is logged and the process exits non-zero (a
// supervisor, the manager or the cluster primary, restarts it).

const { currentCall } = require('./call');
const { describe } = require('./log');

function install(log) {
  const onError = (kind) => (err) => {
    const call = currentCall();
    if (call === undefined) {
      log.fatal(`${kind} outside any call; exiting:\n${describe(err)}`);
      process.exit(1);
    }
    if (!call.settled) {
      log.error(`function ${call.name} failed (${kind}):\n${describe(err)}`);
      call.fail(err);
    } else {
      log.error(`${kind} in function ${call.name} after it answered:\n${describe(err)}`);
    }
  };
  process.on('uncaughtException', onError('uncaught exception'));
  process.on('unhandledRejection', onError('unhandled rejection'));
}

module.exports = { install };
