#!/usr/bin/env node
'use strict';
// Redis memory per stored file in cluster mode: --files synthetic 1 KiB files
// committed straight into a RedisCatalog (no bundles, no HTTP; random sha1s,
// names like file-123456.bin, --users users taking turns at random; --in-flight
// commits at a time), in a redis-server this script starts on a free loopback
// port with no persistence and stops at the end. Reports INFO memory's
// used_memory before and after, per file, and the encoding Redis chose for each
// kind of key (a packed listpack or a hashtable / skiplist).
//   node bench/redis-memory.js [--files 100000] [--users 1,100,10000] [--in-flight 32]
// Runs the build (dist/, or SONOFS_BUILD_DIR), like the other scenarios.
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { demoBuildDir } = require('./lib/peers');
const { tempDir, describeRun, parseFlags, freePort } = require('./lib/system');

const DEFAULTS = { files: 100000, users: '1,100,10000', 'in-flight': 32 };
const log = message => console.log(message);
const IORedis = require(require.resolve('ioredis', { paths: [ require.resolve('egg-redis/package.json') ] }));

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  describeRun('Redis memory per file (the Redis catalog alone)', __filename, args, log);
  const { RedisCatalog } = require(path.join(demoBuildDir(), 'lib', 'catalog', 'redis-catalog'));
  const { encodeFileId, newCookie } = require(path.join(demoBuildDir(), 'lib'));
  const work = tempDir('sonofs-bench-redis-');
  const port = await freePort();
  const server = spawn('redis-server', [ '--port', String(port), '--bind', '127.0.0.1', '--dir', work.dir, '--save', '', '--appendonly', 'no' ], { stdio: 'ignore' });
  let client;
  try {
    await listening(port);
    client = new IORedis({ port, host: '127.0.0.1' });
    log(`redis-server ${(await client.info('server')).match(/redis_version:(\S+)/)[1]}, hash-max-listpack-entries ${(await client.config('GET', 'hash-max-listpack-entries'))[1]}`);
    for (const userCount of String(flags.users).split(',').map(Number)) {
      await client.flushall();
      const before = usedMemory(await client.info('memory'));
      const namespace = 'sonofs';
      const catalog = new RedisCatalog(client, { namespace });
      const users = Array.from({ length: userCount }, (_, i) => `user-${String(i + 1).padStart(5, '0')}`);
      const n = flags.files;
      const t0 = Date.now() - n;
      const started = Date.now();
      for (let from = 0; from < n; from += flags['in-flight']) {
        const commits = [];
        for (let i = from; i < Math.min(n, from + flags['in-flight']); i++) {
          const offset = i * 1088;
          const fileId = encodeFileId({ group: 1, server: 1, bundle: Math.floor(offset / 2 ** 30), offset: offset % 2 ** 30, size: 1024, mimeCode: 0, cookie: newCookie() });
          const blob = { sha1: crypto.randomBytes(20).toString('hex'), fileId, size: 1024, mime: 'application/octet-stream', time: t0 + Math.floor(i / 2) };
          const user = users[Math.floor(Math.random() * users.length)];
          commits.push(catalog.commitUpload({ user, name: `file-${String(i).padStart(6, '0')}.bin`, blob }, () => undefined, () => undefined));
        }
        await Promise.all(commits);
      }
      const seconds = (Date.now() - started) / 1000;
      const after = usedMemory(await client.info('memory'));
      const enc = async key => `${await client.object('ENCODING', key)}`;
      log(`${n} files, ${userCount} user(s): filled in ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)} commits/s); ` +
        `used_memory +${((after - before) / 2 ** 20).toFixed(1)} MiB: **${((after - before) / n).toFixed(0)} B per file**; ` +
        `encodings: blob bucket ${await enc(`{${namespace}}:b:000`)}, links ${await enc(`{${namespace}}:l:${users[0]}`)}, time index ${await enc(`{${namespace}}:t:${users[0]}`)}`);
    }
  } finally {
    client?.disconnect();
    server.kill();
    await new Promise(r => server.once('exit', r));
    await work.remove();
  }
}

/** Resolves once something accepts connections on the loopback port. */
async function listening(port) {
  const net = require('node:net');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise(resolve => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise(r => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not listen on ${port}`);
}

const usedMemory = info => Number(info.match(/used_memory:(\d+)/)[1]);

main().catch(err => {
  console.error(err);
  process.exit(1);
});
