#!/usr/bin/env node
'use strict';
// The catalog alone: --files synthetic 1 KiB files committed straight into an
// LmdbCatalog (no bundles, no HTTP, random sha1s, names like file-123456.bin,
// --users users taking turns at random), then what the catalog directory takes
// on disk per file (du -sk: allocated blocks, not apparent size), and read rates
// of getBlob, getUserFile and listUserFiles on the reopened catalog (one at a
// time, page cache warm). Sizes that bench/scale.js takes half an hour to reach
// fill here in minutes. Not part of run.js.
//   node bench/catalog-size.js [--files 1000000] [--users 1] [--reads 100000] [--list-limit 20] [--in-flight 32]
// --in-flight: commits queued at once (lmdb-js commits those together), as uploads in flight on a node.
// Runs the build (dist/, or SONOFS_BUILD_DIR) like the other scenarios, so two
// builds (two catalog formats) can be compared with the same script.
// --rebuild: instead, stores --files 1 KiB files of random bytes through openStandalone
// (--in-flight uploads at a time, fsync off) into --store (kept; filled only when it holds no
// bundle yet, so two builds rebuild the same store) or a temp dir, then drops the catalog and
// rebuilds it in a child process (bench/lib/rebuild-child.js): time and peak RSS (VmHWM), with
// data checksums read (--verify-data 1, as after an OS crash or a lost catalog), without
// (0, a clean format upgrade), or both.
//   node bench/catalog-size.js --rebuild [--files 1000000] [--store DIR] [--verify-data both]
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { Readable } = require('node:stream');
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { demoBuildDir } = require('./lib/peers');
const { tempDir, describeRun, parseFlags } = require('./lib/system');

const DEFAULTS = {
  files: 1000000, users: 1, reads: 100000, 'list-limit': 20, 'in-flight': 32, rebuild: false, store: '', 'verify-data': 'both',
};
const log = message => console.log(message);

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  if (flags.rebuild) return rebuild(flags, args);
  describeRun('catalog size (the catalog alone)', __filename, args, log);
  const lib = require(path.join(demoBuildDir(), 'lib'));
  const work = tempDir('sonofs-bench-catalog-');
  const dir = path.join(work.dir, 'meta');
  const n = flags.files;
  const users = Array.from({ length: flags.users }, (_, i) => `user-${String(i + 1).padStart(4, '0')}`);
  const sha1s = crypto.randomBytes(n * 20);
  const sha1 = i => sha1s.toString('hex', i * 20, i * 20 + 20);
  const owner = new Uint16Array(n).map(() => Math.floor(Math.random() * users.length));
  const t0 = Date.now() - n;
  const slot = 1024 + 64;
  const noWrite = () => undefined;
  try {
    let catalog = new lib.LmdbCatalog(dir, { bootId: 'catalog-size' });
    const started = performance.now();
    for (let from = 0; from < n; from += flags['in-flight']) {
      const commits = [];
      for (let i = from; i < Math.min(n, from + flags['in-flight']); i++) {
        const offset = i * slot;
        const fileId = lib.encodeFileId({
          group: 0, server: 0, bundle: Math.floor(offset / 2 ** 30), offset: offset % 2 ** 30, size: 1024, mimeCode: 0, cookie: lib.newCookie(),
        });
        // two uploads per millisecond, as a busy node stores them
        const time = t0 + Math.floor(i / 2);
        const blob = { sha1: sha1(i), fileId, size: 1024, mime: 'application/octet-stream', time };
        commits.push(catalog.commitUpload({ user: users[owner[i]], name: `file-${String(i).padStart(6, '0')}.bin`, blob }, noWrite, noWrite));
      }
      await Promise.all(commits);
    }
    const fillSeconds = (performance.now() - started) / 1000;
    await catalog.close({ last: true });
    const kib = Number(execFileSync('du', [ '-sk', dir ]).toString().split('\t')[0]);
    const apparent = fs.statSync(path.join(dir, 'data.mdb')).size;
    log(`filled ${n} files for ${users.length} user(s) in ${fillSeconds.toFixed(1)} s (${(n / fillSeconds).toFixed(0)} commits/s)`);
    log(`catalog on disk: ${kib} KiB allocated (du -sk), ${(apparent / 1024).toFixed(0)} KiB apparent: ` +
      `**${(kib * 1024 / n).toFixed(1)} B per file** allocated`);

    catalog = new lib.LmdbCatalog(dir, { bootId: 'catalog-size' });
    const stats = catalog.db && catalog.db.getStats && catalog.db.getStats();
    if (stats) {
      log(`LMDB: ${stats.entryCount} entries, depth ${stats.treeDepth}, ${stats.treeLeafPageCount} leaf + ${stats.treeBranchPageCount} branch ` +
        `+ ${stats.overflowPages} overflow pages of ${stats.pageSize} B, ${stats.lastPageNumber + 1} pages in the file (the rest free)`);
    }
    await measureReads(catalog, flags, n, i => ({ user: users[owner[i]], sha1: sha1(i) }), users);
    await catalog.close({ last: true });
  } finally {
    await work.remove();
  }
}

