#!/usr/bin/env node
'use strict';
// The store's two faces for people, each beside the usual client of its kind,
// with one big file (--size, 1 GiB) against the same demo, side by side in each
// of --rounds (3) rounds, the order reversed every other round:
//   page             the upload page (GET /file/upload) in headless Chromium: the file
//                    picked through its file input, timed until its row says Stored
//                    (sha1 in a worker, 秒传 question, tus in chunks of page.chunkSize)
//   tus-page-chunks  tus-js-client in Node, set as the page sets it (page.chunkSize)
//   tus-default      tus-js-client in Node with its defaults (one PATCH)
//   cli              `sonofs put FILE --url ...` as a child process (sha1, 秒传 question, tus)
//   curl             `curl -F file=@FILE .../file/upload` (one multipart POST)
// Every upload sends new content (the file's first bytes change), so 秒传 never
// short-circuits. CPU from /proc: the demo's processes (launcher, master, agent,
// workers), the client's (Chromium's processes, this process for tus-js-client, the
// child for the CLI and curl), and other processes (someone else's jobs).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { runCleanup } = require('./lib/cleanup');
const { request } = require('./lib/http-client');
const { pickPeers, startPeer, demoBuildDir } = require('./lib/peers');
const { formatTable, ratioRow, medianRows } = require('./lib/table');
const { groupSnapshot, groupCpu, reapedChildrenTicks, reapedChildrenCpu } = require('./lib/group-cpu');
const { threadSnapshot, threadCpu } = require('./lib/thread-cpu');
const { openUploadPage } = require('./lib/page-client');
const { tusJsClient, installCli, cliPut, cliStartSeconds, curlPost } = require('./lib/faces-clients');
const {
  tempDir, writeRandomFile, settleDisk, describeRun, writeResults, parseFlags, cpuSnapshot, ownProcessGroup, otherCpuCores,
} = require('./lib/system');

const MiB = 1024 * 1024;
const DEFAULTS = { size: 1024 * MiB, rounds: 3, clients: 'page,tus-page-chunks,tus-default,cli,curl' };
const PREFIX = '/file';

/** Each client: its label, whose CPU is its own ('browser', 'self', 'children'), and how it uploads `input`. */
const CLIENTS = {
  page: { label: 'upload page (Chromium)', cpu: 'browser', run: (ctx, input) => pageUpload(ctx, input) },
  'tus-page-chunks': { label: 'tus-js-client, page chunks', cpu: 'self',
    run: async (ctx, input) => totalOf(await tusJsClient(ctx.tusEndpoint, input, ctx.pageConfig.chunkSize)) },
  'tus-default': { label: 'tus-js-client, defaults', cpu: 'self', run: async (ctx, input) => totalOf(await tusJsClient(ctx.tusEndpoint, input)) },
  cli: { label: 'sonofs put (CLI)', cpu: 'children', run: async (ctx, input) => { const r = await cliPut(ctx.cli, ctx.baseUrl, input); return { ...r, totalS: r.wallS }; } },
  curl: { label: 'curl -F', cpu: 'children', run: async (ctx, input) => { const r = await curlPost(ctx.baseUrl, PREFIX, input); return { ...r, totalS: r.wallS }; } },
};

const totalOf = r => ({ ...r, totalS: r.transferS });
const log = message => console.log(message);

/**
 * The page: Chromium is started and the page loaded before the measurement
 * (ctx.browser, opened by measure()); the clock runs from picking the file to the
 * row saying Stored. Phases from the row's states: before hashing (the pick),
 * hashing, the 秒传 question, sending.
 */
async function pageUpload(ctx, input) {
  const timeoutMs = 120_000 + (input.size / MiB) * 1000; // 1 MiB/s would be a failure
  const { startedAt, states, sha1 } = await ctx.browser.upload(input.file, timeoutMs);
  if (sha1 !== input.sha1) throw new Error(`the page's row has sha1 ${sha1}, the file's is ${input.sha1}`);
  const s = ms => ms / 1000;
  const sendingFrom = states.uploading;
  return {
    totalS: s(states.stored - startedAt),
    prepS: s(sendingFrom - startedAt),
    hashS: states.hashing !== undefined ? s(states.checking - states.hashing) : undefined,
    transferS: s(states.stored - sendingFrom),
    detail: {
      pickS: s((states.hashing ?? sendingFrom) - startedAt),
      questionS: states.checking !== undefined ? s(sendingFrom - states.checking) : undefined,
      hashed: states.hashing !== undefined,
    },
  };
}

