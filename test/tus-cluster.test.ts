import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { MockApplication } from 'egg-mock';
import { request, sha1 } from './support/http';
import { OFFSET, TUS, pathOf, sha256 } from './support/tus';
import { startCluster } from './support/app';

interface Outcome {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** the connection was cut (the server made this request let go of the upload) */
  reset: boolean;
}

/**
 * A PATCH whose body trickles in over ~0.5 s on a fresh connection (so the
 * master hands it to either worker and PATCHes overlap). Resolves with the
 * answer, or with `reset` when the server cut the connection.
 */
function slowPatch(url: string, offset: number, body: Buffer, headers: Record<string, string>): Promise<Outcome> {
  return new Promise(resolve => {
    let settled = false;
    const done = (o: Outcome) => {
      if (!settled) resolve(o);
      settled = true;
    };
    const req = http.request(url, {
      method: 'PATCH', agent: false,
      headers: { ...TUS, ...headers, Connection: 'close', 'Upload-Offset': String(offset), 'Content-Type': OFFSET, 'Content-Length': body.length },
    }, res => {
      res.resume();
      res.on('end', () => done({ status: res.statusCode!, headers: res.headers, reset: false }));
      res.on('error', () => done({ status: 0, headers: {}, reset: true }));
    });
    req.on('error', () => done({ status: 0, headers: {}, reset: true }));
    const pieces = 16;
    const size = Math.ceil(body.length / pieces);
    let i = 0;
    const next = () => {
      if (settled || req.destroyed) return;
      if (i === pieces) {
        req.end();
        return;
      }
      req.write(body.subarray(i * size, (i + 1) * size));
      i++;
      setTimeout(next, 30);
    };
    setTimeout(next, Math.random() * 40);
  });
}

describe('tus across processes (mm.cluster: agent + 2 workers)', () => {
  let app: MockApplication | undefined;
  let root: string;
  let base: string;
  const user = { 'x-user': 'cluster' };

  async function start() {
    ({ app, base } = await startCluster('tus-cluster', { root }));
  }

  async function stop() {
    await app?.close();
    app = undefined;
  }

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-tus-cluster-'));
    process.env.SONOFS_TEST_ROOT = root;
    await start();
  });

  after(async () => {
    await stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function create(headers: Record<string, string>): Promise<string> {
    const res = await request(`${base}/files`, { method: 'POST', headers: { ...TUS, ...user, ...headers } });
    assert.equal(res.status, 201, res.body.toString());
    return pathOf(res.headers.location as string);
  }

  async function head(p: string) {
    return request(`${base}${p}`, { method: 'HEAD', headers: { ...TUS, ...user } });
  }

  async function patch(p: string, offset: number, body: Buffer, headers: Record<string, string> = {}) {
    return request(`${base}${p}`, {
      method: 'PATCH', body, headers: { ...TUS, ...user, ...headers, 'Upload-Offset': offset, 'Content-Type': OFFSET, 'Content-Length': body.length },
    });
  }

  it('PATCHes of one upload racing on both workers: at most one wins per offset, and the bytes stay intact', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 11);
    const p = await create({ 'Upload-Length': String(data.length), 'Upload-Metadata': `filename ${Buffer.from('raced.bin').toString('base64')}` });
    const pids = new Set<string>();
    const statuses: number[] = [];
    let offset = 0;
    for (let round = 0; round < 30 && offset < data.length; round++) {
      // every request of a round claims the same offset, as clients resuming at once would
      const outcomes = await Promise.all(Array.from({ length: 4 }, () => slowPatch(`${base}${p}`, offset, data.subarray(offset), user)));
      for (const o of outcomes) {
        statuses.push(o.status);
        if (o.headers['x-served-by']) pids.add(String(o.headers['x-served-by']));
        assert.ok(o.reset || [ 204, 409, 423 ].includes(o.status), `unexpected ${o.status}`);
      }
      const wins = outcomes.filter(o => o.status === 204);
      assert.ok(wins.length <= 1, `${wins.length} PATCHes at offset ${offset} all succeeded`);
      const now = Number((await head(p)).headers['upload-offset']);
      assert.ok(now >= offset, `offset went back from ${offset} to ${now}`);
      if (wins.length) assert.equal(Number(wins[0].headers['upload-offset']), now);
      offset = now;
    }
    if (offset < data.length) (await patch(p, offset, data.subarray(offset))).status === 204 || assert.fail('could not finish');
    assert.equal(pids.size, 2, `PATCHes answered by ${[ ...pids ]} (statuses ${statuses})`);
    const h = await head(p);
    assert.equal(h.headers['upload-offset'], String(data.length));
    assert.equal(h.headers['sonofs-file-hash'], sha1(data));
    const got = await request(`${base}${p}`, { headers: user });
    assert.equal(sha256(got.body), sha256(data));
    const meta = await request(`${base}/file/meta?filehash=${sha1(data)}`, { headers: user });
    assert.equal(meta.json().FileName, 'raced.bin');
  });

  it('resumes uploads after the whole app restarts: known length, deferred length, and a final waiting for its partial', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 5);
    const known = await create({ 'Upload-Length': String(data.length) });
    assert.equal((await patch(known, 0, data.subarray(0, 700_000))).status, 204);
    const deferred = await create({ 'Upload-Defer-Length': '1' });
    assert.equal((await patch(deferred, 0, data.subarray(0, 300_000))).status, 204);
    const part = await create({ 'Upload-Length': String(data.length), 'Upload-Concat': 'partial' });
    assert.equal((await patch(part, 0, data.subarray(0, 100_000))).status, 204);
    const final = await create({ 'Upload-Concat': `final;${part}` });

    await stop();
    await start(); // same root, new processes, new port

    let h = await head(known);
    assert.equal(h.status, 200);
    assert.equal(h.headers['upload-offset'], '700000');
    const done = await patch(known, 700_000, data.subarray(700_000));
    assert.equal(done.status, 204);
    assert.equal(done.headers['sonofs-file-hash'], sha1(data));
    assert.equal(sha256((await request(`${base}${known}`, { headers: user })).body), sha256(data));

    h = await head(deferred);
    assert.equal(h.headers['upload-offset'], '300000');
    assert.equal(h.headers['upload-defer-length'], '1');
    assert.equal((await patch(deferred, 300_000, data.subarray(300_000), { 'Upload-Length': String(data.length) })).status, 204);
    assert.equal(sha256((await request(`${base}${deferred}`, { headers: user })).body), sha256(data));

    h = await head(final);
    assert.equal(h.headers['upload-offset'], undefined);
    assert.equal((await patch(part, 100_000, data.subarray(100_000))).status, 204);
    h = await head(final);
    assert.equal(h.headers['upload-offset'], String(data.length));
    assert.equal(sha256((await request(`${base}${final}`, { headers: user })).body), sha256(data));
  });
});
