'use strict';
// Preloaded into Egg workers to see what garbage collection does to latency:
//   NODE_OPTIONS="--require $PWD/bench/lib/gc-log.js" node bench/scale.js ...
// Every BENCH_GC_WINDOW seconds (5) each app worker prints one line: scavenges and
// mark-compacts in the window (count, mean and longest pause), and the heap's
// young and old generation. BENCH_GC_NVP=1 also turns on V8's --trace-gc-nvp (one
// line per GC on the worker's stdout: allocated, promoted, and each phase's time),
// which NODE_OPTIONS does not accept as a flag. BENCH_OUTPUT_LINES keeps more of a
// server's output lines for a script to read.
const { PerformanceObserver, constants } = require('node:perf_hooks');
const v8 = require('node:v8');

if (/app_worker/.test(process.argv[1] || '')) {
  if (process.env.BENCH_GC_NVP) v8.setFlagsFromString('--trace-gc-nvp');
  const windowMs = Number(process.env.BENCH_GC_WINDOW || 5) * 1000;
  const kinds = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact' };
  let seen = {};
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) {
      const kind = kinds[e.detail?.kind] ?? 'other';
      const k = (seen[kind] ??= { n: 0, total: 0, max: 0 });
      k.n++;
      k.total += e.duration;
      k.max = Math.max(k.max, e.duration);
    }
  }).observe({ entryTypes: [ 'gc' ] });
  setInterval(() => {
    const space = name => v8.getHeapSpaceStatistics().find(s => s.space_name === name);
    const mib = n => (n / 1048576).toFixed(1);
    const parts = Object.entries(seen).map(([ kind, k ]) => `${k.n} ${kind} (mean ${(k.total / k.n).toFixed(2)} ms, max ${k.max.toFixed(2)} ms)`);
    if (parts.length) {
      console.error(`gc-log ${process.pid}: ${parts.join(', ')}; young ${mib(space('new_space').space_used_size)}/${mib(space('new_space').space_size)} MiB, ` +
        `old ${mib(space('old_space').space_used_size)} MiB`);
    }
    seen = {};
  }, windowMs).unref();
}
