import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startInProcess, TestApp } from '../support/app';
import { launchChromium, TestBrowser } from '../support/browser';
import { request, sha1 } from '../support/http';

/** the user's files as the store lists them, through the token (or none) */
async function namesOf(base: string, token?: string): Promise<string[]> {
  const res = await request(`${base}/file/query?limit=100`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  assert.equal(res.status, 200, res.body.toString());
  return res.json().map((f: { FileName: string }) => f.FileName).sort();
}

describe('upload page: sign-in, tokens, and no JavaScript (Chromium, mm.app)', function () {
  this.timeout(120_000);
  let running: TestApp;
  let dir: string;
  let browser: TestBrowser | undefined;

  before(async () => {
    running = await startInProcess('page-auth', 'apps/page-app');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-page-auth-'));
  });

  afterEach(async () => {
    await browser?.close();
    browser = undefined;
  });

  after(async () => {
    await running.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, size = 50_000): string {
    const f = path.join(dir, name);
    fs.writeFileSync(f, randomBytes(size));
    return f;
  }

  it('signs in with the app\'s sign-in URL (Egg\'s CSRF check on), then uploads and lists as that user', async () => {
    browser = await launchChromium();
    const { page } = browser;
    await page.goto(`${running.base}/file/upload`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Sign-in failed: wrong username or password').waitFor();
    await page.getByLabel('Password').fill('alice-pass');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#account').getByText('Signed in as alice').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('sonofs.token')), 'alice-token');

    await page.setInputFiles('#file-input', file('alice.bin'));
    await page.locator('#upload-list > li[data-name="alice.bin"][data-state="stored"]').waitFor();
    await page.locator('#file-list > li[data-name="alice.bin"]').waitFor();
    assert.deepEqual(await namesOf(running.base, 'alice-token'), [ 'alice.bin' ]);
    assert.deepEqual(await namesOf(running.base), [], 'nothing went to the anonymous user');

    // signed out, the page is the anonymous user's again
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.getByText('No files yet.').waitFor();
  });

  it('takes a token from ?token= (and drops it from the address), sending it as a bearer token', async () => {
    browser = await launchChromium();
    const { page } = browser;
    await page.goto(`${running.base}/file/upload?token=bob-token&username=bob`);
    await page.locator('#account').getByText('Signed in as bob').waitFor();
    assert.equal(new URL(page.url()).search, '');
    await page.setInputFiles('#file-input', file('bob.bin'));
    await page.locator('#upload-list > li[data-name="bob.bin"][data-state="stored"]').waitFor();
    assert.deepEqual(await namesOf(running.base, 'bob-token'), [ 'bob.bin' ]);
  });

  it('without JavaScript, the plain form posts one file and lands on /file/upload/suc', async () => {
    browser = await launchChromium({ javaScriptEnabled: false });
    const { page } = browser;
    await page.goto(`${running.base}/file/upload`);
    assert.equal(await page.locator('#picker').isVisible(), false, 'the script-only parts stay hidden');
    const f = file('plain.bin', 30_000);
    await page.setInputFiles('#file-input', f);
    await Promise.all([ page.waitForURL(`${running.base}/file/upload/suc`), page.getByRole('button', { name: 'Upload' }).click() ]);
    assert.equal(await page.locator('body').innerText(), 'Upload finished!');
    const meta = await request(`${running.base}/file/meta?filehash=${sha1(fs.readFileSync(f))}`);
    assert.equal(meta.status, 200);
    assert.equal(meta.json().FileName, 'plain.bin');
  });

});

describe('upload page where the app turned tus off (Chromium, mm.app)', function () {
  this.timeout(120_000);

  it('posts each file as a form: progress and cancel, no pause', async () => {
    process.env.SONOFS_TEST_PAGE_VARIANT = 'notus';
    const running = await startInProcess('page-notus', 'apps/page-app');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-page-notus-'));
    const browser = await launchChromium();
    try {
      const { page } = browser;
      // the form post waits here until the row has been looked at
      let release!: () => void;
      const released = new Promise<void>(resolve => (release = resolve));
      let posted!: () => void;
      const post = new Promise<void>(resolve => (posted = resolve));
      await page.route(url => url.pathname === '/file/upload', async route => {
        if (route.request().method() === 'POST') {
          posted();
          await released;
        }
        await route.continue();
      });
      await page.goto(`${running.base}/file/upload`);
      const f = path.join(dir, 'form.bin');
      fs.writeFileSync(f, randomBytes(9 * 1024 * 1024));
      await page.setInputFiles('#file-input', f);
      await post;
      const row = page.locator('#upload-list > li[data-name="form.bin"]');
      assert.equal(await row.getAttribute('data-state'), 'uploading');
      assert.equal(await row.getByRole('button', { name: 'Cancel form.bin' }).count(), 1);
      assert.equal(await row.getByRole('button', { name: 'Pause form.bin' }).count(), 0, 'a form post cannot pause');
      release();
      await page.locator('#upload-list > li[data-name="form.bin"][data-state="stored"]').waitFor();
      const meta = await request(`${running.base}/file/meta?filehash=${sha1(fs.readFileSync(f))}`);
      assert.equal(meta.status, 200);
      assert.equal(meta.json().FileSize, 9 * 1024 * 1024);
    } finally {
      delete process.env.SONOFS_TEST_PAGE_VARIANT;
      await browser.close();
      await running.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
