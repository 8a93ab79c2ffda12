'use strict';
// Child of bench/catalog-size.js --rebuild: drops the catalog of a store and rebuilds it from
// the bundles with the given build's recoverCatalog, in a process of its own, so its peak RSS
// (VmHWM) is the rebuild's. Prints one JSON line.
//   node bench/lib/rebuild-child.js <build dir> <store root> <extent bytes> <verify data: 1|0>
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

async function main() {
  const [ buildDir, root, extentSize, verify ] = process.argv.slice(2);
  const lib = require(path.join(buildDir, 'lib'));
  const dir = path.join(root, 'meta');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(`${dir}.unsynced`, { force: true });
  const catalog = new lib.LmdbCatalog(dir, { bootId: 'catalog-size' });
  const started = performance.now();
  const r = await lib.recoverCatalog(catalog, root, { group: 0, server: 0, extentSize: Number(extentSize), verifyData: verify === '1' });
  const seconds = (performance.now() - started) / 1000;
  // Peak of all resident memory; and, at the end, how much of it is private (heap, buffers) and how
  // much mapped file pages, nearly all the catalog's (LMDB maps it; the kernel can drop clean ones).
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kib = name => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]);
  await catalog.close({ last: true });
  console.log(JSON.stringify({ ...r, seconds, peakKiB: kib('VmHWM'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile') }));
}

main().catch(err => {
  console.error(err);
  process.exitCode = 1;
});
