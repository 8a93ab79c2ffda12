import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import mm, { MockApplication } from 'egg-mock';
import { bundlePath, decodeFileId, encodeMeta, recordLength } from '../lib';
import { binaryParser, multipart, request, sha1 } from './support/http';
import { startInProcess, TestApp } from './support/app';

describe('plugin in one process (mm.app)', () => {
  let app: MockApplication;
  let root: string;
  let running: TestApp;

  before(async () => {
    running = await startInProcess('app');
    ({ app, root } = running);
  });

  after(() => running.close());

  afterEach(mm.restore);

  async function upload(data: Buffer | string, filename = 'a.bin', user = 'anonymous', type?: string) {
    const res = await app.httpRequest()
      .post('/file/upload')
      .set('Accept', 'application/json')
      .set('x-user', user)
      .attach('file', Buffer.from(data), { filename, contentType: type ?? 'application/octet-stream' })
      .expect(200);
    assert.equal(res.body.code, 0);
    return res.body.data;
  }

  function download(query: string, user = 'anonymous') {
    return app.httpRequest().get(`/file/download?${query}`).set('x-user', user).buffer(true).parse(binaryParser);
  }

  describe('upload', () => {
    it('GET /file/upload serves the upload page with a form posting field "file"', async () => {
      const res = await app.httpRequest().get('/file/upload').expect(200).expect('Content-Type', /html/);
      assert.match(res.text, /<form[^>]+action="\/file\/upload"[^>]+method="post"[^>]+multipart\/form-data/);
      assert.match(res.text, /name="file"/);
    });

    it('answers a JSON client with the course envelope and the file id', async () => {
      const data = randomBytes(70_000);
      const d = await upload(data, 'photo.png', 'anonymous', 'image/png');
      assert.equal(d.FileSha1, sha1(data));
      assert.equal(d.FileName, 'photo.png');
      assert.equal(d.FileSize, data.length);
      assert.match(d.UploadAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      assert.equal(d.Location, `/file/download?fileid=${d.FileId}`);
      const loc = decodeFileId(d.FileId);
      assert.deepEqual([ loc.group, loc.server, loc.size ], [ 3, 7, data.length ]);
    });

    it('redirects a browser form to /file/upload/suc', async () => {
      await app.httpRequest().post('/file/upload').set('Accept', 'text/html')
        .attach('file', Buffer.from('from a form'), 'form.txt')
        .expect(302).expect('Location', '/file/upload/suc');
      await app.httpRequest().get('/file/upload/suc').expect(200, 'Upload finished!');
    });

    it('stores and returns an empty (0-byte) file', async () => {
      const d = await upload('', 'empty.txt');
      assert.equal(d.FileSize, 0);
      const res = await download(`filehash=${d.FileSha1}`).expect(200).expect('Content-Length', '0');
      assert.equal(res.body.length, 0);
    });

    it('rejects a request with no "file" field (400) and stores nothing', async () => {
      const before = (await app.httpRequest().get('/file/query?limit=1000').set('x-user', 'nofile')).body.length;
      const res = await app.httpRequest().post('/file/upload').set('x-user', 'nofile')
        .field('other', 'x').attach('notfile', Buffer.from('x'), 'x.txt').expect(400);
      assert.equal(res.body.code, 'MISSING_FILE');
      const after = (await app.httpRequest().get('/file/query?limit=1000').set('x-user', 'nofile')).body.length;
      assert.equal(after, before);
    });

    it('rejects a non-multipart POST (400 JSON)', async () => {
      const res = await app.httpRequest().post('/file/upload').set('Content-Type', 'application/json').send({ file: 'x' }).expect(400);
      assert.equal(res.body.code, 'NOT_MULTIPART');
      assert.equal(typeof res.body.msg, 'string');
    });

    it('rejects a file over maxFileSize (413) and keeps nothing', async () => {
      const res = await app.httpRequest().post('/file/upload').set('x-user', 'big')
        .attach('file', randomBytes(33 * 1024 * 1024), 'big.bin').expect(413);
      assert.equal(res.body.code, 'FILE_TOO_LARGE');
      const list = await app.httpRequest().get('/file/query').set('x-user', 'big').expect(200);
      assert.deepEqual(list.body, []);
    });

    it('keeps names with ../, NUL or 300 characters only as names', async () => {
      // NUL can only arrive percent-encoded (RFC 5987); it is dropped from the
      // name, and the multipart parser keeps only the last path segment
      const nul = multipart([ { name: 'file', filenameStar: '..%2F..%2Fevil%00.txt', data: 'nul' } ]);
      const r1 = await app.httpRequest().post('/file/upload').set('Accept', 'application/json')
        .set('Content-Type', nul.contentType).send(nul.body).expect(200);
      assert.equal(r1.body.data.FileName, 'evil.txt');
      // a raw NUL in a part header is a malformed body: 400, not a crash
      const raw = multipart([ { name: 'file', filename: 'evil\u0000.txt', data: 'raw' } ]);
      const bad = await app.httpRequest().post('/file/upload').set('Content-Type', raw.contentType).send(raw.body).expect(400);
      assert.equal(bad.body.code, 'MALFORMED_MULTIPART');
      const dots = multipart([ { name: 'file', filenameStar: '..%2F..%2F..%2Fetc%2Fpasswd', data: 'dots' } ]);
      const r2 = await app.httpRequest().post('/file/upload').set('Accept', 'application/json')
        .set('Content-Type', dots.contentType).send(dots.body).expect(200);
      assert.equal(r2.body.data.FileName, 'passwd');
      const long = '长'.repeat(300);
      const r3 = await upload('long', long);
      assert.equal(r3.FileName, long);
      const dl = await download(`filehash=${r3.FileSha1}`).expect(200);
      assert.equal(dl.body.toString(), 'long');
      // names never became paths: the store's root holds only bundles, the catalog (and its unsynced
      // marker), the layout and upload sessions
      const entries = fs.readdirSync(root).filter(n => ![ 'meta', 'meta.unsynced', 'layout.json', 'sessions', 'sonofs.lock' ].includes(n));
      assert(entries.every(n => /^[0-9a-f]{2}$/.test(n)), `unexpected entries in root: ${entries}`);
    });

    it('records nothing when the client aborts mid-upload, and gives its disk blocks back', async () => {
      const before = decodeFileId((await upload('before the abort', 'before.txt', 'aborter')).FileId);
      const usedBefore = fs.statSync(bundlePath(root, before.bundle)).blocks * 512;
      const server = app.listen(0);
      const { port } = server.address() as net.AddressInfo;
      const { body, contentType } = multipart([ { name: 'file', filename: 'cut.bin', data: randomBytes(2 * 1024 * 1024) } ]);
      await new Promise<void>(resolve => {
        const sock = net.connect(port, '127.0.0.1', () => {
          sock.write(`POST /file/upload HTTP/1.1\r\nHost: x\r\nx-user: aborter\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`);
          sock.write(body.subarray(0, 1024 * 1024), () => setTimeout(() => {
            sock.destroy();
            resolve();
          }, 100));
        });
      });
      await new Promise(r => setTimeout(r, 200));
      server.close();
      const list = await app.httpRequest().get('/file/query').set('x-user', 'aborter').expect(200);
      assert.deepEqual(list.body.map((f: any) => f.FileName), [ 'before.txt' ]);
      // The aborted upload's slot (reserved for the request's 2 MiB) is not cut again: a crash could leave
      // any of its headers on disk, and each must lead past it. Its blocks went back to the filesystem.
      const after = decodeFileId((await upload('after the abort', 'after.txt', 'aborter')).FileId);
      assert.equal(after.bundle, before.bundle);
      const beforeRecord = recordLength(before.size, encodeMeta({ u: 'aborter', n: 'before.txt', m: 'text/plain' }).length);
      assert.ok(after.offset >= before.offset + beforeRecord + 2 * 1024 * 1024, `the aborted slot was cut again at ${after.offset}`);
      const grown = fs.statSync(bundlePath(root, before.bundle)).blocks * 512 - usedBefore;
      assert.ok(grown < 256 * 1024, `the bundle grew by ${grown} bytes after the abort`);
    });
  });

  describe('meta, query, download, update, delete', () => {
    it('GET /file/meta returns the bare FileMeta; unknown hash 404, bad hash 400, missing 400', async () => {
      const d = await upload('meta me', 'm.txt');
      const res = await app.httpRequest().get(`/file/meta?filehash=${d.FileSha1}`).expect(200);
      assert.deepEqual(Object.keys(res.body).slice(0, 5), [ 'FileSha1', 'FileName', 'FileSize', 'Location', 'UploadAt' ]);
      assert.equal(res.body.FileName, 'm.txt');
      assert.equal(res.body.FileId, d.FileId);
      assert.equal((await app.httpRequest().get(`/file/meta?filehash=${'0'.repeat(40)}`).expect(404)).body.code, 'FILE_NOT_FOUND');
      assert.equal((await app.httpRequest().get('/file/meta?filehash=xyz').expect(400)).body.code, 'INVALID_FILE_HASH');
      assert.equal((await app.httpRequest().get('/file/meta').expect(400)).body.code, 'MISSING_PARAM');
    });

    it('GET /file/query lists newest first and validates limit', async () => {
      const a = await upload('q1', 'q1.txt', 'lister');
      await new Promise(r => setTimeout(r, 5));
      const b = await upload('q2', 'q2.txt', 'lister');
      const res = await app.httpRequest().get('/file/query?limit=5').set('x-user', 'lister').expect(200);
      assert.deepEqual(res.body.map((f: any) => f.FileSha1), [ b.FileSha1, a.FileSha1 ]);
      const one = await app.httpRequest().post('/file/query').type('form').send({ limit: '1' }).set('x-user', 'lister').expect(200);
      assert.equal(one.body.length, 1);
      for (const bad of [ '0', '-1', 'abc', '1.5', '100000' ]) {
        const r = await app.httpRequest().get(`/file/query?limit=${bad}`).set('x-user', 'lister').expect(400);
        assert.equal(r.body.code, 'INVALID_LIMIT');
      }
    });

    it('GET /file/download streams the bytes with type, length, ETag and a UTF-8 attachment name', async () => {
      const data = randomBytes(300_000);
      const d = await upload(data, '报告 2026.pdf', 'anonymous', 'application/pdf');
      const res = await download(`filehash=${d.FileSha1}`).expect(200);
      assert(res.body.equals(data));
      assert.equal(res.headers['content-type'], 'application/pdf');
      assert.equal(res.headers['content-length'], String(data.length));
      assert.equal(res.headers.etag, `"${d.FileSha1}"`);
      assert.match(res.headers['content-disposition'], /^attachment; filename="[^"]*"; filename\*=UTF-8''%E6%8A%A5%E5%91%8A%202026\.pdf$/);
      const byId = await download(`fileid=${d.FileId}`).expect(200);
      assert(byId.body.equals(data));
      await app.httpRequest().get(`/file/download?filehash=${d.FileSha1}`).set('If-None-Match', `"${d.FileSha1}"`).expect(304);
    });

    it('serves a small file from one read, and HEAD without a body', async () => {
      const d = await upload('tiny file', 'tiny.txt', 'anonymous', 'text/plain');
      const res = await download(`fileid=${d.FileId}`).expect(200).expect('Content-Type', /^text\/plain/);
      assert.equal(res.body.toString(), 'tiny file');
      const head = await app.httpRequest().head(`/file/download?filehash=${d.FileSha1}`).expect(200);
      assert.equal(head.headers['content-length'], '9');
      assert.equal(head.headers['accept-ranges'], 'bytes');
    });

    it('answers Range requests with 206, and 416 outside the file', async () => {
      const data = randomBytes(200_000);
      const d = await upload(data, 'r.bin');
      const r1 = await download(`filehash=${d.FileSha1}`).set('Range', 'bytes=100-199').expect(206);
      assert(r1.body.equals(data.subarray(100, 200)));
      assert.equal(r1.headers['content-range'], `bytes 100-199/${data.length}`);
      const r2 = await download(`filehash=${d.FileSha1}`).set('Range', 'bytes=-10').expect(206);
      assert(r2.body.equals(data.subarray(data.length - 10)));
      const r3 = await app.httpRequest().get(`/file/download?filehash=${d.FileSha1}`).set('Range', 'bytes=999999-').expect(416);
      assert.equal(r3.headers['content-range'], `bytes */${data.length}`);
      assert.equal(r3.body.code, 'RANGE_NOT_SATISFIABLE');
      // If-Range with a different validator: the whole file
      const r4 = await download(`filehash=${d.FileSha1}`).set('Range', 'bytes=0-9').set('If-Range', '"other"').expect(200);
      assert.equal(r4.body.length, data.length);
    });

    it('download: malformed fileid 400, unknown fileid 404, missing parameters 400', async () => {
      assert.equal((await app.httpRequest().get('/file/download?fileid=../../etc/passwd').expect(400)).body.code, 'INVALID_FILE_ID');
      const d = await upload('cookie', 'c.txt');
      const loc = decodeFileId(d.FileId);
      const { encodeFileId } = await import('../lib');
      const forged = encodeFileId({ ...loc, cookie: (loc.cookie ^ 1) >>> 0 });
      assert.equal((await app.httpRequest().get(`/file/download?fileid=${forged}`).expect(404)).body.code, 'FILE_NOT_FOUND');
      assert.equal((await app.httpRequest().get(`/file/download?filehash=${'a'.repeat(40)}`).expect(404)).body.code, 'FILE_NOT_FOUND');
      assert.equal((await app.httpRequest().get('/file/download').expect(400)).body.code, 'MISSING_PARAM');
    });

    it('POST /file/update op=0 renames; other op 403; other method 405', async () => {
      const d = await upload('rename me', 'old.txt');
      const res = await app.httpRequest().post('/file/update').type('form')
        .send({ op: '0', filehash: d.FileSha1, filename: '新名字.txt' }).expect(200);
      assert.equal(res.body.FileName, '新名字.txt');
      assert.equal(res.body.FileSha1, d.FileSha1);
      assert.equal((await app.httpRequest().get(`/file/meta?filehash=${d.FileSha1}`)).body.FileName, '新名字.txt');
      assert.equal((await app.httpRequest().post('/file/update').type('form').send({ op: '1', filehash: d.FileSha1, filename: 'x' }).expect(403)).body.code, 'UNSUPPORTED_OP');
      await app.httpRequest().get(`/file/update?op=0&filehash=${d.FileSha1}&filename=x`).expect(405).expect('Allow', 'POST');
      await app.httpRequest().post('/file/update').type('form').send({ op: '0', filehash: d.FileSha1 }).expect(400);
      await app.httpRequest().post('/file/update').type('form').send({ op: '0', filehash: '1'.repeat(40), filename: 'x' }).expect(404);
    });

    it('POST or GET /file/delete removes the link; meta and download then answer 404', async () => {
      const d = await upload('delete me', 'd.txt');
      await app.httpRequest().post('/file/delete').type('form').send({ filehash: d.FileSha1 }).expect(200);
      await app.httpRequest().get(`/file/meta?filehash=${d.FileSha1}`).expect(404);
      await app.httpRequest().get(`/file/download?filehash=${d.FileSha1}`).expect(404);
      await app.httpRequest().get(`/file/download?fileid=${d.FileId}`).expect(404);
      const e = await upload('delete me too', 'e.txt');
      await app.httpRequest().get(`/file/delete?filehash=${e.FileSha1}`).expect(200);
      await app.httpRequest().get(`/file/delete?filehash=${e.FileSha1}`).expect(404);
      await app.httpRequest().get('/file/delete?filehash=bad').expect(400);
    });
  });

  describe('deduplication and per-user links', () => {
    it('stores identical content once; each user has a name; delete removes only that user\'s link', async () => {
      const data = randomBytes(40_000);
      const a = await upload(data, 'alice.bin', 'alice');
      const b = await upload(data, 'bob.bin', 'bob');
      assert.equal(b.FileId, a.FileId);
      assert.equal((await app.httpRequest().get(`/file/meta?filehash=${a.FileSha1}`).set('x-user', 'alice')).body.FileName, 'alice.bin');
      assert.equal((await app.httpRequest().get(`/file/meta?filehash=${a.FileSha1}`).set('x-user', 'bob')).body.FileName, 'bob.bin');
      const dlBob = await download(`filehash=${a.FileSha1}`, 'bob').expect(200);
      assert.match(dlBob.headers['content-disposition'], /bob\.bin/);
      await app.httpRequest().post('/file/delete').type('form').send({ filehash: a.FileSha1 }).set('x-user', 'bob').expect(200);
      await app.httpRequest().get(`/file/meta?filehash=${a.FileSha1}`).set('x-user', 'bob').expect(404);
      const dlAlice = await download(`filehash=${a.FileSha1}`, 'alice').expect(200);
      assert(dlAlice.body.equals(data));
      // bob re-uploads after deleting: his link is revived with the new name
      const again = await upload(data, 'bob-again.bin', 'bob');
      assert.equal(again.FileName, 'bob-again.bin');
      assert.equal((await app.httpRequest().get(`/file/meta?filehash=${a.FileSha1}`).set('x-user', 'bob')).body.FileName, 'bob-again.bin');
    });
  });

  describe('ctx.sonofs and app.sonofs', () => {
    it('ctx.sonofs.upload(stream, opts) and the sonofs form upload(mime, stream); getFile returns { mime, size, buffer }', async () => {
      const ctx = app.mockContext({ headers: { 'x-user': 'api' } } as any);
      const r = await ctx.sonofs.upload(Readable.from([ Buffer.from('hello '), Buffer.from('world') ]), { filename: 'h.txt', mime: 'text/plain' });
      assert.equal(r.size, 11);
      assert.equal(r.mime, 'text/plain');
      const f = await ctx.sonofs.getFile(r.fileId);
      assert.deepEqual({ mime: f.mime, size: f.size, text: f.buffer.toString() }, { mime: 'text/plain', size: 11, text: 'hello world' });
      const r2 = await ctx.sonofs.upload('image/png', Readable.from([ randomBytes(1000) ]));
      assert.equal(r2.mime, 'image/png');
      const chunks: Buffer[] = [];
      for await (const c of await ctx.sonofs.createReadStream(r.fileId, { start: 6, end: 10 })) chunks.push(c as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), 'world');
      assert.equal((await ctx.sonofs.list(10)).length, 2);
    });

    it('answers 401 JSON when the authenticate hook accepts no user, and stores nothing', async () => {
      mm(app.config.sonofs, 'authenticate', () => '');
      const res = await app.httpRequest().post('/file/upload').set('Accept', 'application/json')
        .attach('file', Buffer.from('who am i'), 'who.txt').expect(401);
      assert.deepEqual(res.body, { code: 'UNAUTHORIZED', msg: 'authentication required' });
      mm.restore();
      await app.httpRequest().get(`/file/meta?filehash=${sha1(Buffer.from('who am i'))}`).expect(404);
    });

    it('app.sonofs works outside a request with an explicit user', async () => {
      const r = await app.sonofs.upload(Readable.from([ Buffer.from('background job') ]), { user: 'cron', filename: 'job.log' });
      assert.equal((await app.sonofs.getUserFile('cron', r.fileHash))!.name, 'job.log');
    });
  });

  describe('HTTP details and bad requests', () => {
    let base: string;
    let server: http.Server;

    before(async () => {
      server = http.createServer(app.callback());
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    });

    after(() => new Promise<void>(resolve => server.close(() => resolve())));

    /** POST /file/upload with a chunked body (no Content-Length), written in pieces. */
    function chunkedUpload(body: Buffer, contentType: string, user: string) {
      return new Promise<{ status: number; json: any }>((resolve, reject) => {
        const req = http.request(`${base}/file/upload`, {
          method: 'POST', agent: false,
          headers: { 'Content-Type': contentType, Accept: 'application/json', 'x-user': user, 'Transfer-Encoding': 'chunked' },
        }, res => {
          const chunks: Buffer[] = [];
          res.on('data', c => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString()) }));
        });
        req.on('error', reject);
        for (let i = 0; i < body.length; i += 100_000) req.write(body.subarray(i, i + 100_000));
        req.end();
      });
    }

    it('stores a chunked upload (no Content-Length) larger than the probe', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const { body, contentType } = multipart([ { name: 'file', filename: 'chunked.bin', data } ]);
      const res = await chunkedUpload(body, contentType, 'chunky');
      assert.equal(res.status, 200);
      assert.equal(res.json.data.FileSha1, sha1(data));
      const dl = await request(`${base}/file/download?filehash=${sha1(data)}`, { headers: { 'x-user': 'chunky' } });
      assert(dl.body.equals(data));
    });

    it('answers 413 to a streamed upload over maxFileSize and keeps nothing', async () => {
      const data = randomBytes(33 * 1024 * 1024);
      const { body, contentType } = multipart([ { name: 'file', filename: 'huge.bin', data } ]);
      const res = await chunkedUpload(body, contentType, 'huge').catch(err => ({ status: 0, json: { code: err.code } }));
      // the server may answer and close before the client has sent everything
      assert(res.status === 413 || [ 'EPIPE', 'ECONNRESET' ].includes(res.json.code), `got ${res.status} ${JSON.stringify(res.json)}`);
      const list = await request(`${base}/file/query`, { headers: { 'x-user': 'huge' } });
      assert.deepEqual(list.json(), []);
    });

    it('answers a multipart body without a boundary or cut short with 400 MALFORMED_MULTIPART', async () => {
      const noBoundary = await request(`${base}/file/upload`, {
        method: 'POST', body: Buffer.from('x'), headers: { 'Content-Type': 'multipart/form-data', 'x-user': 'cut' },
      });
      assert.equal(noBoundary.status, 400);
      assert.equal(noBoundary.json().code, 'MALFORMED_MULTIPART');
      const { body, contentType } = multipart([ { name: 'file', filename: 'cut.bin', data: randomBytes(50_000) } ]);
      const cut = body.subarray(0, 30_000); // the closing boundary never comes
      const res = await request(`${base}/file/upload`, {
        method: 'POST', body: cut, headers: { 'Content-Type': contentType, 'Content-Length': cut.length, 'x-user': 'cut' },
      });
      assert.equal(res.status, 400);
      assert.match(res.json().code, /MALFORMED_MULTIPART|BAD_UPLOAD_STREAM/);
      assert.deepEqual((await request(`${base}/file/query`, { headers: { 'x-user': 'cut' } })).json(), []);
    });

    it('answers other methods with 405 JSON and Allow, unknown paths under the prefix with 404 JSON', async () => {
      const put = await request(`${base}/file/download?fileid=x`, { method: 'PUT' });
      assert.equal(put.status, 405);
      assert.equal(put.json().code, 'METHOD_NOT_ALLOWED');
      assert.match(String(put.headers.allow), /GET/);
      const del = await request(`${base}/file/query`, { method: 'DELETE' });
      assert.equal(del.status, 405);
      const nope = await request(`${base}/file/nope`);
      assert.equal(nope.status, 404);
      assert.equal(nope.json().code, 'NO_SUCH_ROUTE');
    });

    it('takes /file/meta by POST too, as the course router does', async () => {
      const d = await upload('meta by post', 'm.txt', 'poster');
      const res = await app.httpRequest().post('/file/meta').set('x-user', 'poster').type('form').send({ filehash: d.FileSha1 }).expect(200);
      assert.equal(res.body.FileName, 'm.txt');
    });

    it('ignores a Range whose last byte is before its first (200, whole file)', async () => {
      const d = await upload('0123456789', 'r.txt', 'ranger');
      const res = await download(`filehash=${d.FileSha1}`, 'ranger').set('Range', 'bytes=5-2').expect(200);
      assert.equal(res.body.toString(), '0123456789');
    });

    it('serves a file id to anyone, even when the auth hook refuses the caller', async () => {
      const d = await upload('shared by id', 'shared.txt', 'owner');
      mm(app.config.sonofs, 'authenticate', (ctx: any) => ctx.get('x-user') || ctx.throw(401));
      const res = await app.httpRequest().get(`/file/download?fileid=${d.FileId}`).buffer(true).parse(binaryParser).expect(200);
      assert.equal(res.body.toString(), 'shared by id');
      // the owner still gets their own name for it
      const own = await download(`fileid=${d.FileId}`, 'owner').expect(200);
      assert.match(String(own.headers['content-disposition']), /shared\.txt/);
    });

    it('ctx.sonofs.link adds a link to stored content (秒传) and 404s for unknown content', async () => {
      const d = await upload('linked content', 'orig.txt', 'linker');
      const ctx = app.mockContext({ headers: { 'x-user': 'other-linker' } } as any);
      const f = await ctx.sonofs.link(d.FileSha1, 'mine.txt');
      assert.equal(f.name, 'mine.txt');
      assert.equal(f.fileId, d.FileId);
      await assert.rejects(ctx.sonofs.link('b'.repeat(40), 'x.txt'), { status: 404 });
    });
  });
});
