import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { multipart, sha1 } from './support/http';
import { startInProcess, TestApp } from './support/app';

describe('graceful shutdown (mm.app)', () => {
  let running: TestApp;

  before(async () => {
    running = await startInProcess('drain');
  });

  it('lets an upload in flight finish before the worker closes its stores', async () => {
    const data = randomBytes(300_000);
    const { body, contentType } = multipart([ { name: 'file', filename: 'late.bin', data } ]);
    const answer = new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = http.request(`${running.base}/file/upload`, {
        method: 'POST', agent: false,
        headers: { Accept: 'application/json', 'Content-Type': contentType, 'Content-Length': body.length },
      }, res => {
        const chunks: Buffer[] = [];
        res.on('data', c => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()) }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 1000));
      // the rest arrives while the app is already closing
      setTimeout(() => req.end(body.subarray(1000)), 500);
    });
    await new Promise(r => setTimeout(r, 200));
    const closing = running.close();
    const res = await answer;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.data.FileSha1, sha1(data));
    await closing;
  });
});
