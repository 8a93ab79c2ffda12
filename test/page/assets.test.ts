import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { startInProcess, TestApp } from '../support/app';
import { request } from '../support/http';

describe('upload page: HTML and assets over HTTP (mm.app)', () => {
  let running: TestApp;

  before(async () => {
    running = await startInProcess('page-assets', 'apps/page-app');
  });

  after(() => running.close());

  async function page() {
    const res = await request(`${running.base}/file/upload`);
    assert.equal(res.status, 200);
    return { res, html: res.body.toString() };
  }

  it('serves the page with its settings, the plain form first, no-cache and a Content-Security-Policy of its own origin', async () => {
    const { res, html } = await page();
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.match(String(res.headers['content-security-policy']), /default-src 'self'; script-src 'self' 'wasm-unsafe-eval'/);
    assert.match(html, /<form id="upload-form"[^>]+action="\/file\/upload" method="post" enctype="multipart\/form-data">/);
    const config = JSON.parse(/<script type="application\/json" id="sonofs-page-config">(.*?)<\/script>/.exec(html)![1]);
    assert.deepEqual({ chunkSize: config.chunkSize, hashMaxSize: config.hashMaxSize, signinUrl: config.signinUrl, tusEndpoint: config.tusEndpoint },
      { chunkSize: 1024 * 1024, hashMaxSize: 8 * 1024 * 1024, signinUrl: '/user/signin', tusEndpoint: '/files/' });
    // the sign-in posts through Egg's CSRF check: the page carries its token
    assert.equal(config.csrf.header, 'x-csrf-token');
    assert.ok(config.csrf.token);
  });

  it('serves each script and style with its type, a year of immutable caching, an ETag, gzip when asked, and 304 when fresh', async () => {
    const { html } = await page();
    const urls = [ ...html.matchAll(/(?:src|href)="(\/file\/upload\/assets\/[^"]+)"/g) ].map(m => m[1]);
    const worker = JSON.parse(/id="sonofs-page-config">(.*?)<\/script>/.exec(html)![1]).hashWorker;
    assert.equal(urls.length, 2);
    for (const url of [ ...urls, worker ]) {
      const plain = await request(`${running.base}${url}`);
      assert.equal(plain.status, 200, url);
      assert.match(String(plain.headers['content-type']), url.endsWith('.css') ? /^text\/css; charset=utf-8/ : /^text\/javascript; charset=utf-8/);
      assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(plain.headers['content-encoding'], undefined);
      const gz = await request(`${running.base}${url}`, { headers: { 'Accept-Encoding': 'gzip' } });
      assert.equal(gz.headers['content-encoding'], 'gzip');
      assert.match(String(gz.headers.vary), /Accept-Encoding/);
      assert.ok(zlib.gunzipSync(gz.body).equals(plain.body));
      const again = await request(`${running.base}${url}`, { headers: { 'If-None-Match': String(plain.headers.etag) } });
      assert.equal(again.status, 304);
    }
    // no CDN: every script and style the page names is one of these
    assert.doesNotMatch(html, /(?:src|href)="(?:https?:)?\/\//);
  });

  it('answers an unknown asset 404 and another method 405, in JSON', async () => {
    const missing = await request(`${running.base}/file/upload/assets/nope.js`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json().code, 'NO_SUCH_ASSET');
    const post = await request(`${running.base}/file/upload/assets/nope.js`, { method: 'POST' });
    assert.equal(post.status, 405);
  });
});

describe('upload page: other settings (mm.app)', () => {
  afterEach(() => {
    delete process.env.SONOFS_TEST_PAGE_VARIANT;
  });

  it('keeps the plain form, and no assets, with sonofs.page: false', async () => {
    process.env.SONOFS_TEST_PAGE_VARIANT = 'off';
    const running = await startInProcess('page-off', 'apps/page-app');
    try {
      const html = (await request(`${running.base}/file/upload`)).body.toString();
      assert.match(html, /<form id="upload-form"[^>]+action="\/file\/upload" method="post" enctype="multipart\/form-data">/);
      assert.doesNotMatch(html, /<script/);
      const asset = await request(`${running.base}/file/upload/assets/page.js`);
      assert.equal(asset.status, 404);
      assert.equal(asset.json().code, 'NO_SUCH_ROUTE');
    } finally {
      await running.close();
    }
  });

  it('follows the prefix: page, assets, form and the routes the script calls', async () => {
    process.env.SONOFS_TEST_PAGE_VARIANT = 'prefix';
    const running = await startInProcess('page-prefix', 'apps/page-app');
    try {
      assert.equal((await request(`${running.base}/file/upload`)).status, 404);
      const html = (await request(`${running.base}/store/upload`)).body.toString();
      assert.match(html, /action="\/store\/upload"/);
      const config = JSON.parse(/id="sonofs-page-config">(.*?)<\/script>/.exec(html)![1]);
      assert.equal(config.prefix, '/store');
      const urls = [ ...html.matchAll(/(?:src|href)="(\/store\/upload\/assets\/[^"]+)"/g) ].map(m => m[1]);
      assert.equal(urls.length, 2);
      for (const url of [ ...urls, config.hashWorker ]) assert.equal((await request(`${running.base}${url}`)).status, 200, url);
    } finally {
      await running.close();
    }
  });
});
