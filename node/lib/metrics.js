'use strict';
// GET /metrics: what each worker counts (calls and errors per function, a call-duration
// histogram, calls in flight, event-loop delay, memory), summed by the primary over its workers
// (and the workers it has replaced or recycled, so that counters never go down), rendered in
// the Prometheus text format (version 0.0.4).

const { monitorEventLoopDelay } = require('node:perf_hooks');

// Upper bounds (seconds) of the call-duration buckets.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One worker's counters; `start`/`end` wrap every call. */
class Metrics {
  constructor() {
    this.functions = new Map(); // name -> {calls, errors, buckets[], sum}
    this.inFlight = 0;
    this.loop = monitorEventLoopDelay({ resolution: 20 });
    this.loop.enable();
  }

  start(name) {
    this.inFlight++;
    return { name, started: performance.now() };
  }

  end(token, status) {
    this.inFlight--;
    const seconds = (performance.now() - token.started) / 1000;
    let f = this.functions.get(token.name);
    if (f === undefined) {
      f = emptyFunction();
      this.functions.set(token.name, f);
    }
    f.calls++;
    if (status !== 200) f.errors++;
    f.sum += seconds;
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]) i++;
    f.buckets[i]++; // per bucket; cumulated when rendered
  }

  /** A plain object (sent to the primary over IPC); starts a new event-loop delay period. */
  snapshot(reset = true) {
    const mem = process.memoryUsage();
    const loop = {
      p99: this.loop.percentile(99) / 1e9,
      max: this.loop.max / 1e9,
    };
    if (reset) this.loop.reset();
    return {
      pid: process.pid,
      functions: Object.fromEntries(this.functions),
      inFlight: this.inFlight,
      loop,
      heapUsed: mem.heapUsed,
      rss: mem.rss,
    };
  }
}

Metrics.prototype.snapshotLive = function () {
  return this.snapshot(false);
};

function emptyFunction() {
  return { calls: 0, errors: 0, buckets: new Array(BUCKETS.length + 1).fill(0), sum: 0 };
}

/** Adds the per-function counters of `from` ({name: counters}) into `into` (same shape). */
function addFunctions(into, from) {
  for (const [name, f] of Object.entries(from)) {
    const t = (into[name] ??= emptyFunction());
    t.calls += f.calls;
    t.errors += f.errors;
    t.sum += f.sum;
    for (let i = 0; i < t.buckets.length; i++) t.buckets[i] += f.buckets[i] || 0;
  }
  return into;
}

function label(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(v) {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}

/**
 * The text for `cluster`: {workers: [snapshot], gone: {name: counters} (replaced workers'
 * totals), replacements, recycles, runaways}.
 */
function render(cluster) {
  const functions = addFunctions({}, cluster.gone || {});
  for (const w of cluster.workers) addFunctions(functions, w.functions);
  const names = Object.keys(functions).sort();
  const out = [];
  const metric = (name, type, help) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  metric('jshost_calls_total', 'counter', 'Calls answered, by function (plain calls and batch items).');
  for (const n of names) out.push(`jshost_calls_total{function="${label(n)}"} ${functions[n].calls}`);
  metric('jshost_call_errors_total', 'counter', 'Calls answered with an error (any status but 200), by function.');
  for (const n of names) out.push(`jshost_call_errors_total{function="${label(n)}"} ${functions[n].errors}`);
  metric('jshost_call_duration_seconds', 'histogram', 'Time from a call\'s start to its answer, by function.');
  for (const n of names) {
    const f = functions[n];
    const l = label(n);
    let cumulated = 0;
    for (let i = 0; i < BUCKETS.length; i++) {
      cumulated += f.buckets[i];
      out.push(`jshost_call_duration_seconds_bucket{function="${l}",le="${BUCKETS[i]}"} ${cumulated}`);
    }
    out.push(`jshost_call_duration_seconds_bucket{function="${l}",le="+Inf"} ${f.calls}`);
    out.push(`jshost_call_duration_seconds_sum{function="${l}"} ${num(f.sum)}`);
    out.push(`jshost_call_duration_seconds_count{function="${l}"} ${f.calls}`);
  }
  metric('jshost_calls_in_flight', 'gauge', 'Calls running now, over all workers.');
  out.push(`jshost_calls_in_flight ${cluster.workers.reduce((s, w) => s + w.inFlight, 0)}`);
  metric('jshost_workers', 'gauge', 'Worker processes serving.');
  out.push(`jshost_workers ${cluster.workers.length}`);
  metric('jshost_event_loop_delay_p99_seconds', 'gauge', 'The 99th percentile of a worker\'s event-loop delay since its previous report.');
  for (const w of cluster.workers) out.push(`jshost_event_loop_delay_p99_seconds{worker="${w.pid}"} ${num(w.loop.p99)}`);
  metric('jshost_event_loop_delay_max_seconds', 'gauge', 'The longest event-loop delay of a worker since its previous report.');
  for (const w of cluster.workers) out.push(`jshost_event_loop_delay_max_seconds{worker="${w.pid}"} ${num(w.loop.max)}`);
  metric('jshost_heap_used_bytes', 'gauge', 'V8 heap in use, by worker.');
  for (const w of cluster.workers) out.push(`jshost_heap_used_bytes{worker="${w.pid}"} ${w.heapUsed}`);
  metric('jshost_resident_memory_bytes', 'gauge', 'Resident set size, by worker.');
  for (const w of cluster.workers) out.push(`jshost_resident_memory_bytes{worker="${w.pid}"} ${w.rss}`);
  metric('jshost_worker_replacements_total', 'counter', 'Workers replaced because they died or ran away.');
  out.push(`jshost_worker_replacements_total ${cluster.replacements}`);
  metric('jshost_worker_runaways_total', 'counter', 'Workers killed because a call kept their event loop from turning past its deadline.');
  out.push(`jshost_worker_runaways_total ${cluster.runaways}`);
  metric('jshost_worker_recycles_total', 'counter', 'Workers retired and replaced for --max-memory or --max-calls.');
  out.push(`jshost_worker_recycles_total ${cluster.recycles}`);
  return out.join('\n') + '\n';
}

module.exports = { Metrics, addFunctions, render, BUCKETS };
