'use strict';
// --auth-token-file, --tls-cert, --tls-key: read once, by the primary, at start (workers get
// them over the IPC channel, never through their environment or command line). A token file
// or key file that group or others may read or write is refused: anyone who can read it can
// call the host, anyone who can write it can choose the token. The token is never logged.

const fs = require('node:fs');

class SecretError extends Error {}

function readPrivate(file, what) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new SecretError(`cannot read the ${what} ${file}: ${err.message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SecretError(`the ${what} ${file} is not a regular file`);
    if (st.mode & 0o066) {
      throw new SecretError(`the ${what} ${file} is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** {token: base64 | null, tls: {cert, key} | null} for `opts`; throws SecretError. */
function readSecrets(opts) {
  let token = null;
  if (opts.authTokenFile !== undefined) {
    const text = readPrivate(opts.authTokenFile, '--auth-token-file').toString('utf8').trim();
    if (text.length === 0) throw new SecretError(`the --auth-token-file ${opts.authTokenFile} is empty`);
    token = Buffer.from(text, 'utf8').toString('base64');
  }
  let tls = null;
  if (opts.tlsCert !== undefined) {
    let cert;
    try {
      cert = fs.readFileSync(opts.tlsCert, 'utf8');
    } catch (err) {
      throw new SecretError(`cannot read the --tls-cert ${opts.tlsCert}: ${err.message}`);
    }
    const key = readPrivate(opts.tlsKey, '--tls-key').toString('utf8');
    try {
      require('node:tls').createSecureContext({ cert, key });
    } catch (err) {
      throw new SecretError(`--tls-cert ${opts.tlsCert} and --tls-key ${opts.tlsKey} do not make a usable certificate and key: ${err.message}`);
    }
    tls = { cert, key };
  }
  return { token, tls };
}

module.exports = { readSecrets, SecretError };
