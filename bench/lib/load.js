'use strict';
// Closed-loop load: `count` tasks, `concurrency` of them in flight; each lane
// starts its next task as soon as its previous one finishes.
const { performance } = require('node:perf_hooks');

const ERRORS_KEPT = 5;

/**
 * Runs task(index, lane) for index 0..count-1 with `concurrency` lanes; `lane`
 * (0..concurrency-1) lets a task reuse a per-lane buffer. A task that throws
 * counts as an error; its latency is left out of the percentiles.
 */
async function runClosedLoop({ count, concurrency, task }) {
  const latencies = [];
  const errors = [];
  let errorCount = 0;
  let next = 0;
  const lane = async laneIndex => {
    while (next < count) {
      const index = next++;
      const start = performance.now();
      try {
        await task(index, laneIndex);
        latencies.push(performance.now() - start);
      } catch (err) {
        errorCount++;
        if (errors.length < ERRORS_KEPT) errors.push(`#${index}: ${err.message}`);
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, (_, i) => lane(i)));
  const seconds = (performance.now() - start) / 1000;
  return { count, concurrency, seconds, ok: latencies.length, errors: errorCount, errorSamples: errors, ...latencyStats(latencies, seconds) };
}

/** ops/s over the wall time, and latency percentiles in ms (nearest rank). */
function latencyStats(latencies, seconds) {
  const sorted = Float64Array.from(latencies).sort();
  const at = q => (sorted.length ? sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] : NaN);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    opsPerSec: sorted.length / seconds,
    meanMs: sorted.length ? sum / sorted.length : NaN,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: at(1),
  };
}

module.exports = { runClosedLoop, latencyStats };
