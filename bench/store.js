#!/usr/bin/env node
'use strict';
// The engine alone: small files stored through SonofsStore.upload in one process
// (lib/standalone: leader and store together), no HTTP, no Egg. What storing a
// file costs by itself, against which the HTTP scenarios' per-request cost can
// be read. Not a peer comparison; not part of run.js.
//   node bench/store.js [--count 10000] [--concurrency 8] [--size-kib 16] [--fsync 1] [--synced-catalog 0] [--via upload]
// --via session: each file through an upload session instead (what a tus POST + PATCH
// does without HTTP): create with its length, one ordered write that completes it.
// --synced-catalog 1: catalog commits fsynced by LMDB (what the catalog did before 2026-12-02).
// Runs the build (dist/, or SONOFS_BUILD_DIR) like the other scenarios.
const crypto = require('node:crypto');
const path = require('node:path');
const { Readable } = require('node:stream');
const { runClosedLoop } = require('./lib/load');
const { demoBuildDir } = require('./lib/peers');
const { tempDir, describeRun, parseFlags } = require('./lib/system');

const DEFAULTS = { count: 10000, warmup: 3000, concurrency: 8, 'size-kib': 16, fsync: 1, 'synced-catalog': 0, via: 'upload' };
const log = message => console.log(message);

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  describeRun('store benchmark (the engine alone)', __filename, args, log);
  if (![ 'upload', 'session' ].includes(flags.via)) throw new Error('--via is upload or session');
  const { openStandalone } = require(path.join(demoBuildDir(), 'lib', 'standalone'));
  const { UploadSessions, LmdbSessionStore, sessionsDir } = require(path.join(demoBuildDir(), 'lib'));
  const work = tempDir('sonofs-bench-store-');
  const node = await openStandalone({
    root: work.dir, group: 0, server: 0, extentSize: 64 << 20, bundleSize: 2 ** 30, maxFileSize: 2 ** 30, fsync: flags.fsync === 1,
    ...(flags['synced-catalog'] ? { bootId: null } : {}),
  });
  const sessions = flags.via === 'session' && new UploadSessions(node.store, new LmdbSessionStore(sessionsDir(work.dir), '0.0'), {
    root: work.dir, node: '0.0', ttlMs: 3_600_000, doneTtlMs: 600_000, lockTimeoutMs: 3000, fsync: flags.fsync === 1, maxFileSize: 2 ** 30,
  });
  try {
    const template = crypto.randomBytes(flags['size-kib'] * 1024);
    let stored = 0;
    const one = async () => {
      const content = Buffer.from(template);
      content.writeUInt32BE(stored++, 0); // distinct content (across both phases): no dedup
      if (!sessions) {
        await node.store.upload(Readable.from([ content ]), { user: 'bench', filename: 'f.bin', sizeBound: content.length });
        return;
      }
      const s = await sessions.create({ protocol: 'tus', user: 'bench', length: content.length, filename: 'f.bin' });
      const out = await sessions.write(s.id, { user: 'bench', at: 0, source: Readable.from([ content ]), ordered: true, complete: { user: 'bench' } });
      if (out.session.state !== 'done') throw new Error(`the session is ${out.session.state} after its last byte`);
    };
    for (const [ label, n ] of [ [ 'warm-up', flags.warmup ], [ 'measured', flags.count ] ]) {
      const cpu = process.cpuUsage();
      const r = await runClosedLoop({ count: n, concurrency: flags.concurrency, task: one });
      if (r.errors) throw new Error(`${r.errors} uploads failed: ${r.errorSamples.join('; ')}`);
      const used = process.cpuUsage(cpu);
      log(`${label}: ${n} uploads of ${flags['size-kib']} KiB, ${flags.concurrency} at a time, fsync ${flags.fsync ? 'on' : 'off'}, ` +
        `catalog ${flags['synced-catalog'] ? 'synced' : 'unsynced'}, via ${flags.via}: ` +
        `${r.opsPerSec.toFixed(0)} uploads/s, ${((used.user + used.system) / 1000 / n).toFixed(3)} ms of CPU each (all threads)`);
    }
  } finally {
    if (sessions) await sessions.close();
    await node.close();
    await work.remove();
  }
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
