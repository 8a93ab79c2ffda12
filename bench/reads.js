#!/usr/bin/env node
'use strict';
// Read benchmark (S3), the same load against each peer in one run:
//   fill      upload --count small files (default 20,000 x 16 KiB, 16 in flight) and one
//             --big-mib file (default 1 GiB); not measured beyond a fill rate
//   reads     --reads random downloads of the small files, 16 in flight, after --warmup
//             reads: reads/s, p50, p99; every read's size checked, every --check-every'th sha1
//   download  the big file once: MiB/s, sha1 checked
// Peers: demo, plain-egg and raw (see bench/lib/peers.js and bench/README.md).
// Targets: reads/s demo / plain-egg >= 1.2x, big download demo / raw >= 0.85x.
const path = require('node:path');
const crypto = require('node:crypto');
const { runCleanup } = require('./lib/cleanup');
const { keepAliveAgent, request, download } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { PEERS, pickPeers, startPeer, runRounds } = require('./lib/peers');
const { formatTable, ratioRow, medianRows } = require('./lib/table');
const { SmallUploads, uploadSmall, uploadBig } = require('./lib/uploads');
const { tempDir, writeRandomFile, readWholeFile, settleDisk, describeRun, writeResults, sha1Hex, parseFlags,
  cpuSnapshot, ownProcessGroup, otherCpuCores } = require('./lib/system');

const KiB = 1024;
const MiB = 1024 * 1024;

// warm-up: the upload fill already warms the HTTP stack, but not the download
// path's code; a couple of thousand reads gets it past the JIT's ramp-up
const DEFAULTS = {
  count: 20000, concurrency: 16, reads: 20000, warmup: 2000, 'check-every': 10,
  'size-kib': 16, 'big-mib': 1024, peers: 'demo,plain-egg,raw', rounds: 1,
};

const TARGETS = [
  { key: 'readsPerSec', peer: 'plain-egg', min: 1.2, what: 'S3 reads/s, demo / plain-egg' },
  { key: 'downloadMiBPerSec', peer: 'raw', min: 0.85, what: 'S3 big download MiB/s, demo / raw' },
];

const log = message => console.log(message);

/**
 * Uploads `count` distinct small files; resolves to what a download of each
 * must give back: [{ path, bytes, sha1 }] (the whole body for a peer that stores
 * bodies), plus the fill's closed-loop result.
 */
async function fill(peer, port, flags) {
  const uploads = new SmallUploads(flags['size-kib'] * KiB, flags.concurrency);
  const agent = keepAliveAgent(flags.concurrency);
  const tag = crypto.randomBytes(8);
  const stored = new Array(flags.count);
  try {
    const result = await runClosedLoop({
      count: flags.count, concurrency: flags.concurrency,
      task: async (i, lane) => {
        const data = await uploadSmall(peer, port, agent, uploads, lane, tag, i);
        const bytes = peer.storesBody ? uploads.bodyLength : uploads.size;
        // the lane's buffer still holds upload i: it is restamped only for the lane's next upload
        stored[i] = { path: peer.downloadPath(data), bytes, sha1: uploads.laneSha1(lane, peer.storesBody) };
      },
    });
    return { result, stored: stored.filter(Boolean) };
  } finally {
    agent.destroy();
  }
}

/**
 * `count` downloads of random stored files, `concurrency` in flight. A read
 * fails on a non-200, a wrong size, or (every `checkEvery`th read) a wrong sha1.
 */
