'use strict';
// Test helpers: temp fixtures, starting hosts (jshost-node or js-host 0.12) that are always
// stopped after the test, plain HTTP requests, and polling with a deadline.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const http = require('node:http');
const { spawn } = require('node:child_process');

const ROOT = path.join(__dirname, '..', '..');
const JSHOST_NODE = path.join(__dirname, '..', 'bin', 'jshost-node.js');
const JS_HOST = path.join(ROOT, 'node_modules', 'js-host', 'bin', 'js-host.js');
const ENV = { ...process.env, NODE_NO_WARNINGS: '1' };

/** A temp directory removed after the test. */
function tmpDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jshost-node-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(dir, name, text) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Polls `fn` until it returns a truthy value (returned) or the deadline passes (throws). */
async function waitFor(fn, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout}ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Whether `pid` runs (a zombie, exited but not reaped by its parent, does not). */
function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Stops a child: SIGTERM, then SIGKILL; resolves once it exited. */
function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

/**
 * Spawns `node BIN ...args` and waits for its first stdout line. Stopped after the test
 * (after `beforeStop()`, e.g. asking a manager to stop its hosts).
 * Returns {child, line, stderr(), stdout()}.
 */
async function spawnLine(t, bin, args, { cwd, env = ENV, timeout = 10000, stdin = 'ignore', beforeStop } = {}) {
  const child = spawn(process.execPath, [bin, ...args], { cwd, env, stdio: [stdin, 'pipe', 'pipe'] });
  t.after(async () => {
    if (beforeStop) await beforeStop().catch(() => {});
    await stop(child);
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const line = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${err}`);
      const nl = out.indexOf('\n');
      return nl === -1 ? null : out.slice(0, nl);
    },
    { timeout, what: `the first line of ${path.basename(bin)} ${args.join(' ')}` },
  );
  return { child, line, stderr: () => err, stdout: () => out };
}

/** Starts a host (`--port 0 --json` plus `args`); returns {child, status, url, port, stderr()}. */
async function startHost(t, config, args = [], { bin = JSHOST_NODE, ...options } = {}) {
  const started = await spawnLine(t, bin, [config, '--port', '0', '--json', ...args], options);
  const status = JSON.parse(started.line);
  const port = status.config.port;
  return { ...started, status, port, url: `http://127.0.0.1:${port}` };
}

/**
 * One HTTP request on a fresh connection: {status, headers, body}. `socketPath` for Unix sockets.
 */
function request(url, { method = 'POST', headers = {}, body, socketPath, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      // keep-alive: a server answering before the whole body arrived must not close under our writes
      { method, host: u.hostname, port: u.port, path: u.pathname + u.search, headers: { connection: 'keep-alive', ...headers }, agent: false, socketPath, timeout },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
          req.destroy();
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** POST JSON (a string is sent as is). */
function post(url, data, headers = { 'content-type': 'application/json' }, opts = {}) {
  return request(url, { headers, body: typeof data === 'string' ? data : JSON.stringify(data), ...opts });
}

/** A free TCP port below 32768 (outside the ephemeral range), for configs that need a fixed port. */
async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found');
}

/** Pids of the direct children of `pid` (Linux /proc). */
function childPids(pid) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/**
 * The worker pids of a host whose primary is `pid`, remembered: after the test (once the
 * primary is stopped) every worker ever seen must be gone. Returns `workers()`.
 */
function trackWorkers(t, pid) {
  const seen = new Set();
  const workers = () => {
    const now = childPids(pid);
    for (const w of now) seen.add(w);
    return now;
  };
  workers();
  t.after(async () => {
    try {
      await waitFor(() => ![...seen].some(alive), { timeout: 5000, what: `no worker of ${pid} left` });
    } catch (err) {
      for (const w of seen) if (alive(w)) process.kill(w, 'SIGKILL');
      throw err;
    }
  });
  return workers;
}

/** A config (with `extra` config keys) serving `echo` and `pid`, for the manager's tests. */
const hostConfig = (extra = '') => `
module.exports = {
  ${extra}
  functions: {
    echo: function (data, cb) { cb(null, JSON.stringify(data)); },
    pid: function (data, cb) { cb(null, String(process.pid)); }
  }
};
`;

module.exports = {
  ROOT,
  JSHOST_NODE,
  JS_HOST,
  ENV,
  tmpDir,
  write,
  waitFor,
  alive,
  stop,
  spawnLine,
  startHost,
  request,
  post,
  freePort,
  childPids,
  trackWorkers,
  hostConfig,
};
