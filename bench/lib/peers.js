'use strict';
// The servers every scenario compares, and how to start and check each one.
// start(port, dataDir, workDir) resolves to a started server (server-process.js);
// downloadPath(answer) is where an upload can be read back; storesBody: the peer
// keeps (and serves back) the whole multipart body rather than the file in it.
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { startServer } = require('./server-process');
const { freePort, settleDisk } = require('./system');

const ROOT = path.join(__dirname, '..', '..');
const PLAIN_EGG_DIR = path.join(__dirname, '..', 'servers', 'plain-egg');

/** The answer of demo and plain-egg: the stored file's size and sha1, as the course's API has them. */
function checkFileAnswer(data, sent) {
  if (data.FileSize !== sent.size) throw new Error(`FileSize ${data.FileSize}, sent ${sent.size}`);
  if (sent.sha1 && data.FileSha1 !== sent.sha1) throw new Error(`FileSha1 ${data.FileSha1}, sent ${sent.sha1}`);
}

const byFileId = data => `/file/download?fileid=${encodeURIComponent(data.FileId)}`;

/** The example app (scripts/start.js) with 2 workers (BENCH_EGG_WORKERS: another count); `env` on top of the demo's own. */
function startDemo(name, port, dataDir, env) {
  return startServer({
    name,
    args: [ path.join(ROOT, 'scripts', 'start.js') ],
    cwd: ROOT,
    env: { PORT: String(port), EGG_WORKERS: process.env.BENCH_EGG_WORKERS || '2', SONOFS_ROOT: dataDir, EGG_TITLE: `sonofs-bench-${name}-${port}`, ...env },
    ready: `egg started on http://127.0.0.1:${port}`,
    timeoutMs: 120_000,
  });
}

const PEERS = {
  demo: {
    describe: 'the example app on egg-sonofs, egg-scripts, 2 workers, fsync on',
    start: (port, dataDir) => startDemo('demo', port, dataDir, {}),
    checkUpload: checkFileAnswer,
    downloadPath: byFileId,
    storesBody: false,
  },
  'demo-nofsync': {
    describe: 'the demo with fsync off (SONOFS_FSYNC=0): as durable as the peers, none of which fsyncs',
    start: (port, dataDir) => startDemo('demo-nofsync', port, dataDir, { SONOFS_FSYNC: '0' }),
    checkUpload: checkFileAnswer,
    downloadPath: byFileId,
    storesBody: false,
  },
  'plain-egg': {
    describe: 'a plain Egg 3 app: getFileStream to one file + one JSON meta file per upload, egg-scripts, 2 workers, no fsync',
    start: (port, dataDir, workDir) => startPlainEgg('plain-egg', port, dataDir, workDir, {}),
    checkUpload: checkFileAnswer,
    downloadPath: byFileId,
    storesBody: false,
  },
  'egg-floor': {
    describe: 'not a peer but a bound: the plain-egg app parsing each upload with egg-multipart and storing nothing (no hash, no disk)',
    start: (port, dataDir, workDir) => startPlainEgg('egg-floor', port, dataDir, workDir, { PLAIN_EGG_DISCARD: '1' }),
    checkUpload: (data, sent) => {
      if (data.FileSize !== sent.size) throw new Error(`FileSize ${data.FileSize}, sent ${sent.size}`);
    },
    downloadPath: undefined, // keeps nothing to read back
    storesBody: false,
  },
  raw: {
    describe: 'the ceiling: node:http piping each whole multipart body to a new file (no fsync), fs.createReadStream back',
    start: (port, dataDir) => startServer({
      name: 'raw',
      args: [ path.join(__dirname, '..', 'servers', 'raw.js') ],
      env: { PORT: String(port), RAW_DIR: dataDir },
      ready: `raw server started on http://127.0.0.1:${port}`,
    }),
    // raw stores the body as it came, multipart framing included
    checkUpload: (data, sent) => {
      if (data.size !== sent.bodyLength) throw new Error(`stored ${data.size} bytes, sent a ${sent.bodyLength}-byte body`);
    },
    downloadPath: data => `/file/download?fileid=${data.file}`,
    storesBody: true,
  },
};

