import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MockApplication } from 'egg-mock';
import { binaryParser, sha1 } from './support/http';
import { startInProcess, TestApp } from './support/app';

const MiB = 1024 * 1024;
const CHUNK = 5 * MiB;

describe('course chunked upload and 秒传 (/file/mpupload/*, /file/fastupload)', () => {
  let app: MockApplication;
  let running: TestApp;

  before(async () => {
    running = await startInProcess('chunked');
    ({ app } = running);
  });

  after(() => running.close());

  /** A form POST as the course's clients send it (urlencoded body). */
  function form(route: string, fields: Record<string, string | number>, user = 'alice') {
    const body: Record<string, string> = {};
    for (const [ k, v ] of Object.entries(fields)) body[k] = String(v);
    return app.httpRequest().post(`/file/${route}`).set('x-user', user).type('form').send(body);
  }

  /** One raw chunk, under the lying multipart Content-Type of the course's Go client. */
  function part(uploadid: string, index: number | string, bytes: Buffer, opts: { chkhash?: string; user?: string; type?: string } = {}) {
    const q = new URLSearchParams({ uploadid, index: String(index) });
    if (opts.chkhash) q.set('chkhash', opts.chkhash);
    return app.httpRequest().post(`/file/mpupload/uppart?${q}`).set('x-user', opts.user ?? 'alice')
      .set('Content-Type', opts.type ?? 'multipart/form-data').serialize((b: any) => b as string).send(bytes);
  }

  const chunkOf = (data: Buffer, index: number) => data.subarray((index - 1) * CHUNK, index * CHUNK);

  async function init(data: Buffer, user = 'alice') {
    const res = await form('mpupload/init', { filehash: sha1(data), filesize: data.length }, user).expect(200);
    assert.equal(res.body.code, 0, res.body.msg);
    return res.body.data;
  }

  it('takes chunks in any order, reports missing ones, resumes, verifies chunk and file hashes, then serves the file', async () => {
    const data = randomBytes(12 * MiB + 12345);
    const hash = sha1(data);
    const first = await init(data);
    assert.deepEqual(first, {
      FileHash: hash, FileSize: data.length, UploadID: first.UploadID, ChunkSize: 5242880, ChunkCount: 3, ChunkExists: [],
    });
    const id = first.UploadID;

    // chunk 3 (the short one) before chunk 1, each with its sha1
    for (const i of [ 3, 1 ]) {
      const res = await part(id, i, chunkOf(data, i), { chkhash: sha1(chunkOf(data, i)) }).expect(200);
      assert.deepEqual(res.body, { code: 0, msg: 'OK', data: null });
    }

    // complete with a chunk missing: 409, the course's -2, and which chunk
    const early = await form('mpupload/complete', { uploadid: id, filehash: hash, filesize: data.length, filename: 'big.bin' }).expect(409);
    assert.equal(early.body.code, -2);
    assert.equal(early.body.error, 'UPLOAD_INCOMPLETE');
    assert.deepEqual(early.body.data, { ChunkMissing: [ 2 ] });

    // the client restarts: init again gives the same upload and what it already has
    const again = await init(data);
    assert.equal(again.UploadID, id);
    assert.deepEqual(again.ChunkExists, [ 1, 3 ]);

    const status = await form('mpupload/status', { uploadid: id }).expect(200);
    assert.deepEqual(status.body.data, { ...again, State: 'active' });

    // a chunk whose bytes do not match chkhash is refused and not counted
    const bad = Buffer.from(chunkOf(data, 2));
    bad[100] ^= 0xff;
    const refused = await part(id, 2, bad, { chkhash: sha1(chunkOf(data, 2)) }).expect(400);
    assert.equal(refused.body.code, -2);
    assert.equal(refused.body.msg, 'Verify hash failed, chkIdx:2');
    assert.deepEqual((await init(data)).ChunkExists, [ 1, 3 ]);

    // chunk 2 without chkhash, under a form Content-Type the body parser must not touch
    await part(id, 2, chunkOf(data, 2), { type: 'application/x-www-form-urlencoded' }).expect(200);

    // a wrong filehash at complete: the whole file's sha1 is checked (-3)
    const wrong = await form('mpupload/complete', { uploadid: id, filehash: sha1(Buffer.from('other')), filesize: data.length, filename: 'big.bin' }).expect(400);
    assert.equal(wrong.body.code, -3);
    assert.equal(wrong.body.error, 'FILE_HASH_MISMATCH');

    const done = await form('mpupload/complete', { uploadid: id, filehash: hash, filesize: data.length, filename: 'big.bin' }).expect(200);
    assert.equal(done.body.code, 0);
    assert.equal(done.body.data.FileSha1, hash);
    assert.equal(done.body.data.FileName, 'big.bin');
    assert.equal(done.body.data.FileSize, data.length);

    // an ordinary file now: meta, query, download
    const meta = await app.httpRequest().get(`/file/meta?filehash=${hash}`).set('x-user', 'alice').expect(200);
    assert.equal(meta.body.FileName, 'big.bin');
    const list = await app.httpRequest().get('/file/query?limit=100').set('x-user', 'alice').expect(200);
    assert.ok(list.body.some((f: any) => f.FileSha1 === hash));
    const dl = await app.httpRequest().get(`/file/download?filehash=${hash}`).set('x-user', 'alice')
      .buffer(true).parse(binaryParser).expect(200);
    assert.equal(dl.body.length, data.length);
    assert.equal(sha1(dl.body), hash);

    const after = await form('mpupload/status', { uploadid: id }).expect(200);
    assert.equal(after.body.data.State, 'done');
    assert.deepEqual(after.body.data.ChunkExists, [ 1, 2, 3 ]);
    assert.equal(after.body.data.FileId, done.body.data.FileId);

    // the user has the file now: init answers the later course's "file exists"
    const exists = await form('mpupload/init', { filehash: hash, filesize: data.length }).expect(409);
    assert.deepEqual([ exists.body.code, exists.body.msg ], [ 10006, 'file exists' ]);
  });

  it("treats another user's upload id as unknown and range-checks every chunk", async () => {
    const data = randomBytes(CHUNK + 1000);
    const { UploadID: id } = await init(data, 'owner');
    for (const route of [ 'mpupload/status', 'mpupload/cancel' ]) {
      const res = await form(route, { uploadid: id }, 'mallory').expect(404);
      assert.deepEqual([ res.body.code, res.body.error ], [ -1, 'UPLOAD_NOT_FOUND' ]);
    }
    const other = await part(id, 1, chunkOf(data, 1), { user: 'mallory' }).expect(404);
    assert.equal(other.body.code, -1);
    const steal = await form('mpupload/complete', { uploadid: id, filehash: sha1(data), filesize: data.length, filename: 'x' }, 'mallory').expect(404);
    assert.equal(steal.body.code, -1);

    // an unknown id is never "0 of 0 chunks: complete"
    const unknown = await form('mpupload/complete', { uploadid: 'nope', filehash: sha1(data), filesize: data.length, filename: 'x' }).expect(404);
    assert.equal(unknown.body.code, -1);

    for (const index of [ 0, 3, -1, '1.5', '../1', '' ]) {
      const res = await part(id, index, Buffer.alloc(10), { user: 'owner' }).expect(400);
      assert.equal(res.body.code, -1, `index ${index}`);
    }
    // the body must be exactly the chunk: 5 MiB for chunk 1, the rest for the last one
    const short = await part(id, 1, Buffer.alloc(100), { user: 'owner' }).expect(400);
    assert.equal(short.body.code, -1);
    const long = await part(id, 2, Buffer.alloc(1001), { user: 'owner' }).expect(400);
    assert.equal(long.body.code, -1);
    await part(id, 2, chunkOf(data, 2), { user: 'owner' }).expect(200);
    const s = await form('mpupload/status', { uploadid: id }, 'owner').expect(200);
    assert.deepEqual(s.body.data.ChunkExists, [ 2 ]);

    const noHash = await form('mpupload/init', { filesize: 10 }).expect(400);
    assert.equal(noHash.body.code, -1);
    const badSize = await form('mpupload/init', { filehash: sha1(data), filesize: 'ten' }).expect(400);
    assert.equal(badSize.body.code, -1);
    const tooBig = await form('mpupload/init', { filehash: sha1(data), filesize: 1024 * MiB }).expect(413);
    assert.equal(tooBig.body.code, -1);
  });

  it('cancels: the bytes go, the id answers 410, and init starts a new upload', async () => {
    const data = randomBytes(CHUNK + 10);
    const { UploadID: id } = await init(data);
    await part(id, 1, chunkOf(data, 1)).expect(200);
    await form('mpupload/cancel', { uploadid: id }).expect(200, { code: 0, msg: 'OK', data: null });
    const gone = await form('mpupload/status', { uploadid: id }).expect(410);
    assert.deepEqual([ gone.body.code, gone.body.error ], [ -1, 'UPLOAD_CANCELLED' ]);
    await part(id, 2, chunkOf(data, 2)).expect(410);
    const fresh = await init(data);
    assert.notEqual(fresh.UploadID, id);
    assert.deepEqual(fresh.ChunkExists, []);
  });

  it('stores a zero-byte file with no chunks at all', async () => {
    const empty = Buffer.alloc(0);
    const d = await init(empty, 'zero');
    assert.deepEqual([ d.ChunkCount, d.ChunkExists ], [ 0, [] ]);
    await part(d.UploadID, 1, empty, { user: 'zero' }).expect(400);
    const done = await form('mpupload/complete', { uploadid: d.UploadID, filehash: sha1(empty), filesize: 0, filename: 'empty' }, 'zero').expect(200);
    assert.equal(done.body.data.FileSize, 0);
  });

  describe('秒传 (/file/fastupload)', () => {
    it('links content the store has when the size matches, under the caller\'s own name', async () => {
      const data = randomBytes(40_000);
      await app.httpRequest().post('/file/upload').set('Accept', 'application/json').set('x-user', 'uploader')
        .attach('file', data, 'original.bin').expect(200);
      const res = await form('fastupload', { filehash: sha1(data), filename: 'mine.bin', filesize: data.length }, 'fast').expect(200);
      assert.equal(res.body.code, 0);
      assert.equal(res.body.msg, '秒传成功');
      assert.equal(res.body.data.FileName, 'mine.bin');
      const meta = await app.httpRequest().get(`/file/meta?filehash=${sha1(data)}`).set('x-user', 'fast').expect(200);
      assert.equal(meta.body.FileName, 'mine.bin');
      const dl = await app.httpRequest().get(`/file/download?filehash=${sha1(data)}`).set('x-user', 'fast')
        .buffer(true).parse(binaryParser).expect(200);
      assert.ok(dl.body.equals(data));
      // the uploader's name is untouched
      const orig = await app.httpRequest().get(`/file/meta?filehash=${sha1(data)}`).set('x-user', 'uploader').expect(200);
      assert.equal(orig.body.FileName, 'original.bin');
    });

    it('misses (code -1, fall back to a normal upload) for unknown content or a size that does not match', async () => {
      const data = randomBytes(1000);
      await app.httpRequest().post('/file/upload').set('Accept', 'application/json').attach('file', data, 'k.bin').expect(200);
      const miss = { code: -1, msg: '秒传失败，请访问普通上传接口', data: null };
      await form('fastupload', { filehash: sha1(randomBytes(10)), filename: 'x', filesize: 10 }, 'fast2').expect(200, miss);
      await form('fastupload', { filehash: sha1(data), filename: 'x', filesize: data.length + 1 }, 'fast2').expect(200, miss);
      await app.httpRequest().get(`/file/meta?filehash=${sha1(data)}`).set('x-user', 'fast2').expect(404);
      const bad = await form('fastupload', { filehash: 'abc', filename: 'x', filesize: 1 }).expect(400);
      assert.equal(bad.body.code, -1);
    });
  });
});
