import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import mm, { MockApplication } from 'egg-mock';
import { multipart, request, sha1 } from './support/http';
import { startInProcess, TestApp } from './support/app';

/**
 * The plugin in an app with settings of its own (test/fixtures/apps/settings-app):
 * multipart in file mode with a 100 KiB limit (what Egg's TypeScript scaffold
 * writes), an app route under the plugin's prefix, numeric user ids.
 */
describe('plugin in an app with its own settings', () => {
  let running: TestApp;
  let app: MockApplication;

  afterEach(mm.restore);

  /** The fixture app with SONOFS_TEST_VARIANT (its config.default.ts) for the suite it is called in. */
  function runVariant(variant?: string) {
    before(async () => {
      if (variant) process.env.SONOFS_TEST_VARIANT = variant;
      running = await startInProcess(`settings-${variant ?? 'default'}`, 'apps/settings-app');
      app = running.app;
    });
    after(async () => {
      delete process.env.SONOFS_TEST_VARIANT;
      await running.close();
    });
  }

  function post(path: string, parts: Parameters<typeof multipart>[0], headers: Record<string, string> = {}) {
    const { body, contentType } = multipart(parts);
    return request(`${running.base}${path}`, {
      method: 'POST', body, headers: { Accept: 'application/json', 'Content-Type': contentType, 'Content-Length': body.length, ...headers },
    });
  }

  describe('default settings', () => {
    runVariant();

    it('stores through /file/upload although the app parses multipart in file mode, with the plugin\'s limits', async () => {
      const data = randomBytes(2 * 1024 * 1024); // 20 times the app's own fileSize, an extension outside its whitelist
      const res = await post('/file/upload', [ { name: 'file', filename: 'big.bin', data } ], { 'x-uid': '42' });
      assert.equal(res.status, 200, res.body.toString());
      const d = res.json().data;
      assert.equal(d.FileSha1, sha1(data));
      const back = await request(`${running.base}/file/download?fileid=${d.FileId}`);
      assert.equal(sha1(back.body), sha1(data));
    });

    it('leaves the app\'s multipart settings and mode as the app chose them', async () => {
      const mp = app.config.multipart as any;
      assert.equal(mp.mode, 'file');
      assert.equal(mp.fileSize, 100 * 1024);
      assert.notEqual(typeof mp.whitelist, 'function');
      const small = await post('/mine/upload', [ { name: 'file', filename: 'note.png', data: 'x'.repeat(1000) } ]);
      assert.equal(small.status, 200, small.body.toString());
      assert.deepEqual(small.json(), { name: 'note.png', size: 1000 });
      // the app's own limit still applies to the app's own route
      const big = await post('/mine/upload', [ { name: 'file', filename: 'note.png', data: randomBytes(200 * 1024) } ]);
      assert.equal(big.status, 413);
    });

    it('exempts exactly the plugin\'s routes from CSRF: an app route under /file keeps its check', async () => {
      const mine = await request(`${running.base}/file/mine`, { method: 'POST' });
      assert.equal(mine.status, 403, 'POST /file/mine without a CSRF token');
      assert.match(mine.body.toString(), /csrf/i);
      // the course's routes keep working without a token, as its clients expect
      const up = await post('/file/upload', [ { name: 'file', filename: 'a.txt', data: 'csrf-free' } ], { 'x-uid': '7' });
      assert.equal(up.status, 200);
      const del = await request(`${running.base}/file/delete?filehash=${up.json().data.FileSha1}`, { headers: { 'x-uid': '7' } });
      assert.equal(del.status, 200, 'GET /file/delete deletes, as in the course');
    });

    it('treats /file/upload/ (a trailing slash, the same route to Egg) as the plugin\'s route too', async () => {
      const res = await post('/file/upload/', [ { name: 'file', filename: 'slash.bin', data: randomBytes(200 * 1024) } ], { 'x-uid': '42' });
      assert.equal(res.status, 200, res.body.toString());
    });

    it('takes a numeric user id as its decimal string', async () => {
      const res = await post('/file/upload', [ { name: 'file', filename: 'n.txt', data: 'numeric user' } ], { 'x-uid': '1001' });
      assert.equal(res.status, 200, res.body.toString());
      const mine = await app.httpRequest().get('/file/query').set('x-uid', '1001').expect(200);
      assert.deepEqual(mine.body.map((f: any) => f.FileName), [ 'n.txt' ]);
      // another number is another user
      assert.deepEqual((await app.httpRequest().get('/file/query').set('x-uid', '1002').expect(200)).body, []);
    });

    it('logs why a request was refused (401)', async () => {
      app.mockLog();
      const res = await app.httpRequest().get('/file/query').expect(401);
      assert.equal(res.body.code, 'UNAUTHORIZED');
      app.expectLog(/GET \/file\/query refused: config\.sonofs\.authenticate returned undefined/);
      // a number past 2^53 has lost digits: refused, never taken for another user's id
      await app.httpRequest().get('/file/query').set('x-uid', String(2 ** 64)).expect(401);
      app.expectLog(/returned 18446744073709552000, not a safe integer: return ids this large as strings/);
    });

    it('logs no refusal for a download by file id, which needs no user', async () => {
      const up = await post('/file/upload', [ { name: 'file', filename: 'shared.txt', data: 'anyone with the id' } ], { 'x-uid': '9' });
      app.mockLog();
      const res = await app.httpRequest().get(`/file/download?fileid=${up.json().data.FileId}`).expect(200);
      assert.equal(res.text, 'anyone with the id');
      app.notExpectLog(/refused/);
    });
  });

  describe('hardened settings (csrf: true, stateChangingGet: false)', () => {
    runVariant('hardened');

    it('checks Egg\'s CSRF token on the routes that change what is stored', async () => {
      const noToken = await post('/file/upload', [ { name: 'file', filename: 'a.txt', data: 'hardened' } ], { 'x-uid': '5' });
      assert.equal(noToken.status, 403);
      assert.deepEqual((await app.httpRequest().get('/file/query').set('x-uid', '5').expect(200)).body, [], 'nothing stored');
      // the upload page carries the token, as a browser would send it back
      const page = await request(`${running.base}/file/upload`, { headers: { 'x-uid': '5' } });
      const action = /action="([^"]+)"/.exec(page.body.toString())![1];
      const cookie = String(page.headers['set-cookie']).split(';')[0];
      assert.match(action, /^\/file\/upload\?_csrf=/);
      const withToken = await post(action, [ { name: 'file', filename: 'a.txt', data: 'hardened' } ], { 'x-uid': '5', Cookie: cookie });
      assert.equal(withToken.status, 200, withToken.body.toString());
      // reading needs no token
      await app.httpRequest().post('/file/meta').set('x-uid', '5').type('form').send({ filehash: withToken.json().data.FileSha1 }).expect(200);
    });

    it('checks the token on every built-in route that changes what is stored, and on none that only reads', async () => {
      const changing = [ 'upload', 'update', 'delete', 'fastupload', 'mpupload/init', 'mpupload/uppart', 'mpupload/complete', 'mpupload/cancel' ];
      for (const route of changing) {
        const res = await request(`${running.base}/file/${route}`, { method: 'POST', headers: { 'x-uid': '5' } });
        assert.equal(res.status, 403, `POST /file/${route} without a token`);
      }
      for (const route of [ 'meta', 'query', 'mpupload/status' ]) {
        const res = await request(`${running.base}/file/${route}`, { method: 'POST', headers: { 'x-uid': '5' } });
        assert.notEqual(res.status, 403, `POST /file/${route} only reads`);
      }
    });

    it('answers GET /file/delete with 405 and deletes nothing', async () => {
      const stored = await app.sonofs.upload(Readable.from([ Buffer.from('keep me') ]), { user: '6', filename: 'k.txt' });
      const res = await request(`${running.base}/file/delete?filehash=${stored.fileHash}`, { headers: { 'x-uid': '6' } });
      assert.equal(res.status, 405);
      assert.equal(res.json().code, 'METHOD_NOT_ALLOWED');
      assert.equal(res.headers.allow, 'POST');
      assert.ok(await app.sonofs.getUserFile('6', stored.fileHash), 'the file is still there');
    });

    it('leaves tus to its CORS settings: a tus client needs no token', async () => {
      const res = await request(`${running.base}/files`, {
        method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '3', 'x-uid': '8' },
      });
      assert.equal(res.status, 201);
    });
  });

  describe('an app that sets security.csrf.match, and tus.path with a trailing slash', () => {
    runVariant('csrf-match');

    it('still checks sonofs.csrf routes, and the app\'s matched routes, and only those', async () => {
      const upload = await post('/file/upload', [ { name: 'file', filename: 'a.txt', data: 'match' } ], { 'x-uid': '3' });
      assert.equal(upload.status, 403, 'sonofs.csrf: the upload needs a token although the app\'s match does not name it');
      assert.equal((await request(`${running.base}/file/mine`, { method: 'POST' })).status, 403, 'the app\'s matched route');
      const mine = await post('/mine/upload', [ { name: 'file', filename: 'n.png', data: 'x' } ]);
      assert.equal(mine.status, 200, 'a route outside the app\'s match is not checked');
    });

    it('serves tus at the configured /files/ without asking tus clients for a token', async () => {
      const tus = { 'Tus-Resumable': '1.0.0', 'x-uid': '3' };
      const created = await request(`${running.base}/files/`, { method: 'POST', headers: { ...tus, 'Upload-Length': '3' } });
      assert.equal(created.status, 201, created.body.toString());
      const p = new URL(String(created.headers.location)).pathname;
      const patched = await request(`${running.base}${p}`, {
        method: 'PATCH', body: Buffer.from('abc'),
        headers: { ...tus, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': 3 },
      });
      assert.equal(patched.status, 204, patched.body.toString());
    });
  });

  describe('an app that turns CSRF off (security.csrf: false)', () => {
    runVariant('csrf-off');

    it('keeps the body parser off a course chunk although the app\'s bodyParser.match names /file', async () => {
      const chunk = Buffer.from('a=bcd'); // parses as a form, but it is the file's bytes
      const init = await request(`${running.base}/file/mpupload/init`, {
        method: 'POST', body: Buffer.from(`filehash=${sha1(chunk)}&filesize=${chunk.length}`),
        headers: { 'x-uid': '4', 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(init.status, 200, init.body.toString());
      const id = init.json().data.UploadID;
      const part = await request(`${running.base}/file/mpupload/uppart?uploadid=${id}&index=1`, {
        method: 'POST', body: chunk, headers: { 'x-uid': '4', 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': chunk.length },
      });
      assert.equal(part.status, 200, part.body.toString());
      const done = await request(`${running.base}/file/mpupload/complete`, {
        method: 'POST', body: Buffer.from(`uploadid=${id}&filehash=${sha1(chunk)}&filesize=${chunk.length}&filename=c.txt`),
        headers: { 'x-uid': '4', 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(done.status, 200, done.body.toString());
    });

    it('starts, and its routes and the plugin\'s take no token', async () => {
      assert.equal((await request(`${running.base}/file/mine`, { method: 'POST' })).status, 200);
      const up = await post('/file/upload', [ { name: 'file', filename: 'a.txt', data: 'off' } ], { 'x-uid': '4' });
      assert.equal(up.status, 200);
    });
  });
});
