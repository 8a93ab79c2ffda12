import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { startCluster, TestApp } from '../support/app';
import { launchChromium, TestBrowser, TusTraffic } from '../support/browser';
import { freePort, request, sha1, uploadTo } from '../support/http';

const MiB = 1024 * 1024;
/** test/fixtures/apps/page-app: chunks of 1 MiB, files over 8 MiB not hashed, 100 MiB at most */
const CHUNK = MiB;
const artifacts = path.join(__dirname, '..', '..', 'artifacts');

interface LocalFile { path: string; name: string; sha1: string; size: number }

function makeFile(dir: string, name: string, size: number): LocalFile {
  const data = randomBytes(size);
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  return { path: file, name, sha1: sha1(data), size };
}

const rowOf = (name: string, list = 'upload-list') => `#${list} > li[data-name="${name}"]`;

/** Waits for a row of the uploads list to reach one of `states`; a row that fails instead fails the test with its text. */
async function rowState(page: Page, name: string, states: string[], ms = 60_000): Promise<{ state: string; text: string; sha1?: string }> {
  const deadline = Date.now() + ms;
  let last: { state: string; text: string; sha1?: string } | undefined;
  for (;;) {
    last = await page.$eval(rowOf(name), el => ({
      state: (el as HTMLElement).dataset.state ?? '', text: el.querySelector('.row-status')?.textContent ?? '', sha1: (el as HTMLElement).dataset.sha1,
    })).catch(() => undefined);
    if (last && states.includes(last.state)) return last;
    if (last?.state === 'failed') throw new Error(`${name} failed: ${last.text}`);
    if (Date.now() > deadline) throw new Error(`${name} did not get to ${states.join('/')}: ${JSON.stringify(last)}`);
    await page.waitForTimeout(100);
  }
}

/** The store has this file for the anonymous user, under `name`, with these bytes. */
async function assertStored(base: string, f: LocalFile, name = f.name): Promise<void> {
  const meta = await request(`${base}/file/meta?filehash=${f.sha1}`);
  assert.equal(meta.status, 200, `${f.name}: ${meta.body.toString()}`);
  const m = meta.json();
  assert.equal(m.FileSha1, f.sha1);
  assert.equal(m.FileSize, f.size);
  assert.equal(m.FileName, name);
  const back = await request(`${base}${m.Location}`);
  assert.equal(back.status, 200);
  assert.equal(sha1(back.body), f.sha1, `${f.name}: the stored bytes differ`);
}

