'use strict';
// Request bodies the way js-host's body-parser (json, strict) reads them: only for
// `content-type: application/json`, up to `requestDataLimit` (413 above), an empty body is
// `{}`, anything but an object or array is a 400 with a JSON.parse-style message.

class HttpError extends Error {
  constructor(status, name, message) {
    super(message);
    this.status = status;
    this.name = name;
  }

  /** The plain-text body: the first line of what js-host's error page shows. */
  get body() {
    return `${this.name}: ${this.message}`;
  }
}

/** Whether body-parser would parse this request's body as JSON; throws a 415 HttpError for other charsets. */
function isJsonRequest(req) {
  const type = req.headers['content-type'];
  if (type === undefined) return false;
  if (type === 'application/json') return true;
  const semi = type.indexOf(';');
  const mime = (semi === -1 ? type : type.slice(0, semi)).trim().toLowerCase();
  if (mime !== 'application/json') return false;
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(type);
  if (m && !m[1].toLowerCase().startsWith('utf-')) {
    throw new HttpError(415, 'UnsupportedMediaTypeError', `unsupported charset "${m[1].toUpperCase()}"`);
  }
  return true;
}

/** Reads the whole body as text, `onDone(err, text)`; 413 past `limit` bytes. */
function readText(req, limit, onDone) {
  const declared = req.headers['content-length'];
  let source = req;
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding !== 'identity') {
    const enc = encoding.toLowerCase();
    if (enc === 'gzip' || enc === 'deflate') {
      // node:zlib is loaded only when used: it adds to every host's start-up.
      const zlib = require('node:zlib');
      source = req.pipe(enc === 'gzip' ? zlib.createGunzip() : zlib.createInflate());
    } else {
      onDone(new HttpError(415, 'UnsupportedMediaTypeError', `unsupported content encoding "${enc}"`));
      return;
    }
  } else if (declared !== undefined && Number(declared) > limit) {
    onDone(tooLarge());
    return;
  }
  let first = null;
  let chunks = null;
  let size = 0;
  let finished = false;
  source.on('data', (chunk) => {
    if (finished) return;
    size += chunk.length;
    if (size > limit) {
      finished = true;
      onDone(tooLarge());
      return;
    }
    if (first === null) first = chunk;
    else if (chunks === null) chunks = [first, chunk];
    else chunks.push(chunk);
  });
  source.on('end', () => {
    if (finished) return;
    finished = true;
    const buf = chunks !== null ? Buffer.concat(chunks, size) : first;
    onDone(null, buf === null ? '' : buf.toString('utf8'));
  });
  // A request emits 'error' only when it is aborted, and only to a listener: then nobody is
  // left to answer. A decompressing stream emits its errors.
  if (source !== req) {
    source.on('error', (err) => {
      if (finished) return;
      finished = true;
      onDone(new HttpError(400, 'BadRequestError', err.message));
    });
  }
}

function tooLarge() {
  return new HttpError(413, 'PayloadTooLargeError', 'request entity too large');
}

/** body-parser's strict JSON: {} for an empty body, an object or an array, else a SyntaxError. */
function parseJson(text) {
  if (text.length === 0) return {};
  let c = text.charCodeAt(0);
  if (c === 0xfeff) {
    text = text.slice(1);
    c = text.charCodeAt(0);
  }
  if (c !== 123 && c !== 91) {
    const m = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d])/.exec(text);
    const first = m ? m[1] : undefined;
    if (first !== '{' && first !== '[') throw strictError(text, first);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'SyntaxError', err.message);
  }
}

// The message JSON.parse gives for the first character, as body-parser words it.
function strictError(text, first) {
  const index = first === undefined ? -1 : text.indexOf(first);
  const partial = index === -1 ? '' : text.slice(0, index) + '#'.repeat(text.length - index);
  try {
    JSON.parse(partial);
  } catch (err) {
    const message = err.message.replace(/#+/g, (hashes) => text.slice(index, index + hashes.length));
    return new HttpError(400, 'SyntaxError', message);
  }
  return new HttpError(400, 'SyntaxError', 'strict violation');
}

/**
 * The parsed body for a request, `onDone(err, data)`: `{}` when body-parser would not read it.
 * With `always`, parse whatever the content-type (our own endpoints).
 */
function readJson(req, limit, onDone, always = false) {
  let json;
  try {
    json = always || isJsonRequest(req);
  } catch (err) {
    onDone(err);
    return;
  }
  if (!json) {
    // Not parsed (js-host gives `{}`), but read to the end before answering: answering first
    // would close the connection under a client still sending.
    if (req.complete || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)) {
      onDone(null, {});
    } else {
      req.on('end', () => onDone(null, {}));
      req.on('error', () => {});
      req.resume();
    }
    return;
  }
  readText(req, limit, (err, text) => {
    if (err) {
      onDone(err);
      return;
    }
    let data;
    try {
      data = parseJson(text);
    } catch (e) {
      onDone(e);
      return;
    }
    onDone(null, data);
  });
}

module.exports = { readJson, parseJson, HttpError };
