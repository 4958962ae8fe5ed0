'use strict';
// The command line: js-host 0.12's modes (host, --manager, --config, --detached). A host is
// always a cluster primary with its workers (one by default): see cluster.js.

const { parseArgs, USAGE, UsageError } = require('./args');
const { VERSION } = require('./version');

async function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${USAGE}\n\n${err.message}\n`);
    process.exitCode = 1;
    return;
  }
  if (opts.help) return void process.stdout.write(USAGE + '\n');
  if (opts.version) return void process.stdout.write(VERSION + '\n');

  if (opts.detached) return require('./detach').runDetached(argv, () => expectedStatus(opts));
  if (opts.config) return void process.stdout.write(JSON.stringify(await expectedStatus(opts)) + '\n');
  if (opts.manager) return require('./manager').runManager(opts);
  return require('./cluster').runPrimary(opts);
}

/** The status the process would report (what --config prints), or exit 1 with the reason. */
async function expectedStatus(opts) {
  const { Log, describe } = require('./log');
  const log = new Log({ verbose: false });
  try {
    const { loadConfig, effectiveConfig, statusOf } = require('./config');
    const { config } = await loadConfig(opts.configFile);
    if (opts.manager) return statusOf(effectiveConfig(config, { manager: true, port: opts.port }), 'Manager');
    return require('./host').buildHost(config, opts, log).status();
  } catch (err) {
    log.fatal(`cannot read the config ${opts.configFile}:\n${describe(err)}`);
    process.exit(1);
  }
}

module.exports = { main, expectedStatus };
