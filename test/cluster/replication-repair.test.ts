import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundlePath, decodeFileId, decodeHeader, HEADER_SIZE } from '../../lib';
import { NODE_AUTH_HEADER, signNodeRequest } from '../../lib/cluster';
import { ReplicaReader, replicaBundlePath } from '../../lib/replication';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request, sha1, uploadTo } from '../support/http';
import { testRedisUrl, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';
import { flipByte, readRange } from '../support/files';

const SECRET = 'test-repair-secret';
const MiB = 1024 * 1024;

/** Every log line a demo wrote, whatever the file. */
function logsOf(dir: string, port: number): string {
  const logs = path.join(dir, `logs-${port}`);
  return fs.readdirSync(logs).filter(f => f.endsWith('.log')).map(f => fs.readFileSync(path.join(logs, f), 'utf8')).join('\n');
}

describe('cluster mode: a record that fails its checksum is served from another copy and repaired', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;
  const running: Demo[] = [];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-repair-'));
    build = path.join(dir, 'build');
    buildDemo(build);
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Nodes 1 and 2 of group 1 under roots `<name>-a` and `<name>-b`, both up in the map. */
  async function twoNodes(name: string): Promise<{ a: Demo; b: Demo; rootA: string; rootB: string }> {
    const namespace = uniqueNamespace(name);
    const rootA = path.join(dir, `${name}-a`);
    const rootB = path.join(dir, `${name}-b`);
    const node = async (server: number, root: string) => {
      const demo = await startDemo(build, dir, {
        SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: '3000',
        SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: root,
      });
      running.push(demo);
      return demo;
    };
    const [ a, b ] = await Promise.all([ node(1, rootA), node(2, rootB) ]);
    await until('both nodes up in the map', async () => {
      const res = await request(`${a.base}/file/cluster`);
      return res.status === 200 && res.json().nodes.filter((n: any) => n.state === 'up').length === 2;
    }, 15_000, 200);
    return { a, b, rootA, rootB };
  }

  it('serves a bad record of the writer\'s own bundle from a member, and writes it again from the member\'s copy', async () => {
    const { a, b, rootA, rootB } = await twoNodes('own');
    const files: Array<{ id: string; data: Buffer; damage: 'data' | 'header' }> = [];
    for (const [ i, [ n, damage ] ] of ([ [ 4096, 'data' ], [ 3 * MiB, 'data' ], [ 10_000, 'header' ] ] as const).entries()) {
      const data = randomBytes(n);
      const res = await uploadTo(a.base, data, `own${i}.bin`);
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.json().data.Copies, 2, 'replication all: B holds it when A answers');
      files.push({ id: res.json().data.FileId, data, damage });
    }
    for (const f of files) {
      const loc = decodeFileId(f.id);
      const own = bundlePath(rootA, loc.bundle);
      const copy = replicaBundlePath(rootB, 1, 1, loc.bundle);
      const recordLen = HEADER_SIZE + loc.size;
      const good = readRange(own, loc.offset, recordLen);
      assert(good.equals(readRange(copy, loc.offset, recordLen)), 'B\'s copy starts equal');
      // a data byte, or the header's cookie (its checksum fails, its magic stays)
      flipByte(own, loc.offset + (f.damage === 'data' ? HEADER_SIZE + Math.floor(loc.size / 2) : 40));

      // A never serves its bad bytes: the download comes whole from B's copy
      const res = await request(`${a.base}/file/download?fileid=${f.id}`);
      assert.equal(res.status, 200, res.body.subarray(0, 200).toString());
      assert.equal(sha1(res.body), sha1(f.data), `${f.id} differs`);
      const range = await request(`${a.base}/file/download?fileid=${f.id}`, { headers: { range: 'bytes=100-199' } });
      assert.equal(range.status, 206);
      assert(range.body.equals(f.data.subarray(100, 200)), 'a range of it too');

      // and A's record is written again from B's copy
      await until(`A to repair its record of ${f.id}`, () => readRange(own, loc.offset, recordLen).equals(good), 30_000, 200);
    }
    // the member's route gives a copied record to a signed caller only, and takes numbers, never a path
    const instanceB = fs.readFileSync(path.join(rootB, 'cluster-instance'), 'utf8').trim();
    const at = decodeFileId(files[0].id);
    const get = (p: string, secret = SECRET) => request(`${b.base}${p}`, { headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, 'GET', p) } });
    const recordPath = (peer: string, offset: number | string) => `/_sonofs/node/replicas/${peer}/${at.bundle}?instance=${instanceB}&offset=${offset}`;
    const fetched = await get(recordPath('1-1', at.offset));
    assert.equal(fetched.status, 200);
    assert(fetched.body.equals(readRange(replicaBundlePath(rootB, 1, 1, at.bundle), at.offset, fetched.body.length)), 'the bytes of B\'s copy');
    assert.equal(fetched.body.length, HEADER_SIZE + at.size + decodeHeader(fetched.body)!.metaLen);
    assert.equal((await request(`${b.base}${recordPath('1-1', at.offset)}`)).status, 401);
    assert.equal((await get(recordPath('1-1', at.offset), 'wrong-secret')).status, 401);
    assert.equal((await get(recordPath('1-1', at.offset + 3))).json().code, 'INVALID_OFFSET');
    assert.equal((await get(recordPath('..%2F1', at.offset))).json().code, 'INVALID_PEER');
    assert.equal((await get(recordPath('1-2', at.offset))).json().code, 'NO_COPY', 'its own server: no copy');
    assert.equal((await get(recordPath('2-1', at.offset))).json().code, 'NO_COPY', 'another group: no copy');
    assert.equal((await get(recordPath('1-1', at.offset + 8))).json().code, 'NO_COPY', 'no record there');

    await until('A to log the three repairs', () => (logsOf(dir, a.port).match(/repaired this node's record of/g) ?? []).length >= 3, 10_000, 200);
    await until('A to log the three bad records', () => (logsOf(dir, a.port).match(/failed its checksum: not served; read from a member/g) ?? []).length >= 3, 10_000, 200);

    // B gone, A serves its repaired records itself
    await b.kill9();
    for (const f of files) {
      const res = await request(`${a.base}/file/download?fileid=${f.id}`);
      assert.equal(res.status, 200, res.body.subarray(0, 200).toString());
      assert.equal(sha1(res.body), sha1(f.data));
    }
    // with no member up, a record found bad is answered as corrupt, never served
    const last = files[0];
    const loc = decodeFileId(last.id);
    flipByte(bundlePath(rootA, loc.bundle), loc.offset + HEADER_SIZE + 7);
    await until('B out of A\'s map', async () => (await request(`${a.base}/file/cluster`)).json().nodes.every((n: any) => n.server !== 2 || n.state !== 'up'), 15_000, 200);
    const res = await request(`${a.base}/file/download?fileid=${last.id}`);
    assert.equal(res.status, 500, res.body.toString());
    assert.equal(res.json().code, 'CORRUPT_RECORD', res.body.toString());
    await a.kill9();
  });

  it('serves the file from the node that has it, copies the record again and logs the repair', async () => {
    const { a, b, rootA, rootB } = await twoNodes('copy');

    const files: Array<{ id: string; data: Buffer }> = [];
    for (const [ i, n ] of [ 4096, 3 * MiB ].entries()) {
      const data = randomBytes(n);
      const res = await uploadTo(a.base, data, `r${i}.bin`);
      assert.equal(res.status, 200, res.body.toString());
      files.push({ id: res.json().data.FileId, data });
    }
    const reader = new ReplicaReader(rootB, { group: 1, server: 2 }, () => undefined);
    await until('B to hold good copies of A\'s files', async () => {
      for (const f of files) if (!await reader.open(f.id)) return false;
      return true;
    }, 30_000, 200);

    for (const f of files) {
      const loc = decodeFileId(f.id);
      const copy = replicaBundlePath(rootB, 1, 1, loc.bundle);
      const own = bundlePath(rootA, loc.bundle);
      const recordLen = HEADER_SIZE + loc.size;
      assert(readRange(copy, loc.offset, recordLen).equals(readRange(own, loc.offset, recordLen)), 'the copy starts equal');
      flipByte(copy, loc.offset + HEADER_SIZE + Math.floor(loc.size / 2));
      assert(!readRange(copy, loc.offset, recordLen).equals(readRange(own, loc.offset, recordLen)), 'the byte is flipped');

      // the bad copy is never served: B reads the file from A, byte for byte
      const res = await request(`${b.base}/file/download?fileid=${f.id}`);
      assert.equal(res.status, 200, res.body.subarray(0, 200).toString());
      assert.equal(sha1(res.body), sha1(f.data), `${f.id} differs`);

      // and the copy is written again from A's record
      await until(`B to repair its copy of ${f.id}`, () => readRange(copy, loc.offset, recordLen).equals(readRange(own, loc.offset, recordLen)), 30_000, 200);
      assert(await reader.open(f.id), `B's copy of ${f.id} is good again`);
    }
    await until('B to log both repairs', () => (logsOf(dir, b.port).match(/repaired the copy of the record/g) ?? []).length >= 2, 10_000, 200);
    // the worker's log is written within a second, apart from the agent's
    await until('B to log both bad copies', () => (logsOf(dir, b.port).match(/failed its checksum: not served; asking for it again/g) ?? []).length >= 2, 10_000, 200);

    // A gone, B serves the repaired copies itself
    await a.kill9();
    for (const f of files) {
      const res = await request(`${b.base}/file/download?fileid=${f.id}`);
      assert.equal(res.status, 200, res.body.subarray(0, 200).toString());
      assert.equal(sha1(res.body), sha1(f.data));
    }
  });
});
