#!/usr/bin/env node
'use strict';
// Upload benchmark, the same scenarios against each peer in one run:
//   S1  many small uploads (default 5,000 x 16 KiB, 16 in flight, after 3,000 warm-up uploads)
//   S2  one big upload (default 1 GiB), streamed from a temp file
// Peers: demo (the example app, egg-scripts, 2 workers), plain-egg (a plain Egg
// app writing one file per upload) and raw (the ceiling: node:http piping each
// body to a file). See bench/README.md.
const path = require('node:path');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { runCleanup } = require('./lib/cleanup');
const { keepAliveAgent, request } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { PEERS, pickPeers, startPeer, runRounds } = require('./lib/peers');
const { formatTable, ratioRow, medianRows } = require('./lib/table');
const { SmallUploads, uploadSmall, uploadBig } = require('./lib/uploads');
const { tempDir, writeRandomFile, readWholeFile, watchGroupRss, shuffle, describeRun, writeResults, sha1Hex, parseFlags,
  cpuSnapshot, ownProcessGroup, otherCpuCores } = require('./lib/system');

const KiB = 1024;
const MiB = 1024 * 1024;

// warm-up 3000: on this 2-core box node:http needs a few thousand requests to
// reach its steady rate (JIT); 300 left raw measured mostly in its ramp-up
const DEFAULTS = { count: 5000, concurrency: 16, warmup: 3000, 'size-kib': 16, 'big-mib': 1024, verify: 20, peers: 'demo,plain-egg,raw', rounds: 1 };

/** S1: warm-up, then the measured closed loop; keeps each answer (FileId) for the download check. */
async function smallUploads(peer, port, flags) {
  const uploads = new SmallUploads(flags['size-kib'] * KiB, flags.concurrency);
  const agent = keepAliveAgent(flags.concurrency);
  try {
    const warmTag = crypto.randomBytes(8);
    const warm = await runClosedLoop({ count: flags.warmup, concurrency: flags.concurrency,
      task: (i, lane) => uploadSmall(peer, port, agent, uploads, lane, warmTag, i) });
    const tag = crypto.randomBytes(8);
    const answers = new Array(flags.count);
    const cpuBefore = process.cpuUsage();
    const result = await runClosedLoop({ count: flags.count, concurrency: flags.concurrency,
      task: async (i, lane) => { answers[i] = await uploadSmall(peer, port, agent, uploads, lane, tag, i); } });
    const cpu = process.cpuUsage(cpuBefore);
    result.clientCpuPct = (100 * (cpu.user + cpu.system)) / 1e6 / result.seconds;
    result.warmupErrors = warm.errors;
    return { result, uploads, tag, answers };
  } finally {
    agent.destroy();
  }
}

/** Downloads `sample` random uploads of S1 by FileId and compares their sha1 with what was sent. */
async function verifyDownloads(peer, port, { uploads, tag, answers }, sample) {
  const uploaded = answers.map((data, index) => ({ data, index })).filter(a => a.data);
  const picked = shuffle(uploaded).slice(0, sample);
  const problems = [];
  for (const { data, index } of picked) {
    const expected = sha1Hex(uploads.content(tag, index));
    const res = await request({ port, path: peer.downloadPath(data) });
    if (res.status !== 200) problems.push(`#${index} ${data.FileId}: HTTP ${res.status}`);
    else if (sha1Hex(res.body) !== expected) problems.push(`#${index} ${data.FileId}: downloaded bytes differ (${res.body.length} bytes)`);
    else if (data.FileSha1 !== expected) problems.push(`#${index} ${data.FileId}: FileSha1 ${data.FileSha1} is not the sent ${expected}`);
  }
  return { checked: picked.length, ok: picked.length - problems.length, problems };
}

/** S2: one streamed upload of the big file; MiB/s of file bytes, request start to full answer. */
async function bigUpload(peer, port, big, pgid) {
  const sourceReadSeconds = await readWholeFile(big.file);
  const rss = watchGroupRss(pgid);
  const start = performance.now();
  try {
    const { seconds } = await uploadBig(peer, port, big);
    return { bytes: big.size, seconds, mibPerSec: big.size / MiB / seconds, sizeChecked: true, sourceReadSeconds, rss: rss.stop() };
  } catch (err) {
    return { bytes: big.size, seconds: (performance.now() - start) / 1000, error: err.message, sourceReadSeconds, rss: rss.stop() };
  }
}

/**
 * Everything for one peer, on a fresh server with a fresh data dir in `workDir`.
 * The data stays until the whole scenario ends: deleting files mid-run made the
 * next peer's writes slower (ext4 with online discard), skewing the comparison.
 */
