'use strict';

// js-host runs functions with Express's `this.req`, whose `query` is the parsed query string,
// and configs read it (`this.req.query.hash`). Node's IncomingMessage has no `query`: give it a
// lazy one, parsed on first use, so requests that never read it pay nothing.

const http = require('node:http');

function parse(url) {
  const q = url.indexOf('?');
  return q < 0 ? {} : Object.fromEntries(new URLSearchParams(url.slice(q + 1)));
}

function own(req, value) {
  Object.defineProperty(req, 'query', { value, writable: true, configurable: true, enumerable: true });
}

function installQuery() {
  if (Object.getOwnPropertyDescriptor(http.IncomingMessage.prototype, 'query')) return;
  Object.defineProperty(http.IncomingMessage.prototype, 'query', {
    configurable: true,
    get() {
      const value = parse(this.url || '');
      own(this, value);
      return value;
    },
    set(value) {
      own(this, value);
    },
  });
}

module.exports = { installQuery, parse };
