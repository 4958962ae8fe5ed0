// The functions jshost's quick start and examples call. Each is `function (data, cb)`:
// call `cb(null, output)` with a string or an object (sent as JSON), or `cb(err)` to fail.
'use strict';

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
  });
}

module.exports = {
  functions: {
    // The quick start: {"name": "Foo"} -> "Hello, Foo!"
    hello_world: function (data, cb) {
      var name = data.name || 'World';
      cb(null, 'Hello, ' + name + '!');
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