/** The plain-egg app, started as scripts/start.js starts the demo: egg-scripts in the foreground, production mode. */
function startPlainEgg(name, port, dataDir, workDir, env) {
  return startServer({
    name,
    args: [
      require.resolve('egg-scripts/bin/egg-scripts.js'), 'start',
      `--port=${port}`, '--workers=2', '--env=prod',
      `--title=sonofs-bench-${name}-${port}`,
      `--framework=${path.join(ROOT, 'node_modules', 'egg')}`,
      PLAIN_EGG_DIR,
    ],
    cwd: ROOT,
    env: { PLAIN_EGG_DATA: dataDir, PLAIN_EGG_LOG_DIR: path.join(workDir, `${name}-logs-${port}`), ...env },
    ready: `egg started on http://127.0.0.1:${port}`,
    timeoutMs: 120_000,
  });
}

/**
 * The build the demo runs: dist/, or SONOFS_BUILD_DIR (scripts/start.js reads it
 * from the environment we pass on). A private build (`node scripts/build.js /tmp/x`)
 * cannot be rebuilt or cleaned by someone else's `npm run build` mid-run.
 */
function demoBuildDir() {
  return path.resolve(ROOT, process.env.SONOFS_BUILD_DIR || 'dist');
}

/** Parses a --peers list; throws on unknown names and when the demo has no build. */
function pickPeers(list) {
  const names = list.split(',').filter(Boolean);
  for (const name of names) if (!PEERS[name]) throw new Error(`unknown peer ${name}; peers: ${Object.keys(PEERS).join(', ')}`);
  if (names.some(n => n.startsWith('demo')) && !fs.existsSync(path.join(demoBuildDir(), 'example'))) {
    throw new Error(`the demo needs compiled JS in ${demoBuildDir()}: run \`npm run build\` first, or use \`npm run bench\``);
  }
  return names;
}

/**
 * Starts peer `name` on a free port with the data dir `<workDir>/<name>-data`
 * (created unless it exists: a restart keeps the data). `sync` runs first, so
 * what earlier steps left dirty is not written back during this peer's measurement.
 * Resolves to { peer, server, port, dataDir, startSeconds } (spawn to ready line).
 */
async function startPeer(name, workDir, log = console.log) {
  const peer = PEERS[name];
  const dataDir = path.join(workDir, `${name}-data`);
  fs.mkdirSync(dataDir, { recursive: true });
  settleDisk();
  const port = await freePort();
  const startedAt = performance.now();
  const server = await peer.start(port, dataDir, workDir);
  const startSeconds = (performance.now() - startedAt) / 1000;
  log(`${name}: ready on port ${port} after ${startSeconds.toFixed(1)} s (data in ${dataDir})`);
  return { peer, server, port, dataDir, startSeconds };
}

/**
 * Runs `benchOne(name, roundDir)` for every peer, `rounds` times, in the given
 * order in even rounds and reversed in odd ones: whichever peer runs second is
 * slowed by the first one's writeback, and on a shared machine by whatever else
 * ran meanwhile, so alternating and taking medians makes ratios firmer.
 * Each round gets its own dir under `workDir` (data is deleted only at the end).
 * Resolves to { [name]: [result of round 0, round 1, ...] }.
 */
async function runRounds(peerNames, rounds, workDir, benchOne, log = console.log) {
  const results = Object.fromEntries(peerNames.map(name => [ name, [] ]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [ ...peerNames ].reverse() : peerNames;
    const roundDir = path.join(workDir, `round-${round + 1}`);
    fs.mkdirSync(roundDir);
    if (rounds > 1) log(`\n## round ${round + 1} of ${rounds}: ${order.join(', ')}`);
    for (const name of order) results[name][round] = await benchOne(name, roundDir);
  }
  return results;
}

module.exports = { PEERS, pickPeers, startPeer, runRounds, demoBuildDir, ROOT };
