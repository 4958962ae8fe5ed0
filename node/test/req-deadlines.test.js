'use strict';
// deadlines.js: one timer for every call's deadline; the watchdog always sees the earliest
// pending deadline.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Deadlines } = require('../lib/deadlines');
const { waitFor } = require('../testlib/helpers');

test('entries expire in deadline order, answered ones never; the watched one is always the earliest pending', async () => {
  const expired = [];
  let watched = null;
  const d = new Deadlines({ expire: (e) => expired.push(e.id), watch: (e) => (watched = e) });
  const entries = [];
  // Random deadlines, half of them answered (deleted) at random times before they expire.
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let id = 0; id < 400; id++) {
    const e = { id };
    d.add(e, 20 + Math.floor(random() * 200));
    entries.push(e);
    if (random() < 0.5) d.delete(entries[Math.floor(random() * entries.length)]);
    const pending = entries.filter((x) => x.watched);
    const earliest = Math.min(...pending.map((x) => x.deadline));
    assert.equal(watched === null ? Infinity : watched.deadline, pending.length === 0 ? Infinity : earliest);
  }
  const stillPending = entries.filter((x) => x.watched);
  await waitFor(() => expired.length === stillPending.length, { timeout: 3000, what: 'every pending entry to expire' });
  assert.deepEqual([...expired].sort((a, b) => a - b), stillPending.map((x) => x.id).sort((a, b) => a - b));
  const byDeadline = stillPending.slice().sort((a, b) => a.deadline - b.deadline);
  for (let i = 1; i < expired.length; i++) {
    const prev = byDeadline.find((x) => x.id === expired[i - 1]);
    const cur = byDeadline.find((x) => x.id === expired[i]);
    assert.ok(prev.deadline <= cur.deadline, 'expired in deadline order');
  }
  assert.equal(watched, null);
  assert.equal(d.heap.length, 0);
});

test('answered entries under a top that waits long do not pile up', () => {
  const d = new Deadlines({ expire: () => {} });
  d.add({}, 60_000); // the top, pending
  for (let i = 0; i < 10_000; i++) {
    const e = {};
    d.add(e, 120_000);
    d.delete(e);
  }
  assert.ok(d.heap.length <= 2 * d.pending + 65, `heap of ${d.heap.length} for ${d.pending} pending`);
  clearTimeout(d.timer);
});

test('an entry sooner than the armed timer re-arms it; a later one does not', async () => {
  const expired = [];
  const d = new Deadlines({ expire: (e) => expired.push(e.id) });
  d.add({ id: 'late' }, 10_000);
  const armed = d.timer;
  d.add({ id: 'later' }, 20_000);
  assert.equal(d.timer, armed);
  d.add({ id: 'soon' }, 30);
  assert.notEqual(d.timer, armed);
  await waitFor(() => expired.length === 1, { what: 'the sooner entry to expire' });
  assert.deepEqual(expired, ['soon']);
  assert.equal(d.armedFor, d.heap[0].deadline);
  clearTimeout(d.timer);
});
