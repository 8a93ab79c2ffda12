#!/usr/bin/env node
'use strict';
// tus benchmark (S4), the same client (tus-js-client, the official one) against each peer:
//   S4a  --count (2,000) uploads of --size-kib (16) KiB, --concurrency (16) in flight,
//        after --warmup (300) uploads, in each --modes: `post-patch` (tus-js-client's
//        default: POST creates, PATCH sends the bytes) and `with-upload`
//        (creation-with-upload: one POST carries the bytes); --client raw sends the
//        same requests from node:http instead of tus-js-client. CPU is counted from
//        /proc: the server's processes (user + system), the kernel's own threads,
//        the client, and any other process, per upload; --threads adds the server's CPU
//        thread by thread, user and kernel time apart. --content same sends one body
//        over and over (every upload after the first is a duplicate: a link to stored content).
//   S4b  one --big-mib (1,024) MiB upload from a file, one PATCH (chunkSize Infinity; --client raw:
//        the PATCH from node:http)
// Peers: demo (egg-sonofs's tus endpoint /files/, 2 workers, fsync on) and
// tus-server (@tus/server + @tus/file-store, one process, no fsync); egg-floor, not a peer but a
// bound: a plain Egg app answering tus POST and PATCH with no storage (no S4b).
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const tus = require('tus-js-client');
const { runCleanup } = require('./lib/cleanup');
const { keepAliveAgent, download, request } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { PEERS, startPeer } = require('./lib/peers');
const { startServer } = require('./lib/server-process');
const { formatTable, ratioRow } = require('./lib/table');
const { threadSnapshot, threadCpu } = require('./lib/thread-cpu');
const {
  tempDir, writeRandomFile, readWholeFile, describeRun, writeResults, sha1Hex, parseFlags, cpuSnapshot, ownProcessGroup,
} = require('./lib/system');

const KiB = 1024;
const MiB = 1024 * 1024;
const DEFAULTS = {
  count: 2000, concurrency: 16, warmup: 300, 'size-kib': 16, 'big-mib': 1024, peers: 'demo,tus-server', client: 'tus-js-client',
  modes: 'post-patch,with-upload', content: 'distinct', threads: false,
};
const MODES = [ 'post-patch', 'with-upload' ];

const TUS_PEERS = {
  demo: {
    ...PEERS.demo,
    // the finished upload is a stored file: read it back through the tus URL
    fetchBack: (port, url) => download({ port, path: new URL(url).pathname }),
  },
  'tus-server': {
    describe: '@tus/server 2 + @tus/file-store, one node:http process, no fsync',
    start: (port, dataDir) => startServer({
      name: 'tus-server',
      args: [ path.join(__dirname, 'servers', 'tus-server.js') ],
      env: { PORT: String(port), TUS_DIR: dataDir },
      ready: `tus server started on http://127.0.0.1:${port}`,
    }),
    // @tus/file-store keeps each upload as a file named by its id
    fetchBack: async (port, url, dataDir) => {
      const file = path.join(dataDir, path.basename(new URL(url).pathname));
      const start = performance.now();
      const data = await fs.promises.readFile(file);
      return { status: 200, bytes: data.length, sha1: sha1Hex(data), seconds: (performance.now() - start) / 1000 };
    },
  },
  'egg-floor': {
    describe: 'not a peer but a bound: a plain Egg 3 app (2 workers) answering tus POST and PATCH, storing nothing',
    start: PEERS['egg-floor'].start,
    fetchBack: undefined, // keeps nothing to read back: no S4b
  },
};

/** One tus upload with tus-js-client; resolves to the upload URL. */
function tusUpload(endpoint, source, opts) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(source, {
      endpoint,
      chunkSize: Infinity,
      retryDelays: null,
      metadata: { filename: opts.filename, filetype: 'application/octet-stream' },
      uploadDataDuringCreation: opts.withCreation,
      storeFingerprintForResuming: false,
      ...(opts.size !== undefined ? { uploadSize: opts.size } : {}),
      onError: reject,
      onSuccess: () => resolve(upload.url),
    });
    upload.start();
  });
}