/** New content for the next upload: 16 new random bytes at the start, then its sha1 (a read that leaves it in the page cache). */
async function freshContent(file, size) {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, crypto.randomBytes(16), 0, 16, 0);
  } finally {
    fs.closeSync(fd);
  }
  const hash = crypto.createHash('sha1');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return { file, size, sha1: hash.digest('hex') };
}

/** One upload by client `name`, with the CPU every party used meanwhile. */
async function measure(name, ctx, input) {
  const client = CLIENTS[name];
  settleDisk(); // what the last upload left dirty is not written back during this one
  const groups = [ ctx.serverGroup ];
  let mid;
  if (client.cpu === 'browser') {
    // the split of the page's CPU: until its row starts sending, and after
    ctx.browser = await openUploadPage(ctx.baseUrl, PREFIX, state => {
      if (state === 'uploading' && !mid) mid = { groups: groupSnapshot(groups), threads: threadSnapshot(ctx.browser.pgrp) };
    });
    groups.push(ctx.browser.pgrp);
  }
  const loadAverage = os.loadavg()[0];
  const before = { all: cpuSnapshot(), groups: groupSnapshot(groups), self: process.cpuUsage(), children: reapedChildrenTicks() };
  if (ctx.browser) before.threads = threadSnapshot(ctx.browser.pgrp);
  try {
    const r = await client.run(ctx, input);
    const after = { all: cpuSnapshot(), groups: groupSnapshot(groups), threads: ctx.browser && threadSnapshot(ctx.browser.pgrp) };
    const server = groupCpu(before.groups, after.groups, ctx.serverGroup);
    const reaped = reapedChildrenCpu(before.children);
    let clientCpu;
    if (client.cpu === 'browser') clientCpu = groupCpu(before.groups, after.groups, ctx.browser.pgrp);
    else if (client.cpu === 'self') {
      const self = process.cpuUsage(before.self);
      clientCpu = { userS: self.user / 1e6, systemS: self.system / 1e6 };
    } else clientCpu = reaped;
    // CPU ms by Chromium process kind and thread, before sending and while sending
    const threads = (from, to) => threadCpu(from, to, 1).map(t => ({ process: t.role, thread: t.thread, ms: t.userMs + t.systemMs }));
    const split = mid && {
      serverBeforeSendingS: cpuSum(groupCpu(before.groups, mid.groups, ctx.serverGroup)),
      serverSendingS: cpuSum(groupCpu(mid.groups, after.groups, ctx.serverGroup)),
      browserBeforeSendingS: cpuSum(groupCpu(before.groups, mid.groups, ctx.browser.pgrp)),
      browserSendingS: cpuSum(groupCpu(mid.groups, after.groups, ctx.browser.pgrp)),
      browserThreadsBeforeSending: threads(before.threads, mid.threads),
      browserThreadsSending: threads(mid.threads, after.threads),
    };
    // a command that ended meanwhile is gone from /proc: without this its CPU would count as another process's
    const reapedCores = cpuSum(reaped) / ((after.all.at - before.all.at) / 1000);
    const otherCores = Math.max(0, otherCpuCores(before.all, after.all, [ ownProcessGroup(), ...groups ]) - reapedCores);
    return { ...r, server, client: clientCpu, split, otherCores, loadAverage };
  } finally {
    if (ctx.browser) await ctx.browser.close();
    ctx.browser = undefined;
  }
}

const cpuSum = c => c.userS + c.systemS;

