'use strict';
// The HTTP plumbing the host (server.js) and the manager share: sending an answer, and the
// path routes match (express-like: case-insensitive, optional trailing slash, query ignored).
// Reading a JSON body is body.js's job.

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

/**
 * Sends `body` (a string) with `status`, the identity header (`X-Jshost-Node: identity`), its
 * Content-Length, `type` as Content-Type (none when undefined), the raw `extra` headers
 * ([name, value, ...]) and, with `close`, Connection: close.
 */
function send(res, identity, status, body, type, extra, close) {
  const headers = ['X-Jshost-Node', identity, 'Content-Length', Buffer.byteLength(body)];
  if (type !== undefined) headers.push('Content-Type', type);
  if (extra !== undefined) headers.push(...extra);
  if (close) headers.push('Connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
}

/** The path of a request URL, without its query. */
function pathOf(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** What routes match for `path`: lowercase, without a trailing slash (but "/"). */
function routeKey(path) {
  const key = path.toLowerCase();
  return key.length > 1 && key.endsWith('/') ? key.slice(0, -1) : key;
}

module.exports = { send, pathOf, routeKey, JSON_TYPE, TEXT_TYPE };
