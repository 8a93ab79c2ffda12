#!/usr/bin/env node
'use strict';
// Bundles the upload page (page/src, TypeScript) with esbuild into page/dist
// (or the directory given), which the plugin serves at <prefix>/upload/assets/:
// names carry a content hash, so the plugin can let browsers cache them for good.
// manifest.json maps each entry (page.js, hash-worker.js, page.css) to its file.
// Type-checking is `npm run typecheck`'s (page/tsconfig.json); esbuild only strips types.
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');
// usage: node scripts/build-page.js [outDir]   (default: page/dist)
const out = path.resolve(process.argv[2] || path.join(root, 'page', 'dist'));
const src = path.join(root, 'page', 'src');

async function main() {
  fs.rmSync(out, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: {
      page: path.join(src, 'main.ts'),
      'hash-worker': path.join(src, 'hash-worker.ts'),
      'page-style': path.join(src, 'page.css'),
    },
    outdir: out,
    entryNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    // browsers of the last few years; tus-js-client and hash-wasm need no more
    target: [ 'es2020', 'chrome90', 'firefox90', 'safari15', 'edge90' ],
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  const manifest = {};
  for (const [ file, info ] of Object.entries(result.metafile.outputs)) {
    if (!info.entryPoint) continue;
    const name = path.basename(file);
    const entry = path.basename(info.entryPoint).replace(/\.ts$/, '.js').replace(/^main\.js$/, 'page.js');
    manifest[entry] = name;
  }
  fs.writeFileSync(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log('built the upload page into %s', out);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
