// The functions jshost-bench calls (`cargo run --release -p jshost-bench -- --help`).
// CommonJS and no `async function`, so that js-host 0.12 loads it too (it is only sent `echo`).
// marked and react are root devDependencies used by the bench alone, required on first use so
// that start-up figures do not include them.
'use strict';

const crypto = require('node:crypto');

let marked = null;
let react = null;
const blobs = new Map();
// What `leak` keeps for ever: a module-level cache that is never emptied, as in a leaking SSR host.
const leaked = [];

module.exports = {
  functions: {
    // Its input as JSON: the cheapest function, so the bench measures transport.
    echo: function (data, cb) {
      cb(null, JSON.stringify(data));
    },
    // An async function that awaits `ms` milliseconds (default 200), as a call to a slow service.
    sleep: function (data) {
      const ms = Number(data.ms) || 200;
      return new Promise((resolve) => setTimeout(() => resolve('slept ' + ms), ms));
    },
    // {"markdown": TEXT} -> its HTML, rendered by marked.
    markdown: function (data, cb) {
      marked = marked || require('marked').marked;
      cb(null, marked.parse(String(data.markdown)));
    },
    // {"title", "items": [{"id", "name", "price"}]} -> an HTML page rendered by React's renderToString.
    react: function (data, cb) {
      if (!react) {
        const React = require('react');
        react = { h: React.createElement, render: require('react-dom/server').renderToString };
      }
      const h = react.h;
      const row = (item) => h('tr', { key: item.id, id: 'item-' + item.id },
        h('td', null, item.name), h('td', { className: 'price' }, item.price));
      const page = h('html', null, h('head', null, h('title', null, data.title)),
        h('body', null, h('h1', null, data.title), h('table', null, h('tbody', null, data.items.map(row)))));
      cb(null, react.render(page));
    },
    // {"size": N} -> a string of N bytes (the same string each time: the answer's size is measured).
    blob: function (data, cb) {
      const size = Math.min(Number(data.size) || 65536, 16 << 20);
      if (!blobs.has(size)) blobs.set(size, 'x'.repeat(size));
      cb(null, blobs.get(size));
    },
    // Keeps 10 KB on the heap per call (1 MB per 100 calls) and answers how many it holds.
    leak: function (data, cb) {
      leaked.push(crypto.randomBytes(5120).toString('hex'));
      cb(null, String(leaked.length));
    }
  }
};
