#!/usr/bin/env node
'use strict';
// What each kind of tus request costs the demo's server, alone: server CPU (every
// process of the demo, user + kernel, from /proc) per request, for
//   options   OPTIONS /files/ (the tus route, no storage: the per-request floor)
//   post      POST /files/ creating a 16 KiB upload (no body)
//   patch     PATCH of a created upload's whole 16 KiB (stores the file)
//   one-post  POST with the whole 16 KiB (creation-with-upload)
// kinds in turn, --count (4,000) requests each, --concurrency (16) in flight, from a bare
// node:http client, after a warm-up of a quarter as many. --builds a,b (private builds,
// `node scripts/build.js /tmp/a`) compares builds side by side: each of --rounds (4) starts
// each build's demo afresh, in alternating order, and the table gives every round and the
// median. A tool to see where an upload's milliseconds go, beside bench/tus.js's whole uploads.
//   node bench/tus-cost.js [--count 4000] [--rounds 4] [--kinds options,post,patch,one-post] [--builds /tmp/a,/tmp/b]
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { keepAliveAgent, request } = require('./lib/http-client');
const { runClosedLoop } = require('./lib/load');
const { PEERS, startPeer, demoBuildDir } = require('./lib/peers');
const { cpuSnapshot, describeRun, parseFlags, tempDir } = require('./lib/system');

const DEFAULTS = { count: 4000, rounds: 4, concurrency: 16, 'size-kib': 16, kinds: 'options,post,patch,one-post', builds: '' };
const log = message => console.log(message);

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  describeRun('tus request cost', __filename, args, log);
  const builds = flags.builds ? flags.builds.split(',').map(b => path.resolve(b)) : [ demoBuildDir() ];
  const work = tempDir('sonofs-bench-tus-cost-');
  const results = {}; // build → kind → [ms per round]
  try {
    for (let round = 0; round < flags.rounds; round++) {
      for (const build of round % 2 ? [ ...builds ].reverse() : builds) {
        process.env.SONOFS_BUILD_DIR = build; // scripts/start.js runs this build
        const costs = await measureBuild(flags, path.join(work.dir, `r${round}-${path.basename(build)}`));
        for (const [ kind, c ] of Object.entries(costs)) {
          ((results[build] ??= {})[kind] ??= []).push(c.ms);
          log(`round ${round + 1} ${path.basename(build)}: ${kind.padEnd(8)} ${c.perSecond.toFixed(0).padStart(6)}/s, server CPU ${c.ms.toFixed(3)} ms per request`);
        }
      }
    }
  } finally {
    await work.remove();
  }
  log('\nserver CPU ms per request: median (each round)');
  for (const [ build, kinds ] of Object.entries(results)) {
    for (const [ kind, list ] of Object.entries(kinds)) {
      log(`${path.basename(build).padEnd(12)} ${kind.padEnd(8)} ${median(list).toFixed(3)} (${list.map(v => v.toFixed(3)).join(' / ')})`);
    }
  }
}

const median = list => [ ...list ].sort((a, b) => a - b)[Math.floor((list.length - 1) / 2)];

/** Starts the demo of process.env.SONOFS_BUILD_DIR, warms it up, measures each kind, stops it. */
async function measureBuild(flags, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const { server, port } = await startPeer('demo', dir, () => undefined);
  const agent = keepAliveAgent(flags.concurrency);
  const size = flags['size-kib'] * 1024;
  const body = crypto.randomBytes(size);
  let serial = 0;
  const tus = extra => ({ 'Tus-Resumable': '1.0.0', ...extra });
  const expect = (res, status, what) => {
    if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${res.body.toString().slice(0, 200)}`);
    return res;
  };
  const create = async () => expect(await request({
    agent, port, method: 'POST', path: '/files/',
    headers: tus({ 'Upload-Length': String(size), 'Upload-Metadata': `filename ${Buffer.from('cost.bin').toString('base64')}`, 'Content-Length': 0 }),
  }), 201, 'POST').headers.location;
  const distinct = () => {
    const b = Buffer.from(body);
    b.writeUInt32LE(serial++, 0);
    return b;
  };
  const patchHeaders = tus({ 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': size });
  const terminate = urls => Promise.all(urls.map(async url => expect(await request({
    agent, port, method: 'DELETE', path: new URL(url, 'http://x').pathname, headers: tus({ 'Content-Length': 0 }),
  }), 204, 'DELETE')));
  // after the PATCHes: ends any upload a PATCH left unfinished (none, unless a build under test stores nothing)
  const endAll = (_, urls) => Promise.all(urls.map(url => request({
    agent, port, method: 'DELETE', path: new URL(url, 'http://x').pathname, headers: tus({ 'Content-Length': 0 }),
  })));
  // Each kind: prepare(n) → items (not measured), run(item) (measured), clean(results) (not measured).
  // Uploads are created and ended in batches: a user may have 1,000 unfinished at once.
  const kinds = {
    options: { run: async () => expect(await request({ agent, port, method: 'OPTIONS', path: '/files/', headers: tus() }), 204, 'OPTIONS') },
    // small batches: a creation counts the user's unfinished uploads, which a big batch would pile up
    post: { run: create, clean: terminate, batch: 64 },
    patch: { prepare: n => Promise.all(Array.from({ length: n }, () => create())), run: async url => expect(await request({
      agent, port, method: 'PATCH', path: new URL(url, 'http://x').pathname, body: distinct(), headers: patchHeaders,
    }), 204, 'PATCH'), clean: endAll },
    'one-post': { run: async () => expect(await request({
      agent, port, method: 'POST', path: '/files/', body: distinct(),
      headers: tus({ 'Upload-Length': String(size), 'Content-Type': 'application/offset+octet-stream', 'Content-Length': size }),
    }), 201, 'POST with upload') },
  };
  const BATCH = 800;
  const out = {};
  try {
    for (const warm of [ true, false ]) {
      for (const kind of flags.kinds.split(',')) {
        const k = kinds[kind];
        if (!k) throw new Error(`unknown kind ${kind}`);
        const total = warm ? flags.count / 4 : flags.count;
        let ticks = 0;
        let seconds = 0;
        for (let done = 0; done < total; done += k.batch ?? BATCH) {
          const n = Math.min(k.batch ?? BATCH, total - done);
          const items = k.prepare ? await k.prepare(n) : [];
          const answers = [];
          const before = cpuSnapshot();
          const r = await runClosedLoop({ count: n, concurrency: flags.concurrency, task: async i => { answers[i] = await k.run(items[i]); } });
          const after = cpuSnapshot();
          if (r.errors) throw new Error(`${kind}: ${r.errors} errors: ${r.errorSamples.join('; ')}`);
          for (const [ pid, p ] of after.processes) if (p.pgrp === server.pid) ticks += p.ticks - (before.processes.get(pid)?.ticks ?? 0);
          seconds += r.seconds;
          if (k.clean) await k.clean(answers, items);
        }
        if (!warm) out[kind] = { ms: (ticks * 10) / total, perSecond: total / seconds };
      }
    }
  } finally {
    agent.destroy();
    await server.stop();
  }
  return out;
}

PEERS.demo.describe = 'the example app on egg-sonofs, egg-scripts, 2 workers, fsync on';
main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
