import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import mm, { MockApplication } from 'egg-mock';
import { formatMetadata } from '../lib/tus';
import { binaryParser, request, sha1 } from './support/http';
import { OFFSET, TUS, RawAnswer, digest, pathOf, patchWithTrailer, rawHead, readAnswer } from './support/tus';
import { startInProcess, TestApp } from './support/app';

const EXTENSIONS = [
  'creation', 'creation-with-upload', 'creation-defer-length', 'expiration', 'checksum', 'checksum-trailer',
  'termination', 'concatenation', 'concatenation-unfinished',
];
const MAX = 32 * 1024 * 1024; // the fixture app's maxFileSize

/** One request written by hand on a fresh connection, and its answer. */
async function rawExchange(port: number, request: string): Promise<RawAnswer> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  const answer = readAnswer(sock);
  sock.write(request);
  try {
    return await answer;
  } finally {
    sock.destroy();
  }
}

/**
 * Black-box tests of the tus 1.0.0 server against the protocol checklist
 * (docs tus-protocol.md §1.3: C1–C8, CR1–CR6, D1–D3, W1–W3, E1–E3, K1–K3,
 * T1–T2, X1–X5). Test names start with the checklist id they cover.
 */
describe('tus 1.0.0 server (mm.app)', () => {
  let app: MockApplication;
  let port: number;
  let base: string;
  let running: TestApp;

  before(async () => {
    running = await startInProcess('tus');
    ({ app, base } = running);
    port = Number(new URL(base).port);
  });

  after(() => running.close());

  afterEach(mm.restore);

  const user = (u = 'alice') => ({ 'x-user': u });

  async function create(headers: Record<string, string> = {}, body?: Buffer) {
    const req = app.httpRequest().post('/files').set(TUS).set(user()).set(headers);
    const res = body ? await req.set('Content-Type', OFFSET).send(body) : await req;
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { res, url: res.headers.location as string, path: pathOf(res.headers.location) };
  }

  function patch(p: string, offset: number, body: Buffer, headers: Record<string, string> = {}) {
    return app.httpRequest().patch(p).set(TUS).set(user()).set('Upload-Offset', String(offset))
      .set('Content-Type', OFFSET).set(headers).send(body);
  }

  function head(p: string, headers: Record<string, string> = {}) {
    return app.httpRequest().head(p).set(TUS).set(user()).set(headers);
  }

  function download(p: string, headers: Record<string, string> = {}) {
    return app.httpRequest().get(p).set(user()).set(headers).buffer(true).parse(binaryParser);
  }

  /** Every error is the plugin's JSON plus the tus version header. */
  function isError(res: { status: number; body: any; headers: any; req?: any }, status: number, code?: string) {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.headers['tus-resumable'], '1.0.0');
    if (res.req?.method === 'HEAD') return; // no body to read
    const body = Buffer.isBuffer(res.body) ? JSON.parse(res.body.toString()) : res.body;
    assert.equal(typeof body.msg, 'string');
    if (code) assert.equal(body.code, code, body.msg);
  }

  describe('Core', () => {
    it('C7/CR1/D1/W1/E1/K1/T1/X1: OPTIONS answers 204 with Tus-Version, exactly the supported extensions, Tus-Max-Size and the checksum algorithms', async () => {
      for (const p of [ '/files', '/files/', '/files/whatever' ]) {
        const res = await app.httpRequest().options(p).expect(204);
        assert.equal(res.headers['tus-version'], '1.0.0');
        assert.deepEqual(res.headers['tus-extension'].split(','), EXTENSIONS);
        assert.equal(res.headers['tus-max-size'], String(MAX));
        const algos = res.headers['tus-checksum-algorithm'].split(',');
        for (const a of [ 'sha1', 'md5', 'sha256' ]) assert.ok(algos.includes(a), a);
        assert.equal(res.headers['tus-resumable'], '1.0.0');
      }
    });

    it('C1: ignores Tus-Resumable on OPTIONS (even a wrong one) and sends it on every response, errors included', async () => {
      await app.httpRequest().options('/files').set('Tus-Resumable', '0.0.1').expect(204).expect('Tus-Resumable', '1.0.0');
      const { path: p } = await create({ 'Upload-Length': '3' });
      const answers = [
        await patch(p, 0, Buffer.from('abc')),
        await head(p),
        await head('/files/AAAAAAAAAAAAAAAAAAAAAA'),
        await patch(p, 7, Buffer.from('x')),
        await app.httpRequest().post('/files'),
        await app.httpRequest().put('/files/AAAAAAAAAAAAAAAAAAAAAA').set(TUS),
        await app.httpRequest().get('/files/a/b'),
      ];
      for (const res of answers) assert.equal(res.headers['tus-resumable'], '1.0.0', `${res.status}`);
    });

    it('C2: a missing or unsupported Tus-Resumable is 412 with Tus-Version, and the request is not processed', async () => {
      const data = Buffer.from('0123456789');
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      for (const version of [ undefined, '0.2.2', '2.0.0' ]) {
        const req = app.httpRequest().patch(p).set(user()).set('Upload-Offset', '0').set('Content-Type', OFFSET);
        const res = await (version ? req.set('Tus-Resumable', version) : req).send(data);
        isError(res, 412, 'UNSUPPORTED_TUS_VERSION');
        assert.equal(res.headers['tus-version'], '1.0.0');
      }
      await head(p).expect(200).expect('Upload-Offset', '0');
      const post = await app.httpRequest().post('/files').set(user()).set('Upload-Length', '5');
      isError(post, 412);
      assert.equal(post.headers.location, undefined);
      isError(await app.httpRequest().head(p).set(user()).set('Tus-Resumable', '0.9'), 412);
      isError(await app.httpRequest().delete(p).set(user()), 412);
      await head(p).expect(200); // the DELETE was not processed either
    });

    it('C3: Upload-Offset and Upload-Length must be non-negative integers', async () => {
      const { path: p } = await create({ 'Upload-Length': '10' });
      for (const bad of [ '-1', 'abc', '1.5', '1e3', '+3', ' 0x1', '99999999999999999999' ]) {
        isError(await patch(p, 0, Buffer.from('x')).set('Upload-Offset', bad), 400, 'INVALID_UPLOAD_OFFSET');
        const res = await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Length', bad);
        isError(res, 400, 'INVALID_UPLOAD_LENGTH');
      }
      isError(await app.httpRequest().patch(p).set(TUS).set(user()).set('Content-Type', OFFSET).send(Buffer.from('x')), 400, 'MISSING_UPLOAD_OFFSET');
      await head(p).expect('Upload-Offset', '0');
    });

    it('C4: HEAD always has Upload-Offset (also 0 and when complete), Upload-Length when known, Cache-Control: no-store', async () => {
      const data = randomBytes(1000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      let res = await head(p).expect(200);
      assert.equal(res.headers['upload-offset'], '0');
      assert.equal(res.headers['upload-length'], '1000');
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['upload-defer-length'], undefined);
      await patch(p, 0, data.subarray(0, 400)).expect(204);
      await head(p).expect(200).expect('Upload-Offset', '400');
      await patch(p, 400, data.subarray(400)).expect(204);
      res = await head(p).expect(200).expect('Cache-Control', 'no-store');
      assert.equal(res.headers['upload-offset'], '1000');
      assert.equal(res.headers['upload-length'], '1000');
    });

    it('C4 (SHOULD): HEAD and PATCH of an unknown upload are 404, without Upload-Offset', async () => {
      for (const id of [ 'AAAAAAAAAAAAAAAAAAAAAA', 'not-an-id', 'x'.repeat(300) ]) {
        const res = await head(`/files/${id}`);
        assert.equal(res.status, 404);
        assert.equal(res.headers['upload-offset'], undefined);
        isError(await patch(`/files/${id}`, 0, Buffer.from('x')), 404, 'UPLOAD_NOT_FOUND');
      }
    });

    it('C5: PATCH at another offset is 409 and leaves the upload unchanged', async () => {
      const data = randomBytes(3000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      await patch(p, 0, data.subarray(0, 1000)).expect(204).expect('Upload-Offset', '1000');
      for (const at of [ 0, 500, 1500, 2999 ]) isError(await patch(p, at, Buffer.alloc(100, 7)), 409, 'OFFSET_MISMATCH');
      await head(p).expect('Upload-Offset', '1000');
      await patch(p, 1000, data.subarray(1000)).expect(204).expect('Upload-Offset', '3000');
      const res = await download(p).expect(200);
      assert.equal(sha1(res.body), sha1(data));
    });

    it('C6: PATCH answers 204 with Upload-Offset = old offset + bytes stored; an empty PATCH changes nothing', async () => {
      const data = randomBytes(70_000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      let at = 0;
      for (const n of [ 1, 0, 9_999, 30_000, 30_000 ]) {
        const res = await patch(p, at, data.subarray(at, at + n)).expect(204);
        at += n;
        assert.equal(res.headers['upload-offset'], String(at));
        assert.equal(res.text ?? '', '');
      }
      assert.equal(sha1((await download(p).expect(200)).body), sha1(data));
    });

    it('C6 (SHOULD): keeps the bytes of a body cut short, so the client resumes from there', async () => {
      const data = randomBytes(400_000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      const sock = net.connect(port, '127.0.0.1');
      await new Promise(r => sock.once('connect', r));
      sock.write(`PATCH ${p} HTTP/1.1\r\nHost: x\r\nx-user: alice\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: ${OFFSET}\r\nContent-Length: ${data.length}\r\n\r\n`);
      sock.write(data.subarray(0, 150_000));
      await new Promise(r => setTimeout(r, 300));
      sock.destroy();
      let offset = 0;
      for (let i = 0; i < 50 && offset === 0; i++) {
        await new Promise(r => setTimeout(r, 50));
        offset = Number((await head(p)).headers['upload-offset']);
      }
      assert.ok(offset > 0 && offset <= 150_000, `offset ${offset}`);
      await patch(p, offset, data.subarray(offset)).expect(204).expect('Upload-Offset', String(data.length));
      assert.equal(sha1((await download(p).expect(200)).body), sha1(data));
    });

    it('C8: X-HTTP-Method-Override is the method (POST carrying PATCH, HEAD, DELETE)', async () => {
      const data = Buffer.from('override me');
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      await app.httpRequest().post(p).set(TUS).set(user()).set('X-HTTP-Method-Override', 'PATCH')
        .set('Upload-Offset', '0').set('Content-Type', OFFSET).send(data)
        .expect(204).expect('Upload-Offset', String(data.length));
      const h = await app.httpRequest().post(p).set(TUS).set(user()).set('X-HTTP-Method-Override', 'HEAD').expect(200);
      assert.equal(h.headers['upload-offset'], String(data.length));
      assert.equal(h.headers['cache-control'], 'no-store');
      const other = await create({ 'Upload-Length': '5' });
      await app.httpRequest().post(other.path).set(TUS).set(user()).set('X-HTTP-Method-Override', 'DELETE').expect(204);
      isError(await head(other.path), 410);
      // and the other way round: a GET turned into OPTIONS
      await app.httpRequest().get('/files').set('X-HTTP-Method-Override', 'OPTIONS').expect(204).expect('Tus-Version', '1.0.0');
    });

    it('C8: a POST overridden to HEAD gets a whole HTTP answer, on the collection and on an upload', async () => {
      const { path: p } = await create({ 'Upload-Length': '3' });
      for (const [ path, status ] of [ [ '/files', 405 ], [ p, 200 ] ] as const) {
        const res = await rawExchange(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nx-user: alice\r\nTus-Resumable: 1.0.0\r\n` +
          'X-HTTP-Method-Override: HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        assert.equal(res.status, status, res.head);
        assert.equal(res.body.length, Number(res.headers['content-length'] ?? res.body.length), `${path}: the body is as long as announced`);
        if (status === 405) assert.equal(JSON.parse(res.body.toString()).code, 'METHOD_NOT_ALLOWED');
        else assert.equal(res.headers['upload-offset'], '0');
      }
    });

    it('SHOULD: PATCH with another Content-Type is 415, answered without reading the body', async () => {
      const { path: p } = await create({ 'Upload-Length': '100' });
      for (const type of [ 'application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream' ]) {
        // the body is announced but never sent: an answer proves it was not awaited
        const res = await rawHead(port, `PATCH ${p} HTTP/1.1\r\nHost: x\r\nx-user: alice\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: ${type}\r\nContent-Length: 5000000\r\n\r\n`, Buffer.from('{"a":'));
        assert.equal(res.status, 415, res.text);
        assert.match(res.text, /tus-resumable: 1\.0\.0/i);
      }
      isError(await app.httpRequest().patch(p).set(TUS).set(user()).set('Upload-Offset', '0').send(Buffer.from('x')), 415, 'UNSUPPORTED_MEDIA_TYPE');
      await head(p).expect('Upload-Offset', '0');
    });

    it('answers other methods 405 with Allow, and unknown paths below 404, as JSON', async () => {
      const put = await app.httpRequest().put('/files').set(TUS);
      isError(put, 405, 'METHOD_NOT_ALLOWED');
      assert.equal(put.headers.allow, 'POST, OPTIONS');
      const { path: p } = await create({ 'Upload-Length': '1' });
      const res = await app.httpRequest().post(p).set(TUS).set(user());
      isError(res, 405);
      assert.match(res.headers.allow, /PATCH/);
      isError(await app.httpRequest().get('/files/a/b').set(TUS), 404, 'NO_SUCH_ROUTE');
    });

    it('HEAD does not wait for a stalled PATCH, and a second PATCH makes the stalled one let go of the upload', async () => {
      const data = randomBytes(300_000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      const sock = net.connect(port, '127.0.0.1');
      await new Promise(r => sock.once('connect', r));
      sock.on('error', () => undefined);
      sock.write(`PATCH ${p} HTTP/1.1\r\nHost: x\r\nx-user: alice\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: ${OFFSET}\r\nContent-Length: ${data.length}\r\n\r\n`);
      sock.write(data.subarray(0, 100_000));
      await new Promise(r => setTimeout(r, 200));
      const started = Date.now();
      await head(p).expect(200);
      assert.ok(Date.now() - started < 1000, 'HEAD must not wait for the lock');
      // the resuming client: a PATCH from the offset it knows (0) takes over; the
      // stalled request stops and keeps its bytes, so the offset moved: 409
      const firstAnswer = readAnswer(sock);
      const takeover = await patch(p, 0, data);
      assert.ok([ 204, 409 ].includes(takeover.status), `${takeover.status} ${JSON.stringify(takeover.body)}`);
      const offset = Number((await head(p)).headers['upload-offset']);
      // the stalled request is answered with what it stored, which is the upload's offset now
      const first = await firstAnswer;
      assert.equal(first.status, 204, first.head);
      assert.equal(first.headers.connection, 'close');
      assert.equal(Number(first.headers['upload-offset']), takeover.status === 409 ? offset : 0);
      if (takeover.status === 409) {
        assert.ok(offset > 0 && offset <= 100_000);
        await patch(p, offset, data.subarray(offset)).expect(204);
      }
      sock.destroy();
      assert.equal(sha1((await download(p).expect(200)).body), sha1(data));
    });
  });

  describe('creation, creation-with-upload, creation-defer-length', () => {
    it('CR2: POST needs Upload-Length or Upload-Defer-Length: 1 (not both, nothing else)', async () => {
      const post = () => app.httpRequest().post('/files').set(TUS).set(user());
      isError(await post(), 400, 'MISSING_UPLOAD_LENGTH');
      isError(await post().set('Upload-Defer-Length', '2'), 400, 'INVALID_UPLOAD_DEFER_LENGTH');
      isError(await post().set('Upload-Defer-Length', 'true'), 400, 'INVALID_UPLOAD_DEFER_LENGTH');
      isError(await post().set('Upload-Defer-Length', '1').set('Upload-Length', '3'), 400, 'INVALID_UPLOAD_DEFER_LENGTH');
    });

    it('CR3: answers 201 with an absolute Location under /files/ that the next requests use', async () => {
      const { res, url } = await create({ 'Upload-Length': '4' });
      assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/files/[A-Za-z0-9_-]{22}$`));
      assert.equal(res.headers['upload-offset'], undefined, 'no data was sent');
      const r = await request(url.replace(/^http:\/\/[^/]+/, base), { method: 'HEAD', headers: { ...TUS, ...user() } });
      assert.equal(r.status, 200);
    });

    it('CR3: Location follows X-Forwarded-Proto/Host/Prefix only when the proxy is trusted', async () => {
      const fwd = { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'files.example.com', 'X-Forwarded-Prefix': '/api/' };
      const plain = await create({ 'Upload-Length': '1', Host: 'inside:7001', ...fwd });
      assert.match(plain.url, /^http:\/\/inside:7001\/files\/[\w-]{22}$/);
      mm(app.config.sonofs.tus, 'trustProxy', true);
      const trusted = await create({ 'Upload-Length': '1', Host: 'inside:7001', ...fwd });
      assert.match(trusted.url, /^https:\/\/files\.example\.com\/api\/files\/[\w-]{22}$/);
      mm.restore();
      mm(app.config, 'proxy', true); // Egg's own switch works too
      const viaEgg = await create({ 'Upload-Length': '1', Host: 'inside:7001', 'X-Forwarded-Proto': 'https, http', 'X-Forwarded-Host': 'evil host/' });
      assert.match(viaEgg.url, /^https:\/\/inside:7001\/files\/[\w-]{22}$/, 'a malformed forwarded host is ignored');
      // the final's URLs may carry the proxy's prefix
      const part = await create({ 'Upload-Length': '1', 'Upload-Concat': 'partial', Host: 'inside', ...fwd });
      const pr = await patch(pathOf(part.url).replace(/^\/api/, ''), 0, Buffer.from('z'));
      assert.equal(pr.status, 204, JSON.stringify(pr.body));
      const final = await create({ 'Upload-Concat': `final;${part.url}`, Host: 'inside', ...fwd });
      assert.ok(final.res.headers['sonofs-file-id']);
    });

    it('CR4: Upload-Length above Tus-Max-Size is 413; so is a body past the length', async () => {
      isError(await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Length', String(MAX + 1)), 413, 'FILE_TOO_LARGE');
      await create({ 'Upload-Length': String(MAX) });
      const { path: p } = await create({ 'Upload-Length': '10' });
      isError(await patch(p, 0, Buffer.alloc(11)), 413, 'EXCEEDS_LENGTH');
      await head(p).expect('Upload-Offset', '0');
      isError(await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Length', '10').set('Content-Type', OFFSET).send(Buffer.alloc(11)), 413, 'EXCEEDS_LENGTH');
      // deferred length: the limit is Tus-Max-Size
      const d = await create({ 'Upload-Defer-Length': '1' });
      const big = await rawHead(port, `PATCH ${d.path} HTTP/1.1\r\nHost: x\r\nx-user: alice\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: ${OFFSET}\r\nContent-Length: ${MAX + 1}\r\n\r\n`);
      assert.equal(big.status, 413);
    });

    it('CR5: echoes Upload-Metadata in HEAD; filename and filetype become the stored file\'s name and type', async () => {
      const data = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>');
      const metadata = formatMetadata({ filename: '报告 v2.svg', filetype: 'image/svg+xml', empty: '', note: 'a b,c' });
      const { path: p } = await create({ 'Upload-Length': String(data.length), 'Upload-Metadata': metadata });
      await head(p).expect(200).expect('Upload-Metadata', metadata);
      const done = await patch(p, 0, data).expect(204);
      const hash = done.headers['sonofs-file-hash'];
      assert.equal(hash, sha1(data));
      const meta = await app.httpRequest().get(`/file/meta?filehash=${hash}`).set(user()).expect(200);
      assert.equal(meta.body.FileName, '报告 v2.svg');
      assert.equal(meta.body.Mime, 'image/svg+xml');
      assert.equal(meta.body.FileId, done.headers['sonofs-file-id']);
      const res = await download(p).expect(200).expect('Content-Type', 'image/svg+xml').expect('Content-Length', String(data.length));
      assert.match(res.headers['content-disposition'], /^attachment; filename=.*filename\*=UTF-8''%E6%8A%A5%E5%91%8A%20v2\.svg$/);
      await head(p).expect('Upload-Metadata', metadata);
    });

    it('CR5: Upload-Metadata is parsed strictly (400 for bad base64, duplicate or empty keys, spaces)', async () => {
      for (const bad of [ 'filename aGVsbG8', 'filename aGVsbG8=,filename d29ybGQ=', 'filename !!!!', 'a b c', 'k aGVsbG8=,,j', 'filename aGVs bG8=', 'filename aGk=\u00ff' ]) {
        const res = await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Length', '1').set('Upload-Metadata', bad);
        assert.equal(res.status, 400, bad);
        isError(res, 400, 'INVALID_METADATA');
      }
      // a value may be empty, with or without its space; spaces around pairs are fine
      const ok = await create({ 'Upload-Length': '1', 'Upload-Metadata': 'a,b ,  c aGk=' });
      await head(ok.path).expect('Upload-Metadata', 'a,b ,  c aGk=');
    });

    it('CR6: Upload-Length 0 is complete at once: an empty file', async () => {
      const { res, path: p } = await create({ 'Upload-Length': '0', 'Upload-Metadata': formatMetadata({ filename: 'empty.txt' }) });
      assert.equal(res.headers['sonofs-file-hash'], sha1(Buffer.alloc(0)));
      const h = await head(p).expect(200);
      assert.equal(h.headers['upload-offset'], '0');
      assert.equal(h.headers['upload-length'], '0');
      assert.equal(h.headers['sonofs-file-id'], res.headers['sonofs-file-id']);
      const d = await download(p).expect(200).expect('Content-Length', '0');
      assert.equal(d.body.length, 0);
      // a partial of length 0 is finished, but not a file
      const part = await create({ 'Upload-Length': '0', 'Upload-Concat': 'partial' });
      assert.equal(part.res.headers['sonofs-file-id'], undefined);
      await head(part.path).expect('Upload-Offset', '0').expect('Upload-Length', '0');
    });

    it('W1–W3: a POST with an offset-stream body stores it; 201 carries Upload-Offset; small whole files take one request', async () => {
      const small = randomBytes(16 * 1024);
      const one = await create({ 'Upload-Length': String(small.length), 'Upload-Metadata': formatMetadata({ filename: 's.bin' }) }, small);
      assert.equal(one.res.headers['upload-offset'], String(small.length));
      assert.equal(one.res.headers['sonofs-file-hash'], sha1(small));
      assert.equal(one.res.headers['upload-expires'], undefined, 'a file does not expire');
      await head(one.path).expect('Upload-Offset', String(small.length)).expect('Sonofs-File-Id', one.res.headers['sonofs-file-id']);
      assert.equal(sha1((await download(one.path).expect(200)).body), sha1(small));
      // part of the upload in the POST, the rest by PATCH
      const data = randomBytes(200_000);
      const part = await create({ 'Upload-Length': String(data.length) }, data.subarray(0, 50_000));
      assert.equal(part.res.headers['upload-offset'], '50000');
      assert.ok(part.res.headers['upload-expires']);
      await patch(part.path, 50_000, data.subarray(50_000)).expect(204);
      assert.equal(sha1((await download(part.path).expect(200)).body), sha1(data));
      // a whole file above fastPathMax goes through a session, with the same result
      const big = randomBytes(2 * 1024 * 1024 + 5);
      const whole = await create({ 'Upload-Length': String(big.length) }, big);
      assert.equal(whole.res.headers['upload-offset'], String(big.length));
      assert.equal(whole.res.headers['sonofs-file-hash'], sha1(big));
      // a body of another type is not upload data
      const res = await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Length', '5')
        .set('Content-Type', 'application/json').send('{"a":1}').expect(201);
      assert.equal(res.headers['upload-offset'], undefined);
      await head(pathOf(res.headers.location)).expect('Upload-Offset', '0');
    });

    it('D2/D3: HEAD says Upload-Defer-Length: 1 until a PATCH sets the length, which then never changes', async () => {
      const data = randomBytes(90_000);
      const { res, path: p } = await create({ 'Upload-Defer-Length': '1' }, data.subarray(0, 10_000));
      assert.equal(res.headers['upload-offset'], '10000');
      let h = await head(p).expect(200);
      assert.equal(h.headers['upload-defer-length'], '1');
      assert.equal(h.headers['upload-length'], undefined);
      await patch(p, 10_000, data.subarray(10_000, 40_000)).expect(204).expect('Upload-Offset', '40000');
      h = await head(p);
      assert.equal(h.headers['upload-defer-length'], '1');
      isError(await patch(p, 40_000, Buffer.alloc(0), { 'Upload-Length': '39999' }), 400, 'INVALID_SIZE');
      await patch(p, 40_000, data.subarray(40_000, 60_000), { 'Upload-Length': String(data.length) }).expect(204);
      h = await head(p);
      assert.equal(h.headers['upload-length'], String(data.length));
      assert.equal(h.headers['upload-defer-length'], undefined);
      isError(await patch(p, 60_000, Buffer.alloc(1), { 'Upload-Length': String(data.length + 1) }), 400, 'LENGTH_FIXED');
      const last = await patch(p, 60_000, data.subarray(60_000), { 'Upload-Length': String(data.length) }).expect(204);
      assert.equal(last.headers['sonofs-file-hash'], sha1(data));
      assert.equal(sha1((await download(p).expect(200)).body), sha1(data));
    });

    it('D3: a deferred upload finishes with an empty PATCH that sets the length', async () => {
      const data = randomBytes(5000);
      const { path: p } = await create({ 'Upload-Defer-Length': '1' });
      await patch(p, 0, data).expect(204);
      const res = await patch(p, data.length, Buffer.alloc(0), { 'Upload-Length': String(data.length) }).expect(204);
      assert.equal(res.headers['sonofs-file-hash'], sha1(data));
    });
  });

  describe('expiration', () => {
    it('E2: Upload-Expires (an HTTP date in the future) on POST and every PATCH while unfinished', async () => {
      const { res, path: p } = await create({ 'Upload-Length': '10' });
      const at = Date.parse(res.headers['upload-expires']);
      assert.ok(at > Date.now() && /GMT$/.test(res.headers['upload-expires']));
      const r = await patch(p, 0, Buffer.alloc(5)).expect(204);
      assert.ok(Date.parse(r.headers['upload-expires']) >= at - 1000);
      await head(p).expect(res => assert.ok(res.headers['upload-expires']));
      const done = await patch(p, 5, Buffer.alloc(5)).expect(204);
      assert.equal(done.headers['upload-expires'], undefined);
    });

    it('E3: an expired upload answers 410 to HEAD and PATCH', async () => {
      mm(app.sonofsUploads.opts, 'ttlMs', 300);
      const { res, path: p } = await create({ 'Upload-Length': '10' });
      assert.ok(Date.parse(res.headers['upload-expires']) < Date.now() + 5000);
      await new Promise(r => setTimeout(r, 1200));
      isError(await head(p), 410);
      isError(await patch(p, 0, Buffer.alloc(10)), 410, 'UPLOAD_EXPIRED');
    });
  });

  describe('checksum, checksum-trailer', () => {
    it('K2: a matching sha1, md5, sha256 or sha512 checksum is accepted', async () => {
      const data = randomBytes(40_000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      let at = 0;
      for (const algo of [ 'sha1', 'md5', 'sha256', 'sha512' ]) {
        const chunk = data.subarray(at, at + 10_000);
        await patch(p, at, chunk, { 'Upload-Checksum': `${algo} ${digest(algo, chunk)}` }).expect(204);
        at += 10_000;
      }
      assert.equal(sha1((await download(p).expect(200)).body), sha1(data));
    });

    it('K2: a mismatch is 460 and the chunk is discarded (offset unchanged)', async () => {
      const data = randomBytes(20_000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      await patch(p, 0, data.subarray(0, 5000)).expect(204);
      const wrong = `sha1 ${digest('sha1', Buffer.from('something else'))}`;
      isError(await patch(p, 5000, data.subarray(5000), { 'Upload-Checksum': wrong }), 460, 'CHECKSUM_MISMATCH');
      await head(p).expect('Upload-Offset', '5000');
      await patch(p, 5000, data.subarray(5000), { 'Upload-Checksum': `sha256 ${digest('sha256', data.subarray(5000))}` }).expect(204);
      assert.equal(sha1((await download(p).expect(200)).body), sha1(data));
      // creation-with-upload: a bad checksum creates nothing
      const res = await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Length', '4')
        .set('Upload-Checksum', wrong).set('Content-Type', OFFSET).send(Buffer.from('abcd'));
      isError(res, 460);
      assert.equal(res.headers.location, undefined);
    });

    it('K2: an unsupported algorithm or a malformed checksum is 400, the chunk discarded', async () => {
      const data = Buffer.from('checksummed');
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      for (const [ value, code ] of [
        [ `crc32 ${digest('md5', data)}`, 'CHECKSUM_ALGORITHM_UNSUPPORTED' ],
        [ `SHA3 ${digest('md5', data)}`, 'CHECKSUM_ALGORITHM_UNSUPPORTED' ],
        [ 'sha1', 'INVALID_CHECKSUM' ],
        [ 'sha1 !!notbase64', 'INVALID_CHECKSUM' ],
        [ `sha1 ${digest('md5', data)}`, 'INVALID_CHECKSUM' ], // a digest of the wrong length
      ]) {
        isError(await patch(p, 0, data, { 'Upload-Checksum': value }), 400, code);
      }
      await head(p).expect('Upload-Offset', '0');
      await patch(p, 0, data, { 'Upload-Checksum': `SHA1 ${digest('sha1', data)}` }).expect(204);
    });

    it('K3: accepts Upload-Checksum as a trailer of a chunked PATCH (match 204, mismatch 460, missing 400)', async () => {
      const data = randomBytes(120_000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      const a = data.subarray(0, 60_000);
      let res = await patchWithTrailer(base, p, 0, a, `sha256 ${digest('sha256', Buffer.from('nope'))}`, user());
      assert.equal(res.status, 460, res.body.toString());
      assert.equal(res.json().code, 'CHECKSUM_MISMATCH');
      await head(p).expect('Upload-Offset', '0');
      res = await patchWithTrailer(base, p, 0, a, undefined, user());
      assert.equal(res.status, 400, res.body.toString());
      assert.equal(res.json().code, 'MISSING_CHECKSUM_TRAILER');
      res = await patchWithTrailer(base, p, 0, a, `crc32 ${digest('md5', a)}`, user());
      assert.equal(res.status, 400);
      await head(p).expect('Upload-Offset', '0');
      res = await patchWithTrailer(base, p, 0, a, `md5 ${digest('md5', a)}`, user());
      assert.equal(res.status, 204, res.body.toString());
      assert.equal(res.headers['upload-offset'], '60000');
      res = await patchWithTrailer(base, p, 60_000, data.subarray(60_000), `sha1 ${digest('sha1', data.subarray(60_000))}`, user());
      assert.equal(res.status, 204);
      assert.equal(res.headers['sonofs-file-hash'], sha1(data));
    });
  });

  describe('termination', () => {
    it('T2: DELETE answers 204; later requests get 410', async () => {
      const data = randomBytes(3000);
      const { path: p } = await create({ 'Upload-Length': String(data.length) }, data.subarray(0, 1000));
      await app.httpRequest().delete(p).set(TUS).set(user()).expect(204).expect('Tus-Resumable', '1.0.0');
      isError(await head(p), 410);
      isError(await patch(p, 1000, data.subarray(1000)), 410, 'UPLOAD_CANCELLED');
      isError(await app.httpRequest().delete(p).set(TUS).set(user()), 410);
    });

    it('T2: DELETE of a finished upload ends the session but keeps the file (the same content may be the user\'s through another upload)', async () => {
      const data = randomBytes(2000);
      // the same content stored through /file/upload first, then uploaded twice through tus: one link for the user
      const form = await app.httpRequest().post('/file/upload').set(user()).set('Accept', 'application/json')
        .attach('file', data, 'form.bin').expect(200);
      const hash = form.body.data.FileSha1;
      const first = await create({ 'Upload-Length': String(data.length) }, data);
      const second = await create({ 'Upload-Length': String(data.length) }, data);
      assert.equal(first.res.headers['sonofs-file-hash'], hash);
      assert.equal(second.res.headers['sonofs-file-hash'], hash);

      await app.httpRequest().delete(first.path).set(TUS).set(user()).expect(204);
      isError(await head(first.path), 410);
      isError(await app.httpRequest().delete(first.path).set(TUS).set(user()), 410);
      await app.httpRequest().get(`/file/meta?filehash=${hash}`).set(user()).expect(200);
      assert.equal(sha1((await download(second.path).expect(200)).body), hash, 'the other upload still serves the file');
      const dl = await app.httpRequest().get(`/file/download?filehash=${hash}`).set(user()).buffer(true).parse(binaryParser).expect(200);
      assert.equal(sha1(dl.body), hash);

      // the file itself goes through /file/delete; the tus session is untouched by that
      await app.httpRequest().get(`/file/delete?filehash=${hash}`).set(user()).expect(200);
      await app.httpRequest().get(`/file/meta?filehash=${hash}`).set(user()).expect(404);
      await app.httpRequest().delete(second.path).set(TUS).set(user()).expect(204);
      isError(await head(second.path), 410);
    });
  });

  describe('concatenation, concatenation-unfinished', () => {
    async function partial(data: Buffer, headers: Record<string, string> = {}) {
      const { url, path: p } = await create({ 'Upload-Length': String(data.length), 'Upload-Concat': 'partial', ...headers });
      return { url, path: p };
    }

    it('X2/X4/X5: a final of finished partials is concatenated at once, in the order given', async () => {
      const a = randomBytes(70_000);
      const b = randomBytes(1);
      const c = randomBytes(33_333);
      const pa = await partial(a, { 'Upload-Metadata': formatMetadata({ filename: 'part-a.bin' }) });
      const pb = await partial(b);
      const pc = await partial(c);
      for (const [ p, d ] of [ [ pa, a ], [ pb, b ], [ pc, c ] ] as const) {
        const r = await patch(p.path, 0, d).expect(204);
        assert.equal(r.headers['sonofs-file-id'], undefined, 'a partial never becomes a file');
      }
      const h = await head(pa.path).expect(200);
      assert.equal(h.headers['upload-concat'], 'partial');
      assert.equal(h.headers['upload-offset'], String(a.length));
      // absolute and relative URLs mixed
      const concat = `final;${pc.url} ${pa.path} ${pb.url}`;
      const { res, path: fp } = await create({ 'Upload-Concat': concat, 'Upload-Metadata': formatMetadata({ filename: 'whole.bin' }) });
      const whole = Buffer.concat([ c, a, b ]);
      assert.equal(res.headers['sonofs-file-hash'], sha1(whole));
      const fh = await head(fp).expect(200);
      assert.equal(fh.headers['upload-concat'], concat);
      assert.equal(fh.headers['upload-offset'], String(whole.length));
      assert.equal(fh.headers['upload-length'], String(whole.length));
      const meta = await app.httpRequest().get(`/file/meta?filehash=${sha1(whole)}`).set(user()).expect(200);
      assert.equal(meta.body.FileName, 'whole.bin', 'the final has its own metadata, not its parts\'');
      assert.equal(sha1((await download(fp).expect(200)).body), sha1(whole));
      // X5: a partial may be used again
      const again = await create({ 'Upload-Concat': `final;${pa.url} ${pa.url}` });
      assert.equal(again.res.headers['sonofs-file-hash'], sha1(Buffer.concat([ a, a ])));
      // the partials are no files of their own
      await app.httpRequest().get(`/file/meta?filehash=${sha1(a)}`).set(user()).expect(404);
    });

    it('X3: PATCH on a final upload is 403; a final with Upload-Length, a body, a non-partial or a foreign URL is refused', async () => {
      const a = randomBytes(100);
      const pa = await partial(a);
      const { path: fp } = await create({ 'Upload-Concat': `final;${pa.url}` });
      isError(await patch(fp, 0, a), 403, 'FINAL_UPLOAD_READ_ONLY');
      const post = () => app.httpRequest().post('/files').set(TUS).set(user());
      isError(await post().set('Upload-Concat', `final;${pa.url}`).set('Upload-Length', '100'), 400, 'INVALID_UPLOAD_CONCAT');
      isError(await post().set('Upload-Concat', `final;${pa.url}`).set('Content-Type', OFFSET).send(a), 403);
      isError(await post().set('Upload-Concat', 'final;'), 400, 'INVALID_UPLOAD_CONCAT');
      isError(await post().set('Upload-Concat', 'full'), 400, 'INVALID_UPLOAD_CONCAT');
      isError(await post().set('Upload-Concat', 'final;/elsewhere/AAAAAAAAAAAAAAAAAAAAAA'), 400, 'INVALID_UPLOAD_CONCAT');
      const plain = await create({ 'Upload-Length': '1' });
      isError(await post().set('Upload-Concat', `final;${plain.url}`), 400, 'NOT_A_PARTIAL_UPLOAD');
      isError(await post().set('Upload-Concat', `final;${pa.url}`).set('x-user', 'mallory'), 404, 'UPLOAD_NOT_FOUND');
    });

    it('X4/concatenation-unfinished: a final before its partials finish has no offset, then is concatenated by the PATCH that finishes the last one', async () => {
      const a = randomBytes(50_000);
      const b = randomBytes(60_000);
      const pa = await partial(a);
      const pb = await partial(b);
      await patch(pa.path, 0, a.subarray(0, 10_000)).expect(204);
      const { res, path: fp } = await create({ 'Upload-Concat': `final;${pa.url} ${pb.url}` });
      assert.equal(res.headers['sonofs-file-id'], undefined);
      let fh = await head(fp).expect(200);
      assert.equal(fh.headers['upload-offset'], undefined, 'no offset until concatenated');
      assert.equal(fh.headers['upload-length'], String(a.length + b.length));
      assert.equal(fh.headers['upload-concat'], `final;${pa.url} ${pb.url}`);
      await patch(pa.path, 10_000, a.subarray(10_000)).expect(204);
      await patch(pb.path, 0, b.subarray(0, 30_000)).expect(204);
      assert.equal((await head(fp)).headers['upload-offset'], undefined);
      await patch(pb.path, 30_000, b.subarray(30_000)).expect(204);
      fh = await head(fp).expect(200);
      const whole = Buffer.concat([ a, b ]);
      assert.equal(fh.headers['upload-offset'], String(whole.length));
      assert.equal(fh.headers['sonofs-file-hash'], sha1(whole));
      assert.equal(sha1((await download(fp).expect(200)).body), sha1(whole));
    });

    it('X4: a final over a deferred-length partial has no Upload-Length until that length is known, and is concatenated on HEAD', async () => {
      const a = randomBytes(3000);
      const { url: ua, path: pa } = await create({ 'Upload-Defer-Length': '1', 'Upload-Concat': 'partial' });
      const { path: fp } = await create({ 'Upload-Concat': `final;${ua}` });
      const fh = await head(fp).expect(200);
      assert.equal(fh.headers['upload-length'], undefined);
      assert.equal(fh.headers['upload-offset'], undefined);
      // finish the partial behind the protocol's back (no PATCH hook runs), then HEAD the final
      await app.sonofsUploads.write(pathOf(pa).split('/').pop()!, { user: 'alice', at: 0, ordered: true, source: require('node:stream').Readable.from([ a ]) });
      await app.sonofsUploads.declareLength(pathOf(pa).split('/').pop()!, 'alice', a.length);
      const done = await head(fp).expect(200);
      assert.equal(done.headers['upload-offset'], String(a.length));
      assert.equal(done.headers['sonofs-file-hash'], sha1(a));
    });

    it('concatenation-unfinished: at most 16 finals wait for one partial; another is 409 naming the limit, and a final that stops waiting frees its place', async () => {
      const a = randomBytes(10);
      const pa = await partial(a);
      const partialId = pa.path.split('/').pop()!;
      await patch(pa.path, 0, a.subarray(0, 5)).expect(204);
      const finals: string[] = [];
      for (let i = 0; i < 16; i++) finals.push((await create({ 'Upload-Concat': `final;${pa.url}` })).path);
      const refused = await app.httpRequest().post('/files').set(TUS).set(user()).set('Upload-Concat', `final;${pa.url}`);
      isError(refused, 409, 'TOO_MANY_WAITING_FINALS');
      assert.match(refused.body.msg, /16 final uploads waiting/);
      assert.equal(refused.headers.location, undefined);
      assert.equal((await app.sonofsUploads.db.get(partialId))!.extra.finals.length, 16, 'the refused final is not noted');

      // a terminated final no longer waits: its place goes to the next one
      await app.httpRequest().delete(finals[0]).set(TUS).set(user()).expect(204);
      finals[0] = (await create({ 'Upload-Concat': `final;${pa.url}` })).path;
      assert.equal((await app.sonofsUploads.db.get(partialId))!.extra.finals.length, 16);

      // the PATCH that finishes the partial concatenates the 16
      await patch(pa.path, 5, a.subarray(5)).expect(204);
      for (const fp of finals) {
        const fh = await head(fp).expect(200);
        assert.equal(fh.headers['upload-offset'], String(a.length));
        assert.equal(fh.headers['sonofs-file-hash'], sha1(a));
      }
      // a finished partial has nothing to wait for: any number of finals may use it now
      await create({ 'Upload-Concat': `final;${pa.url}` });
    });

    it('a final names at most 1000 partial uploads (one named again counts again); more is 400 naming the limit, before any lookup', async () => {
      // 1000 URLs need more than Node's default 16 KiB of headers
      const big = http.createServer({ maxHeaderSize: 256 * 1024 }, app.callback()).listen(0, '127.0.0.1');
      await new Promise(r => big.once('listening', r));
      try {
        const url = `http://127.0.0.1:${(big.address() as net.AddressInfo).port}/files`;
        const byte = randomBytes(1);
        const pa = await partial(byte);
        await patch(pa.path, 0, byte).expect(204);
        const post = (concat: string) => request(url, { method: 'POST', headers: { ...TUS, ...user(), 'Upload-Concat': concat } });
        const ok = await post(`final;${Array(1000).fill(pa.path).join(' ')}`);
        assert.equal(ok.status, 201, ok.body.toString());
        assert.equal(ok.headers['sonofs-file-hash'], sha1(Buffer.alloc(1000, byte[0])));
        const tooMany = await post(`final;${Array(1001).fill('/files/AAAAAAAAAAAAAAAAAAAAAA').join(' ')}`);
        assert.equal(tooMany.status, 400);
        assert.equal(tooMany.json().code, 'TOO_MANY_PARTS');
        assert.match(tooMany.json().msg, /at most 1000 partial uploads, not 1001/);
      } finally {
        big.close();
      }
    });

    it('a final whose partial was terminated answers 410', async () => {
      const pa = await partial(randomBytes(10));
      const { path: fp } = await create({ 'Upload-Concat': `final;${pa.url}` });
      await app.httpRequest().delete(pa.path).set(TUS).set(user()).expect(204);
      isError(await head(fp), 410);
      await app.httpRequest().delete(fp).set(TUS).set(user()).expect(204);
    });
  });

  describe('users, files and browsers', () => {
    it('binds an upload to its user: anyone else gets 404 for HEAD, PATCH, GET and DELETE', async () => {
      const data = Buffer.from('mine');
      const { path: p } = await create({ 'Upload-Length': String(data.length) });
      const other = user('mallory');
      isError(await head(p, other), 404);
      isError(await patch(p, 0, data, other), 404);
      isError(await app.httpRequest().delete(p).set(TUS).set(other), 404);
      await patch(p, 0, data).expect(204);
      isError(await download(p, other), 404);
      await download(p).expect(200);
    });

    it('a finished upload is an ordinary file: /file/meta, /file/query, /file/download and ctx.sonofs.getFile', async () => {
      const data = randomBytes(123_456);
      const u = { 'x-user': 'filer' };
      const { path: p } = await create({ 'Upload-Length': String(data.length), 'Upload-Metadata': formatMetadata({ filename: 'doc.pdf', filetype: 'application/pdf' }), ...u });
      const done = await patch(p, 0, data, u).expect(204);
      const id = done.headers['sonofs-file-id'];
      const hash = done.headers['sonofs-file-hash'];
      assert.equal(hash, sha1(data));
      const meta = await app.httpRequest().get(`/file/meta?filehash=${hash}`).set(u).expect(200);
      assert.deepEqual([ meta.body.FileName, meta.body.FileSize, meta.body.FileId, meta.body.Mime ], [ 'doc.pdf', data.length, id, 'application/pdf' ]);
      const list = await app.httpRequest().get('/file/query').set(u).expect(200);
      assert.equal(list.body[0].FileSha1, hash);
      const dl = await app.httpRequest().get(`/file/download?filehash=${hash}`).set(u).buffer(true).parse(binaryParser).expect(200);
      assert.equal(sha1(dl.body), hash);
      const ctx = app.mockContext();
      const file = await ctx.sonofs.getFile(id);
      assert.equal(sha1(file.buffer), hash);
      assert.equal(file.mime, 'application/pdf');
    });

    it('GET of an unfinished upload is 409; GET needs no Tus-Resumable (a plain browser download)', async () => {
      const { path: p } = await create({ 'Upload-Length': '10' });
      isError(await download(p), 409, 'UPLOAD_INCOMPLETE');
      await patch(p, 0, Buffer.alloc(10, 1)).expect(204);
      const res = await download(p).expect(200).expect('Content-Type', 'application/octet-stream');
      assert.match(res.headers['content-disposition'], /^attachment/);
      isError(await download(p, { 'Tus-Resumable': '0.1' }), 412);
    });

    it('CORS: a preflight allows every tus method and header; answers expose the tus headers; origins are configurable', async () => {
      const pre = await app.httpRequest().options('/files/AAAAAAAAAAAAAAAAAAAAAA')
        .set('Origin', 'https://app.example').set('Access-Control-Request-Method', 'PATCH')
        .set('Access-Control-Request-Headers', 'tus-resumable,upload-offset,content-type').expect(204);
      assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
      const methods = pre.headers['access-control-allow-methods'].split(/, */);
      for (const m of [ 'POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'GET' ]) assert.ok(methods.includes(m), m);
      const allowed = pre.headers['access-control-allow-headers'].toLowerCase().split(/, */);
      for (const h of [ 'tus-resumable', 'upload-length', 'upload-offset', 'upload-metadata', 'upload-defer-length', 'upload-concat', 'upload-checksum', 'content-type', 'x-http-method-override', 'authorization' ]) {
        assert.ok(allowed.includes(h), h);
      }
      assert.ok(Number(pre.headers['access-control-max-age']) > 0);
      assert.match(pre.headers.vary, /Origin/);
      const { res } = await create({ 'Upload-Length': '1', Origin: 'https://app.example' });
      assert.equal(res.headers['access-control-allow-origin'], 'https://app.example');
      const exposed = res.headers['access-control-expose-headers'].toLowerCase().split(/, */);
      for (const h of [ 'location', 'upload-offset', 'upload-length', 'upload-expires', 'upload-metadata', 'upload-concat', 'upload-defer-length', 'tus-resumable', 'tus-version', 'tus-extension', 'tus-max-size', 'sonofs-file-id', 'sonofs-file-hash' ]) {
        assert.ok(exposed.includes(h), h);
      }
      // errors carry CORS too, so the page can read them
      const err = await app.httpRequest().post('/files').set('Origin', 'https://app.example');
      assert.equal(err.headers['access-control-allow-origin'], 'https://app.example');
      mm(app.config.sonofs.tus.cors, 'origins', [ 'https://app.example' ]);
      mm(app.config.sonofs.tus.cors, 'allowHeaders', [ 'X-User' ]);
      const denied = await app.httpRequest().options('/files').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
      assert.equal(denied.headers['access-control-allow-origin'], undefined);
      const ok = await app.httpRequest().options('/files').set('Origin', 'https://APP.example').set('Access-Control-Request-Method', 'POST');
      assert.equal(ok.headers['access-control-allow-origin'], 'https://APP.example');
      assert.match(ok.headers['access-control-allow-headers'], /X-User/);
    });
  });
});
