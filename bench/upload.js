#!/usr/bin/env node
'use strict';
// Upload benchmark, the same scenarios against each peer in one run:
//   S1  many small uploads (default 5,000 x 16 KiB, 16 in flight, after 3,000 warm-up uploads)
//   S2  one big upload (default 1 GiB), streamed from a temp file
// Peers: demo (the example app, egg-scripts, 2 workers) and raw (the ceiling:
// node:http piping each body to a file). See bench/README.md.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const crypto = require('node:crypto');
const { runCleanup } = require('./lib/cleanup');
const { keepAliveAgent, request, expectJson } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { multipartBuffer, multipartStream } = require('./lib/multipart');
const { startServer } = require('./lib/server-process');
const { formatTable, ratioRow } = require('./lib/table');
const { machineInfo, freePort, tempDir, writeRandomFile, sha1Hex, parseFlags } = require('./lib/system');

const ROOT = path.join(__dirname, '..');
const KiB = 1024;
const MiB = 1024 * 1024;
const UPLOAD_PATH = '/file/upload';

// warm-up 3000: on this 2-core box node:http needs a few thousand requests to
// reach its steady rate (JIT); 300 left raw measured mostly in its ramp-up
const DEFAULTS = { count: 5000, concurrency: 16, warmup: 3000, 'size-kib': 16, 'big-mib': 1024, verify: 20, peers: 'demo,raw' };

const PEERS = {
  demo: {
    describe: 'the example app on egg-sonofs, egg-scripts, 2 workers',
    start: (port, dir) => startServer({
      name: 'demo',
      args: [ path.join(ROOT, 'scripts', 'start.js') ],
      cwd: ROOT,
      env: { PORT: String(port), EGG_WORKERS: '2', SONOFS_ROOT: dir, EGG_TITLE: `sonofs-bench-demo-${port}` },
      ready: `egg started on http://127.0.0.1:${port}`,
      timeoutMs: 120_000,
    }),
    // sonofs answers with the stored file's size and sha1
    checkUpload: (data, sent) => {
      if (data.FileSize !== sent.size) throw new Error(`FileSize ${data.FileSize}, sent ${sent.size}`);
      if (sent.sha1 && data.FileSha1 !== sent.sha1) throw new Error(`FileSha1 ${data.FileSha1}, sent ${sent.sha1}`);
    },
    canDownload: true,
  },
  raw: {
    describe: 'the ceiling: node:http piping each whole multipart body to a new file',
    start: (port, dir) => startServer({
      name: 'raw',
      args: [ path.join(__dirname, 'servers', 'raw.js') ],
      env: { PORT: String(port), RAW_DIR: dir },
      ready: `raw server started on http://127.0.0.1:${port}`,
    }),
    // raw stores the body as it came, multipart framing included
    checkUpload: (data, sent) => {
      if (data.size !== sent.bodyLength) throw new Error(`stored ${data.size} bytes, sent a ${sent.bodyLength}-byte body`);
    },
    canDownload: false,
  },
};

/**
 * Small upload bodies from one random template: each lane owns one prebuilt
 * multipart body and stamps (tag, index) into the file's first 12 bytes per
 * request, so every upload has distinct content (sonofs deduplicates) at no cost.
 */
class SmallUploads {
  constructor(size, lanes) {
    if (size < 12) throw new Error('--size-kib too small');
    this.size = size;
    this.template = crypto.randomBytes(size);
    this.lanes = Array.from({ length: lanes }, () => multipartBuffer(this.template, { filename: 'bench-small.bin' }));
  }

  /** The body for upload `index` of a phase `tag` (8 random bytes), in lane `lane`'s buffer. */
  body(lane, tag, index) {
    const { body, headers, contentOffset } = this.lanes[lane];
    stamp(body, contentOffset, tag, index);
    return { body, headers };
  }

  /** The file content upload (tag, index) sent, rebuilt for checking. */
  content(tag, index) {
    const content = Buffer.from(this.template);
    stamp(content, 0, tag, index);
    return content;
  }
}

function stamp(buffer, offset, tag, index) {
  tag.copy(buffer, offset);
  buffer.writeUInt32BE(index, offset + 8);
}

