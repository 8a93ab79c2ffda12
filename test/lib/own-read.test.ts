import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { HEADER_SIZE, bundlePath, decodeFileId, encodeFileId, openStandalone } from '../../lib';
import { BadOwnRecord, CheckedOwnReads } from '../../lib/replication';

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe('lib: checked reads of a node\'s own records (cluster mode)', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>>;
  // sizes around the thresholds below: kept in memory, checked first, checked as it streams
  const opts = { keep: 1000, checkFirst: 20_000, recheckMs: 60_000, verifiedMs: 60_000, reportsPerMinute: 1000 };
  const sizes = { kept: 700, checkedFirst: 15_000, streamed: 60_000 };

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-own-read-'));
    node = await openStandalone({ root, group: 1, server: 1, bundleSize: 8 << 20, extentSize: 1 << 20, maxFileSize: 1 << 20, fsync: false });
  });

  afterEach(async () => {
    await node.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function store(size: number) {
    const data = randomBytes(size);
    const r = await node.store.upload(Readable.from([ data ]), { user: 'u' });
    return { id: r.fileId, loc: decodeFileId(r.fileId), data };
  }

  function flipData(f: { loc: { bundle: number; offset: number; size: number } }) {
    const fd = fs.openSync(bundlePath(root, f.loc.bundle), 'r+');
    const at = f.loc.offset + HEADER_SIZE + Math.floor(f.loc.size / 2);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    fs.writeSync(fd, Buffer.from([ b[0] ^ 0x01 ]), 0, 1, at);
    fs.closeSync(fd);
  }

  it('serves good records of every size, whole and by range', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), opts);
    for (const size of Object.values(sizes)) {
      const f = await store(size);
      const src = await reads.open(f.id, f.loc);
      assert(src, `a good record of ${size} bytes is served`);
      assert.equal(sha1(await collect(await src.createReadStream(f.id))), sha1(f.data));
      assert.deepEqual(await collect(await src.createReadStream(f.id, { start: 10, end: 99 })), f.data.subarray(10, 100));
      assert.equal((await src.stat(f.id)).size, size);
    }
    assert.deepEqual(reported, []);
  });

  it('never hands out a bad record it can check first, and reports it once until it is repaired', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), opts);
    const kept = await store(sizes.kept);
    const checked = await store(sizes.checkedFirst);
    flipData(kept);
    flipData(checked);
    assert.equal(await reads.open(kept.id, kept.loc), undefined);
    assert.equal(await reads.open(checked.id, checked.loc), undefined);
    assert.deepEqual(reported, [
      { fileId: kept.id, bundle: kept.loc.bundle, offset: kept.loc.offset },
      { fileId: checked.id, bundle: checked.loc.bundle, offset: checked.loc.offset },
    ]);
    // known bad: read from members without reading the record again, and not reported again
    assert.equal(await reads.open(kept.id, kept.loc), undefined);
    assert.equal(reported.length, 2);
    // the agent says it is repaired: checked again (still bad here, so reported again)
    reads.repaired(kept.loc);
    assert.equal(await reads.open(kept.id, kept.loc), undefined);
    assert.equal(reported.length, 3);
    // written good again: served
    const fd = fs.openSync(bundlePath(root, kept.loc.bundle), 'r+');
    fs.writeSync(fd, kept.data, 0, kept.data.length, kept.loc.offset + HEADER_SIZE);
    fs.closeSync(fd);
    reads.repaired(kept.loc);
    const src = await reads.open(kept.id, kept.loc);
    assert(src);
    assert.equal(sha1((await src.getFile(kept.id)).buffer), sha1(kept.data));
  });

  it('cuts a large whole-file stream that fails its checksum and reports it', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), opts);
    const big = await store(sizes.streamed);
    flipData(big);
    const src = await reads.open(big.id, big.loc);
    assert(src, 'too large to check first: streamed');
    await assert.rejects(collect(await src.createReadStream(big.id)), { code: 'CORRUPT_RECORD' });
    assert.deepEqual(reported, [ { fileId: big.id, bundle: big.loc.bundle, offset: big.loc.offset } ]);
    assert.equal(await reads.open(big.id, big.loc), undefined, 'then read from members');
  });

  it('reports a record whose header is damaged, and answers a made-up place as no file', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), opts);
    const f = await store(sizes.kept);
    const fd = fs.openSync(bundlePath(root, f.loc.bundle), 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, f.loc.offset + 40);
    fs.writeSync(fd, Buffer.from([ b[0] ^ 0xff ]), 0, 1, f.loc.offset + 40); // the header's cookie: its checksum fails
    fs.closeSync(fd);
    assert.equal(await reads.open(f.id, f.loc), undefined);
    assert.deepEqual(reported, [ { fileId: f.id, bundle: f.loc.bundle, offset: f.loc.offset } ]);
    // an id pointing into the data of a record: no header there
    const other = await store(sizes.checkedFirst);
    const inside = { ...other.loc, offset: other.loc.offset + 1024, size: 10 };
    await assert.rejects(reads.open(encodeFileId(inside), inside), { code: 'FILE_NOT_FOUND' });
    assert.equal(reported.length, 1);
  });

  it('checks a record of middle size once, then serves it without reading it whole again until the time passes', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), opts);
    const f = await store(sizes.checkedFirst);
    assert(await reads.open(f.id, f.loc));
    flipData(f);
    // within verifiedMs: not read whole again (its whole-file stream still fails at the end)
    const src = await reads.open(f.id, f.loc);
    assert(src);
    await assert.rejects(collect(await src.createReadStream(f.id)), { code: 'CORRUPT_RECORD' });
    const strict = new CheckedOwnReads(node.store, b => reported.push(b), { ...opts, verifiedMs: -1 });
    assert.equal(await strict.open(f.id, f.loc), undefined, 'checked again once the time passed');
    assert.equal(reported.length, 1);
  });

  it('reports at most reportsPerMinute bad records, and reads every one of them from members', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), { ...opts, reportsPerMinute: 2 });
    const files = [ await store(sizes.kept), await store(sizes.kept), await store(sizes.kept) ];
    for (const f of files) flipData(f);
    for (const f of files) assert.equal(await reads.open(f.id, f.loc), undefined);
    assert.deepEqual(reported.map(r => r.fileId), files.slice(0, 2).map(f => f.id));
  });

  it('opens after the recheck time has passed', async () => {
    const reported: BadOwnRecord[] = [];
    const reads = new CheckedOwnReads(node.store, b => reported.push(b), { ...opts, recheckMs: 0 });
    const f = await store(sizes.kept);
    flipData(f);
    assert.equal(await reads.open(f.id, f.loc), undefined);
    await new Promise(r => setTimeout(r, 5));
    assert.equal(await reads.open(f.id, f.loc), undefined);
    assert.equal(reported.length, 2, 'checked and reported again once the time passed');
  });
});
