'use strict';
// --exit-on-stdin-close: run `onClose` once stdin reaches end of file (the process that owns
// our stdin pipe exited, even by SIGKILL).

function onClose(onClose) {
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    onClose();
  };
  const input = process.stdin;
  input.on('end', fire);
  input.on('close', fire);
  input.on('error', fire);
  input.on('data', () => {}); // read and drop whatever the owner writes
  input.resume();
}

module.exports = { onClose };