describe('upload page in Chromium (mm.cluster: agent + 2 workers)', function () {
  this.timeout(300_000);
  let dir: string;
  let root: string;
  let port: number;
  let running: TestApp | undefined;
  let base: string;
  let browser: TestBrowser;
  let page: Page;
  let traffic: TusTraffic;
  const pageErrors: string[] = [];
  let fifty: LocalFile;
  let reload: LocalFile;
  let cut: LocalFile;

  async function startApp() {
    running = await startCluster('page', { root, port, baseDir: 'apps/page-app' });
    base = running.base;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-page-files-'));
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-page-'));
    port = await freePort();
    fifty = makeFile(dir, 'fifty.bin', 50 * MiB);
    reload = makeFile(dir, 'reload.bin', 6 * MiB);
    cut = makeFile(dir, 'cut.bin', 6 * MiB + 12345);
    await startApp();
    browser = await launchChromium();
    page = browser.page;
    page.on('pageerror', err => pageErrors.push(err.message));
    traffic = new TusTraffic();
    traffic.install(page);
    await page.goto(`${base}/file/upload`);
    // the page's script ran (a build without page/dist would serve the plain form)
    await page.waitForSelector('html.enhanced', { timeout: 10_000 }).catch(() => {
      throw new Error('the upload page did not start: is page/dist built (node scripts/build-page.js)?');
    });
  });

  after(async () => {
    if (page) {
      fs.mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, 'page.png'), fullPage: true }).catch(() => undefined);
    }
    await browser?.close();
    await running?.close();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uploads three files picked at once: one paused and resumed, one across a server restart, one across a page reload, each from its stored offset', async () => {
    const holdFifty = await traffic.hold('fifty.bin', 8 * MiB);
    const holdCut = await traffic.hold('cut.bin', 2 * MiB);
    const holdReload = await traffic.hold('reload.bin', 2 * MiB);
    await page.setInputFiles('#file-input', [ fifty.path, cut.path, reload.path ]);

    // pause and resume: the PATCH at 8 MiB is in flight when Pause is pressed
    const pausedAt = await holdFifty.reached;
    await page.getByRole('button', { name: 'Pause fifty.bin' }).click();
    const paused = await rowState(page, 'fifty.bin', [ 'paused' ]);
    assert.match(paused.text, new RegExp(`^Paused at ${pausedAt / MiB} MiB of 50 MiB`));
    holdFifty.release('abort');
    await page.getByRole('button', { name: 'Resume fifty.bin' }).click();
    const stored = await rowState(page, 'fifty.bin', [ 'stored' ]);
    const fiftyOffsets = traffic.patchOffsets('fifty.bin');
    const held = fiftyOffsets.indexOf(pausedAt);
    assert.equal(fiftyOffsets[held + 1], pausedAt, `after the pause the upload went on from ${fiftyOffsets[held + 1]}, not ${pausedAt}`);
    assert.deepEqual(fiftyOffsets.slice(0, held + 1), Array.from({ length: pausedAt / CHUNK + 1 }, (_, i) => i * CHUNK));
    assert.equal(traffic.creations('fifty.bin'), 1);
    // over the page's hash limit: not hashed by the page; the row shows the store's sha1
    assert.equal(stored.sha1, fifty.sha1);

    // the server goes away in the middle of cut.bin and comes back on the same port and root
    const cutAt = await holdCut.reached;
    await running!.close();
    running = undefined;
    holdCut.release('continue');
    const lost = await rowState(page, 'cut.bin', [ 'retrying' ]);
    assert.match(lost.text, /^Reconnecting: the server could not be reached/);
    await startApp();
    const cutDone = await rowState(page, 'cut.bin', [ 'stored' ], 90_000);
    const cutOffsets = traffic.patchOffsets('cut.bin');
    assert.deepEqual(cutOffsets.filter(o => o === cutAt).length, 2, `the PATCH at ${cutAt} was not sent again: ${cutOffsets}`);
    assert.deepEqual(cutOffsets.filter(o => o < cutAt), Array.from({ length: cutAt / CHUNK }, (_, i) => i * CHUNK), 'bytes sent twice');
    assert.equal(traffic.creations('cut.bin'), 1);
    assert.equal(cutDone.sha1, cut.sha1, 'the page hashed cut.bin, and the store agrees');

    // a reload in the middle of reload.bin: the page lists it as unfinished and resumes it once the file is picked again
    const reloadAt = await holdReload.reached;
    page.once('dialog', d => void d.accept()); // the page warns that leaving stops an upload
    await page.reload();
    holdReload.release('abort');
    const entry = page.locator(`#unfinished-list > li[data-name="reload.bin"][data-offset="${reloadAt}"]`);
    await entry.waitFor();
    assert.match(await entry.locator('.row-status').innerText(), new RegExp(`^${reloadAt / MiB} MiB of 6 MiB uploaded`));
    // the wrong file is refused
    const wrongChooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Resume reload.bin' }).click();
    await (await wrongChooser).setFiles(cut.path);
    await page.locator('#unfinished-list').getByText('cut.bin is not the file this upload was sending').waitFor();
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Resume reload.bin' }).click();
    await (await chooser).setFiles(reload.path);
    const reloadDone = await rowState(page, 'reload.bin', [ 'stored' ]);
    const reloadOffsets = traffic.patchOffsets('reload.bin');
    assert.equal(reloadOffsets[reloadOffsets.indexOf(reloadAt) + 1], reloadAt, `after the reload: ${reloadOffsets}`);
    assert.equal(traffic.creations('reload.bin'), 1);
    assert.equal(reloadDone.sha1, reload.sha1);
    await page.locator('#unfinished').waitFor({ state: 'hidden' });

    // the store holds each file whole, under its name
    for (const f of [ fifty, cut, reload ]) await assertStored(base, f);
  });

  it('finishes a file the store already holds as "instant", sending none of its bytes', async () => {
    const known = makeFile(dir, 'known.bin', 300_000);
    // stored by another user: the anonymous user gets a link through 秒传
    const first = await uploadTo(base, fs.readFileSync(known.path), 'alices-copy.bin', { Authorization: 'Bearer alice-token' });
    assert.equal(first.status, 200, first.body.toString());
    await page.setInputFiles('#file-input', known.path);
    const row = await rowState(page, 'known.bin', [ 'instant', 'stored' ]);
    assert.equal(row.state, 'instant');
    assert.match(row.text, /^Instant/);
    assert.equal(row.sha1, known.sha1);
    assert.equal(traffic.creations('known.bin'), 0);
    await assertStored(base, known);
  });

  it('shows the server\'s error text when an upload is refused', async () => {
    // over the app's maxFileSize of 100 MiB (sparse: nothing is read before the server refuses it)
    const big = path.join(dir, 'too-big.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 100 * MiB + 1);
    await page.setInputFiles('#file-input', big);
    const row = await rowState(page, 'too-big.bin', [ 'failed' ]);
    assert.equal(row.text, `Failed: file exceeds the maximum size of ${100 * MiB} bytes`);
    await page.getByRole('button', { name: 'Retry too-big.bin' }).waitFor();
    await page.getByRole('button', { name: 'Cancel too-big.bin' }).click();
    await rowState(page, 'too-big.bin', [ 'cancelled' ]);
  });

  it('renames (by keyboard) and deletes from the list of the user\'s files', async () => {
    const renameButton = page.getByRole('button', { name: 'Rename cut.bin' });
    await renameButton.focus();
    await page.keyboard.press('Enter');
    const input = page.getByRole('textbox', { name: 'New name for cut.bin' });
    assert.ok(await input.evaluate(el => el === document.activeElement), 'the name field takes the focus');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('cut-renamed.bin');
    await page.keyboard.press('Enter');
    await page.locator(rowOf('cut-renamed.bin', 'file-list')).waitFor();
    await assertStored(base, cut, 'cut-renamed.bin');

    await page.getByRole('button', { name: 'Delete reload.bin' }).click();
    await page.getByRole('button', { name: 'Confirm delete of reload.bin' }).click();
    await page.locator(rowOf('reload.bin', 'file-list')).waitFor({ state: 'detached' });
    await page.waitForFunction(() => document.activeElement?.id === 'files-refresh'); // the keyboard stays in the list
    assert.equal((await request(`${base}/file/meta?filehash=${reload.sha1}`)).status, 404);
    // the others are still there
    await assertStored(base, fifty);
  });

  it('copies a download link and downloads from the list', async () => {
    await browser.context.grantPermissions([ 'clipboard-read', 'clipboard-write' ], { origin: base });
    await page.getByRole('button', { name: 'Copy link for known.bin' }).click();
    const link = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(link, new RegExp(`^${base}/file/download\\?fileid=`));
    const res = await request(link);
    assert.equal(sha1(res.body), makeSha1Of(dir, 'known.bin'));

    const download = page.waitForEvent('download');
    await page.locator(rowOf('known.bin', 'file-list')).getByRole('link', { name: 'Download known.bin' }).click();
    const saved = await (await download).path();
    assert.equal(sha1(fs.readFileSync(saved)), makeSha1Of(dir, 'known.bin'));
  });

  it('uploads a picked folder and dropped files, the folder in their names', async () => {
    const a = makeFile(dir, 'pics/a.bin', 70_000);
    const b = makeFile(dir, 'pics/sub/b.bin', 80_000);
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Choose a folder' }).click();
    await (await chooser).setFiles(path.join(dir, 'pics'));
    await rowState(page, 'pics/a.bin', [ 'stored' ]);
    await rowState(page, 'pics/sub/b.bin', [ 'stored' ]);
    await assertStored(base, a, 'pics/a.bin');
    await assertStored(base, b, 'pics/sub/b.bin');

    const text = `dropped at ${Date.now()}`;
    await page.evaluate(content => {
      const data = new DataTransfer();
      data.items.add(new File([ content ], 'dropped.txt', { type: 'text/plain' }));
      const zone = document.getElementById('picker')!;
      for (const type of [ 'dragenter', 'dragover', 'drop' ]) zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }, text);
    await rowState(page, 'dropped.txt', [ 'stored' ]);
    await assertStored(base, { path: '', name: 'dropped.txt', sha1: sha1(Buffer.from(text)), size: text.length });
  });

  it('is keyboard operable, names every control, and fits 360 px', async () => {
    // from the top of the page, Tab reaches "Choose files" and Enter opens the picker
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await page.locator('h1').click();
    // wait for the picker from here: Playwright turns on its interception of file choosers when a
    // listener is added, asynchronously, and a key press sent at once could beat it
    const chooser = page.waitForEvent('filechooser');
    chooser.catch(() => undefined); // awaited below; a failed assertion before that must not leave it unhandled
    let reached = false;
    for (let i = 0; i < 6 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.id === 'pick-files');
    }
    assert.ok(reached, 'Tab does not reach "Choose files"');
    await page.keyboard.press('Enter');
    await chooser;

    const unnamed = await page.evaluate(() => Array.from(document.querySelectorAll('button, a, input, progress'))
      .filter(el => (el as HTMLElement).offsetParent !== null && !el.closest('[aria-hidden="true"]'))
      .filter(el => {
        const labels = (el as HTMLInputElement).labels;
        const name = el.getAttribute('aria-label') || (labels && labels.length ? labels[0].textContent : '') || el.textContent;
        return !name?.trim();
      })
      .map(el => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);

    await page.setViewportSize({ width: 360, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 360, `the page is ${overflow} px wide at 360`);
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'page-360.png'), fullPage: true });
    await page.setViewportSize({ width: 1000, height: 900 });
    assert.deepEqual(pageErrors, []);
  });
});

/** sha1 of a file made earlier in the run */
function makeSha1Of(dir: string, name: string): string {
  return sha1(fs.readFileSync(path.join(dir, name)));
}
