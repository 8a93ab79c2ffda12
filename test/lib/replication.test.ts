import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { HEADER_SIZE, NodeOptions, bundlePath, decodeFileId, openStandalone } from '../../lib';
import { ReplicaReader, parseRanges, peerDir, replicaBundlePath, snapshotLedger, streamRecords } from '../../lib/replication';
import { copyAnswer } from '../../lib/replication/copier';
import { Position, ReplicaWriter, claimPeerDir } from '../../lib/replication/replica-files';

const MiB = 1 << 20;

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('lib: replication of a bundle into a copy (node 1.1 copied by 1.2)', () => {
  let root: string;
  let copies: string;
  let node: Awaited<ReturnType<typeof openStandalone>>;
  const opts = (r: string): NodeOptions => ({ root: r, group: 1, server: 1, bundleSize: 16 * MiB, extentSize: MiB, maxFileSize: 64 * MiB, fsync: true, bootId: null });
  const reader = (warn: (m: string) => void = () => undefined) => new ReplicaReader(copies, { group: 1, server: 2 }, warn);

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-repl-src-'));
    copies = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-repl-copy-'));
    node = await openStandalone(opts(root));
  });

  afterEach(async () => {
    await node.close();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(copies, { recursive: true, force: true });
  });

  /** One answer for the holes and what follows `from.end`, copied. */
  async function copyOnce(bundle: number, from: Position, budget = 32 * MiB) {
    const ranges = [ ...from.holes.map(([ start, end ]) => ({ start, end })), { start: from.end, end: null } ];
    const snap = await snapshotLedger(node.catalog);
    const body = Readable.from(streamRecords(root, bundle, ranges, snap, { extentSize: MiB, budget }), { objectMode: false });
    const writer = new ReplicaWriter(replicaBundlePath(copies, 1, 1, bundle), peerDir(copies, 1, 1));
    try {
      return await copyAnswer(body, ranges, writer);
    } finally {
      await writer.close();
    }
  }

  async function put(data: Buffer) {
    return (await node.store.upload(Readable.from([ data ]), { user: 'u', filename: 'f.bin', size: data.length })).fileId;
  }

  async function readCopy(fileId: string): Promise<Buffer | undefined> {
    const f = await reader().open(fileId);
    return f && collect(await f.createReadStream(fileId));
  }

  it('copies the committed records past a slot still being written, and leaves the slot a hole until it settles', async () => {
    const slot = await node.store.writer.reserve(HEADER_SIZE + 5000);
    const files = [ randomBytes(10), randomBytes(0), randomBytes(70_000), randomBytes(2 * MiB) ];
    const ids = [];
    for (const f of files) ids.push(await put(f));
    assert.equal(decodeFileId(ids[0]).bundle, slot.bundle);
    assert(decodeFileId(ids[0]).offset > slot.offset, 'the first file comes after the Pending slot');

    const first = await copyOnce(0, { end: 0, holes: [] });
    assert.deepEqual(first.bad, []);
    assert(first.holes.some(([ s, e ]) => s === slot.offset && e === slot.offset + slot.length), JSON.stringify(first.holes));
    for (const [ i, id ] of ids.entries()) assert((await readCopy(id))?.equals(files[i]), `copy of file ${i}`);

    // the slot is given up, more files come: asking for the holes and the rest finds them
    await slot.abort();
    const more = randomBytes(3000);
    const moreId = await put(more);
    const second = await copyOnce(0, { end: first.end!, holes: first.holes });
    assert(!second.holes.some(([ s ]) => s === slot.offset), 'the settled slot is no hole any more');
    assert((await readCopy(moreId))?.equals(more));
    // what was copied before is not sent again
    assert(second.copied < 3000 + 2 * HEADER_SIZE + 200, `copied ${second.copied} bytes again`);
  });

  it('carries at most its budget per answer, and the next answer goes on from where it stopped', async () => {
    const files = [ randomBytes(1000), randomBytes(2000), randomBytes(3000) ];
    const ids = [];
    for (const f of files) ids.push(await put(f));
    let pos: Position = { end: 0, holes: [] };
    let answers = 0;
    for (;;) {
      const got = await copyOnce(0, pos, 1);
      answers++;
      if (got.end === pos.end && !got.copied) break;
      pos = { end: got.end!, holes: got.holes };
    }
    assert(answers >= 3, `${answers} answers`);
    for (const [ i, id ] of ids.entries()) assert((await readCopy(id))?.equals(files[i]));
  });

  it('does not write a record that fails its checksum on the way, and never serves a copy flipped on disk', async () => {
    const good = randomBytes(100_000);
    const bad = randomBytes(100_000);
    const goodId = await put(good);
    const badId = await put(bad);
    const loc = decodeFileId(badId);
    const fd = fs.openSync(bundlePath(root, loc.bundle), 'r+');
    fs.writeSync(fd, Buffer.from([ bad[500] ^ 1 ]), 0, 1, loc.offset + HEADER_SIZE + 500);
    fs.closeSync(fd);

    const got = await copyOnce(loc.bundle, { end: 0, holes: [] });
    assert.equal(got.bad.length, 1);
    assert.equal(got.bad[0][0], loc.offset);
    assert.equal(await reader().open(badId), undefined, 'nothing written for the bad record');
    assert((await readCopy(goodId))?.equals(good));

    const g = decodeFileId(goodId);
    const copy = replicaBundlePath(copies, 1, 1, g.bundle);
    const cfd = fs.openSync(copy, 'r+');
    fs.writeSync(cfd, Buffer.from([ good[7] ^ 0x80 ]), 0, 1, g.offset + HEADER_SIZE + 7);
    fs.closeSync(cfd);
    const warned: string[] = [];
    assert.equal(await reader(m => warned.push(m)).open(goodId), undefined);
    assert.match(warned.join(), /failed its checksum: not served/);
  });

  it('moves aside, never deletes, the copy of a peer whose data root was replaced', () => {
    const dir = peerDir(copies, 1, 1);
    const a = 'a'.repeat(32);
    assert.equal(claimPeerDir(dir, a), undefined);
    fs.writeFileSync(path.join(dir, 'kept'), 'x');
    assert.equal(claimPeerDir(dir, a), undefined, 'the same instance keeps its copy');
    assert(fs.existsSync(path.join(dir, 'kept')));
    const moved = claimPeerDir(dir, 'b'.repeat(32));
    assert.equal(moved, `${dir}.was-${a}`);
    assert(fs.existsSync(path.join(moved!, 'kept')));
    assert(!fs.existsSync(path.join(dir, 'kept')));
  });

  it('takes ranges of offsets only: ascending, 8-aligned, the last alone open', () => {
    assert.deepEqual(parseRanges('0-'), [ { start: 0, end: null } ]);
    assert.deepEqual(parseRanges('8-16,24-'), [ { start: 8, end: 16 }, { start: 24, end: null } ]);
    for (const bad of [ '', '1-', '0-,8-16', '16-8', '8-16,8-24', '../x', '0-8-16', 'a-', `${2 ** 50}-` ]) {
      assert.throws(() => parseRanges(bad), (e: any) => e.code === 'INVALID_RANGES', bad);
    }
  });
});
