// jshost-bench: preloaded (`node --require`) into js-host and the plain node:http server, which
// have no `--exit-on-stdin-close`: exit when the bench's pipe closes, and print nothing on stdout
// after the status line (js-host logs every request there).
'use strict';
process.stdin.on('data', function () {});
['end', 'close', 'error'].forEach(function (e) { process.stdin.on(e, function () { process.exit(0); }); });
process.stdin.resume();
(function () {
  const write = process.stdout.write;
  let ready = false;
  process.stdout.write = function (chunk, encoding, cb) {
    if (!ready) {
      ready = String(chunk).charAt(0) === '{';
      return write.apply(process.stdout, arguments);
    }
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
})();
