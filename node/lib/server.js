'use strict';
// The host's HTTP handler: js-host 0.12's routes (GET /status, POST /function/NAME) with its
// status codes and bodies, plus POST /batch and GET /jshost/info. Every response carries the
// identity header. The hot path (POST /function/NAME) avoids URL objects and extra work.

const { readJson, HttpError } = require('./body');
const { Call, invoke, timerMs, sooner, plainExpired } = require('./call');
const batch = require('./batch');
const { installQuery } = require('./query');

const FUNCTION_PREFIX = '/function/';
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * host: {functions, limit, api (the `this.host` of calls), statusJson(), infoJson()}
 * options: {identity (header value), log, verbose, state: {closing}, callTimeout (ms)}
 */
function createHandler(host, { identity, log, verbose, state = { closing: false }, callTimeout }) {
  installQuery();
  const functions = host.functions;
  const limit = host.limit;
  const defaultMs = timerMs(callTimeout);

  function send(res, status, body, type) {
    const headers = ['X-Jshost-Node', identity, 'Content-Length', Buffer.byteLength(body)];
    if (type !== undefined) headers.push('Content-Type', type);
    if (state.closing) headers.push('Connection', 'close');
    res.writeHead(status, headers);
    res.end(body);
  }

  function context(name, req, res) {
    return { name, host: host.api, req, res };
  }

  /**
   * Runs one call (a plain call or a batch item): `ms` is the client's timer (timerMs), the
   * host-wide callTimeout applies too (the sooner wins); `done(status, body)` once.
   */
  function startCall(req, res, name, fn, data, ms, expired, done) {
    const call = new Call(name, done);
    call.limit(sooner(ms, defaultMs), expired);
    invoke(call, fn, context(name, req, res), data);
  }

  function callFunction(req, res, name, fn, data) {
    const start = verbose ? process.hrtime.bigint() : 0n;
    const ms = timerMs(req.headers['x-jshost-timeout']);
    startCall(req, res, name, fn, data, ms, plainExpired, (status, body) => {
      if (status !== 200) log.error(`function ${name} produced an error:\n${body}`);
      if (verbose) logCall(name, status, start);
      if (!res.headersSent && !res.destroyed) send(res, status, body);
    });
  }

  function logCall(name, status, start) {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    log.info(`POST /function/${name} ${status} ${ms.toFixed(2)}ms`);
  }

  function fail(res, err) {
    if (err instanceof HttpError) {
      send(res, err.status, err.body, 'text/plain; charset=utf-8');
    } else {
      log.error(`request failed:\n${err && err.stack}`);
      send(res, 500, String(err && err.stack), 'text/plain; charset=utf-8');
    }
  }

  function notFound(req, res, path) {
    send(res, 404, `Cannot ${req.method} ${path}`, 'text/plain; charset=utf-8');
  }

  // POST /function/NAME: the body is read (and may fail) before the name is looked up, as in
  // js-host. Returns the decoded name, or undefined when it does not decode (a 400).
  function functionRoute(req, res, rawName) {
    let name = rawName;
    if (name.indexOf('%') !== -1) {
      try {
        name = decodeURIComponent(name);
      } catch {
        readJson(req, limit, (err) => fail(res, err || new HttpError(400, 'URIError', `Failed to decode param '${rawName}'`)));
        return undefined;
      }
    }
    namedRoute(req, res, name);
    return name;
  }

  function namedRoute(req, res, name) {
    readJson(req, limit, (err, data) => {
      if (err) return fail(res, err);
      const fn = functions[name];
      if (fn === undefined) {
        if (verbose) log.info(`request for unknown function "${name}"`);
        send(res, 404, `Not found. Unknown function "${name}"`);
        return;
      }
      callFunction(req, res, name, fn, data);
    });
  }

  function batchRoute(req, res) {
    readJson(
      req,
      limit,
      (err, items) => {
        if (err) return fail(res, err);
        try {
          batch.validate(items);
        } catch (e) {
          return fail(res, e);
        }
        const logItem = (name, status) => {
          if (verbose) log.info(`POST /batch ${name} ${status}`);
        };
        batch.runBatch(
          items,
          functions,
          (name, fn, data, ms, expired, done) =>
            startCall(req, res, name, fn, data, ms, expired, (status, body) => {
              logItem(name, status);
              done(status, body);
            }),
          (results) => {
            if (!res.headersSent && !res.destroyed) send(res, 200, JSON.stringify(results), JSON_TYPE);
          },
          (name) => logItem(name, 404),
        );
      },
      true,
    );
  }

  // Everything but the hot path: express-like matching (case-insensitive, optional trailing slash).
  function slowRoute(req, res) {
    const url = req.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let key = path.toLowerCase();
    if (key.length > 1 && key.endsWith('/')) key = key.slice(0, -1);
    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      if (key === '/status') return send(res, 200, host.statusJson(), JSON_TYPE);
      if (key === '/jshost/info') return send(res, 200, host.infoJson(), JSON_TYPE);
    }
    if (method === 'POST') {
      if (key.startsWith(FUNCTION_PREFIX)) {
        let raw = path.slice(FUNCTION_PREFIX.length);
        if (raw.endsWith('/')) raw = raw.slice(0, -1);
        if (raw.length !== 0 && raw.indexOf('/') === -1) return functionRoute(req, res, raw);
      } else if (key === '/batch') {
        return batchRoute(req, res);
      }
    }
    // js-host parses a JSON body before finding that no route matches.
    readJson(req, limit, (err) => (err ? fail(res, err) : notFound(req, res, path)));
  }

  // The URL the hot path last routed and its function's name: a client calling one function
  // over and over (the usual case) has its URL neither parsed again nor the name, a new string
  // each time, looked up in V8's string table (~900 instructions a call).
  let lastUrl = null;
  let lastName = '';

  return function handle(req, res) {
    const url = req.url;
    if (req.method === 'POST') {
      if (url === lastUrl) return namedRoute(req, res, lastName);
      if (url.startsWith(FUNCTION_PREFIX)) {
        let end = url.indexOf('?', FUNCTION_PREFIX.length);
        if (end === -1) end = url.length;
        const raw = url.slice(FUNCTION_PREFIX.length, end);
        if (raw.length !== 0 && raw.indexOf('/') === -1) {
          const name = functionRoute(req, res, raw);
          if (name !== undefined) {
            lastUrl = url;
            lastName = name;
          }
          return;
        }
      }
    }
    slowRoute(req, res);
  };
}

module.exports = { createHandler, JSON_TYPE };