function describe(name, input, m) {
  const f = (v, d = 2) => (v === undefined ? '-' : v.toFixed(d));
  const parts = [ `${name}: ${f(m.totalS)} s = ${f(input.size / MiB / m.totalS, 1)} MiB/s` ];
  if (m.prepS !== undefined) {
    parts.push(`before sending ${f(m.prepS)} s${m.hashS !== undefined ? ` (sha1 ${f(m.hashS)} s, 秒传 question ${f(m.detail.questionS, 3)} s)` : ''}, ` +
      `sending ${f(m.transferS)} s = ${f(input.size / MiB / m.transferS, 1)} MiB/s`);
  }
  parts.push(`server CPU ${f(cpuSum(m.server))} s (user ${f(m.server.userS)}, sys ${f(m.server.systemS)}; ` +
    // master: egg-scripts and egg's master; other: scripts/start.js, which launches them
    `${Object.entries(m.server.byRole).map(([ role, c ]) => `${role === 'other' ? 'launcher' : role} ${f(cpuSum(c))}`).join(', ')})`);
  parts.push(`client CPU ${f(cpuSum(m.client))} s (user ${f(m.client.userS)}, sys ${f(m.client.systemS)})`);
  if (m.split) {
    const top = list => list.slice(0, 4).map(t => `${t.process} ${t.thread} ${f(t.ms / 1000)}`).join(', ');
    parts.push(`CPU before sending / sending: server ${f(m.split.serverBeforeSendingS)} / ${f(m.split.serverSendingS)} s, ` +
      `Chromium ${f(m.split.browserBeforeSendingS)} / ${f(m.split.browserSendingS)} s ` +
      `(before sending: ${top(m.split.browserThreadsBeforeSending)}; sending: ${top(m.split.browserThreadsSending)})`);
  }
  parts.push(`other CPU ${f(m.otherCores)} cores, load ${f(m.loadAverage)}`);
  return parts.join('; ');
}

/** The page's settings as the demo serves them (chunkSize, hashMaxSize, ...). */
async function pageConfigOf(port) {
  const res = await request({ port, path: `${PREFIX}/upload` });
  const match = /<script type="application\/json" id="sonofs-page-config">([^<]*)<\/script>/.exec(res.body.toString());
  if (res.status !== 200 || !match) throw new Error(`GET ${PREFIX}/upload: HTTP ${res.status}, no page config`);
  return JSON.parse(match[1]);
}

async function main() {
  const args = process.argv.slice(2);
  const flags = parseFlags(args, DEFAULTS);
  const names = flags.clients.split(',').filter(Boolean);
  for (const n of names) if (!CLIENTS[n]) throw new Error(`unknown client ${n}; clients: ${Object.keys(CLIENTS).join(', ')}`);
  if (!Number.isSafeInteger(flags.size) || flags.size < 1) throw new Error('--size is a number of bytes, at least 1');
  pickPeers('demo'); // the build must be there
  const { command, machine, code, loadAverage, date } = describeRun('the page and the CLI against the usual clients', __filename, args, log);
  log(`${(flags.size / MiB).toFixed(1)} MiB (${flags.size} bytes) per upload, new content each time; ${flags.rounds} rounds, the order reversed every other round`);
  log(`clients: ${names.map(n => `${n} (${CLIENTS[n].label})`).join('; ')}\n`);

  const work = tempDir('sonofs-bench-faces-');
  const cli = installCli(demoBuildDir(), path.join(work.dir, 'cli'));
  const cliStarts = [];
  for (let i = 0; i < 3; i++) cliStarts.push(await cliStartSeconds(cli));
  const cliStartS = cliStarts.sort((a, b) => a - b)[1];
  log(`sonofs --version (node's start and the command's modules): ${cliStartS.toFixed(2)} s (median of 3)`);

  let current = path.join(work.dir, 'upload.bin');
  await writeRandomFile(current, flags.size);
  const rounds = Object.fromEntries(names.map(n => [ n, [] ]));
  let pageConfig;
  try {
    for (let round = 0; round < flags.rounds; round++) {
      const order = round % 2 ? [ ...names ].reverse() : names;
      const roundDir = path.join(work.dir, `round-${round + 1}`);
      fs.mkdirSync(roundDir);
      log(`\n## round ${round + 1} of ${flags.rounds}: ${order.join(', ')}`);
      const demo = await startPeer('demo', roundDir, log);
      try {
        pageConfig ??= await pageConfigOf(demo.port);
        const ctx = {
          baseUrl: `http://127.0.0.1:${demo.port}`, tusEndpoint: `http://127.0.0.1:${demo.port}${pageConfig.tusEndpoint}`,
          serverGroup: demo.server.pid, pageConfig, cli,
        };
        for (const name of order) {
          // a name of its own per upload (the page's row and the store's link)
          const file = path.join(work.dir, `faces-r${round + 1}-${name}.bin`);
          fs.renameSync(current, file);
          current = file;
          const input = await freshContent(file, flags.size);
          try {
            const m = await measure(name, ctx, input);
            rounds[name][round] = m;
            log(describe(name, input, m));
          } catch (err) {
            rounds[name][round] = { error: err.message };
            log(`${name}: FAILED: ${err.message}`);
          }
        }
      } finally {
        await demo.server.stop();
      }
    }
  } finally {
    await work.remove();
  }
  report({ flags, names, rounds, pageConfig, cliStartS, command, machine, code, loadAverage, date });
}

