import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  openStandalone, NodeOptions, decodeFileId, bundlePath, listBundles, encodeMeta, encodeSmallRecord, recordLength,
  RecordKind, HEADER_SIZE, BundleFiles, createBundle, scanAll, scanRange, newCookie, SlotWriter, decodeHeader, pendingHeader,
} from '../../lib';
import { currentBootId } from '../../lib/catalog/unsynced-marker';

const MiB = 1 << 20;

/** The catalog mode of the suite running: the system's boot id (commits not fsynced) or null (fsynced). */
let catalogBootId: null | undefined;

/** A valid-looking tombstone of `user`'s link to the content `sha1`, to plant in a file's bytes. */
function forgedUnlink(sha1: Buffer, user: string): Buffer {
  return encodeSmallRecord({ kind: RecordKind.Unlink, mimeCode: 0, slotLen: 256, seq: 1e9, time: Date.now(), cookie: 0, sha1 }, { u: user });
}

function options(root: string, over: Partial<NodeOptions> = {}): NodeOptions {
  return {
    root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync: true,
    ...(catalogBootId === null ? { bootId: null } : {}), ...over,
  };
}

function sha1(b: Buffer) {
  return createHash('sha1').update(b).digest('hex');
}

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A stream of `buf` in small chunks, with no declared length. */
function chunked(buf: Buffer, size = 7777): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

const CATALOG_MODES: Array<[string, null | undefined]> = [
  [ 'unsynced catalog', undefined ],
  [ 'synced catalog', null ],
];

