'use strict';
// --watch: calls `onChange` (debounced) when one of a set of files changes. Watches their
// directories, so that editors that replace a file (write + rename) are seen too.

const fs = require('node:fs');
const path = require('node:path');

const DEBOUNCE_MS = 60;

class Watcher {
  constructor(onChange, log) {
    this.onChange = onChange;
    this.log = log;
    this.files = new Set();
    this.dirs = new Map(); // dir -> fs.FSWatcher
    this.timer = null;
  }

  /** Watches exactly `files` (absolute paths) from now on. */
  set(files) {
    this.files = new Set(files.filter((f) => !f.startsWith('node:')));
    const wanted = new Set([...this.files].map((f) => path.dirname(f)));
    for (const [dir, w] of this.dirs) {
      if (!wanted.has(dir)) {
        w.close();
        this.dirs.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.dirs.has(dir)) continue;
      try {
        const w = fs.watch(dir, { persistent: false }, (event, name) => this.changed(dir, name));
        w.on('error', () => {});
        this.dirs.set(dir, w);
      } catch (err) {
        this.log.error(`--watch: cannot watch ${dir}: ${err.message}`);
      }
    }
  }

  changed(dir, name) {
    if (name && !this.files.has(path.join(dir, name.toString()))) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onChange(name ? path.join(dir, name.toString()) : dir), DEBOUNCE_MS);
  }

  close() {
    clearTimeout(this.timer);
    for (const w of this.dirs.values()) w.close();
    this.dirs.clear();
  }
}

module.exports = { Watcher };
