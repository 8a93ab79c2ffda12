#!/usr/bin/env node
'use strict';
// `npm run bench`: builds the demo into a private temp dir (not dist/, which
// someone else's `npm run build` or `npm run clean` could replace mid-run), runs
// every scenario one after the other on it (SONOFS_BUILD_DIR), and removes the build.
// usage: node bench/run.js [--only upload,reads,tus,scale] [flags, e.g. --count 2000]
// Each flag goes to every scenario that has it (e.g. --count to upload and
// reads, --files to scale); a flag no scenario knows is an error.
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const SCENARIOS = [ 'upload', 'reads', 'tus', 'scale' ];

function run(command, args, env = {}) {
  console.log(`\n$ ${Object.entries(env).map(([ k, v ]) => `${k}=${v} `).join('')}${[ command, ...args ].join(' ')}`);
  return new Promise((resolve, reject) => {
    spawn(command, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } })
      .once('error', reject)
      .once('exit', (code, signal) => resolve(signal ? 1 : code));
  });
}

const scenarioFile = name => path.join('bench', `${name}.js`);

/** Splits argv into --only and [flag, value] pairs ("--name value" or "--name=value"). */
function parseArgs(argv) {
  let only = SCENARIOS;
  const flags = [];
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([\w-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!match) throw new Error(`unexpected argument ${argv[i]}`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${match[1]} needs a value`);
    if (match[1] === 'only') {
      only = value.split(',').filter(Boolean);
      for (const name of only) if (!SCENARIOS.includes(name)) throw new Error(`unknown scenario ${name}; scenarios: ${SCENARIOS.join(', ')}`);
    } else {
      flags.push([ match[1], value ]);
    }
  }
  return { only, flags };
}

/** Each scenario's arguments: the flags it knows (asked with --list-flags). */
function argsPerScenario(only, flags) {
  const known = Object.fromEntries(only.map(name => [ name,
    JSON.parse(execFileSync(process.execPath, [ scenarioFile(name), '--list-flags' ], { cwd: ROOT }).toString()) ]));
  for (const [ flag ] of flags) {
    if (!only.some(name => known[name].includes(flag))) throw new Error(`no scenario of ${only.join(', ')} has --${flag}`);
  }
  return Object.fromEntries(only.map(name => [ name,
    flags.filter(([ flag ]) => known[name].includes(flag)).map(([ flag, value ]) => `--${flag}=${value}`) ]));
}

// Ctrl-C reaches the scenario too (same terminal process group); it stops its
// servers and exits, and we stay alive to clean up the build
for (const signal of [ 'SIGINT', 'SIGTERM' ]) process.on(signal, () => console.error(`\n${signal}: waiting for the scenario to stop...`));

async function main() {
  const { only, flags } = parseArgs(process.argv.slice(2));
  const args = argsPerScenario(only, flags); // before building: a typo should not cost a build
  const build = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-bench-build-'));
  let failed = 0;
  try {
    if (await run(process.execPath, [ path.join('scripts', 'build.js'), build ]) !== 0) throw new Error('the build failed');
    for (const name of only) {
      if (await run(process.execPath, [ scenarioFile(name), ...args[name] ], { SONOFS_BUILD_DIR: build }) !== 0) failed++;
    }
  } finally {
    fs.rmSync(build, { recursive: true, force: true });
  }
  if (failed) throw new Error(`${failed} of ${only.length} scenarios failed`);
}

main().catch(err => {
  console.error(err.message);
  process.exitCode = 1;
});
