'use strict';
// What a call's deadline costs the host's main thread (issue 20): deadlines.js + the watchdog's
// buffer, against a reference measured in the same run: one setTimeout + clearTimeout per call,
// what a host that times each call with a timer of its own pays. `node node/bench/deadlines.js`.
// The watchdog's thread is not started (it never runs on the main thread).

const { Deadlines } = require('../lib/deadlines');
const { Watchdog } = require('../lib/watchdog');

const CALLS = 1e6;
const ROUNDS = 5;

/** ns per call, median of ROUNDS runs of `run(n)`. */
function measure(run) {
  run(10_000); // warm-up
  const times = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    run(CALLS);
    times.push(Number(process.hrtime.bigint() - start) / CALLS);
  }
  return times.sort((a, b) => a - b)[ROUNDS >> 1];
}

/** `inFlight` calls at a time; `ms(i)`: the i-th call's timeout. */
function timers(inFlight, ms) {
  const noop = () => {};
  return (n) => {
    const q = [];
    for (let i = 0; i < n; i++) {
      q.push(setTimeout(noop, ms(i)));
      if (q.length >= inFlight) clearTimeout(q.shift());
    }
    q.forEach(clearTimeout);
  };
}

function deadlines(inFlight, ms) {
  const watchdog = new Watchdog({ logfile: undefined, prefix: 'bench' });
  watchdog.start = () => {}; // no thread: only the main thread's work is measured
  const d = new Deadlines({ expire: () => {}, watch: (call) => watchdog.watch(call) });
  return (n) => {
    const q = [];
    for (let i = 0; i < n; i++) {
      const call = { name: 'echo' };
      d.add(call, ms(i));
      watchdog.enter(call.name);
      watchdog.leave();
      q.push(call);
      if (q.length >= inFlight) d.delete(q.shift());
    }
    q.forEach((call) => d.delete(call));
    clearTimeout(d.timer);
    clearInterval(watchdog.heartbeat);
    watchdog.heartbeat = null;
  };
}

const cases = [
  ['1 in flight, the SDK\'s 30 s timeout', 1, () => 30_000],
  ['64 in flight, the SDK\'s 30 s timeout', 64, () => 30_000],
  ['64 in flight, each deadline sooner than the last (worst case)', 64, (i) => 30_000 - (i % 1000)],
];
console.log('| calls | setTimeout + clearTimeout per call (reference) | deadlines.js + watchdog | ratio |');
console.log('| --- | --- | --- | --- |');
for (const [label, inFlight, ms] of cases) {
  const ref = measure(timers(inFlight, ms));
  const ours = measure(deadlines(inFlight, ms));
  console.log(`| ${label} | ${ref.toFixed(0)} ns | ${ours.toFixed(0)} ns | ${(ours / ref).toFixed(2)}× |`);
}
process.exit(0);
