import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeFileId } from '../../lib';
import { RemoteFileSource } from '../../lib/cluster/remote-source';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request, sha1, uploadTo } from '../support/http';
import { PrivateRedis, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const SECRET = 'test-three-nodes-secret';
const TTL = 3000;
const MiB = 1024 * 1024;

interface Stored {
  id: string;
  hash: string;
  data: Buffer;
  via: string;
  /** nodes holding it when the upload was acknowledged */
  copies?: number;
}

/** A few hundred files of mixed sizes: 1 B, 20 MiB, many small, some of a few MiB. */
function mixedFiles(): Buffer[] {
  const sizes = [ 1, 20 * MiB, 0 ];
  for (let i = 0; i < 190; i++) sizes.push(randomInt(2, 64 * 1024));
  for (let i = 0; i < 40; i++) sizes.push(randomInt(64 * 1024, 2 * MiB));
  for (let i = 0; i < 4; i++) sizes.push(randomInt(2 * MiB, 9 * MiB));
  return sizes.filter(n => n > 0).map(n => randomBytes(n));
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

async function clusterOf(base: string) {
  const res = await request(`${base}/file/cluster`);
  assert.equal(res.status, 200, res.body.toString());
  return res.json();
}

async function upload(node: Demo, data: Buffer, name: string): Promise<Stored> {
  const res = await uploadTo(node.base, data, name);
  assert.equal(res.status, 200, `${name} through ${node.base}: ${res.status} ${res.body.toString().slice(0, 300)}`);
  return { id: res.json().data.FileId, hash: sha1(data), data, via: node.base };
}

/** Every file byte for byte from `node`, by file id and by filehash. */
async function checkAll(node: Demo, files: Stored[], what: string): Promise<void> {
  await pool(files, 4, async f => {
    for (const q of [ `fileid=${f.id}`, `filehash=${f.hash}` ]) {
      const res = await request(`${node.base}/file/download?${q}`);
      assert.equal(res.status, 200, `${what}: ${q} (${f.data.length} B, stored via ${f.via}) from ${node.base}: ${res.status} ${res.body.subarray(0, 200).toString()}`);
      assert.equal(res.body.length, f.data.length, `${what}: ${q} from ${node.base}`);
      assert.equal(sha1(res.body), f.hash, `${what}: ${q} from ${node.base} differs`);
    }
  });
}

/**
 * What CI runs for issue 14: three demo nodes under egg-scripts on one Redis
 * (group 1: servers 1 and 2; group 2: server 1), a few hundred files through
 * all three, every file from every node; then the failures.
 */
describe('cluster mode: three nodes, two groups, every file from every node', function () {
  this.timeout(600_000);
  const redis = new PrivateRedis({ persist: true });
  const namespace = uniqueNamespace('three');
  let dir: string;
  let build: string;
  const nodes: Record<'a' | 'b' | 'c', Demo> = {} as any;
  const running: Demo[] = [];
  const stored: Stored[] = [];

  async function start(name: 'a' | 'b' | 'c'): Promise<Demo> {
    const [ group, server ] = { a: [ 1, 1 ], b: [ 1, 2 ], c: [ 2, 1 ] }[name];
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: redis.url, SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: String(TTL),
      SONOFS_GROUP: String(group), SONOFS_SERVER: String(server), SONOFS_ROOT: path.join(dir, name),
    });
    running.push(demo);
    nodes[name] = demo;
    return demo;
  }

  async function allUp(base: string) {
    await until('three nodes up in the map', async () => (await clusterOf(base)).nodes.filter((n: any) => n.state === 'up').length === 3, 30_000, 200);
  }

  /** Waits until every member of group 1 holds its peer's bundles up to now. */
  async function groupCaughtUp() {
    const since = Date.now();
    await until('group 1 to have copied each other\'s bundles', async () => {
      const view = await clusterOf(nodes.a.base);
      const members = view.nodes.filter((n: any) => n.group === 1);
      return members.length === 2 && members.every((n: any) => n.replicationLagBytes === 0 && n.replicatedUpTo && Date.parse(n.replicatedUpTo) >= since);
    }, 60_000, 250);
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-three-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    await redis.start();
    await Promise.all([ start('a'), start('b'), start('c') ]);
    await allUp(nodes.a.base);
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    await redis.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores a few hundred files of 1 B to 20 MiB through all three nodes, and every node serves each by file id and by filehash', async () => {
    const order = [ nodes.a, nodes.b, nodes.c ];
    const files = mixedFiles();
    stored.push(...await pool(files, 4, (data, i) => upload(order[i % 3], data, `f${i}.bin`)));
    assert(stored.length >= 200, `${stored.length} files`);
    // each node stored what came through it (placement prefers the local group while it is healthy)
    const servers = new Set(stored.map(f => { const loc = decodeFileId(f.id); return `${loc.group}.${loc.server}`; }));
    assert(servers.size >= 3, `files landed on ${servers.size} servers`);
    await groupCaughtUp();
    for (const n of order) await checkAll(n, stored, 'after the uploads');
  });

  it('ctx.sonofs\'s reader of other nodes\' files (RemoteFileSource) stats, reads whole and reads ranges of them, from their node or a group member', async () => {
    const view = await clusterOf(nodes.c.base);
    const source = new RemoteFileSource({
      map: async () => ({ nodes: view.nodes, self: view.self.instance }), secret: SECRET, timeoutMs: 3000, maxBufferSize: 4 * MiB,
    });
    const ofGroup1 = stored.filter(f => decodeFileId(f.id).group === 1);
    const small = ofGroup1.find(f => f.data.length > 1000 && f.data.length < 64 * 1024)!;
    const large = ofGroup1.reduce((a, f) => (f.data.length > a.data.length ? f : a));
    const st = await source.stat(large.id);
    assert.deepEqual([ st.fileId, st.fileHash, st.size ], [ large.id, large.hash, large.data.length ]);
    assert((await source.getFile(small.id)).buffer.equals(small.data));
    await assert.rejects(source.getFile(large.id), /FILE_TOO_LARGE_FOR_BUFFER|use createReadStream/);
    const chunks: Buffer[] = [];
    for await (const c of await source.createReadStream(large.id, { start: 1000, end: 2 * MiB })) chunks.push(c);
    assert(Buffer.concat(chunks).equals(large.data.subarray(1000, 2 * MiB + 1)));
    const whole: Buffer[] = [];
    for await (const c of await source.createReadStream(large.id)) whole.push(c);
    assert.equal(sha1(Buffer.concat(whole)), large.hash);
    // an id of group 1 that no node has: 404 from its own server, not a member's guess
    const loc = decodeFileId(small.id);
    const missing = small.id.slice(0, -2) + (small.id.endsWith('AA') ? 'AB' : 'AA');
    if (decodeFileId(missing).server === loc.server) await assert.rejects(source.stat(missing), /no file has this fileid/);
  });

  it('Redis stopped: every file still downloads by file id from every node, uploads answer 503 JSON within 5 s; Redis back: uploads work again without a restart', async () => {
    await redis.stop();
    const sample = stored.filter((_, i) => i % 5 === 0);
    for (const n of [ nodes.a, nodes.b, nodes.c ]) {
      await pool(sample, 4, async f => {
        const res = await request(`${n.base}/file/download?fileid=${f.id}`);
        assert.equal(res.status, 200, `${f.id} from ${n.base} while Redis is down: ${res.status} ${res.body.subarray(0, 200).toString()}`);
        assert.equal(sha1(res.body), f.hash);
      });
      const t0 = Date.now();
      const res = await uploadTo(n.base, randomBytes(1000), 'while-down.bin');
      assert.equal(res.status, 503, res.body.toString());
      assert.equal(typeof res.json().code, 'string');
      assert(Date.now() - t0 < 5000, `the upload answered after ${Date.now() - t0} ms`);
    }
    await redis.start();
    const again = await until('uploads through every node again', async () => {
      const done: Stored[] = [];
      for (const n of [ nodes.a, nodes.b, nodes.c ]) {
        const res = await uploadTo(n.base, randomBytes(5000), 'after-redis.bin');
        if (res.status !== 200) return undefined;
        done.push({ id: res.json().data.FileId, hash: '', data: Buffer.alloc(0), via: n.base });
      }
      return done;
    }, 30_000, 500);
    assert.equal(again.length, 3);
  });

  it('a node SIGKILLed during uploads: uploads go on through the others, which serve every file it acknowledged from a group member\'s copy at once (replication all); it restarts, catches up, and no acknowledged file is lost', async () => {
    const acked: Stored[] = [];
    let stop = false;
    let failedThroughOthers = 0;
    const load = Promise.all([ nodes.a, nodes.b, nodes.c ].map(async (n, k) => {
      for (let i = 0; !stop; i++) {
        const data = randomBytes(randomInt(1, 300_000));
        try {
          const res = await uploadTo(n.base, data, `kill-${k}-${i}.bin`);
          if (res.status === 200) acked.push({ id: res.json().data.FileId, hash: sha1(data), data, via: n.base, copies: res.json().data.Copies });
          else if (n !== nodes.b) failedThroughOthers++;
        } catch {
          if (n !== nodes.b) failedThroughOthers++;
          else await new Promise(r => setTimeout(r, 100)); // B is down
        }
      }
    }));
    await until('uploads through every node', () => new Set(acked.map(f => f.via)).size === 3, 30_000, 50);
    await new Promise(r => setTimeout(r, 1000));
    await nodes.b.kill9();
    const killedAt = acked.length;
    await new Promise(r => setTimeout(r, 3000));
    stop = true;
    await load;
    assert(acked.length > killedAt, 'uploads went on through A and C after B died');
    assert.equal(failedThroughOthers, 0, 'an upload through A or C failed');
    // replication 'all': B acknowledged each upload once A held it (Copies 2), so A serves every one of them (and C reads
    // them from A). Only one A did not confirm in time (Copies 1, logged; a loaded machine) may wait for B: 503, never a 404.
    const onB = (f: Stored) => { const l = decodeFileId(f.id); return l.group === 1 && l.server === 2; };
    for (const n of [ nodes.a, nodes.c ]) {
      await pool([ ...acked, ...stored.filter((_, i) => i % 7 === 0) ], 4, async f => {
        const res = await request(`${n.base}/file/download?fileid=${f.id}`);
        if (res.status === 503 && onB(f) && f.copies === 1) return;
        assert.equal(res.status, 200, `B dead: ${f.id} (Copies ${f.copies}) from ${n.base}: ${res.status} ${res.body.subarray(0, 200).toString()}`);
        assert.equal(sha1(res.body), f.hash);
      });
    }
    const ofB = acked.filter(onB);
    assert(ofB.length > 0, 'B acknowledged no upload before it died');
    assert(ofB.every(f => f.copies === 1 || f.copies === 2), `B's answers count 1 or 2 copies: ${ofB.map(f => f.copies).join(',')}`);
    console.log(`      (B acknowledged ${ofB.length} uploads, ${ofB.filter(f => f.copies === 2).length} with A's copy confirmed)`);

    await start('b');
    await allUp(nodes.a.base);
    await groupCaughtUp();
    await checkAll(nodes.b, [ ...acked, ...stored ], 'B back');
  });
});