const MiB = 1 << 20;
const REBUILD_NODE = { group: 0, server: 0, bundleSize: 1024 * MiB, extentSize: 64 * MiB, maxFileSize: 64 * MiB, fsync: false, bootId: 'catalog-size' };

/** --rebuild: a store filled through the engine, then its catalog rebuilt from the bundles. */
async function rebuild(flags, args) {
  describeRun('catalog rebuild from the bundles', __filename, args, log);
  const build = demoBuildDir();
  const work = flags.store ? undefined : tempDir('sonofs-bench-rebuild-');
  const root = flags.store || work.dir;
  try {
    const lib = require(path.join(build, 'lib'));
    if (lib.listBundles(root).length === 0) await fillStore(lib, root, flags);
    else log(`store ${root} already holds ${lib.listBundles(root).length} bundle(s): rebuilding its catalog as it is`);
    const modes = flags['verify-data'] === 'both' ? [ '1', '0' ] : [ flags['verify-data'] === '0' ? '0' : '1' ];
    for (const verify of modes) {
      const out = execFileSync(process.execPath, [ path.join(__dirname, 'lib', 'rebuild-child.js'), build, root, String(REBUILD_NODE.extentSize), verify ]);
      const r = JSON.parse(out.toString().trim().split('\n').pop());
      const mib = k => (k / 1024).toFixed(0);
      log(`rebuild (${verify === '1' ? 'data checksums read' : 'headers and meta only'}): **${r.seconds.toFixed(1)} s, peak RSS ` +
        `${mib(r.peakKiB)} MiB** (at the end: ${mib(r.anonKiB)} MiB private, ${mib(r.fileKiB)} MiB mapped files); ` +
        `${r.mode} applied ${r.applied} records (${r.corrupt} corrupt)`);
    }
  } finally {
    await work?.remove();
  }
}

/** --files 1 KiB files through openStandalone, --in-flight at a time, users taking turns at random. */
async function fillStore(lib, root, flags) {
  fs.mkdirSync(root, { recursive: true });
  const node = await lib.openStandalone({ root, ...REBUILD_NODE });
  const users = Array.from({ length: flags.users }, (_, i) => `user-${String(i + 1).padStart(4, '0')}`);
  const started = performance.now();
  try {
    for (let from = 0; from < flags.files; from += flags['in-flight']) {
      const uploads = [];
      for (let i = from; i < Math.min(flags.files, from + flags['in-flight']); i++) {
        const user = users[Math.floor(Math.random() * users.length)];
        uploads.push(node.store.upload(Readable.from([ crypto.randomBytes(1024) ]), { user, filename: `file-${String(i).padStart(6, '0')}.bin` }));
      }
      await Promise.all(uploads);
    }
  } finally {
    await node.close();
  }
  const seconds = (performance.now() - started) / 1000;
  log(`stored ${flags.files} files of 1 KiB for ${users.length} user(s) in ${seconds.toFixed(1)} s through openStandalone, in ${root}`);
}

/** ops/s of each read, one at a time, after a warm-up round of the same size. */
async function measureReads(catalog, flags, n, file, users) {
  const picks = Array.from({ length: flags.reads }, () => file(Math.floor(Math.random() * n)));
  const rounds = {
    getBlob: async f => { if (!await catalog.getBlob(f.sha1)) throw new Error(`no blob ${f.sha1}`); },
    getUserFile: async f => { if (!await catalog.getUserFile(f.user, f.sha1)) throw new Error(`no file ${f.sha1}`); },
    listUserFiles: async (f, i) => {
      const list = await catalog.listUserFiles(users[i % users.length], flags['list-limit']);
      if (list.length !== Math.min(flags['list-limit'], n)) throw new Error(`listed ${list.length}`);
    },
  };
  for (const [ name, op ] of Object.entries(rounds)) {
    const count = name === 'listUserFiles' ? Math.ceil(picks.length / flags['list-limit']) : picks.length;
    let ms = 0;
    for (const measured of [ false, true ]) {
      const start = performance.now();
      for (let i = 0; i < count; i++) await op(picks[i], i);
      if (measured) ms = performance.now() - start;
    }
    const what = name === 'listUserFiles' ? `listUserFiles(user, ${flags['list-limit']})` : `${name}`;
    log(`${what}: ${(count / ms * 1000).toFixed(0)} ops/s (${(ms * 1000 / count).toFixed(2)} µs each, ${count} calls)`);
  }
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
