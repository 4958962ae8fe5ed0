'use strict';
// The log: errors always go to stderr and to the --logfile; info lines (start, stop, manager
// actions, and one line per call with --verbose) go to the logfile, and to stderr with
// --verbose. stdout is kept for the status line that clients parse.

const fs = require('node:fs');
const path = require('node:path');

class Log {
  constructor({ logfile, verbose = false, name = 'jshost-node' } = {}) {
    this.verbose = verbose;
    this.name = name;
    this.fd = null;
    if (logfile) {
      const file = path.isAbsolute(logfile) ? logfile : path.join(process.cwd(), logfile);
      this.fd = fs.openSync(file, 'a');
      this.file = file;
    }
  }

  line(level, text) {
    return `${new Date().toISOString()} ${this.name}[${process.pid}] ${level}: ${text}\n`;
  }

  toFile(line) {
    if (this.fd === null) return;
    try {
      fs.writeSync(this.fd, line);
    } catch {
      // A full disk or a removed file must not take the host down.
    }
  }

  info(text) {
    const line = this.line('info', text);
    this.toFile(line);
    if (this.verbose) process.stderr.write(line);
  }

  error(text) {
    const line = this.line('error', text);
    this.toFile(line);
    process.stderr.write(line);
  }

  /** An error logged right before the process exits: written synchronously. */
  fatal(text) {
    const line = this.line('error', text);
    this.toFile(line);
    try {
      fs.writeSync(2, line);
    } catch {
      process.stderr.write(line);
    }
  }

  /** winston-like methods for config code that uses `this.host.logger`. */
  get logger() {
    const log = this;
    const join = (args) => args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.stack : JSON.stringify(a))).join(' ');
    return {
      info: (...a) => log.info(join(a)),
      log: (level, ...a) => (level === 'error' ? log.error(join(a)) : log.info(join(a))),
      debug: (...a) => log.info(join(a)),
      verbose: (...a) => log.info(join(a)),
      warn: (...a) => log.error(join(a)),
      error: (...a) => log.error(join(a)),
    };
  }
}

/** The text of anything thrown: its stack for errors. */
function describe(err) {
  if (err instanceof Error || (err && typeof err.stack === 'string')) return err.stack;
  try {
    return String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

module.exports = { Log, describe };
