'use strict';
// The deadlines of the calls in flight in one process, kept for two readers:
// - a call still running at its deadline while the event loop turns is answered 504 (`expire`);
// - the watchdog (watchdog.js) is told the earliest deadline still pending whenever it changes
//   (`watch`), so that it can tell a stuck event loop from a slow call.
//
// One timer serves every call: it is armed for the earliest deadline and re-armed only when a
// sooner one arrives (calls mostly arrive with later deadlines than those already in flight). A
// call that answers is marked and left in the heap until it reaches the top, so that a call
// costs a heap insert and a flag, not a timer of its own.

/**
 * `expire(entry)`: called for an entry still pending at its deadline.
 * `watch(entry | null)`: called with the earliest pending entry whenever it changes.
 */
class Deadlines {
  constructor({ expire, watch = null }) {
    this.expire = expire;
    this.watch = watch;
    this.heap = []; // entries by `deadline`, watched or not
    this.pending = 0;
    this.timer = null;
    this.armedFor = Infinity;
  }

  /** Starts watching `entry` (it gets `deadline`, `timeout` and `watched` fields), `ms` from now. */
  add(entry, ms) {
    const now = Date.now();
    entry.deadline = now + ms;
    entry.timeout = ms;
    entry.watched = true;
    this.pending++;
    if (this.heap.length > 2 * this.pending + 64) this.compact();
    push(this.heap, entry);
    if (this.heap[0] === entry) {
      if (this.watch !== null) this.watch(entry);
      if (entry.deadline < this.armedFor) this.arm(now);
    }
  }

  /** `entry` answered: its deadline no longer counts. */
  delete(entry) {
    if (!entry.watched) return;
    entry.watched = false;
    this.pending--;
    if (this.heap[0] === entry) this.dropDone(true);
  }

  /** Removes the entries no longer watched from the top; tells the watchdog about the new top when asked. */
  dropDone(tell) {
    const heap = this.heap;
    while (heap.length !== 0 && !heap[0].watched) pop(heap);
    if (tell && this.watch !== null) this.watch(heap.length === 0 ? null : heap[0]);
  }

  /** Arms the one timer for the earliest deadline (`now`: the current time). */
  arm(now) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
    if (this.heap.length === 0) return;
    this.armedFor = this.heap[0].deadline;
    this.timer = setTimeout(() => this.fire(), Math.max(1, this.armedFor - now));
    this.timer.unref();
  }

  fire() {
    this.timer = null;
    this.armedFor = Infinity;
    const now = Date.now();
    const heap = this.heap;
    const top = heap[0];
    while (heap.length !== 0 && (!heap[0].watched || heap[0].deadline <= now)) {
      const entry = pop(heap);
      if (!entry.watched) continue;
      entry.watched = false;
      this.pending--;
      this.expire(entry);
    }
    if (this.watch !== null && heap[0] !== top) this.watch(heap.length === 0 ? null : heap[0]);
    this.arm(now);
  }

  /** Rebuilds the heap from its pending entries (answered ones pile up under a top that waits long). */
  compact() {
    const pending = this.heap.filter((entry) => entry.watched);
    this.heap = [];
    for (const entry of pending) push(this.heap, entry);
  }
}

// A binary min-heap on `deadline`.
function push(heap, entry) {
  let i = heap.length;
  heap.push(entry);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent].deadline <= entry.deadline) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = entry;
}

function pop(heap) {
  const top = heap[0];
  const last = heap.pop();
  const n = heap.length;
  if (n === 0) return top;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= n) break;
    const child = left + 1 < n && heap[left + 1].deadline < heap[left].deadline ? left + 1 : left;
    if (heap[child].deadline >= last.deadline) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = last;
  return top;
}

module.exports = { Deadlines };
