'use strict';
// Versions: the package's own, and the js-host protocol version it speaks (what clients check).

const { version } = require('../package.json');

module.exports = {
  NAME: 'jshost-node',
  VERSION: version,
  PROTOCOL_VERSION: '0.12.0',
  BIN: require('node:path').join(__dirname, '..', 'bin', 'jshost-node.js'),
};
