'use strict';
// Loading a config file (CommonJS, `.mjs`, or a `.js` file using `export default`) and
// computing the status js-host 0.12 reports for it.

const path = require('node:path');
const { pathToFileURL, fileURLToPath } = require('node:url');
const { PROTOCOL_VERSION } = require('./version');

// js-host's defaults, in the order lodash's _.defaults appends them to the config object.
const HOST_DEFAULTS = [
  ['functions', null],
  ['address', '127.0.0.1'],
  ['port', '9009'],
  ['logger', null],
  ['silent', false],
  ['outputOnListen', true],
  ['requestDataLimit', '10mb'],
];
const MANAGER_DEFAULTS = [
  ['disconnectTimeout', 5000],
  ['stopManagerIfNoConnections', true],
  ...HOST_DEFAULTS.slice(1),
];
// Keys js-host leaves out of the status.
const HIDDEN = new Set(['logger', 'silent', 'outputOnListen', 'disconnectTimeout', 'stopManagerIfNoConnections']);

const OWN_DIR = path.join(__dirname, '..') + path.sep;

class ConfigError extends Error {}

/** The absolute path of a config file given on the command line (relative to the cwd). */
function resolveConfigPath(file) {
  return path.isAbsolute(file) ? file : path.join(process.cwd(), file);
}

/**
 * Loads the config file: {file, config, files()} where `files()` lists the files it loaded
 * (for --watch). CommonJS first, like js-host's require(); ES modules through import().
 */
async function loadConfig(file) {
  const abs = resolveConfigPath(file);
  let exported;
  if (abs.endsWith('.mjs')) {
    exported = await importEsm(abs);
  } else {
    try {
      exported = require(abs);
    } catch (err) {
      if (err && err.code === 'ERR_REQUIRE_ESM') {
        exported = await importEsm(abs);
      } else if (err instanceof SyntaxError && isEsmSyntaxError(err)) {
        exported = await importEsm(abs, true);
      } else {
        throw err;
      }
    }
    if (exported && exported.__esModule && exported.default !== undefined) exported = exported.default;
  }
  const config = exported;
  if (!isObject(config) || isEmptyPlainObject(config)) {
    throw new ConfigError(`Config file does not export an object. "${abs}"`);
  }
  return { file: abs, config, files: () => loadedFiles(abs) };
}

function isEsmSyntaxError(err) {
  return /\b(export|import)\b|import statement outside a module/.test(err.message);
}

// ES modules: a load hook (in Node's hooks thread) reports every file URL it loads, for
// --watch, and tells Node that the config is a module when it is a `.js` file written as one
// inside a CommonJS package (other files are left alone).
const HOOKS =
  'let force = null; let port = null;' +
  'export function initialize(data) { force = data.force; port = data.port; }' +
  'export async function load(url, context, next) {' +
  '  if (url.startsWith("file:")) port.postMessage(url);' +
  '  return next(url, url === force ? { ...context, format: "module" } : context); }';

const esmFiles = new Set();

async function importEsm(abs, force = false) {
  const url = pathToFileURL(abs).href;
  const { register } = require('node:module');
  if (typeof register === 'function') {
    // Node 20.6+; before that, a `.js` config using `export default` needs "type": "module".
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (u) => esmFiles.add(fileURLToPath(u)));
    port1.unref();
    register('data:text/javascript,' + encodeURIComponent(HOOKS), {
      data: { force: force ? url : null, port: port2 },
      transferList: [port2],
    });
  }
  const ns = await import(url);
  // Let the hooks thread's last messages arrive.
  await new Promise((resolve) => setImmediate(resolve));
  if (ns.default !== undefined) return ns.default;
  return { ...ns };
}

function loadedFiles(configFile) {
  const files = new Set([configFile, ...esmFiles]);
  for (const f of Object.keys(require.cache)) {
    if (!f.startsWith(OWN_DIR)) files.add(f);
  }
  return [...files];
}

function isObject(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function');
}

function isEmptyPlainObject(v) {
  if (typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return (proto === Object.prototype || proto === null) && Object.keys(v).length === 0;
}

/**
 * The config object a js-host Host or Manager works with: the user's keys in their order,
 * js-host's defaults appended where a key is undefined, then the --port override.
 */
function effectiveConfig(userConfig, { manager = false, port } = {}) {
  const config = Object.assign({}, userConfig);
  for (const [key, value] of manager ? MANAGER_DEFAULTS : HOST_DEFAULTS) {
    if (config[key] === undefined) config[key] = value;
  }
  if (port !== undefined) config.port = port;
  return config;
}

/** js-host's status for an effective config: hidden keys removed, functions as names. */
function statusOf(config, type) {
  const shown = {};
  for (const key of Object.keys(config)) {
    if (HIDDEN.has(key)) continue;
    const value = config[key];
    shown[key] = key === 'functions' && value ? Object.keys(value) : value;
  }
  return { type, version: PROTOCOL_VERSION, config: shown };
}

/** Validates `functions` like js-host's Host does; returns a name -> function table. */
function functionTable(functions) {
  const table = Object.create(null);
  if (!functions) return table;
  for (const name of Object.keys(functions)) addFunction(table, name, functions[name]);
  return table;
}

function addFunction(table, name, fn) {
  if (table[name] !== undefined) throw new ConfigError(`A function has already been defined with the name "${name}"`);
  if (typeof name !== 'string' || !name.length) throw new ConfigError(`"${name}" is not a valid function name`);
  if (typeof fn !== 'function') throw new ConfigError(`Function handlers must be functions (function "${name}")`);
  table[name] = fn;
}

/** A port the config or --port may give: a number or numeric string 0-65535. */
function listenPort(port) {
  const n = typeof port === 'number' ? port : /^\d+$/.test(String(port)) ? Number(port) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`Invalid port ${JSON.stringify(port)}`);
  return n;
}

module.exports = {
  loadConfig,
  resolveConfigPath,
  effectiveConfig,
  statusOf,
  functionTable,
  addFunction,
  listenPort,
  ConfigError,
};
