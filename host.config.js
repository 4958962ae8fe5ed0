// The functions jshost's quick start and examples call, served by jshost-node (the SDK's default
// host). A function is either
// - `async function (data)` (or any function of fewer than two parameters): it returns its output,
//   or a Promise of it; a throw or a rejection fails the call. jshost-node only: js-host 0.12
//   refuses to load a config holding an `async function` ("Function handlers must be functions")
//   and ignores returned Promises. Or
// - `function (data, cb)`, js-host's style, which both hosts run: call `cb(null, output)`, or
//   `cb(err)` to fail.
// Output: a string is sent as is, an object as JSON.
'use strict';

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
  });
}

module.exports = {
  functions: {
    // The quick start: {"name": "Foo"} -> "Hello, Foo!"
    hello_world: async function (data) {
      return 'Hello, ' + (data.name || 'World') + '!';
    },
    // Returns its input as JSON.
    echo: function (data, cb) {
      cb(null, JSON.stringify(data));
    },
    // {"number": 20} -> "40"; an error without a number.
    double: function (data, cb) {
      if (typeof data.number !== 'number') {
        return cb(new Error('No number was provided'));
      }
      cb(null, String(data.number * 2));
    },
    // Server-side rendering: {"title", "items": [{"name", "price"}]} -> an HTML page.
    render: function (data, cb) {
      if (!Array.isArray(data.items)) {
        return cb(new Error('render needs `items`, an array'));
      }
      var rows = data.items.map(function (item, i) {
        return '<tr class="' + (i % 2 ? 'odd' : 'even') + '"><td>' + escapeHtml(item.name) +
          '</td><td>' + escapeHtml(item.price) + '</td></tr>';
      });
      cb(null, '<!doctype html><html><head><title>' + escapeHtml(data.title || 'Items') +
        '</title></head><body><table>' + rows.join('') + '</table></body></html>');
    }
  }
};