async function uploadSmall(peer, port, agent, uploads, lane, tag, index) {
  const { body, headers } = uploads.body(lane, tag, index);
  const res = await request({ agent, port, method: 'POST', path: UPLOAD_PATH, headers: { ...headers, accept: 'application/json' }, body });
  const answer = expectJson(res);
  if (answer.code !== 0) throw new Error(`code ${answer.code}: ${answer.msg}`);
  peer.checkUpload(answer.data, { size: uploads.size, bodyLength: body.length });
  return answer.data;
}

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
async function verifyDownloads(port, { uploads, tag, answers }, sample) {
  const uploaded = answers.map((data, index) => ({ data, index })).filter(a => a.data);
  const picked = shuffle(uploaded).slice(0, sample);
  const problems = [];
  for (const { data, index } of picked) {
    const expected = sha1Hex(uploads.content(tag, index));
    const res = await request({ port, path: `/file/download?fileid=${encodeURIComponent(data.FileId)}` });
    if (res.status !== 200) problems.push(`#${index} ${data.FileId}: HTTP ${res.status}`);
    else if (sha1Hex(res.body) !== expected) problems.push(`#${index} ${data.FileId}: downloaded bytes differ (${res.body.length} bytes)`);
    else if (data.FileSha1 !== expected) problems.push(`#${index} ${data.FileId}: FileSha1 ${data.FileSha1} is not the sent ${expected}`);
  }
  return { checked: picked.length, ok: picked.length - problems.length, problems };
}

function shuffle(items) {
  const a = [ ...items ];
  for (let i = a.length - 1; i > 0; i--) {
    const j = crypto.randomInt(i + 1);
    [ a[i], a[j] ] = [ a[j], a[i] ];
  }
  return a;
}

/** S2: one streamed upload of the big file; MiB/s of file bytes, request start to full answer. */
async function bigUpload(peer, port, big) {
  const sourceReadSeconds = await readWholeFile(big.file);
  const { body, headers, length } = multipartStream(big.file, big.size, { filename: 'bench-big.bin' });
  const start = performance.now();
  try {
    const res = await request({ agent: false, port, method: 'POST', path: UPLOAD_PATH, headers: { ...headers, accept: 'application/json' }, body });
    const seconds = (performance.now() - start) / 1000;
    const answer = expectJson(res);
    if (answer.code !== 0) throw new Error(`code ${answer.code}: ${answer.msg}`);
    peer.checkUpload(answer.data, { size: big.size, sha1: big.sha1, bodyLength: length });
    return { bytes: big.size, seconds, mibPerSec: big.size / MiB / seconds, sizeChecked: true, sourceReadSeconds };
  } catch (err) {
    return { bytes: big.size, seconds: (performance.now() - start) / 1000, error: err.message, sourceReadSeconds };
  }
}

/**
 * Reads the file once so every peer's upload streams it from the page cache:
 * written at the start, it may have been evicted by then (this VM's DAMON pages
 * out memory idle for ~60 s). The time it took is kept: seconds mean a disk read.
 */
async function readWholeFile(file) {
  const start = performance.now();
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * MiB })) void chunk;
  return (performance.now() - start) / 1000;
}

/**
 * Everything for one peer, on a fresh server with a fresh data dir in `workDir`.
 * The data stays until the whole scenario ends: deleting files mid-run made the
 * next peer's writes slower (ext4 with online discard), skewing the comparison.
 */
async function benchPeer(name, flags, big, workDir) {
  const peer = PEERS[name];
  const dataDir = path.join(workDir, `${name}-data`);
  fs.mkdirSync(dataDir);
  settleDisk();
  const port = await freePort();
  const startedAt = performance.now();
  const server = await peer.start(port, dataDir);
  log(`${name}: ready on port ${port} after ${((performance.now() - startedAt) / 1000).toFixed(1)} s (data in ${dataDir})`);
  try {
    const peerResult = {};
    const s1 = await smallUploads(peer, port, flags);
    peerResult.s1 = s1.result;
    logS1(name, s1.result);
    if (peer.canDownload && flags.verify > 0) {
      peerResult.verify = await verifyDownloads(port, s1, flags.verify);
      const v = peerResult.verify;
      log(`${name} verify: ${v.ok}/${v.checked} downloads match what was sent${v.problems.length ? `\n  ${v.problems.join('\n  ')}` : ''}`);
    }
    if (big) {
      peerResult.s2 = await bigUpload(peer, port, big);
      const s2 = peerResult.s2;
      log(s2.error
        ? `${name} S2: FAILED after ${s2.seconds.toFixed(1)} s: ${s2.error}`
        : `${name} S2: ${big.size / MiB} MiB in ${s2.seconds.toFixed(2)} s = ${s2.mibPerSec.toFixed(1)} MiB/s, size checked ` +
          `(source pre-read in ${s2.sourceReadSeconds.toFixed(1)} s)`);
    }
    return peerResult;
  } finally {
    await server.stop();
  }
}

