'use strict';
// A worker's connections, and draining them (SIGTERM/SIGINT, a retired --watch generation, a
// recycled or replaced worker). Draining sets `state.draining` (server.js then answers every
// request it has not started to run with 503 `X-Jshost-Not-Run: 1`, `Connection: close`, which
// the SDK sends again) and `state.closing` (answers of calls in flight carry `Connection:
// close`). Idle keep-alive connections are not closed at once: a client may be sending on one
// right now, and a request lost in a close cannot be told apart from one that ran. They are
// closed after min(grace, IDLE_CLOSE_MS) (the SDK's pool drops idle connections after 3.5 s),
// and from then on whenever they go idle. `onDone` runs once no connection is left, or when
// the grace period ends.

const IDLE_CLOSE_MS = 4000;

class Connections {
  constructor(server, state, tls) {
    this.state = state;
    this.sockets = new Set(); // what the primary handed us
    this.http = new Set(); // the sockets HTTP runs on (TLS sockets with --tls-cert)
    this.busy = new Map(); // http socket -> requests not yet answered
    this.closeIdle = false;
    this.onDone = null;
    server.on(tls ? 'secureConnection' : 'connection', (socket) => {
      this.http.add(socket);
      socket.once('close', () => {
        this.http.delete(socket);
        this.busy.delete(socket);
      });
    });
    // One listener for every response (`this` is the response): no closure per request.
    const answered = function () {
      connections.answered(this.req.socket);
    };
    const connections = this;
    server.on('request', (req, res) => {
      const socket = req.socket;
      this.busy.set(socket, (this.busy.get(socket) || 0) + 1);
      res.once('close', answered);
    });
  }

  /** A response on `socket` is over (sent, or its connection lost). */
  answered(socket) {
    const left = (this.busy.get(socket) || 1) - 1;
    if (left === 0) this.busy.delete(socket);
    else this.busy.set(socket, left);
    if (this.closeIdle && left === 0) setImmediate(() => this.closeIfIdle(socket));
  }

  add(socket) {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.maybeDone();
    });
  }

  get count() {
    return this.sockets.size;
  }

  /** Starts draining; `onDone(reason)` once no connection is left or after `graceMs`. */
  drain(graceMs, onDone) {
    if (this.onDone !== null) return;
    this.onDone = onDone;
    this.state.draining = true;
    this.state.closing = true;
    setTimeout(() => {
      this.closeIdle = true;
      for (const s of this.http) this.closeIfIdle(s);
      this.maybeDone();
    }, Math.min(graceMs, IDLE_CLOSE_MS)).unref();
    setTimeout(() => this.done('the grace period is over'), graceMs).unref();
    this.maybeDone();
  }

  closeIfIdle(socket) {
    if (!this.busy.has(socket)) socket.destroy();
  }

  maybeDone() {
    if (this.onDone !== null && this.sockets.size === 0) this.done('no connection is left');
  }

  done(reason) {
    const onDone = this.onDone;
    this.onDone = () => {};
    onDone(reason);
  }
}

module.exports = { Connections, IDLE_CLOSE_MS };