function report({ flags, names, rounds, pageConfig, cliStartS, command, machine, code, loadAverage, date }) {
  const rowOf = (name, m) => {
    if (!m || m.error) return { client: CLIENTS[name].label, errors: 1 };
    const mib = flags.size / MiB;
    return {
      client: CLIENTS[name].label, totalS: m.totalS, mibPerSec: mib / m.totalS, prepS: m.prepS, hashS: m.hashS,
      transferS: m.transferS, sendMiBs: mib / m.transferS, serverS: cpuSum(m.server), serverUserS: m.server.userS,
      serverSysS: m.server.systemS, clientS: cpuSum(m.client), clientUserS: m.client.userS, clientSysS: m.client.systemS,
      otherCores: m.otherCores, errors: 0,
    };
  };
  const perRound = Array.from({ length: flags.rounds }, (_, r) => names.map(n => rowOf(n, rounds[n][r])));
  const rows = medianRows(perRound, [ 'errors' ]);
  const by = label => rows.find(r => r.client === CLIENTS[label].label);
  const keys = [ 'totalS', 'mibPerSec', 'transferS', 'sendMiBs', 'serverS', 'clientS' ];
  if (by('page') && by('tus-page-chunks')) rows.push(ratioRow(by('page'), by('tus-page-chunks'), keys, 'page / tus-js-client (page chunks)', 'client'));
  if (by('cli') && by('curl')) rows.push(ratioRow(by('cli'), by('curl'), keys, 'sonofs put / curl -F', 'client'));
  console.log(`\nmedians of ${flags.rounds} rounds, ${(flags.size / MiB).toFixed(0)} MiB each:\n${formatTable([
    { key: 'client', title: 'client' },
    { key: 'totalS', title: 'total s', digits: 2 },
    { key: 'mibPerSec', title: 'MiB/s', digits: 1 },
    { key: 'prepS', title: 'before sending s', digits: 2 },
    { key: 'hashS', title: 'sha1 s', digits: 2 },
    { key: 'transferS', title: 'sending s', digits: 2 },
    { key: 'sendMiBs', title: 'sending MiB/s', digits: 1 },
    { key: 'serverS', title: 'server CPU s', digits: 2 },
    { key: 'serverUserS', title: 'user', digits: 2 },
    { key: 'serverSysS', title: 'sys', digits: 2 },
    { key: 'clientS', title: 'client CPU s', digits: 2 },
    { key: 'clientUserS', title: 'user', digits: 2 },
    { key: 'clientSysS', title: 'sys', digits: 2 },
    { key: 'otherCores', title: 'other cores', digits: 2 },
    { key: 'errors', title: 'errors' },
  ], rows)}\n`);
  console.log(`total: as the user waits (the page: picking the file to the row saying Stored; the CLI and curl: the command's run). ` +
    `before sending: the page's pick, sha1 and 秒传 question; the CLI's start (alone ${cliStartS.toFixed(2)} s), sha1, question and exit. ` +
    `server CPU: every demo process, user + system; client CPU: Chromium's processes, this process (tus-js-client), the command (CLI, curl); ` +
    `other cores: CPU of any other process on the machine, in cores, while the upload ran`);
  console.log(`page settings served: chunkSize ${pageConfig && pageConfig.chunkSize}, hashMaxSize ${pageConfig && pageConfig.hashMaxSize}`);
  const file = writeResults({ scenario: 'faces', date, command, machine, code, loadAverage, settings: flags, pageConfig, cliStartS, rounds });
  log(`results: ${path.relative(process.cwd(), file)}`);
  const failed = rows.filter(r => r.errors);
  if (failed.length) {
    console.error(`\nSOMETHING WENT WRONG for ${failed.map(r => r.client).join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch(async err => {
  console.error(err.stack || err.message);
  await runCleanup();
  process.exitCode = 1;
});
