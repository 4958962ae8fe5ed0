'use strict';
// The host's HTTP handler: js-host 0.12's routes (GET /status, POST /function/NAME) with its
// status codes and bodies, plus POST /batch, GET /jshost/info, /jshost/health and /metrics.
// Every response carries the identity header. Before routing: the Host header and bearer token
// checks (when configured), and, while the process drains, "not run, send again" answers.

const { readJson, HttpError } = require('./body');
const http = require('./http');
const { pathOf, routeKey, JSON_TYPE, TEXT_TYPE } = http;
const { Call, invoke, timerMs, sooner, plainExpired } = require('./call');
const { Deadlines } = require('./deadlines');
const batch = require('./batch');
const { installQuery } = require('./query');
const { describe } = require('./log');

const FUNCTION_PREFIX = '/function/';
const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const NOT_RUN = 'jshost-node is shutting down: the call was not run; send it again';
const NOT_RUN_HEADERS = ['X-Jshost-Not-Run', '1', 'Connection', 'close'];
const UNAUTHORIZED_HEADERS = ['WWW-Authenticate', 'Bearer'];
// Answers longer than this (characters) are streamed rather than built as one string.
const STREAM_ABOVE = 1 << 20;

/**
 * host: {functions, limit, api (the `this.host` of calls), statusJson(), infoJson(), and
 *   optionally health() -> {status, body} and metrics() -> string}
 * options: {identity (header value), log, verbose,
 *   state: {closing, draining} (read on every request: draining answers 503 "not run"),
 *   callTimeout: ms for every call (see timerMs; the sooner of it and the client's wins),
 *   hooks: {start(name) -> token, end(token, status)} around every call,
 *   watchdog: a Watchdog (watchdog.js) told about deadlines and running calls, or null,
 *   allowedHosts: lowercase host names (no port), or null for any,
 *   authToken: Buffer or null (then every request but GET /jshost/health needs
 *     `Authorization: Bearer TOKEN`)}
 */