/** S4a: many small uploads, each body distinct in its first bytes so no peer can deduplicate (unless --content same). */
async function smallUploads(endpoint, flags, mode) {
  const withCreation = mode === 'with-upload';
  const size = flags['size-kib'] * KiB;
  const bodies = Array.from({ length: flags.concurrency }, () => require('node:crypto').randomBytes(size));
  let serial = 0;
  // --client raw: the same creation-with-upload POST from a bare node:http client, to tell the
  // server's cost from tus-js-client's (which shares the cores)
  const agent = keepAliveAgent(flags.concurrency);
  const { port } = new URL(endpoint);
  const rawPost = async (body, index) => {
    const res = await request({
      agent, port, method: 'POST', path: '/files/', body: withCreation ? body : undefined,
      headers: {
        'Tus-Resumable': '1.0.0', 'Upload-Length': String(body.length), 'Upload-Metadata': `filename ${Buffer.from(`s4-${index}.bin`).toString('base64')}`,
        ...(withCreation ? { 'Content-Type': 'application/offset+octet-stream', 'Content-Length': body.length } : { 'Content-Length': 0 }),
      },
    });
    if (res.status !== 201) throw new Error(`POST: HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
    if (withCreation) return;
    const patch = await request({
      agent, port, method: 'PATCH', path: new URL(res.headers.location, endpoint).pathname, body,
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': body.length },
    });
    if (patch.status !== 204) throw new Error(`PATCH: HTTP ${patch.status}: ${patch.body.toString().slice(0, 200)}`);
  };
  const task = async (index, lane) => {
    const body = Buffer.from(bodies[flags.content === 'same' ? 0 : lane]);
    if (flags.content !== 'same') body.writeUInt32LE(serial++, 0);
    if (flags.client === 'raw') await rawPost(body, index);
    else await tusUpload(endpoint, body, { filename: `s4-${index}.bin`, withCreation });
  };
  await runClosedLoop({ count: flags.warmup, concurrency: flags.concurrency, task });
  const before = cpuSnapshot();
  const threadsBefore = flags.threads ? threadSnapshot(cpuPerUpload.serverGroup) : undefined;
  const clientBefore = process.cpuUsage();
  const result = await runClosedLoop({ count: flags.count, concurrency: flags.concurrency, task });
  const client = process.cpuUsage(clientBefore);
  const threads = threadsBefore && threadCpu(threadsBefore, threadSnapshot(cpuPerUpload.serverGroup), result.ok);
  return { ...result, threads, cpu: cpuPerUpload(before, cpuSnapshot(), (client.user + client.system) / 1000, result.ok) };
}

/** Where the CPU went during a run, in ms per upload: the server's process group, the kernel's threads, the client, the rest. */
function cpuPerUpload(before, after, clientMs, uploads) {
  const serverGroup = cpuPerUpload.serverGroup;
  const own = ownProcessGroup();
  const ticks = { server: 0, kernel: 0, client: 0 };
  for (const [ pid, p ] of after.processes) {
    const delta = p.ticks - (before.processes.get(pid)?.ticks ?? 0);
    if (p.pgrp === serverGroup) ticks.server += delta;
    else if (p.pgrp === 0) ticks.kernel += delta;
    else if (p.pgrp === own) ticks.client += delta;
  }
  const busy = after.busy - before.busy;
  const ms = t => (t * 10) / uploads; // a tick is 10 ms (USER_HZ 100)
  return {
    serverMs: ms(ticks.server), kernelThreadsMs: ms(ticks.kernel), clientMs: clientMs / uploads,
    otherMs: Math.max(0, ms(busy - ticks.server - ticks.kernel - ticks.client)),
  };
}

/** S4b by hand: POST, then one PATCH streaming the file from node:http (what --client raw measures). */
async function rawBigUpload(endpoint, big) {
  const { port } = new URL(endpoint);
  const created = await request({
    port, method: 'POST', path: '/files/', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(big.size), 'Content-Length': 0 },
  });
  if (created.status !== 201) throw new Error(`POST: HTTP ${created.status}`);
  const url = new URL(created.headers.location, endpoint).href;
  const patch = await request({
    port, method: 'PATCH', path: new URL(url).pathname, body: fs.createReadStream(big.file, { highWaterMark: MiB }),
    headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': big.size },
  });
  if (patch.status !== 204) throw new Error(`PATCH: HTTP ${patch.status}: ${patch.body.toString().slice(0, 200)}`);
  return url;
}

/** S4b: one big upload streamed from a file; the stored bytes are read back and checked. */
async function bigUpload(peer, port, endpoint, big, dataDir, client) {
  await readWholeFile(big.file);
  const start = performance.now();
  const url = client === 'raw'
    ? await rawBigUpload(endpoint, big)
    : await tusUpload(endpoint, fs.createReadStream(big.file), { filename: 'big.bin', withCreation: false, size: big.size });
  const seconds = (performance.now() - start) / 1000;
  const back = await peer.fetchBack(port, url, dataDir);
  const sha1Ok = back.sha1 === big.sha1;
  return { seconds, mibPerSec: big.size / MiB / seconds, sha1Ok, error: sha1Ok ? undefined : `stored bytes differ (${back.bytes} bytes, sha1 ${back.sha1})` };
}

async function benchPeer(name, flags, big, workDir) {
  PEERS[name] = TUS_PEERS[name]; // startPeer looks peers up by name
  const { peer, server, port, dataDir } = await startPeer(name, workDir, log);
  const endpoint = `http://127.0.0.1:${port}/files/`;
  cpuPerUpload.serverGroup = server.pid; // startServer makes each server the leader of its own process group
  try {
    const s4a = {};
    for (const mode of flags.modes.split(',')) {
      const r = s4a[mode] = await smallUploads(endpoint, flags, mode);
      log(`${name} S4a ${mode}: ${r.ok} uploads in ${r.seconds.toFixed(1)} s = ${r.opsPerSec.toFixed(0)}/s, p50 ${r.p50Ms.toFixed(1)} ms, ` +
        `p99 ${r.p99Ms.toFixed(1)} ms, errors ${r.errors}; CPU ms per upload: server ${r.cpu.serverMs.toFixed(2)}, ` +
        `kernel threads ${r.cpu.kernelThreadsMs.toFixed(2)}, client ${r.cpu.clientMs.toFixed(2)}, other ${r.cpu.otherMs.toFixed(2)}` +
        `${r.errorSamples.length ? `\n  ${r.errorSamples.join('\n  ')}` : ''}`);
      if (r.threads) {
        log(`${name} ${mode}: server CPU ms per upload by thread (user / kernel):\n` +
          r.threads.map(t => `  ${t.role.padEnd(7)} ${t.thread.padEnd(18)} ${t.userMs.toFixed(2)} / ${t.systemMs.toFixed(2)}`).join('\n'));
      }
    }
    let s4b;
    if (big && peer.fetchBack) {
      s4b = await bigUpload(peer, port, endpoint, big, dataDir, flags.client).catch(err => ({ error: err.message }));
      log(s4b.error ? `${name} S4b: FAILED: ${s4b.error}` : `${name} S4b: ${big.size / MiB} MiB in ${s4b.seconds.toFixed(2)} s = ${s4b.mibPerSec.toFixed(1)} MiB/s, sha1 checked`);
    }
    return { s4a, s4b };
  } finally {
    await server.stop();
  }
}

const log = message => console.log(message);

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const peerNames = flags.peers.split(',').filter(Boolean);
  if (![ 'tus-js-client', 'raw' ].includes(flags.client)) throw new Error('--client is tus-js-client or raw');
  for (const n of peerNames) if (!TUS_PEERS[n]) throw new Error(`unknown peer ${n}; peers: ${Object.keys(TUS_PEERS).join(', ')}`);
  const { command, machine, date } = describeRun('tus benchmark', __filename, args, log);
  for (const m of flags.modes.split(',')) if (!MODES.includes(m)) throw new Error(`--modes takes ${MODES.join(', ')}`);
  if (![ 'distinct', 'same' ].includes(flags.content)) throw new Error('--content is distinct or same');
  log(`S4a: ${flags.count} tus uploads of ${flags['size-kib']} KiB (${flags.modes}, client ${flags.client}, ${flags.content} content), ${flags.concurrency} in flight, after ${flags.warmup} warm-up uploads`);
  log(`S4b: one ${flags['big-mib']} MiB tus upload from a file` + (flags['big-mib'] > 0 ? '' : ' (skipped)'));
  log(`peers: ${peerNames.map(n => `${n} (${TUS_PEERS[n].describe})`).join('; ')}\n`);
  // tus-js-client uses node:http's global agent: keep connections alive like a browser would
  require('node:http').globalAgent = keepAliveAgent(flags.concurrency);

  const work = tempDir('sonofs-bench-tus-');
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

  const modes = flags.modes.split(',');
  const rows = peerNames.map(name => {
    const { s4a, s4b } = results[name];
    const row = { peer: name, mibPerSec: s4b && s4b.mibPerSec };
    for (const m of modes) {
      Object.assign(row, { [`${m}/s`]: s4a[m].opsPerSec, [`${m} p50`]: s4a[m].p50Ms, [`${m} server ms`]: s4a[m].cpu.serverMs,
        [`${m} kernel ms`]: s4a[m].cpu.kernelThreadsMs + s4a[m].cpu.otherMs });
    }
    return row;
  });
  const keys = [ ...modes.flatMap(m => [ `${m}/s`, `${m} p50`, `${m} server ms`, `${m} kernel ms` ]), 'mibPerSec' ];
  if (rows.length === 2) rows.push(ratioRow(rows[0], rows[1], keys, `${rows[0].peer} / ${rows[1].peer}`));
  console.log(`\n${formatTable([
    { key: 'peer', title: 'peer' },
    ...modes.flatMap(m => [
      { key: `${m}/s`, title: `${m} uploads/s`, digits: 0 },
      { key: `${m} p50`, title: 'p50 ms', digits: 1 },
      { key: `${m} server ms`, title: 'server CPU ms', digits: 2 },
      { key: `${m} kernel ms`, title: 'kernel+other ms', digits: 2 },
    ]),
    { key: 'mibPerSec', title: 'S4b MiB/s', digits: 1 },
  ], rows)}\n`);
  console.log('server CPU ms: user + system time of the server\'s processes per upload; kernel+other ms: the kernel\'s own threads ' +
    '(writeback, ...) and any process that is neither the client nor a server, per upload\n');
  const file = writeResults({ scenario: 'tus', date, command, machine, settings: flags, peers: results });
  log(`results: ${path.relative(process.cwd(), file)}`);
  const bad = peerNames.filter(n => Object.values(results[n].s4a).some(r => r.errors) || (results[n].s4b && results[n].s4b.error));
  if (bad.length) {
    console.error(`\nSOMETHING WENT WRONG for ${bad.join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch(async err => {
  console.error(err.stack || err.message);
  await runCleanup();
  process.exitCode = 1;
});
