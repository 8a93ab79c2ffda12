import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeFileId, HEADER_SIZE } from '../../lib';
import { NODE_AUTH_HEADER, signNodeRequest } from '../../lib/cluster';
import { ReplicaReader, replicaBundlePath } from '../../lib/replication';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request, sha1, uploadTo } from '../support/http';
import { OFFSET, TUS } from '../support/tus';
import { testRedisUrl, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const TTL = 3000;
const SECRET = 'test-replication-secret';
const MiB = 1024 * 1024;

interface Stored {
  id: string;
  data: Buffer;
}

async function clusterOf(base: string) {
  const res = await request(`${base}/file/cluster`);
  assert.equal(res.status, 200, res.body.toString());
  return res.json();
}

async function upload(base: string, data: Buffer, name: string): Promise<Stored> {
  const res = await uploadTo(base, data, name);
  assert.equal(res.status, 200, res.body.toString());
  return { id: res.json().data.FileId, data };
}

/** A tus upload created with its length and sent `first` bytes of: its slot stays Pending until the rest comes. */
async function tusStart(base: string, data: Buffer, first: number): Promise<{ url: string; finish(): Promise<Stored> }> {
  const created = await request(`${base}/files`, {
    method: 'POST', headers: { ...TUS, 'Upload-Length': data.length, 'Upload-Metadata': `filename ${Buffer.from('t.bin').toString('base64')}` },
  });
  assert.equal(created.status, 201, created.body.toString());
  const url = new URL(String(created.headers.location), base).toString();
  const patch = (from: number, to: number) => request(url, {
    method: 'PATCH', headers: { ...TUS, 'Upload-Offset': from, 'Content-Type': OFFSET, 'Content-Length': to - from }, body: data.subarray(from, to),
  });
  if (first) assert.equal((await patch(0, first)).status, 204);
  return {
    url,
    async finish() {
      const res = await patch(first, data.length);
      assert.equal(res.status, 204, res.body.toString());
      return { id: String(res.headers['sonofs-file-id']), data };
    },
  };
}

/** Files of mixed sizes, 1 B to 5 MiB (the largest have extents of their own). */
function mixed(tag: string): Array<{ name: string; data: Buffer }> {
  return [ 1, 100, 4096, 65_536, 65_537, 300_000, MiB, 3 * MiB, 5 * MiB ].map(n => ({ name: `${tag}-${n}.bin`, data: randomBytes(n) }));
}

async function downloadAll(base: string, files: Stored[]): Promise<void> {
  for (const f of files) {
    const res = await request(`${base}/file/download?fileid=${f.id}`);
    assert.equal(res.status, 200, `${f.id} (${f.data.length} B) from ${base}: ${res.status} ${res.body.subarray(0, 200).toString()}`);
    assert.equal(res.body.length, f.data.length);
    assert.equal(sha1(res.body), sha1(f.data), `${f.id} differs`);
  }
}

describe('cluster mode: the members of a group copy each other\'s bundles (replication one)', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;
  let namespace: string;
  const running: Demo[] = [];

  async function node(server: number, root: string) {
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: String(TTL),
      SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: root,
      // what this suite checks is the background copy: nothing waits for it
      SONOFS_REPLICATION: 'one',
    });
    running.push(demo);
    return demo;
  }

  /** Waits until `server`'s copies hold everything its peers acknowledged before `since`, by any node's map. */
  async function caughtUp(base: string, server: number, since: number) {
    return until(`1.${server} to have copied everything from before ${new Date(since).toISOString()}`, async () => {
      const n = (await clusterOf(base)).nodes.find((m: any) => m.server === server);
      return n && n.replicationLagBytes === 0 && n.replicatedUpTo && Date.parse(n.replicatedUpTo) >= since && n;
    }, 30_000, 200);
  }

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-replication-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    namespace = uniqueNamespace('repl');
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('copies in the background past uploads in progress, serves a dead member\'s files byte for byte, catches up after a restart, and never serves a bad copy', async () => {
    const rootA = path.join(dir, 'a');
    const rootB = path.join(dir, 'b');
    const [ first, b ] = await Promise.all([ node(1, rootA), node(2, rootB) ]);
    let a = first;
    await until('both nodes up in the map', async () => (await clusterOf(a.base)).nodes.filter((n: any) => n.state === 'up').length === 2, 15_000, 200);

    // the node-to-node API: signed with the cluster secret, off the public prefix, numbers only
    const instanceB = (await clusterOf(b.base)).self.instance;
    const signed = (p: string, secret = SECRET) => request(`${b.base}${p}`, { headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, 'GET', p) } });
    const list = `/_sonofs/node/bundles?instance=${instanceB}`;
    const unsigned = await request(`${b.base}${list}`);
    assert.equal(unsigned.status, 401);
    assert.equal(unsigned.json().code, 'UNAUTHORIZED');
    assert.equal((await signed(list, 'wrong')).status, 401);
    assert.equal((await signed(list)).status, 200);
    assert.deepEqual(Object.keys((await signed(list)).json()).sort(), [ 'bundles', 'group', 'instance', 'server' ]);
    assert.equal((await signed(`/_sonofs/node/bundles?instance=${'0'.repeat(32)}`)).status, 409);
    assert.equal((await signed('/_sonofs/node/bundles?instance=x')).json().code, 'INVALID_INSTANCE');
    assert.equal((await signed(`/_sonofs/node/bundles/abc?instance=${instanceB}&ranges=0-`)).json().code, 'INVALID_BUNDLE');
    assert.equal((await signed(`/_sonofs/node/bundles/0?instance=${instanceB}&ranges=3-`)).json().code, 'INVALID_RANGES');
    assert.equal((await signed(`/_sonofs/node/bundles/0?instance=${instanceB}&ranges=0-,8-16`)).json().code, 'INVALID_RANGES');
    assert.equal((await signed(`/_sonofs/node/bundles/4000?instance=${instanceB}&ranges=0-`)).status, 404);

    // B stores a few files of its own first, so A has copied part of B's bundles when it dies
    const bFirst = [ await upload(b.base, randomBytes(70_000), 'b0.bin'), await upload(b.base, randomBytes(10), 'b1.bin') ];

    // on A: an upload stays in progress (its slot Pending) while others commit after it
    const pendingData = randomBytes(2 * MiB);
    const pending = await tusStart(a.base, pendingData, 512 * 1024);
    const onA: Stored[] = [];
    for (const f of mixed('a1')) onA.push(await upload(a.base, f.data, f.name));
    const whole = await tusStart(a.base, randomBytes(1500 * 1024), 0);
    onA.push(await whole.finish());
    let acked = Date.now();
    await caughtUp(a.base, 2, acked);
    // B holds every committed record, those after the Pending slot included (read from its copy on disk)
    const reader = new ReplicaReader(rootB, { group: 1, server: 2 }, () => undefined);
    for (const f of onA) assert(await reader.open(f.id), `B has no good copy of ${f.id} (${f.data.length} B) yet`);

    // the upload in progress finishes, and more come
    onA.push(await pending.finish());
    for (const f of mixed('a2').slice(0, 5)) onA.push(await upload(a.base, f.data, f.name));
    acked = Date.now();
    await caughtUp(b.base, 2, acked);
    await caughtUp(b.base, 1, acked); // A has B's first files
    const view = await clusterOf(b.base);
    for (const n of view.nodes) assert(Number.isInteger(n.replicationLagMs) && n.replicationLagMs >= 0, JSON.stringify(n));

    // A dies: B serves each of A's files from its copy, byte for byte, and ranges of them
    await a.kill9();
    // A had copied B's first files, and saved how far (it goes on from there when it comes back)
    const saved = JSON.parse(fs.readFileSync(replicaBundlePath(rootA, 1, 2, decodeFileId(bFirst[0].id).bundle).replace(/\.snb$/, '.pos'), 'utf8'));
    assert(saved.end > decodeFileId(bFirst[1].id).offset, JSON.stringify(saved));
    const readerA = new ReplicaReader(rootA, { group: 1, server: 1 }, () => undefined);
    for (const f of bFirst) assert(await readerA.open(f.id), `A has no good copy of ${f.id}`);
    await downloadAll(b.base, onA);
    const big = onA.find(f => f.data.length === 5 * MiB)!;
    const part = await request(`${b.base}/file/download?fileid=${big.id}`, { headers: { Range: 'bytes=1000-2999999' } });
    assert.equal(part.status, 206);
    assert(part.body.equals(big.data.subarray(1000, 3_000_000)));

    // a copy whose bytes are flipped on disk is never served
    for (const victim of [ onA.find(f => f.data.length === 4096)!, onA.find(f => f.data.length === 3 * MiB)! ]) {
      const loc = decodeFileId(victim.id);
      const file = replicaBundlePath(rootB, 1, 1, loc.bundle);
      const fd = fs.openSync(file, 'r+');
      const at = loc.offset + HEADER_SIZE + Math.floor(loc.size / 2);
      const byte = Buffer.alloc(1);
      fs.readSync(fd, byte, 0, 1, at);
      fs.writeSync(fd, Buffer.from([ byte[0] ^ 0xff ]), 0, 1, at);
      fs.closeSync(fd);
      for (const range of [ undefined, 'bytes=0-99' ]) {
        const res = await request(`${b.base}/file/download?fileid=${victim.id}`, { headers: range ? { Range: range } : {} });
        assert.notEqual(res.status, 200, `bad copy of ${victim.id} served`);
        assert.notEqual(res.status, 206, `bad copy of ${victim.id} served`);
      }
    }
    await until('B to log the bad copies', () => {
      const log = fs.readFileSync(path.join(dir, `logs-${b.port}`, 'common-error.log'), 'utf8');
      return (log.match(/failed its checksum: not served/g) ?? []).length >= 2;
    }, 5000, 200);

    // while A is down, B takes more; A comes back on its root and catches up, then takes more still
    const bLater: Stored[] = [];
    for (const f of mixed('b2').slice(0, 7)) bLater.push(await upload(b.base, f.data, f.name));
    a = await node(1, rootA);
    for (const f of mixed('b3').slice(4)) bLater.push(await upload(b.base, f.data, f.name));
    acked = Date.now();
    await caughtUp(b.base, 1, acked);

    // B dies: A serves B's files from its copy
    await b.kill9();
    await downloadAll(a.base, [ ...bFirst, ...bLater ]);
    // and its own, untouched
    await downloadAll(a.base, onA.slice(0, 4));
  });
});
