// jshost-bench: a plain node:http echo server, the reference for any Node host on node:http. It
// parses the JSON body and answers JSON.stringify of it, as the `echo` function does, and prints
// a status line with its port as the hosts do with `--json`.
'use strict';
const http = require('node:http');
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch (e) {
      res.writeHead(400);
      return res.end(String(e));
    }
    res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ type: 'Host', config: { port: server.address().port } }) + '\n');
});