/** Writes back what earlier steps left dirty, so that is not done during the next measurement. */
function settleDisk() {
  execFileSync('sync');
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
    { key: 'errors', title: 'S1 errors', digits: 0 },
  ];
  const rows = peerNames.map(name => {
    const { s1, s2 } = results[name];
    return { peer: name, uploadsPerSec: s1.opsPerSec, p50: s1.p50Ms, p99: s1.p99Ms, mibPerSec: s2 && s2.mibPerSec, errors: s1.errors };
  });
  const demo = rows.find(r => r.peer === 'demo');
  const raw = rows.find(r => r.peer === 'raw');
  if (demo && raw) rows.push(ratioRow(demo, raw, [ 'uploadsPerSec', 'p50', 'p99', 'mibPerSec' ], 'demo / raw'));
  console.log(`\n${formatTable(columns, rows)}\n`);
}

function writeResults(report) {
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const stamp = report.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const file = path.join(dir, `${stamp}-upload.json`);
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/** Whether anything went wrong that a reader of the numbers must know about. */
function failures(results) {
  const found = [];
  for (const [ name, r ] of Object.entries(results)) {
    if (r.s1.errors || r.s1.warmupErrors) found.push(`${name}: ${r.s1.errors} S1 errors, ${r.s1.warmupErrors} warm-up errors`);
    if (r.verify && r.verify.problems.length) found.push(`${name}: ${r.verify.problems.length} downloads differ`);
    if (r.s2 && r.s2.error) found.push(`${name}: S2 failed: ${r.s2.error}`);
  }
  return found;
}

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const peerNames = flags.peers.split(',').filter(Boolean);
  for (const name of peerNames) if (!PEERS[name]) throw new Error(`unknown peer ${name}; peers: ${Object.keys(PEERS).join(', ')}`);
  if (peerNames.includes('demo') && !fs.existsSync(path.join(ROOT, 'dist', 'example'))) {
    throw new Error('the demo needs compiled JS in dist/: run `npm run build` first, or use `npm run bench`');
  }
  const machine = machineInfo();
  const command = `node ${path.relative(process.cwd(), __filename)} ${args.join(' ')}`.trim();
  const settings = { ...flags, peers: peerNames };
  log(`# upload benchmark\ncommand: ${command}`);
  log(`machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB RAM, node ${machine.node}, ${machine.os}`);
  log(`S1: ${flags.count} uploads of ${flags['size-kib']} KiB, ${flags.concurrency} in flight, after ${flags.warmup} warm-up uploads`);
  log(`S2: one ${flags['big-mib']} MiB upload, streamed from a temp file` + (flags['big-mib'] > 0 ? '' : ' (skipped)'));
  log(`peers: ${peerNames.map(n => `${n} (${PEERS[n].describe})`).join('; ')}\n`);

  const date = new Date().toISOString();
  const work = tempDir('sonofs-bench-upload-');
  const results = {};
  try {
    let big = null;
    if (flags['big-mib'] > 0) {
      big = { file: path.join(work.dir, 'big.bin'), size: flags['big-mib'] * MiB };
      big.sha1 = await writeRandomFile(big.file, big.size);
    }
    for (const name of peerNames) results[name] = await benchPeer(name, flags, big, work.dir);
  } finally {
    await work.remove();
  }

  printTable(peerNames, results);
  const file = writeResults({ scenario: 'upload', date, command, machine, settings, units: { latency: 'ms', s2: 'MiB/s (2^20 bytes of file content per second)' }, peers: results });
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
