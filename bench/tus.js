#!/usr/bin/env node
'use strict';
// tus benchmark (S4), the same client (tus-js-client, the official one) against each peer:
//   S4a  --count (2,000) uploads of --size-kib (16) KiB, --concurrency (16) in flight,
//        creation-with-upload (one POST carries the bytes), after --warmup (300) uploads;
//        --client raw sends the same POSTs from node:http instead of tus-js-client
//   S4b  one --big-mib (1,024) MiB upload from a file, one PATCH (chunkSize Infinity)
// Peers: demo (egg-sonofs's tus endpoint /files/, 2 workers, fsync on) and
// tus-server (@tus/server + @tus/file-store, one process, no fsync).
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
const { tempDir, writeRandomFile, readWholeFile, describeRun, writeResults, sha1Hex, parseFlags } = require('./lib/system');

const KiB = 1024;
const MiB = 1024 * 1024;
const DEFAULTS = { count: 2000, concurrency: 16, warmup: 300, 'size-kib': 16, 'big-mib': 1024, peers: 'demo,tus-server', client: 'tus-js-client' };

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

/** S4a: many small uploads, each body distinct in its first bytes so no peer can deduplicate. */
async function smallUploads(endpoint, flags) {
  const size = flags['size-kib'] * KiB;
  const bodies = Array.from({ length: flags.concurrency }, () => require('node:crypto').randomBytes(size));
  let serial = 0;
  // --client raw: the same creation-with-upload POST from a bare node:http client, to tell the
  // server's cost from tus-js-client's (which shares the cores)
  const agent = keepAliveAgent(flags.concurrency);
  const { port } = new URL(endpoint);
  const rawPost = async (body, index) => {
    const res = await request({
      agent, port, method: 'POST', path: '/files/', body,
      headers: {
        'Tus-Resumable': '1.0.0', 'Upload-Length': String(body.length), 'Content-Type': 'application/offset+octet-stream',
        'Content-Length': body.length, 'Upload-Metadata': `filename ${Buffer.from(`s4-${index}.bin`).toString('base64')}`,
      },
    });
    if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
  };
  const task = async (index, lane) => {
    const body = Buffer.from(bodies[lane]);
    body.writeUInt32LE(serial++, 0);
    if (flags.client === 'raw') await rawPost(body, index);
    else await tusUpload(endpoint, body, { filename: `s4-${index}.bin`, withCreation: true });
  };
  await runClosedLoop({ count: flags.warmup, concurrency: flags.concurrency, task });
  return runClosedLoop({ count: flags.count, concurrency: flags.concurrency, task });
}

/** S4b: one big upload streamed from a file; the stored bytes are read back and checked. */
async function bigUpload(peer, port, endpoint, big, dataDir) {
  await readWholeFile(big.file);
  const start = performance.now();
  const url = await tusUpload(endpoint, fs.createReadStream(big.file), { filename: 'big.bin', withCreation: false, size: big.size });
  const seconds = (performance.now() - start) / 1000;
  const back = await peer.fetchBack(port, url, dataDir);
  const sha1Ok = back.sha1 === big.sha1;
  return { seconds, mibPerSec: big.size / MiB / seconds, sha1Ok, error: sha1Ok ? undefined : `stored bytes differ (${back.bytes} bytes, sha1 ${back.sha1})` };
}

async function benchPeer(name, flags, big, workDir) {
  PEERS[name] = TUS_PEERS[name]; // startPeer looks peers up by name
  const { peer, server, port, dataDir } = await startPeer(name, workDir, log);
  const endpoint = `http://127.0.0.1:${port}/files/`;
  try {
    const s4a = await smallUploads(endpoint, flags);
    log(`${name} S4a: ${s4a.ok} uploads in ${s4a.seconds.toFixed(1)} s = ${s4a.opsPerSec.toFixed(0)}/s, p50 ${s4a.p50Ms.toFixed(1)} ms, ` +
      `p99 ${s4a.p99Ms.toFixed(1)} ms, errors ${s4a.errors}${s4a.errorSamples.length ? `\n  ${s4a.errorSamples.join('\n  ')}` : ''}`);
    let s4b;
    if (big) {
      s4b = await bigUpload(peer, port, endpoint, big, dataDir).catch(err => ({ error: err.message }));
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
  log(`S4a: ${flags.count} tus uploads of ${flags['size-kib']} KiB (creation-with-upload, client ${flags.client}), ${flags.concurrency} in flight, after ${flags.warmup} warm-up uploads`);
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

  const rows = peerNames.map(name => {
    const { s4a, s4b } = results[name];
    return { peer: name, uploadsPerSec: s4a.opsPerSec, p50: s4a.p50Ms, p99: s4a.p99Ms, mibPerSec: s4b && s4b.mibPerSec, errors: s4a.errors };
  });
  if (rows.length === 2) rows.push(ratioRow(rows[0], rows[1], [ 'uploadsPerSec', 'p50', 'p99', 'mibPerSec' ], `${rows[0].peer} / ${rows[1].peer}`));
  console.log(`\n${formatTable([
    { key: 'peer', title: 'peer' },
    { key: 'uploadsPerSec', title: 'S4a uploads/s', digits: 0 },
    { key: 'p50', title: 'p50 ms', digits: 1 },
    { key: 'p99', title: 'p99 ms', digits: 1 },
    { key: 'mibPerSec', title: 'S4b MiB/s', digits: 1 },
    { key: 'errors', title: 'S4a errors', digits: 0 },
  ], rows)}\n`);
  const file = writeResults({ scenario: 'tus', date, command, machine, settings: flags, peers: results });
  log(`results: ${path.relative(process.cwd(), file)}`);
  const bad = peerNames.filter(n => results[n].s4a.errors || (results[n].s4b && results[n].s4b.error));
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
