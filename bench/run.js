#!/usr/bin/env node
'use strict';
// `npm run bench`: builds the demo (dist/), runs every scenario one after the
// other with the same flags, and removes the build again (`npm run clean`).
// usage: node bench/run.js [flags passed to each scenario, e.g. --count 2000]
const { spawn } = require('node:child_process');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const SCENARIOS = [ 'upload.js' ];
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(command, args) {
  console.log(`\n$ ${[ command, ...args ].join(' ')}`);
  return new Promise((resolve, reject) => {
    spawn(command, args, { cwd: ROOT, stdio: 'inherit' })
      .once('error', reject)
      .once('exit', (code, signal) => resolve(signal ? 1 : code));
  });
}

// Ctrl-C reaches the scenario too (same terminal process group); it stops its
// servers and exits, and we stay alive to clean up the build
for (const signal of [ 'SIGINT', 'SIGTERM' ]) process.on(signal, () => console.error(`\n${signal}: waiting for the scenario to stop...`));

async function main() {
  if (await run(npm, [ 'run', 'build' ]) !== 0) throw new Error('npm run build failed');
  let failed = 0;
  try {
    for (const scenario of SCENARIOS) {
      if (await run(process.execPath, [ path.join('bench', scenario), ...process.argv.slice(2) ]) !== 0) failed++;
    }
  } finally {
    if (await run(npm, [ 'run', 'clean' ]) !== 0) console.error('npm run clean failed: remove dist/ by hand');
  }
  if (failed) throw new Error(`${failed} of ${SCENARIOS.length} scenarios failed`);
}

main().catch(err => {
  console.error(err.message);
  process.exitCode = 1;
});
