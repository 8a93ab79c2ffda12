import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { MockApplication } from 'egg-mock';
import { binaryParser, sha1 } from './support/http';
import { OFFSET, TUS, digest, pathOf, readAnswer } from './support/tus';
import { startInProcess, TestApp } from './support/app';

/**
 * A small upload created without bytes (POST, then PATCH: tus-js-client's
 * default) reserves no space; the PATCH that brings all of it stores it in one
 * go (config.sonofs.tus.wholePatchMax, 256 KiB by default).
 */
describe('tus: a small upload sent whole by one PATCH', () => {
  let app: MockApplication;
  let port: number;
  let running: TestApp;

  before(async () => {
    running = await startInProcess('tus-whole-patch');
    app = running.app;
    port = Number(new URL(running.base).port);
  });

  after(() => running.close());

  const user = { 'x-user': 'alice' };
  const idOf = (p: string) => p.split('/').pop()!;
  const session = (p: string) => app.sonofsUploads.db.get(idOf(p));

  async function create(length: number): Promise<string> {
    const res = await app.httpRequest().post('/files').set(TUS).set(user).set('Upload-Length', String(length)).expect(201);
    return pathOf(res.headers.location);
  }

  const patch = (p: string, offset: number, body: Buffer) => app.httpRequest().patch(p).set(TUS).set(user)
    .set('Upload-Offset', String(offset)).set('Content-Type', OFFSET).send(body);
  const offsetOf = async (p: string) => Number((await app.httpRequest().head(p).set(TUS).set(user).expect(200)).headers['upload-offset']);
  const download = (p: string) => app.httpRequest().get(p).set(user).buffer(true).parse(binaryParser).expect(200);

  /** A PATCH of `total` bytes whose first `sent` bytes are written on a raw socket, the rest never. */
  async function stalledPatch(p: string, data: Buffer, sent: number): Promise<net.Socket> {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    await new Promise(r => sock.once('connect', r));
    sock.write(`PATCH ${p} HTTP/1.1\r\nHost: x\r\nx-user: alice\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n` +
      `Content-Type: ${OFFSET}\r\nContent-Length: ${data.length}\r\n\r\n`);
    sock.write(data.subarray(0, sent));
    await new Promise(r => setTimeout(r, 200));
    return sock;
  }

  it('reserves no space at creation; the PATCH with all of it stores an ordinary file and finishes the upload', async () => {
    const data = randomBytes(16 * 1024);
    const p = await create(data.length);
    const before = await session(p);
    assert.equal(before!.space, undefined, 'no space reserved before the bytes come');
    assert.equal(before!.staging, undefined);
    const res = await patch(p, 0, data).expect(204);
    assert.equal(res.headers['upload-offset'], String(data.length));
    assert.equal(res.headers['sonofs-file-hash'], sha1(data));
    const after = await session(p);
    assert.equal(after!.state, 'done');
    assert.equal(after!.space, undefined, 'stored as one upload, not through a reserved space');
    assert.equal(await offsetOf(p), data.length);
    assert.equal(sha1((await download(p)).body), sha1(data));
    // the same file through the plugin's own API
    const file = await app.httpRequest().get('/file/download').query({ fileid: res.headers['sonofs-file-id'] }).set(user)
      .buffer(true).parse(binaryParser).expect(200);
    assert.equal(sha1(file.body), sha1(data));
    // sent again (the answer was lost): the upload is whole already
    const again = await patch(p, 0, data);
    assert.equal(again.status, 409, JSON.stringify(again.body));
  });

  it('a first PATCH with part of it reserves the space then and keeps what came; the rest finishes it', async () => {
    const data = randomBytes(100_000);
    const p = await create(data.length);
    await patch(p, 0, data.subarray(0, 40_000)).expect(204).expect('Upload-Offset', '40000');
    const mid = await session(p);
    assert.ok(mid!.space, 'the space is reserved by the first write that is not the whole file');
    assert.equal(mid!.offset, 40_000);
    await patch(p, 40_000, data.subarray(40_000)).expect(204).expect('Upload-Offset', String(data.length));
    assert.equal(sha1((await download(p)).body), sha1(data));
  });

  it('a whole body cut short keeps nothing: the offset stays 0 and the client sends the file again', async () => {
    const data = randomBytes(100_000);
    const p = await create(data.length);
    const sock = await stalledPatch(p, data, 50_000);
    sock.destroy();
    // the server sees the connection close and gives up the request
    await new Promise(r => setTimeout(r, 500));
    assert.equal(await offsetOf(p), 0);
    const s = await session(p);
    assert.equal(s!.space, undefined, 'a cut whole body reserves nothing');
    assert.equal(s!.state, 'active');
    await patch(p, 0, data).expect(204).expect('Upload-Offset', String(data.length));
    assert.equal(sha1((await download(p)).body), sha1(data));
  });

  it('a second PATCH takes over a stalled whole one: the first is answered with offset 0, the file is stored once', async () => {
    const data = randomBytes(120_000);
    const p = await create(data.length);
    const sock = await stalledPatch(p, data, 60_000);
    const firstAnswer = readAnswer(sock);
    const second = await patch(p, 0, data);
    assert.equal(second.status, 204, JSON.stringify(second.body));
    const first = await firstAnswer;
    assert.equal(first.status, 204, first.head);
    assert.equal(first.headers['upload-offset'], '0', 'the stalled request stored nothing');
    assert.equal(first.headers.connection, 'close');
    sock.destroy();
    assert.equal(await offsetOf(p), data.length);
    assert.equal(sha1((await download(p)).body), sha1(data));
  });

  it('a PATCH with Upload-Checksum goes through the reserved space and is verified', async () => {
    const data = randomBytes(30_000);
    const p = await create(data.length);
    const bad = await patch(p, 0, data).set('Upload-Checksum', `sha1 ${digest('sha1', randomBytes(8))}`);
    assert.equal(bad.status, 460, JSON.stringify(bad.body));
    assert.equal(await offsetOf(p), 0);
    await patch(p, 0, data).set('Upload-Checksum', `sha1 ${digest('sha1', data)}`).expect(204).expect('Upload-Offset', String(data.length));
    assert.equal(sha1((await download(p)).body), sha1(data));
  });

  it('DELETE of an upload that has no space yet: 204, then 410', async () => {
    const p = await create(5000);
    await app.httpRequest().delete(p).set(TUS).set(user).expect(204);
    const gone = await app.httpRequest().head(p).set(TUS).set(user);
    assert.equal(gone.status, 410);
  });

  it('above wholePatchMax the space is reserved at creation, as before', async () => {
    const big = await create(app.config.sonofs.tus.wholePatchMax + 1);
    assert.ok((await session(big))!.space, 'reserved at creation');
    const small = await create(app.config.sonofs.tus.wholePatchMax);
    assert.equal((await session(small))!.space, undefined);
  });
});
