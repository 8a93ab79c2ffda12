import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Upload, UploadOptions } from 'tus-js-client';
import { request } from './support/http';
import { TUS, sha256 } from './support/tus';
import { startInProcess, TestApp } from './support/app';

/**
 * The official tus client (tus-js-client, nobody on this team wrote it)
 * against the plugin on a real port: chunked, resumed after an abort,
 * parallel (concatenation), deferred length, creation-with-upload and
 * X-HTTP-Method-Override. tus-js-client sends no checksums (it has no
 * checksum support), so the checksum extension is covered by raw HTTP in
 * tus.test.ts.
 */
describe('tus-js-client against the plugin (mm.app on a real port)', () => {
  let base: string;
  const headers = { 'x-user': 'tusjs' };

  let running: TestApp;

  before(async () => {
    running = await startInProcess('tusjs');
    ({ base } = running);
  });

  after(() => running.close());

  interface Sent {
    method: string;
    url: string;
    offset?: string;
    concat?: string;
  }

  /** Runs one upload to the end; resolves with the client and every request it sent. */
  function upload(source: Buffer | Readable, opts: UploadOptions = {}, onStart?: (u: Upload) => void) {
    const sent: Sent[] = [];
    return new Promise<{ upload: Upload; sent: Sent[] }>((resolve, reject) => {
      const u: Upload = new Upload(source as any, {
        endpoint: `${base}/files/`,
        headers,
        retryDelays: null,
        onBeforeRequest: req => {
          sent.push({ method: req.getMethod(), url: req.getURL(), offset: req.getHeader('Upload-Offset'), concat: req.getHeader('Upload-Concat') });
        },
        onSuccess: () => resolve({ upload: u, sent }),
        onError: reject,
        ...opts,
      });
      onStart?.(u);
      u.start();
    });
  }

  /** The finished upload's bytes, as a browser would fetch its URL. */
  async function fetchUpload(url: string): Promise<Buffer> {
    const res = await request(url, { headers });
    assert.equal(res.status, 200, res.body.toString());
    return res.body;
  }

  it('uploads in chunks; the result is the same bytes and an ordinary file with the metadata\'s name', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { upload: u, sent } = await upload(data, { chunkSize: 256 * 1024, metadata: { filename: 'chunks.bin', filetype: 'application/x-test' } });
    assert.equal(sent.filter(s => s.method === 'PATCH').length, 13);
    assert.equal(sha256(await fetchUpload(u.url!)), sha256(data));
    const head = await request(u.url!, { method: 'HEAD', headers: { ...TUS, ...headers } });
    const meta = await request(`${base}/file/meta?filehash=${head.headers['sonofs-file-hash']}`, { headers });
    assert.equal(meta.json().FileName, 'chunks.bin');
    assert.equal(meta.json().Mime, 'application/x-test');
  });

  it('aborts half way, then resumes from the server\'s offset to a sha256-identical file', async () => {
    const data = randomBytes(6 * 1024 * 1024);
    let first: Upload | undefined;
    let firstUrl = '';
    await new Promise<void>((resolve, reject) => {
      first = new Upload(data as any, {
        endpoint: `${base}/files/`, headers, retryDelays: null, chunkSize: 512 * 1024,
        onProgress: sent => {
          if (sent >= data.length / 2 && first) {
            const u = first;
            first = undefined;
            u.abort().then(() => resolve(), reject);
            firstUrl = u.url!;
          }
        },
        onSuccess: () => reject(new Error('should have been aborted')),
        onError: reject,
      });
      first.start();
    });
    // the server kept what arrived
    const head = await request(firstUrl, { method: 'HEAD', headers: { ...TUS, ...headers } });
    const offset = Number(head.headers['upload-offset']);
    assert.ok(offset > 0 && offset < data.length, `offset ${offset}`);
    const { upload: resumed, sent } = await upload(data, { uploadUrl: firstUrl, chunkSize: 512 * 1024 });
    assert.equal(resumed.url, firstUrl, 'same upload, not a new one');
    assert.equal(sent[0].method, 'HEAD');
    assert.equal(sent.find(s => s.method === 'PATCH')!.offset, String(offset), 'resumed where the server was');
    assert.equal(sent.some(s => s.method === 'POST'), false);
    assert.equal(sha256(await fetchUpload(firstUrl)), sha256(data));
  });

  it('parallelUploads: partial uploads concatenated into one final upload', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 3);
    const { upload: u, sent } = await upload(data, { parallelUploads: 3, metadata: { filename: 'parallel.bin' } });
    assert.equal(sent.filter(s => s.method === 'POST' && s.concat === 'partial').length, 3);
    const final = sent.find(s => s.concat?.startsWith('final;'));
    assert.ok(final, 'a final upload was created');
    assert.equal(final!.concat!.split(' ').length, 3);
    assert.equal(sha256(await fetchUpload(u.url!)), sha256(data));
  });

  it('uploadLengthDeferred: a stream of unknown length', async () => {
    const data = randomBytes(1024 * 1024 + 99);
    const pieces = Array.from({ length: 11 }, (_, i) => data.subarray(i * 100_000, (i + 1) * 100_000));
    const { upload: u, sent } = await upload(Readable.from(pieces), { uploadLengthDeferred: true, chunkSize: 200 * 1024 });
    assert.ok(sent.filter(s => s.method === 'PATCH').length >= 5);
    assert.equal(sha256(await fetchUpload(u.url!)), sha256(data));
  });

  it('uploadDataDuringCreation: 40 small files, 8 at a time, each in one request', async () => {
    const files = Array.from({ length: 40 }, () => randomBytes(16 * 1024));
    const done: Array<{ upload: Upload; sent: Sent[] }> = [];
    for (let i = 0; i < files.length; i += 8) {
      done.push(...await Promise.all(files.slice(i, i + 8).map(f => upload(f, { uploadDataDuringCreation: true }))));
    }
    for (let i = 0; i < files.length; i++) {
      assert.deepEqual(done[i].sent.map(s => s.method), [ 'POST' ]);
      assert.equal(sha256(await fetchUpload(done[i].upload.url!)), sha256(files[i]));
    }
  });

  it('overridePatchMethod (POST + X-HTTP-Method-Override), and termination with Upload.terminate', async () => {
    const data = randomBytes(300_000);
    const { upload: u, sent } = await upload(data, { overridePatchMethod: true, chunkSize: 100_000 });
    assert.deepEqual(sent.map(s => s.method), [ 'POST', 'POST', 'POST', 'POST' ]);
    assert.equal(sha256(await fetchUpload(u.url!)), sha256(data));
    await Upload.terminate(u.url!, { headers, retryDelays: null });
    const head = await request(u.url!, { method: 'HEAD', headers: { ...TUS, ...headers } });
    assert.equal(head.status, 410);
  });
});
