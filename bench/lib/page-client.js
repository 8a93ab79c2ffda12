'use strict';
// The upload page as a person uses it: Debian's Chromium, headless, driven by
// playwright-core (never a downloaded browser), a file picked through the page's
// file input, its row watched until it says Stored. The row's states
// (page/src/upload-row.ts: data-state hashing, checking, uploading, stored) are
// reported to this process as they change, with the CPU used so far.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { chromium } = require('playwright-core');
const { onCleanup } = require('./cleanup');

const CHROMIUM = process.env.BENCH_CHROMIUM || process.env.SONOFS_TEST_CHROMIUM || '/usr/bin/chromium';
// the flags of test/support/browser.ts: nothing downloaded, nothing phoned home
const ARGS = [ '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync' ];
const FINAL = [ 'stored', 'instant', 'failed', 'cancelled' ];

/** The browser's process group: Chromium's main process is our child and leads a session of its own. */
function chromiumGroup() {
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) !== process.pid) continue;
      if (/chrom/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))) return Number(f[2]);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('cannot find the Chromium process among our children');
}

/**
 * Opens `<baseUrl><prefix>/upload` in a new browser on an empty profile and waits
 * until the page's script has taken over the form. `onState(state, at)` is called
 * the first time the row of a picked file reaches each state.
 * Resolves to { pid, config, upload(file, timeoutMs), close() }.
 */
async function openUploadPage(baseUrl, prefix, onState) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-bench-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1000, height: 900 },
  });
  const close = onCleanup(async () => {
    await context.close().catch(() => undefined);
    fs.rmSync(profile, { recursive: true, force: true });
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    let watcher;
    await page.exposeBinding('__benchRowState', (_source, name, state, status) => watcher && watcher(name, state, status));
    await page.goto(`${baseUrl}${prefix}/upload`);
    await page.waitForSelector('html.enhanced', { state: 'attached', timeout: 30_000 });
    await page.evaluate(() => {
      const seen = new Map();
      const report = el => {
        const key = `${el.dataset.name}\n${el.dataset.state}`;
        if (seen.has(key)) return;
        seen.set(key, true);
        window.__benchRowState(el.dataset.name, el.dataset.state, el.querySelector('.row-status')?.textContent ?? '');
      };
      new MutationObserver(records => {
        for (const r of records) if (r.target instanceof HTMLElement && r.target.matches('li.row.upload')) report(r.target);
      }).observe(document.getElementById('upload-list'), { subtree: true, attributes: true, attributeFilter: [ 'data-state' ] });
    });
    const config = JSON.parse(await page.textContent('#sonofs-page-config'));

    /** Picks `file` and resolves once its row is final: { startedAt, states: { state: ms since start }, sha1, status }. */
    async function upload(file, timeoutMs) {
      const name = path.basename(file);
      const states = {};
      let settle;
      const done = new Promise((resolve, reject) => { settle = { resolve, reject }; });
      const timer = setTimeout(() => settle.reject(new Error(`the page's row of ${name} was not final after ${timeoutMs} ms`)), timeoutMs);
      watcher = (rowName, state, status) => {
        if (rowName !== name) return;
        const at = performance.now();
        states[state] = at;
        onState(state, at);
        if (FINAL.includes(state)) settle.resolve({ state, status });
      };
      const startedAt = performance.now();
      try {
        await page.setInputFiles('#file-input', file);
        const { state, status } = await done;
        if (state !== 'stored') throw new Error(`the page's row says ${state}: ${status}`);
        const sha1 = await page.getAttribute(`li.row.upload[data-name="${name}"]`, 'data-sha1');
        return { startedAt, states, sha1, status };
      } finally {
        clearTimeout(timer);
        watcher = undefined;
      }
    }

    return { pgrp: chromiumGroup(), config, upload, close };
  } catch (err) {
    await close();
    throw err;
  }
}

module.exports = { openUploadPage, CHROMIUM };