async function benchPeer(name, flags, big, workDir) {
  const { peer, server, port } = await startPeer(name, workDir, log);
  const cpuBefore = cpuSnapshot();
  try {
    const peerResult = {};
    const s1 = await smallUploads(peer, port, flags);
    peerResult.s1 = s1.result;
    logS1(name, s1.result);
    // raw serves back whole multipart bodies, which are not rebuilt here
    if (!peer.storesBody && peer.downloadPath && flags.verify > 0) {
      peerResult.verify = await verifyDownloads(peer, port, s1, flags.verify);
      const v = peerResult.verify;
      log(`${name} verify: ${v.ok}/${v.checked} downloads match what was sent${v.problems.length ? `\n  ${v.problems.join('\n  ')}` : ''}`);
    }
    if (big) {
      peerResult.s2 = await bigUpload(peer, port, big, server.pid);
      const s2 = peerResult.s2;
      log(s2.error
        ? `${name} S2: FAILED after ${s2.seconds.toFixed(1)} s: ${s2.error}`
        : `${name} S2: ${big.size / MiB} MiB in ${s2.seconds.toFixed(2)} s = ${s2.mibPerSec.toFixed(1)} MiB/s, size checked ` +
          `(source pre-read in ${s2.sourceReadSeconds.toFixed(1)} s); server RSS ${s2.rss.beforeMiB.toFixed(0)} -> peak ` +
          `${s2.rss.peakMiB.toFixed(0)} MiB (+${s2.rss.growthMiB.toFixed(0)})`);
    }
    peerResult.otherCpuCores = otherCpuCores(cpuBefore, cpuSnapshot(), [ ownProcessGroup(), server.pid ]);
    log(`${name}: other processes used ${peerResult.otherCpuCores.toFixed(2)} cores meanwhile`);
    return peerResult;
  } finally {
    await server.stop();
  }
}

function logS1(name, r) {
  log(`${name} S1: ${r.ok} uploads in ${r.seconds.toFixed(1)} s = ${r.opsPerSec.toFixed(0)}/s, ` +
    `p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms, ` +
    `errors ${r.errors} (warm-up ${r.warmupErrors}), client CPU ${r.clientCpuPct.toFixed(0)}%` +
    (r.errorSamples.length ? `\n  ${r.errorSamples.join('\n  ')}` : ''));
}

const log = message => console.log(message);

function printTable(peerNames, results) {
  const columns = [
    { key: 'peer', title: 'peer' },
    { key: 'uploadsPerSec', title: 'S1 uploads/s', digits: 0 },
    { key: 'p50', title: 'p50 ms', digits: 1 },
    { key: 'p99', title: 'p99 ms', digits: 1 },
    { key: 'mibPerSec', title: 'S2 MiB/s', digits: 1 },
    { key: 'rssGrowth', title: 'S2 RSS +MiB', digits: 0 },
    { key: 'errors', title: 'S1 errors', digits: 0 },
    { key: 'otherCpu', title: 'other CPU', digits: 2 },
  ];
  // one row per peer: the round's numbers, or with --rounds the median of each (errors added up)
  const rounds = results[peerNames[0]].length;
  const rows = medianRows(Array.from({ length: rounds }, (_, round) => peerNames.map(name => {
    const { s1, s2, otherCpuCores: otherCpu } = results[name][round];
    return { peer: name, uploadsPerSec: s1.opsPerSec, p50: s1.p50Ms, p99: s1.p99Ms, mibPerSec: s2 && s2.mibPerSec, rssGrowth: s2 && s2.rss && s2.rss.growthMiB, errors: s1.errors, otherCpu };
  })), [ 'errors' ]);
  if (rounds > 1) console.log(`\nmedians of ${rounds} rounds:`);
  for (const ours of [ 'demo', 'demo-nofsync' ]) {
    const demo = rows.find(r => r.peer === ours);
    for (const other of [ 'plain-egg', 'raw', 'egg-floor' ]) {
      const row = rows.find(r => r.peer === other);
      if (demo && row) rows.push(ratioRow(demo, row, [ 'uploadsPerSec', 'p50', 'p99', 'mibPerSec' ], `${ours} / ${other}`));
    }
  }
  console.log(`\n${formatTable(columns, rows)}\n`);
}

/** Whether anything went wrong that a reader of the numbers must know about. */
function failures(results) {
  const found = [];
  for (const [ name, r ] of Object.entries(results).flatMap(([ n, rounds ]) => rounds.map(r => [ n, r ]))) {
    if (r.s1.errors || r.s1.warmupErrors) found.push(`${name}: ${r.s1.errors} S1 errors, ${r.s1.warmupErrors} warm-up errors`);
    if (r.verify && r.verify.problems.length) found.push(`${name}: ${r.verify.problems.length} downloads differ`);
    if (r.s2 && r.s2.error) found.push(`${name}: S2 failed: ${r.s2.error}`);
  }
  return found;
}

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const peerNames = pickPeers(flags.peers);
  const run = describeRun('upload benchmark', __filename, args, log);
  const settings = { ...flags, peers: peerNames };
  log(`S1: ${flags.count} uploads of ${flags['size-kib']} KiB, ${flags.concurrency} in flight, after ${flags.warmup} warm-up uploads`);
  log(`S2: one ${flags['big-mib']} MiB upload, streamed from a temp file` + (flags['big-mib'] > 0 ? '' : ' (skipped)'));
  log(`peers: ${peerNames.map(n => `${n} (${PEERS[n].describe})`).join('; ')}` +
    (flags.rounds > 1 ? `; ${flags.rounds} rounds, order reversed every other round` : '') + '\n');

  const work = tempDir('sonofs-bench-upload-');
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

  printTable(peerNames, results);
  const file = writeResults({ scenario: 'upload', ...run, settings, units: { latency: 'ms', s2: 'MiB/s (2^20 bytes of file content per second)' }, peers: results });
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
