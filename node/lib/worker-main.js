'use strict';
// Entry point of cluster workers (see cluster.js).

require('./worker').runWorker(JSON.parse(process.env.JSHOST_NODE_WORKER));
