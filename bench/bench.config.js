// The functions jshost-bench calls (`cargo run --release -p jshost-bench`). Each is
// `function (data, cb)`; the bench sends the same data to every client it measures.
'use strict';

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
  });
}

module.exports = {
  functions: {
    // Returns its input as JSON: the cheapest possible function, so the bench measures transport.
    echo: function (data, cb) {
      cb(null, JSON.stringify(data));
    },
    // Server-side rendering: {"title", "items": [{"id", "name", "description", "price"}] x 100}
    // -> an HTML page of about 10 KB.
    render: function (data, cb) {
      if (!Array.isArray(data.items)) {
        return cb(new Error('render needs `items`, an array'));
      }
      var rows = data.items.map(function (item, i) {
        return '<tr class="' + (i % 2 ? 'odd' : 'even') + '" id="item-' + escapeHtml(item.id) + '"><td>' +
          escapeHtml(item.name) + '</td><td>' + escapeHtml(item.description) + '</td><td>' +
          escapeHtml(item.price) + '</td></tr>\n';
      });
      var title = escapeHtml(data.title || 'Items');
      cb(null, '<!doctype html>\n<html><head><meta charset="utf-8"><title>' + title +
        '</title></head><body><h1>' + title + '</h1><table>\n' + rows.join('') +
        '</table></body></html>\n');
    }
  }
};