for (const [ mode, bootId ] of CATALOG_MODES) describe(`lib: SonofsStore (standalone node; ${mode})`, () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>>;

  before(function() {
    // Without a boot id (not Linux) the catalog is synced whatever the suite asks.
    if (bootId === undefined && currentBootId() === undefined) this.skip();
    catalogBootId = bootId;
  });

  after(() => {
    catalogBootId = undefined;
  });

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-store-'));
    node = await openStandalone(options(root));
  });

  afterEach(async () => {
    await node?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('stores a stream and reads it back byte for byte, by buffer and by stream', async () => {
    const data = randomBytes(300_000);
    const r = await node.store.upload(chunked(data), { user: 'alice', filename: 'a.png' });
    assert.equal(r.size, data.length);
    assert.equal(r.fileHash, sha1(data));
    assert.equal(r.mime, 'image/png');
    assert.equal(r.deduplicated, false);
    const loc = decodeFileId(r.fileId);
    assert.deepEqual([ loc.group, loc.server, loc.size ], [ 1, 2, data.length ]);
    const got = await node.store.getFile(r.fileId);
    assert.equal(got.mime, 'image/png');
    assert(got.buffer.equals(data));
    assert((await collect(await node.store.createReadStream(r.fileId))).equals(data));
    assert((await collect(await node.store.createReadStream(r.fileId, { start: 10, end: 99 }))).equals(data.subarray(10, 100)));
  });

  it('stores an empty file', async () => {
    const r = await node.store.upload(Readable.from([]), { user: 'alice', filename: 'empty.txt' });
    assert.equal(r.size, 0);
    assert.equal(r.fileHash, sha1(Buffer.alloc(0)));
    assert.equal((await node.store.getFile(r.fileId)).buffer.length, 0);
    assert.equal((await collect(await node.store.createReadStream(r.fileId))).length, 0);
  });

  it('packs many small files into one bundle (merging)', async () => {
    const ids = [];
    for (let i = 0; i < 50; i++) {
      ids.push((await node.store.upload(Readable.from([ Buffer.from(`file number ${i}`) ]), { user: 'u', filename: `${i}.txt` })).fileId);
    }
    assert.equal(new Set(ids.map(id => decodeFileId(id).bundle)).size, 1);
    assert.equal(listBundles(root).length, 1);
    for (let i = 0; i < 50; i++) assert.equal((await node.store.getFile(ids[i])).buffer.toString(), `file number ${i}`);
  });

  it('deduplicates identical content and keeps each user\'s own name', async () => {
    const data = randomBytes(50_000);
    const a = await node.store.upload(chunked(data), { user: 'alice', filename: 'mine.bin' });
    const b = await node.store.upload(chunked(data), { user: 'bob', filename: 'yours.bin' });
    assert.equal(b.deduplicated, true);
    assert.equal(b.fileId, a.fileId);
    assert.equal((await node.store.getUserFile('alice', a.fileHash))!.name, 'mine.bin');
    assert.equal((await node.store.getUserFile('bob', a.fileHash))!.name, 'yours.bin');
    assert.equal((await node.catalog.getBlob(a.fileHash))!.refs, 2);
    // bob deletes: alice keeps her file
    assert.equal((await node.store.remove('bob', a.fileHash)).contentGone, false);
    assert.equal(await node.store.getUserFile('bob', a.fileHash), undefined);
    assert((await node.store.getFile(a.fileId)).buffer.equals(data));
    // alice deletes: the content is garbage and its id answers 404
    assert.equal((await node.store.remove('alice', a.fileHash)).contentGone, true);
    await assert.rejects(node.store.getFile(a.fileId), { status: 404 });
  });

  it('answers a wrong cookie, an unknown location and a malformed id correctly', async () => {
    const r = await node.store.upload(chunked(Buffer.from('secret')), { user: 'u', filename: 's.txt' });
    const loc = decodeFileId(r.fileId);
    const { encodeFileId } = await import('../../lib');
    await assert.rejects(node.store.getFile(encodeFileId({ ...loc, cookie: (loc.cookie + 1) >>> 0 })), { status: 404 });
    await assert.rejects(node.store.getFile(encodeFileId({ ...loc, offset: loc.offset + 8 })), { status: 404 });
    await assert.rejects(node.store.getFile(encodeFileId({ ...loc, bundle: 999 })), { status: 404 });
    // another node's id: not found here, and the error says which node has it (a cluster routes the read there)
    for (const read of [ (id: string) => node.store.getFile(id), (id: string) => node.store.stat(id), (id: string) => node.store.createReadStream(id) ]) {
      await assert.rejects(read(encodeFileId({ ...loc, group: 7, server: 9 })), { status: 404, code: 'FILE_NOT_FOUND', group: 7, server: 9 });
    }
    await assert.rejects(node.store.getFile('not-an-id'), { status: 400, code: 'INVALID_FILE_ID' });
    await assert.rejects(node.store.getFile(r.fileId.slice(0, -1) + '='), { status: 400 });
  });

  it('rejects a stream over maxFileSize with 413 and keeps nothing', async () => {
    await node.close();
    node = await openStandalone(options(root, { maxFileSize: 100_000 }));
    await assert.rejects(node.store.upload(chunked(randomBytes(150_000)), { user: 'u' }), { status: 413 });
    assert.deepEqual(await node.store.listUserFiles('u', 10), []);
    const ok = await node.store.upload(chunked(randomBytes(1000)), { user: 'u' });
    assert.equal((await node.store.listUserFiles('u', 10)).length, 1);
    // the 413 came before any space was reserved: the next upload starts the extent
    assert.equal(decodeFileId(ok.fileId).offset, 0);
  });

  it('records nothing for an upload whose client aborts', async () => {
    const source = new Readable({ read() {} });
    const p = node.store.upload(source, { user: 'u', sizeBound: 10 * MiB });
    source.push(randomBytes(4096));
    setImmediate(() => source.destroy());
    await assert.rejects(p, { status: 400, code: 'UPLOAD_ABORTED' });
    assert.deepEqual(await node.store.listUserFiles('u', 10), []);
    const next = await node.store.upload(chunked(Buffer.from('after')), { user: 'u' });
    assert.equal(decodeFileId(next.fileId).offset, 0); // the aborted upload (bound 10 MiB) had a bundle of its own
  });

  it('gives a file larger than a bundle a bundle of its own', async () => {
    const big = randomBytes(9 * MiB);
    const r = await node.store.upload(chunked(big, 1 << 16), { user: 'u', filename: 'big.bin', size: big.length });
    const loc = decodeFileId(r.fileId);
    assert.equal(loc.offset, 0);
    assert.equal(sha1(await collect(await node.store.createReadStream(r.fileId))), sha1(big));
    const small = await node.store.upload(chunked(Buffer.from('x')), { user: 'u' });
    assert.notEqual(decodeFileId(small.fileId).bundle, loc.bundle);
  });

  it('rejects a declared size that does not match the bytes', async () => {
    await assert.rejects(node.store.upload(chunked(Buffer.alloc(10)), { user: 'u', size: 11 }), { code: 'SIZE_MISMATCH' });
    await assert.rejects(node.store.upload(chunked(Buffer.alloc(10)), { user: 'u', size: 9 }), { code: 'SIZE_MISMATCH' });
  });

  it('lists a user\'s files newest first and renames only the link', async () => {
    const a = await node.store.upload(chunked(Buffer.from('one')), { user: 'u', filename: '1.txt' });
    await new Promise(r => setTimeout(r, 5));
    const b = await node.store.upload(chunked(Buffer.from('two')), { user: 'u', filename: '2.txt' });
    assert.deepEqual((await node.store.listUserFiles('u', 10)).map(f => f.name), [ '2.txt', '1.txt' ]);
    assert.deepEqual((await node.store.listUserFiles('u', 1)).map(f => f.sha1), [ b.fileHash ]);
    const renamed = await node.store.rename('u', a.fileHash, '名字.txt');
    assert.equal(renamed.name, '名字.txt');
    assert.equal(renamed.at, (await node.store.getUserFile('u', a.fileHash))!.at);
  });

  it('keeps a dangerous name only as a name', async () => {
    const r = await node.store.upload(chunked(Buffer.from('x')), { user: 'u', filename: '../../etc/pa\u0000sswd' });
    assert.equal(r.filename, '../../etc/passwd');
    assert(!fs.existsSync(path.join(root, '..', 'etc')));
    await assert.rejects(node.store.upload(chunked(Buffer.from('x')), { user: 'u', filename: 'x'.repeat(2000) }), { code: 'FILENAME_TOO_LONG' });
  });

  it('rebuilds the whole catalog from the bundles when it is lost', async () => {
    const data = randomBytes(20_000);
    const a = await node.store.upload(chunked(data), { user: 'alice', filename: 'a.bin' });
    await node.store.upload(chunked(data), { user: 'bob', filename: 'b.bin' });
    const c = await node.store.upload(chunked(Buffer.from('gone')), { user: 'alice', filename: 'c.txt' });
    await node.store.rename('bob', a.fileHash, 'b2.bin');
    await node.store.remove('alice', c.fileHash);
    const before = await node.store.listUserFiles('alice', 10);
    await node.close();
    fs.rmSync(path.join(root, 'meta'), { recursive: true });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'rebuild');
    assert.deepEqual(await node.store.listUserFiles('alice', 10), before);
    assert.equal((await node.store.getUserFile('bob', a.fileHash))!.name, 'b2.bin');
    assert.equal((await node.catalog.getBlob(a.fileHash))!.refs, 2);
    assert.equal(await node.catalog.getBlob(c.fileHash), undefined);
    assert((await node.store.getFile(a.fileId)).buffer.equals(data));
    await assert.rejects(node.store.getFile(c.fileId), { status: 404 });
    // new writes never land on rebuilt space
    const d = await node.store.upload(chunked(Buffer.from('new')), { user: 'alice' });
    assert.notEqual(decodeFileId(d.fileId).bundle, decodeFileId(a.fileId).bundle);
  });

  it('replays records newer than a catalog restored from an old copy, and never reuses their space', async () => {
    const first = await node.store.upload(chunked(Buffer.from('before the snapshot')), { user: 'u', filename: 'old.txt' });
    await node.close();
    const snapshot = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-meta-'));
    fs.cpSync(path.join(root, 'meta'), snapshot, { recursive: true });
    node = await openStandalone(options(root));
    const later = await node.store.upload(chunked(Buffer.from('after the snapshot')), { user: 'u', filename: 'new.txt' });
    await node.store.rename('u', first.fileHash, 'old-renamed.txt');
    await node.close();
    // the catalog goes back in time; the bundles do not
    fs.rmSync(path.join(root, 'meta'), { recursive: true });
    fs.cpSync(snapshot, path.join(root, 'meta'), { recursive: true });
    fs.rmSync(snapshot, { recursive: true });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'replay');
    assert.equal(node.recovery.applied, 2);
    assert.equal((await node.store.getFile(later.fileId)).buffer.toString(), 'after the snapshot');
    assert.deepEqual((await node.store.listUserFiles('u', 10)).map(f => f.name), [ 'new.txt', 'old-renamed.txt' ]);
    // the restored allocator position pointed into used space: new writes go elsewhere
    const next = await node.store.upload(chunked(Buffer.from('third')), { user: 'u' });
    assert.notEqual(decodeFileId(next.fileId).bundle, decodeFileId(later.fileId).bundle);
    assert.equal((await node.store.getFile(later.fileId)).buffer.toString(), 'after the snapshot');
  });

  /** Stores a, torn and c in a row, damages torn's record on disk, rebuilds: a and c stay, torn is gone. */
  async function rebuildAfterDamage(damage: (fd: number, offset: number) => void) {
    const a = await node.store.upload(chunked(randomBytes(5000)), { user: 'u', filename: 'a' });
    const torn = await node.store.upload(chunked(randomBytes(5000)), { user: 'u', filename: 'torn' });
    const c = await node.store.upload(chunked(randomBytes(5000)), { user: 'u', filename: 'c' });
    assert.ok(decodeFileId(c.fileId).offset > decodeFileId(torn.fileId).offset, 'c follows the damaged record in its extent');
    await node.close();
    const loc = decodeFileId(torn.fileId);
    const fd = fs.openSync(bundlePath(root, loc.bundle), 'r+');
    damage(fd, loc.offset);
    fs.closeSync(fd);
    fs.rmSync(path.join(root, 'meta'), { recursive: true });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal(node.recovery.corrupt, 1);
    assert.deepEqual((await node.store.listUserFiles('u', 10)).map(f => f.name).sort(), [ 'a', 'c' ]);
    assert.equal((await node.store.getFile(c.fileId)).size, 5000);
    assert.equal((await node.store.getFile(a.fileId)).size, 5000);
    await assert.rejects(node.store.getFile(torn.fileId), { status: 404 });
  }

  const victimFile = () => node.store.upload(chunked(Buffer.from('alice keeps this')), { user: 'alice', filename: 'keep' });

  /** Rebuilds the catalog from the bundles (the node is closed): alice's file must still be hers. */
  async function rebuildKeeps(victim: { fileId: string; fileHash: string }) {
    fs.rmSync(path.join(root, 'meta'), { recursive: true });
    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal((await node.store.getUserFile('alice', victim.fileHash))?.name, 'keep');
    assert.equal((await node.store.getFile(victim.fileId)).buffer.toString(), 'alice keeps this');
  }

  it('skips a record torn by a crash when rebuilding, and keeps the records after it', async () => {
    // data that never reached the disk: the header is there, the bytes are not
    await rebuildAfterDamage((fd, offset) => fs.writeSync(fd, Buffer.alloc(1000), 0, 1000, offset + HEADER_SIZE + 2000));
  });

  it('steps over a record whose header a power cut tore, and keeps the records after it in its extent', async () => {
    // The final header's write was cut by a power loss: the disk has its first 16 bytes (magic, kind,
    // slot length) and the Pending header's other bytes. It no longer validates.
    await rebuildAfterDamage((fd, offset) => {
      const header = Buffer.alloc(HEADER_SIZE);
      fs.readSync(fd, header, 0, HEADER_SIZE, offset);
      pendingHeader(decodeHeader(header)!.slotLen).copy(header, 16, 16);
      assert.equal(decodeHeader(header), undefined);
      fs.writeSync(fd, header, 0, HEADER_SIZE, offset);
    });
  });

  it('resumes a scan past a large record whose header is damaged, never inside its data', async () => {
    const victim = await victimFile();
    // A file larger than an extent gets a lease of its own, which starts on an extent boundary: the next
    // boundary lies inside its data, at data byte extentSize - 96. A valid-looking Unlink sits there.
    const forged = forgedUnlink(Buffer.from(victim.fileHash, 'hex'), 'alice');
    const data = randomBytes(3 * MiB);
    forged.copy(data, MiB - HEADER_SIZE);
    const big = await node.store.upload(chunked(data, 1 << 16), { user: 'eve', filename: 'big', size: data.length });
    const loc = decodeFileId(big.fileId);
    assert.equal(loc.offset % MiB, 0);
    await node.close();
    // Power loss during the final header's write: its first 16 bytes (magic, slot length) are the
    // final header's, the rest still the Pending header's.
    const fd = fs.openSync(bundlePath(root, loc.bundle), 'r+');
    const header = Buffer.alloc(HEADER_SIZE);
    fs.readSync(fd, header, 0, HEADER_SIZE, loc.offset);
    pendingHeader(decodeHeader(header)!.slotLen).copy(header, 16, 16);
    header.writeUInt32LE(0, 92);
    fs.writeSync(fd, header, 0, HEADER_SIZE, loc.offset);
    fs.closeSync(fd);
    await rebuildKeeps(victim);
    await assert.rejects(node.store.getFile(big.fileId), { status: 404 });
  });

  it('keeps allocating after a restart without reusing leased space', async () => {
    const a = await node.store.upload(chunked(Buffer.from('first life')), { user: 'u' });
    await node.close();
    node = await openStandalone(options(root));
    const b = await node.store.upload(chunked(Buffer.from('second life')), { user: 'u' });
    const la = decodeFileId(a.fileId);
    const lb = decodeFileId(b.fileId);
    assert(lb.bundle !== la.bundle || lb.offset >= la.offset + 1024 * 1024, 'the new lease must start after the old one');
    assert.equal((await node.store.getFile(a.fileId)).buffer.toString(), 'first life');
  });

  it('never returns a record whose bytes were corrupted', async () => {
    const data = randomBytes(10_000);
    const r = await node.store.upload(chunked(data), { user: 'u' });
    const loc = decodeFileId(r.fileId);
    const fd = fs.openSync(bundlePath(root, loc.bundle), 'r+');
    fs.writeSync(fd, Buffer.from([ data[500] ^ 0xff ]), 0, 1, loc.offset + 96 + 500);
    fs.closeSync(fd);
    await assert.rejects(node.store.getFile(r.fileId), { code: 'CORRUPT_RECORD' });
    await assert.rejects(collect(await node.store.createReadStream(r.fileId)), { code: 'CORRUPT_RECORD' });
  });

  it('pads over a link whose catalog commit failed, so no rebuild brings it back', async () => {
    const r = await node.store.upload(chunked(Buffer.from('shared content')), { user: 'alice', filename: 'a.txt' });
    const catalog = node.store.catalog as any;
    const link = catalog.link;
    catalog.link = async (_u: string, _s: string, _n: string, write: (seq: number) => void) => {
      write(424242); // the record is written inside the transaction, then its commit fails
      throw new Error('Commit failed (see commitError for details)');
    };
    await assert.rejects(node.store.link('bob', r.fileHash, 'b.txt'), /Commit failed/);
    catalog.link = link;
    const records = scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records;
    assert.equal(records.some(x => x.seq === 424242), false, 'the failed link is still a record');
    assert.equal(await node.store.getUserFile('bob', r.fileHash), undefined);
  });

  it('fails an upload whose retried commit would turn its link back into a blob, and keeps nothing of it', async () => {
    const catalog = node.store.catalog as any;
    const commitUpload = catalog.commitUpload;
    // what a retry after a failed commit can do: first the content existed (link), then it was deleted (blob)
    catalog.commitUpload = async (_c: unknown, writeBlob: (seq: number) => void, writeLink: (seq: number) => void) => {
      writeLink(515151);
      writeBlob(515152);
    };
    await assert.rejects(node.store.upload(chunked(Buffer.from('racing content')), { user: 'alice', filename: 'r.txt' }),
      { code: 'COMMIT_RETRY_CONFLICT', status: 503 });
    catalog.commitUpload = commitUpload;
    const records = scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records;
    assert.equal(records.some(x => x.seq === 515151 || x.seq === 515152), false);
    // the next upload is whole
    const next = await node.store.upload(chunked(Buffer.from('next content')), { user: 'alice', filename: 'n.txt' });
    assert.equal((await node.store.getFile(next.fileId)).buffer.toString(), 'next content');
  });

  it('keeps an upload whose commit went through although it was reported failed, and runs it only once', async () => {
    await node.store.upload(chunked(Buffer.from('leases the extent')), { user: 'alice' }); // so the next transaction is the upload's
    const db = (node.store.catalog as any).db;
    const { transaction } = db;
    let reported = 0;
    // The commit lands, then the caller is told it failed, as a retry would see it.
    db.transaction = async function(fn: () => unknown) {
      const result = await transaction.call(this, fn);
      if (reported++ === 0) throw Object.assign(new Error('Commit failed (see commitError for details)'), { commitError: new Error('MDB_BAD_TXN') });
      return result;
    };
    let r;
    try {
      r = await node.store.upload(chunked(Buffer.from('committed once')), { user: 'alice', filename: 'once.txt' });
    } finally {
      db.transaction = transaction;
    }
    assert.equal(reported, 2, 'the commit was run again, once');
    assert.equal(r.deduplicated, false, 'its own blob, not a link to itself');
    assert.equal((await node.store.getFile(r.fileId)).buffer.toString(), 'committed once');
    assert.equal((await node.store.getUserFile('alice', r.fileHash))?.name, 'once.txt');
    const records = scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records.filter(x => x.sha1 === r.fileHash);
    assert.deepEqual(records.map(x => x.kind), [ 'blob' ]);
  });

  it('syncs a bundle this process has not opened yet (the content of a dedup or a link, stored by another worker)', async () => {
    const r = await node.store.upload(chunked(Buffer.from('in bundle zero')), { user: 'alice' });
    const fresh = new BundleFiles(root);
    await fresh.sync(decodeFileId(r.fileId).bundle);
    fresh.closeAll();
  });

  it('writes concurrent uploads to distinct space and reads each back', async () => {
    const blobs = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 997));
    const results = await Promise.all(blobs.map((b, i) => node.store.upload(chunked(b, 1500), { user: 'u', filename: `${i}`, sizeBound: b.length + 300 })));
    for (let i = 0; i < blobs.length; i++) assert((await node.store.getFile(results[i].fileId)).buffer.equals(blobs[i]));
  });
  it('never reads user bytes left behind a shrunk record as records (forged tombstone)', async () => {
    const victim = await victimFile();
    // A deduplicated upload becomes a Link record at its slot's start; the upload's bytes stay
    // on disk right after it. Put a valid-looking Unlink of alice's file there.
    const linkLen = recordLength(0, encodeMeta({ u: 'carol', n: 'dup', at: Date.now() }).length);
    const forged = forgedUnlink(Buffer.from(victim.fileHash, 'hex'), 'alice');
    const payload = Buffer.concat([ Buffer.alloc(linkLen - HEADER_SIZE), forged, Buffer.alloc(4096) ]);
    await node.store.upload(chunked(payload), { user: 'bob', filename: 'first' });
    const dup = await node.store.upload(chunked(payload), { user: 'carol', filename: 'dup' });
    assert.equal(dup.deduplicated, true);
    await node.close();
    await rebuildKeeps(victim);
    assert.equal((await node.store.getUserFile('carol', dup.fileHash))?.name, 'dup');
  });

  it('reads no record out of the next file when a crash leaves a slot\'s Pending header instead of its final one', async () => {
    const victim = await victimFile();
    const cuts: Array<{ offset: number; length: number }> = [];
    const writer = node.store.writer;
    const reserve = writer.reserve.bind(writer);
    writer.reserve = async (bytes, body) => {
      const slot = await reserve(bytes, body);
      cuts.push({ offset: slot.offset, length: slot.length });
      return slot;
    };
    // Eve streams a file with a size bound three times its size: its slot is reserved for the bound.
    const x = await node.store.upload(chunked(randomBytes(100_000)), { user: 'eve', filename: 'x', sizeBound: 300_000 });
    writer.reserve = reserve;
    const xLoc = decodeFileId(x.fileId);
    const reserved = cuts.find(c => c.offset === xLoc.offset)!.length;
    const header = Buffer.alloc(HEADER_SIZE);
    const fd = fs.openSync(bundlePath(root, xLoc.bundle), 'r+');
    fs.readSync(fd, header, 0, HEADER_SIZE, xLoc.offset);
    // Her next file is cut where x's final header says x ends. She puts a valid-looking Unlink of
    // alice's file where x's Pending header says x ends, if that lies inside her file.
    const zStart = xLoc.offset + decodeHeader(header)!.slotLen;
    const forged = forgedUnlink(Buffer.from(victim.fileHash, 'hex'), 'alice');
    const zData = Buffer.alloc(400_000);
    forged.copy(zData, Math.max(0, xLoc.offset + reserved - (zStart + HEADER_SIZE)));
    const z = await node.store.upload(chunked(zData), { user: 'eve', filename: 'z', size: zData.length });
    assert.equal(decodeFileId(z.fileId).offset, zStart);
    await node.close();
    // Power loss: x's final header never reached the disk, its Pending header and z did.
    fs.writeSync(fd, pendingHeader(reserved), 0, HEADER_SIZE, xLoc.offset);
    fs.closeSync(fd);
    await rebuildKeeps(victim);
    assert.equal((await node.store.getUserFile('eve', z.fileHash))?.name, 'z');
  });

  it('gives the disk blocks of a large duplicate upload back, and its link record survives a rebuild', async () => {
    const data = randomBytes(3 * MiB);
    const a = await node.store.upload(chunked(data, 1 << 16), { user: 'alice', filename: 'a.bin', size: data.length });
    const used = () => listBundles(root).reduce((n, b) => n + fs.statSync(bundlePath(root, b)).blocks * 512, 0);
    const before = used();
    const dup = await node.store.upload(chunked(data, 1 << 16), { user: 'bob', filename: 'b.bin', size: data.length });
    assert.equal(dup.deduplicated, true);
    assert.ok(used() - before < 256 * 1024, `storing the duplicate kept ${used() - before} bytes of disk`);
    await node.close();
    fs.rmSync(path.join(root, 'meta'), { recursive: true });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal((await node.store.getUserFile('bob', dup.fileHash))?.name, 'b.bin');
    assert.equal(sha1((await node.store.getFile(a.fileId)).buffer), sha1(data));
  });

  it('settles an aborted slot only once a write into it has landed, and never cuts its space again', async () => {
    const slot = await node.store.writer.reserve(HEADER_SIZE + 512 * 1024);
    let landed = false;
    const late = slot.write(Buffer.alloc(512 * 1024, 0xee), HEADER_SIZE).then(() => { landed = true; });
    await slot.abort();
    assert.equal(landed, true, 'abort returned while a write into the slot was in flight');
    const next = await node.store.writer.reserve(HEADER_SIZE + 100);
    assert.ok(next.bundle !== slot.bundle || next.offset >= slot.offset + slot.length, `the aborted slot was cut again at ${next.offset}`);
    await Promise.all([ late, next.abort() ]);
    const data = randomBytes(100_000);
    const r = await node.store.upload(chunked(data), { user: 'u', size: data.length });
    assert((await collect(await node.store.createReadStream(r.fileId))).equals(data));
  });

  it('never brings back a record whose commit failed', async () => {
    const catalog = node.store.catalog;
    const commit = catalog.commitUpload.bind(catalog);
    catalog.commitUpload = async (_c, writeBlob) => {
      writeBlob(12345); // the final header is on disk, then the commit fails
      throw new Error('disk full');
    };
    await assert.rejects(node.store.upload(chunked(Buffer.from('never acknowledged')), { user: 'u', filename: 'lost' }), /disk full/);
    catalog.commitUpload = commit;
    const ok = await node.store.upload(chunked(Buffer.from('acknowledged')), { user: 'u', filename: 'kept' });
    await node.close();
    fs.rmSync(path.join(root, 'meta'), { recursive: true });

    node = await openStandalone(options(root));
    assert.deepEqual((await node.store.listUserFiles('u', 10)).map(f => f.name), [ 'kept' ]);
    assert.equal((await node.store.getFile(ok.fileId)).buffer.toString(), 'acknowledged');
  });

  it('cuts a bundle of its own down to the file when the length was unknown', async () => {
    const data = randomBytes(3 * MiB); // beyond the 1 MiB probe: reserved as large as maxFileSize
    const r = await node.store.upload(chunked(data, 65536), { user: 'u' });
    const loc = decodeFileId(r.fileId);
    assert.equal(loc.offset, 0);
    assert(fs.statSync(bundlePath(root, loc.bundle)).size < data.length + 4096, 'the bundle is trimmed to its one record');
    assert((await collect(await node.store.createReadStream(r.fileId))).equals(data));
    const next = await node.store.upload(chunked(Buffer.from('small')), { user: 'u' });
    assert.notEqual(decodeFileId(next.fileId).bundle, loc.bundle);
  });

  it('refuses to start with an extent size other than the one the store was created with', async () => {
    await node.close();
    await assert.rejects(openStandalone(options(root, { extentSize: 2 * MiB })), /created with extentSize 1048576/);
    node = await openStandalone(options(root));
  });
});

