#!/usr/bin/env node
'use strict';
// Compiles the plugin and the demo app into dist/, a runnable copy of the
// package: egg 3 loads .js files, and compiling beside the .ts sources would
// confuse test runs (egg-bin loads the .ts) that happen at the same time.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
// usage: node scripts/build.js [outDir]   (default: dist)
const dist = path.resolve(process.argv[2] || path.join(root, 'dist'));

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [ require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', dist ], { cwd: root, stdio: 'inherit' });
execFileSync(process.execPath, [ path.join(__dirname, 'build-page.js'), path.join(dist, 'page', 'dist') ], { cwd: root, stdio: 'inherit' });
for (const file of [ 'package.json', 'example/package.json' ]) fs.copyFileSync(path.join(root, file), path.join(dist, file));
fs.symlinkSync(path.join(root, 'node_modules'), path.join(dist, 'node_modules'), 'dir');
console.log('built %s', dist);