async function randomReads(port, stored, { count, concurrency, checkEvery }) {
  const agent = keepAliveAgent(concurrency);
  let sha1Checked = 0;
  try {
    const result = await runClosedLoop({
      count, concurrency,
      task: async i => {
        const file = stored[Math.floor(Math.random() * stored.length)];
        const res = await request({ agent, port, path: file.path });
        if (res.status !== 200) throw new Error(`${file.path}: HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
        if (res.body.length !== file.bytes) throw new Error(`${file.path}: ${res.body.length} bytes, stored ${file.bytes}`);
        if (checkEvery > 0 && i % checkEvery === 0) {
          sha1Checked++;
          if (sha1Hex(res.body) !== file.sha1) throw new Error(`${file.path}: downloaded bytes differ from the upload`);
        }
      },
    });
    return { ...result, sha1Checked };
  } finally {
    agent.destroy();
  }
}

/** The big file back, once, on its own connection: MiB/s of bytes received, sha1 compared. */
async function bigDownload(port, file) {
  try {
    const res = await download({ agent: false, port, path: file.path });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    if (res.bytes !== file.bytes) throw new Error(`${res.bytes} bytes, stored ${file.bytes}`);
    if (res.sha1 !== file.sha1) throw new Error('downloaded bytes differ from the upload');
    return { bytes: res.bytes, seconds: res.seconds, mibPerSec: res.bytes / MiB / res.seconds, sha1Checked: true };
  } catch (err) {
    return { error: err.message };
  }
}

/** Fill, reads and the big download for one peer, on a fresh server and data dir. */
async function benchPeer(name, flags, big, workDir) {
  const { peer, server, port } = await startPeer(name, workDir, log);
  const cpuBefore = cpuSnapshot();
  try {
    const r = {};
    const filled = await fill(peer, port, flags);
    r.fill = filled.result;
    log(`${name} fill: ${r.fill.ok} uploads in ${r.fill.seconds.toFixed(1)} s = ${r.fill.opsPerSec.toFixed(0)}/s, errors ${r.fill.errors}` +
      (r.fill.errorSamples.length ? `\n  ${r.fill.errorSamples.join('\n  ')}` : ''));
    let bigFile;
    if (big) {
      await readWholeFile(big.file); // from the page cache for every peer
      try {
        const up = await uploadBig(peer, port, big, { hashBody: peer.storesBody });
        bigFile = peer.storesBody
          ? { path: peer.downloadPath(up.data), bytes: up.data.size, sha1: up.bodySha1 }
          : { path: peer.downloadPath(up.data), bytes: big.size, sha1: big.sha1 };
        log(`${name} fill: ${big.size / MiB} MiB uploaded in ${up.seconds.toFixed(1)} s`);
      } catch (err) {
        r.download = { error: `upload of the big file failed: ${err.message}` };
      }
    }
    settleDisk(); // the fill's dirty pages, written back now rather than during the reads

    const readFlags = { concurrency: flags.concurrency, checkEvery: flags['check-every'] };
    const warm = await randomReads(port, filled.stored, { ...readFlags, count: flags.warmup });
    r.reads = await randomReads(port, filled.stored, { ...readFlags, count: flags.reads });
    r.reads.warmupErrors = warm.errors;
    const rd = r.reads;
    log(`${name} reads: ${rd.ok} in ${rd.seconds.toFixed(1)} s = ${rd.opsPerSec.toFixed(0)}/s, p50 ${rd.p50Ms.toFixed(2)} ms, ` +
      `p99 ${rd.p99Ms.toFixed(2)} ms, max ${rd.maxMs.toFixed(1)} ms, errors ${rd.errors} (warm-up ${warm.errors}), ` +
      `sha1 checked on ${rd.sha1Checked}` + (rd.errorSamples.length ? `\n  ${rd.errorSamples.join('\n  ')}` : ''));

    if (bigFile) {
      r.download = await bigDownload(port, bigFile);
      log(r.download.error
        ? `${name} download: FAILED: ${r.download.error}`
        : `${name} download: ${(r.download.bytes / MiB).toFixed(0)} MiB in ${r.download.seconds.toFixed(2)} s = ` +
          `${r.download.mibPerSec.toFixed(1)} MiB/s, sha1 checked`);
    }
    r.otherCpuCores = otherCpuCores(cpuBefore, cpuSnapshot(), [ ownProcessGroup(), server.pid ]);
    log(`${name}: other processes used ${r.otherCpuCores.toFixed(2)} cores meanwhile`);
    return r;
  } finally {
    await server.stop();
  }
}

function printTable(peerNames, results) {
  const columns = [
    { key: 'peer', title: 'peer' },
    { key: 'fillPerSec', title: 'fill uploads/s', digits: 0 },
    { key: 'readsPerSec', title: 'S3 reads/s', digits: 0 },
    { key: 'p50', title: 'p50 ms', digits: 2 },
    { key: 'p99', title: 'p99 ms', digits: 2 },
    { key: 'downloadMiBPerSec', title: 'download MiB/s', digits: 1 },
    { key: 'errors', title: 'errors', digits: 0 },
    { key: 'otherCpu', title: 'other CPU', digits: 2 },
  ];
  // one row per peer: the round's numbers, or with --rounds the median of each (errors added up)
  const rounds = results[peerNames[0]].length;
  const rows = medianRows(Array.from({ length: rounds }, (_, round) => peerNames.map(name => {
    const { fill: f, reads, download: d, otherCpuCores: otherCpu } = results[name][round];
    return {
      peer: name, fillPerSec: f.opsPerSec, readsPerSec: reads.opsPerSec, p50: reads.p50Ms, p99: reads.p99Ms,
      downloadMiBPerSec: d && d.mibPerSec, errors: f.errors + reads.errors + reads.warmupErrors + (d && d.error ? 1 : 0), otherCpu,
    };
  })), [ 'errors' ]);
  if (rounds > 1) log(`\nmedians of ${rounds} rounds:`);
  const demo = rows.find(r => r.peer === 'demo');
  const ratios = [];
  for (const other of [ 'plain-egg', 'raw' ]) {
    const row = rows.find(r => r.peer === other);
    if (demo && row) ratios.push(ratioRow(demo, row, [ 'fillPerSec', 'readsPerSec', 'p50', 'p99', 'downloadMiBPerSec' ], `demo / ${other}`));
  }
  log(`\n${formatTable(columns, [ ...rows, ...ratios ])}\n`);
  // the issue's targets, as plain numbers (a benchmark reports, it does not fail on them)
  const targets = [];
  for (const t of TARGETS) {
    const other = rows.find(r => r.peer === t.peer);
    if (!demo || !other || typeof demo[t.key] !== 'number' || typeof other[t.key] !== 'number') continue;
    const ratio = demo[t.key] / other[t.key];
    targets.push({ ...t, ratio, met: ratio >= t.min });
    log(`target ${t.what} >= ${t.min}x: ${ratio.toFixed(2)}x, ${ratio >= t.min ? 'met' : 'NOT met'}`);
  }
  return targets;
}

function failures(results) {
  const found = [];
  for (const [ name, r ] of Object.entries(results).flatMap(([ n, rounds ]) => rounds.map(r => [ n, r ]))) {
    if (r.fill.errors) found.push(`${name}: ${r.fill.errors} fill uploads failed`);
    if (r.reads.errors || r.reads.warmupErrors) found.push(`${name}: ${r.reads.errors} reads failed (warm-up ${r.reads.warmupErrors})`);
    if (r.download && r.download.error) found.push(`${name}: big download: ${r.download.error}`);
  }
  return found;
}

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const peerNames = pickPeers(flags.peers);
  const unreadable = peerNames.filter(n => !PEERS[n].downloadPath);
  if (unreadable.length) throw new Error(`${unreadable.join(', ')} keeps nothing to read back`);
  const run = describeRun('read benchmark (S3)', __filename, args, log);
  log(`fill: ${flags.count} uploads of ${flags['size-kib']} KiB, ${flags.concurrency} in flight` +
    (flags['big-mib'] > 0 ? `, then one of ${flags['big-mib']} MiB` : ''));
  log(`S3: ${flags.reads} random reads, ${flags.concurrency} in flight, after ${flags.warmup} warm-up reads; ` +
    `sha1 checked on every ${flags['check-every']}th; then the big file downloaded once`);
  log(`peers: ${peerNames.map(n => `${n} (${PEERS[n].describe})`).join('; ')}` +
    (flags.rounds > 1 ? `; ${flags.rounds} rounds, order reversed every other round` : '') + '\n');

  const work = tempDir('sonofs-bench-reads-');
  let results;
  try {
    let big = null;
    if (flags['big-mib'] > 0) {
      big = { file: path.join(work.dir, 'big.bin'), size: flags['big-mib'] * MiB };
      big.sha1 = await writeRandomFile(big.file, big.size);
    }
    results = await runRounds(peerNames, flags.rounds, work.dir, (name, dir) => benchPeer(name, flags, big, dir), log);
  } finally {
    await work.remove();
  }

  const targets = printTable(peerNames, results);
  const file = writeResults({
    scenario: 'reads', ...run, settings: { ...flags, peers: peerNames },
    units: { latency: 'ms', download: 'MiB/s (2^20 bytes received per second)' }, targets, peers: results,
  });
  log(`results: ${path.relative(process.cwd(), file)}`);
  const problems = failures(results);
  if (problems.length) {
    console.error(`\nSOMETHING WENT WRONG:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  }
}

main().catch(async err => {
  console.error(err.stack || err.message);
  await runCleanup();
  process.exitCode = 1;
});