describe('lib: BundleFiles sync', () => {
  it('once an fdatasync of a bundle fails, no later sync of it reports success (its pages may be gone)', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-sync-'));
    try {
      createBundle(root, 0, 4096);
      const files = new BundleFiles(root);
      const fd = files.acquire(0);
      fs.closeSync(fd); // the next fdatasync on this fd fails (EBADF), as a failing disk would
      await assert.rejects(files.sync(0));
      // the fd number now names another, healthy file: a fresh fdatasync would succeed
      const other = fs.openSync(path.join(root, 'other'), 'w');
      assert.equal(other, fd, 'the test needs the freed fd number to be reused');
      await assert.rejects(files.sync(0), 'a sync after a failed one must fail too');
      fs.closeSync(other);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('lib: file id cookies', () => {
  it('draws every cookie fresh from the pool, refilling it instead of repeating it', () => {
    // 3,000 cookies span three fills of the 1,024-cookie pool.
    const cookies = Array.from({ length: 3000 }, () => newCookie());
    assert.ok(cookies.every(c => Number.isInteger(c) && c >= 0 && c <= 0xffffffff));
    // Two fills giving the same bytes would repeat 1,024 cookies; random 32-bit values collide rarely.
    assert.ok(new Set(cookies).size >= 2990, `only ${new Set(cookies).size} distinct cookies of 3000`);
  });
});

describe('lib: SlotWriter', () => {
  it('never cuts the slot of a small file whose write failed part way again, so no scan reads its bytes as records', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-slot-'));
    try {
      createBundle(root, 0, 8 * MiB);
      let leased = 0;
      const source = { allocate: async () => ({ bundle: 0, offset: MiB * leased++, length: MiB, owner: process.pid }), release: () => undefined };
      const writer = new SlotWriter(new BundleFiles(root), source as any, MiB);
      // The file's bytes hold a forged tombstone of another user's file.
      const forged = forgedUnlink(Buffer.alloc(20, 7), 'bob');
      const body = Buffer.concat([ Buffer.alloc(104), forged, Buffer.alloc(3000) ]);
      const { writevSync, writeSync } = fs;
      // The disk fills up: the vectored write lands 2,000 bytes, finishing it fails.
      (fs as any).writevSync = (fd: number, bufs: Buffer[], at: number) => writeSync(fd, Buffer.concat(bufs).subarray(0, 2000), 0, 2000, at);
      (fs as any).writeSync = () => {
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      };
      try {
        await assert.rejects(writer.reserve(HEADER_SIZE + body.length + 50, [ body ]), { code: 'ENOSPC' });
      } finally {
        (fs as any).writevSync = writevSync;
        (fs as any).writeSync = writeSync;
      }
      // Nothing more is cut from that extent (neither header might have landed); the next slot starts
      // the next lease (its process then dies: it stays Pending).
      const next = await writer.reserve(HEADER_SIZE + 100);
      assert.equal(next.offset, MiB, `the failed slot's extent was cut again at ${next.offset}`);
      const scan = scanRange(root, 0, 0, MiB, { group: 1, server: 2, extentSize: MiB, verifyData: true });
      assert.deepEqual(scan.records, [], 'no record read out of the file\'s bytes');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
