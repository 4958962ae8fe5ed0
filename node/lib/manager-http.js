'use strict';
// The manager's HTTP side: js-host 0.12's routes (GET /status, POST /manager/stop,
// POST /host/start|stop|restart|status|connect|disconnect) with its answers, and
// GET /jshost/info. Requests whose Host header names neither a loopback name or address nor
// the manager's configured address are refused (403): a web page cannot drive the manager
// through DNS rebinding.

const path = require('node:path');
const { readJson, HttpError } = require('./body');
const { send, pathOf, routeKey, JSON_TYPE, TEXT_TYPE } = require('./http');
const { describe } = require('./log');
const { NAME, VERSION } = require('./version');
const { features } = require('./args');

// /host/ACTION -> the manager's method, and whether it waits for the previous operation on
// the config (status and disconnect only read or note something: never queued behind a start).
const ACTIONS = {
  start: ['start', true],
  stop: ['stop', true],
  restart: ['restart', true],
  status: ['hostStatus', false],
  connect: ['connect', true],
  disconnect: ['disconnect', false],
};

/**
 * Whether a Host header names a manager configured with `address`: a loopback name or address
 * (localhost, 127.0.0.0/8, [::1]) or `address` itself. No header: not a browser, allowed.
 */
function hostAllowed(header, address) {
  if (header === undefined) return true;
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/i.test(header)) return false;
  let name;
  try {
    name = new URL(`http://${header}`).hostname; // canonical: IPv4 forms, IPv6 zeros, case
  } catch {
    return false;
  }
  if (name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name)) return true;
  const own = String(address).toLowerCase();
  return name === own || name === `[${own}]`;
}

/** The request handler of `manager` (manager.js), run with the command-line `opts`. */
function createManagerHandler(manager, opts) {
  const identity = `${VERSION}; features=${features(opts).join(',')}`;
  const reply = (res, status, body, type, close) => send(res, identity, status, body, type, undefined, close);
  const json = (res, value) => reply(res, 200, JSON.stringify(value), JSON_TYPE);
  // A request that reaches a manager on its way out: nothing was done.
  const stopping = (res) => reply(res, 503, 'the manager is stopping', TEXT_TYPE, true);

  async function route(res, method, key, rawPath, body) {
    if (method === 'POST' && key === '/manager/stop') {
      reply(res, 200, 'Stopping...');
      return manager.shutdown('/manager/stop');
    }
    const config = body && body.config;
    if (!config) return reply(res, 500, 'No `config` data provided');
    const name = method === 'POST' && key.startsWith('/host/') ? key.slice(6) : null;
    const action = name !== null && Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
    if (!action) return reply(res, 404, `Cannot ${method} ${rawPath}`, TEXT_TYPE);
    if (action[0] === 'disconnect' && !body.connection) return reply(res, 500, 'No `connection` data provided');
    const configText = String(config);
    const hostKey = path.resolve(configText);
    const run = () => manager[action[0]](hostKey, configText, body);
    const [status, answer] = await (action[1] ? manager.locked(hostKey, run) : run());
    if (status === 400 || status === 403) reply(res, status, answer, TEXT_TYPE);
    else if (typeof answer === 'string') reply(res, status, answer);
    else json(res, answer);
    manager.exitIfIdle();
  }

  return function handle(req, res) {
    const rawPath = pathOf(req.url);
    const key = routeKey(rawPath);
    const method = req.method;
    if (opts.socket === undefined && !hostAllowed(req.headers.host, manager.config.address)) {
      return reply(res, 403, `Host ${JSON.stringify(req.headers.host)} is not allowed`, TEXT_TYPE);
    }
    if (manager.exiting) return stopping(res);
    if ((method === 'GET' || method === 'HEAD') && key === '/status') return json(res, manager.status());
    if (method === 'GET' && key === '/jshost/info') {
      return json(res, { name: NAME, version: VERSION, features: features(opts), workers: 1, generation: 1, pid: process.pid });
    }
    readJson(req, manager.limit, (err, body) => {
      if (err) return reply(res, err instanceof HttpError ? err.status : 500, err instanceof HttpError ? err.body : describe(err), TEXT_TYPE);
      if (manager.exiting) return stopping(res);
      route(res, method, key, rawPath, body).catch((e) => {
        manager.log.error(`manager: ${method} ${rawPath} failed:\n${describe(e)}`);
        if (!res.headersSent) reply(res, 500, describe(e));
      });
    });
  };
}

module.exports = { createManagerHandler };
