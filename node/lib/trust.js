'use strict';
// What a manager trusts: it runs only configs that are its own user's alone (refusal()), and
// keeps its hosts' logfiles (call data, stack traces) in a directory that is its user's alone.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/**
 * The user's private directory ($XDG_RUNTIME_DIR/jshost, else $TMPDIR/jshost-UID), created
 * 0700; throws unless it is a directory of the user's that no one else may enter (another user
 * may have created it first in a shared /tmp).
 */
function privateDir() {
  const uid = process.getuid();
  const dir = process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'jshost') : path.join(os.tmpdir(), `jshost-${uid}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || st.mode & 0o077) {
    const what = st.isDirectory() ? `owned by ${owner(st.uid)}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}` : 'not a directory';
    throw new Error(`the private directory ${dir} is not ${owner(uid)}'s alone (${what}); remove it`);
  }
  return dir;
}

let seq = 0;

/**
 * A new logfile for a host, created empty and 0600 in the user's private directory. Its name
 * needs no secret part (no one else may enter the directory, and it is created exclusively); it
 * only has to be new.
 */
function hostLogfile() {
  const dir = privateDir();
  for (;;) {
    const file = path.join(dir, `jshost-node-host-${process.pid}-${Date.now().toString(16)}${(seq++).toString(16)}.log`);
    try {
      fs.closeSync(fs.openSync(file, 'wx', 0o600));
      return file;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
  }
}

/**
 * Why the manager refuses to run the config at `hostKey`, or null: the file a host would load
 * (Node's resolution of the path, then its real path) must be a regular file owned by the
 * manager's uid, not writable by group or others; a symbolic link asked for must be the
 * manager's user's too. A path that leads to no file is left to the host, which answers as
 * js-host does ("Cannot find module").
 */
function refusal(hostKey) {
  const uid = process.getuid();
  let file;
  try {
    file = fs.realpathSync(require.resolve(hostKey));
  } catch {
    return null;
  }
  const named = file === hostKey ? file : `${hostKey} (${file})`;
  const link = fs.lstatSync(hostKey, { throwIfNoEntry: false });
  if (link && link.isSymbolicLink() && link.uid !== uid) {
    return `refusing to run ${named}: the symbolic link ${hostKey} is owned by ${owner(link.uid)}, not by ${owner(uid)} who runs this manager`;
  }
  const st = fs.statSync(file);
  if (!st.isFile()) return `refusing to run ${named}: it is not a regular file`;
  if (st.uid !== uid) return `refusing to run ${named}: it is owned by ${owner(st.uid)}, not by ${owner(uid)} who runs this manager`;
  if (st.mode & 0o022) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    return `refusing to run ${named}: it is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (mode ${mode}); make it yours alone (chmod go-w ${file})`;
  }
  return null;
}

/** "uid N (name)", the name from /etc/passwd when it is there. */
function owner(uid) {
  try {
    const entry = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.split(':')[2] === String(uid));
    if (entry) return `uid ${uid} (${entry.split(':')[0]})`;
  } catch {}
  return `uid ${uid}`;
}

module.exports = { privateDir, hostLogfile, refusal };