function createHandler(
  host,
  {
    identity,
    log,
    verbose,
    state = { closing: false, draining: false },
    callTimeout,
    hooks,
    watchdog = null,
    allowedHosts = null,
    authToken = null,
  },
) {
  installQuery();
  const functions = host.functions;
  const limit = host.limit;
  const defaultMs = timerMs(callTimeout);
  const allowed = allowedHosts === null || allowedHosts === undefined ? null : new Set(allowedHosts);
  const tokenDigest = authToken === null || authToken === undefined ? null : digest(authToken);
  const deadlines = new Deadlines({ expire: (call) => call.expire(), watch: watchdog === null ? null : (call) => watchdog.watch(call) });

  function send(res, status, body, type, extra) {
    http.send(res, identity, status, body, type, extra, state.closing && extra !== NOT_RUN_HEADERS);
  }

  /** Wire contract item 2: this process will not run the request; the client sends it again. */
  function notRun(res) {
    send(res, 503, NOT_RUN, TEXT_TYPE, NOT_RUN_HEADERS);
  }

  /** Answers `answer(res)` once the request's body has been read (and dropped). */
  function afterBody(req, res, answer) {
    if (req.complete) return answer(res);
    req.once('end', () => answer(res));
    req.on('error', () => {});
    req.resume();
  }

  /**
   * Runs `answer()`, the steps that send a call's answer; if one throws, the call gets a 500
   * (or, with its answer already begun, loses its connection) and the host serves on.
   */
  function answering(res, what, answer) {
    try {
      answer();
    } catch (err) {
      answerFailed(res, what, err);
    }
  }

  function answerFailed(res, what, err) {
    log.error(`cannot send the answer of ${what}:\n${describe(err)}`);
    try {
      if (!res.headersSent) return void send(res, 500, `Error: cannot send the answer of ${what}: ${describe(err)}`, TEXT_TYPE);
    } catch {}
    res.destroy();
  }

  /**
   * Sends an answer given as pieces (an iterator of strings). A short answer goes out as one
   * string with its Content-Length; a longer one is streamed (chunked) piece by piece, waiting
   * for the socket to drain, so that no string ever holds it whole.
   */
  function sendPieces(res, status, pieces, type) {
    let head = '';
    for (;;) {
      const next = pieces.next();
      if (next.done) return send(res, status, head, type);
      head += next.value;
      if (head.length > STREAM_ABOVE) break;
    }
    const headers = ['X-Jshost-Node', identity, 'Content-Type', type];
    if (state.closing) headers.push('Connection', 'close');
    res.writeHead(status, headers);
    const flowing = res.write(head);
    head = '';
    const pump = () =>
      answering(res, 'a batch', () => {
        for (;;) {
          if (res.destroyed) return;
          const next = pieces.next();
          if (next.done) return void res.end();
          if (!res.write(next.value)) return void res.once('drain', pump);
        }
      });
    if (flowing) pump();
    else res.once('drain', pump);
  }

  function context(name, req, res) {
    return { name, host: host.api, req, res };
  }

  /**
   * Runs one call (a plain call or a batch item): `ms` is the client's timer (timerMs), the
   * host-wide callTimeout applies too (the sooner wins); `done(status, body)` once, after
   * hooks.end (hooks.start runs now). A failing hook is logged, not fatal.
   */
  function startCall(req, res, name, fn, data, ms, expired, done) {
    const timer = sooner(ms, defaultMs);
    let call;
    if (hooks === undefined) {
      call = new Call(name, done);
    } else {
      const token = startHook(name);
      call = new Call(name, (status, body) => {
        endHook(name, token, status);
        done(status, body);
      });
    }
    call.limit(deadlines, timer, expired);
    invoke(call, fn, context(name, req, res), data, watchdog);
  }

  function startHook(name) {
    try {
      return hooks.start(name);
    } catch (err) {
      log.error(`hooks.start failed for function ${name}:\n${describe(err)}`);
    }
  }

  function endHook(name, token, status) {
    try {
      hooks.end(token, status);
    } catch (err) {
      log.error(`hooks.end failed for function ${name}:\n${describe(err)}`);
    }
  }

  function callFunction(req, res, name, fn, data) {
    const start = verbose ? process.hrtime.bigint() : 0n;
    const ms = timerMs(req.headers['x-jshost-timeout']);
    startCall(req, res, name, fn, data, ms, plainExpired, (status, body) => answerCall(res, name, status, body, start));
  }

  /** Sends a plain call's answer; if that throws, as `answering` does. */
  function answerCall(res, name, status, body, start) {
    try {
      if (status !== 200) log.error(`function ${name} produced an error:\n${body}`);
      if (verbose) logCall(name, status, start);
      if (!res.headersSent && !res.destroyed) send(res, status, body);
    } catch (err) {
      answerFailed(res, `function "${name}"`, err);
    }
  }

  function logCall(name, status, start) {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    log.info(`POST /function/${name} ${status} ${ms.toFixed(2)}ms`);
  }

  function fail(res, err) {
    if (err instanceof HttpError) {
      send(res, err.status, err.body, TEXT_TYPE);
    } else {
      log.error(`request failed:\n${err && err.stack}`);
      send(res, 500, String(err && err.stack), TEXT_TYPE);
    }
  }

  function notFound(req, res, path) {
    send(res, 404, `Cannot ${req.method} ${path}`, TEXT_TYPE);
  }

  // POST /function/NAME: the body is read (and may fail) before the name is looked up, as in
  // js-host (a name that does not decode is a 400).
  function functionRoute(req, res, rawName) {
    let name = rawName;
    if (name.indexOf('%') !== -1) {
      try {
        name = decodeURIComponent(name);
      } catch {
        readJson(req, limit, (err) => fail(res, err || new HttpError(400, 'URIError', `Failed to decode param '${rawName}'`)));
        return;
      }
    }
    namedRoute(req, res, name);
  }

  function namedRoute(req, res, name) {
    readJson(req, limit, (err, data) => {
      if (err) return fail(res, err);
      if (state.draining) return notRun(res);
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
        if (state.draining) return notRun(res);
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
          (results) =>
            answering(res, 'a batch', () => {
              if (!res.headersSent && !res.destroyed) sendPieces(res, 200, batch.answerPieces(items, results), JSON_TYPE);
            }),
          (name) => logItem(name, 404),
        );
      },
      true,
    );
  }

  // Everything but POST /function/NAME: express-like matching (case-insensitive, optional trailing slash).
  function slowRoute(req, res) {
    const path = pathOf(req.url);
    const key = routeKey(path);
    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      if (key === '/jshost/health' && host.health !== undefined) {
        const { status, body } = host.health();
        return send(res, status, body, JSON_TYPE);
      }
      if (key === '/metrics' && host.metrics !== undefined) return send(res, 200, host.metrics(), METRICS_TYPE);
    }
    if (state.draining) return afterBody(req, res, notRun);
    if (method === 'GET' || method === 'HEAD') {
      // --verbose logs every request a client makes, as js-host logs each one (`Host: GET /status`).
      if (verbose) log.info(`${method} ${path}`);
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

  /** allowedHosts and authToken: a refusal was answered (true), or the request may go on. */
  function refused(req, res) {
    if (allowed !== null) {
      const name = hostName(req.headers.host);
      if (!allowed.has(name)) {
        afterBody(req, res, () => send(res, 403, `Host "${name}" is not allowed`, TEXT_TYPE));
        return true;
      }
    }
    if (tokenDigest !== null && !isHealth(req) && !bearerMatches(req.headers.authorization, tokenDigest)) {
      afterBody(req, res, () => send(res, 401, 'missing or wrong bearer token', TEXT_TYPE, UNAUTHORIZED_HEADERS));
      return true;
    }
    return false;
  }

  return function handle(req, res) {
    if ((allowed !== null || tokenDigest !== null) && refused(req, res)) return;
    const url = req.url;
    if (req.method === 'POST' && !state.draining) {
      if (url.startsWith(FUNCTION_PREFIX)) {
        let end = url.indexOf('?', FUNCTION_PREFIX.length);
        if (end === -1) end = url.length;
        const raw = url.slice(FUNCTION_PREFIX.length, end);
        if (raw.length !== 0 && raw.indexOf('/') === -1) return functionRoute(req, res, raw);
      }
    }
    slowRoute(req, res);
  };
}

/** The name in a Host header, lowercase, without its port (an IPv6 address without brackets). */
function hostName(header) {
  if (typeof header !== 'string') return '';
  let name = header;
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    name = end === -1 ? name.slice(1) : name.slice(1, end);
  } else {
    const colon = name.indexOf(':');
    if (colon !== -1) name = name.slice(0, colon);
  }
  return name.toLowerCase();
}

// node:crypto is loaded only with --auth-token-file: it adds to every host's start-up.
let crypto = null;

function digest(bytes) {
  crypto ??= require('node:crypto');
  return crypto.createHash('sha256').update(bytes).digest();
}

/** Whether `Authorization: Bearer TOKEN` carries the token: equal-length digests, compared in constant time. */
function bearerMatches(header, tokenDigest) {
  if (typeof header !== 'string' || header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return false;
  const given = digest(Buffer.from(header.slice(7).trim(), 'latin1'));
  return crypto.timingSafeEqual(given, tokenDigest);
}

/** GET /jshost/health needs no token: probes (Kubernetes, load balancers) carry none. */
function isHealth(req) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  return routeKey(pathOf(req.url)) === '/jshost/health';
}

module.exports = { createHandler, JSON_TYPE };
