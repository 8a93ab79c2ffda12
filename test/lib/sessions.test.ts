import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  openStandalone, NodeOptions, UploadSessions, LmdbSessionStore, sessionsDir, scanAll, SonofsError, decodeFileId, bundlePath,
  ProcessRef, sweepSessions,
} from '../../lib';

const MiB = 1 << 20;
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

function options(root: string, fsync = true): NodeOptions {
  return { root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync };
}

/** Disk blocks a file really uses (sparse files use fewer than their size). */
const usedBytes = (file: string) => fs.statSync(file).blocks * 512;

async function rejectsWith(p: Promise<unknown>, status: number, code?: string) {
  await assert.rejects(p, (err: SonofsError) => {
    assert.equal(err.status, status, `${err.code}: ${err.message}`);
    if (code) assert.equal(err.code, code);
    return true;
  });
}

describe('lib: upload sessions', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>>;
  let sessions: UploadSessions;

  async function open(over: { ttlMs?: number; lockTimeoutMs?: number; fsync?: boolean; maxOpenPerUser?: number; maxRanges?: number } = {}) {
    const fsync = over.fsync ?? true;
    node = await openStandalone(options(root, fsync));
    sessions = new UploadSessions(node.store, new LmdbSessionStore(sessionsDir(root), '1.2'), {
      root, node: '1.2', ttlMs: over.ttlMs ?? 60_000, doneTtlMs: 60_000, lockTimeoutMs: over.lockTimeoutMs ?? 2_000, fsync, maxFileSize: 64 * MiB,
      maxOpenPerUser: over.maxOpenPerUser, maxRanges: over.maxRanges,
    });
  }

  async function close() {
    await sessions.close();
    await node.close();
  }

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-sessions-'));
    await open();
  });

  afterEach(async () => {
    await close().catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('stores the file in the write that brings the last byte, in one lock, with its ranges recorded', async () => {
    const data = randomBytes(300_000);
    const s = await sessions.create({ protocol: 'tus', user: 'alice', length: data.length, filename: 'one.bin' });
    await sessions.write(s.id, { user: 'alice', at: 0, source: Readable.from([ data.subarray(0, 1000) ]), ordered: true, complete: { user: 'alice' } });
    assert.equal((await sessions.get(s.id)).state, 'active', 'not complete yet');
    const out = await sessions.write(s.id, { user: 'alice', at: 1000, source: Readable.from([ data.subarray(1000) ]), ordered: true, complete: { user: 'alice' } });
    assert.equal(out.session.state, 'done');
    assert.equal(out.session.result!.fileHash, sha1(data));
    const stored = await sessions.get(s.id);
    assert.deepEqual([ stored.state, stored.offset, stored.ranges ], [ 'done', data.length, [ { start: 0, end: data.length } ] ]);
    assert.ok((await node.store.getFile(out.session.result!.fileId)).buffer.equals(data));
    assert.equal(await sessions.db.countKeys(`open:alice:`, 10), 0, 'no longer counted as open');
  });

  it('never writes into a stored file whose session missed its last update (a crash between the two)', async () => {
    const data = randomBytes(200_000);
    const s = await sessions.create({ protocol: 'tus', user: 'alice', length: data.length });
    const out = await sessions.write(s.id, { user: 'alice', at: 0, source: Readable.from([ data ]), ordered: true, complete: { user: 'alice' } });
    const fileId = out.session.result!.fileId;
    // the session as a crash right after the file's commit leaves it
    const crashed = () => sessions.db.update(s.id, cur => ({ ...cur, state: 'active', offset: 0, ranges: [], result: undefined }));
    await crashed();
    // a resuming client (an ordered write) learns that the upload is whole; none of its bytes are written
    const files = node.store.files;
    const sync = files.sync.bind(files);
    const synced: number[] = [];
    files.sync = async (bundle: number) => { synced.push(bundle); return sync(bundle); };
    try {
      const resumed = await sessions.write(s.id, {
        user: 'alice', at: 0, source: Readable.from([ randomBytes(data.length) ]), ordered: true, complete: { user: 'alice' },
      });
      assert.deepEqual([ resumed.received, resumed.session.state, resumed.session.result?.fileId ], [ 0, 'done', fileId ]);
      assert.ok(synced.includes(s.space!.bundle), 'the file is made durable before it is reported (its commit may have died before its sync)');
    } finally {
      files.sync = sync;
    }
    assert.ok((await node.store.getFile(fileId)).buffer.equals(data), 'the stored file is intact');
    const after = await sessions.get(s.id);
    assert.deepEqual([ after.state, after.result?.fileId, after.offset ], [ 'done', fileId, data.length ]);
    // a writer of ranges (chunks) is refused; a reader (HEAD) sees the file
    await crashed();
    await rejectsWith(sessions.write(s.id, { user: 'alice', at: 0, length: 10, source: Readable.from([ randomBytes(10) ]) }), 409, 'UPLOAD_FINISHED');
    await crashed();
    const seen = await sessions.settle(await sessions.get(s.id));
    assert.deepEqual([ seen.state, seen.offset, seen.result?.fileId ], [ 'done', data.length, fileId ]);
    assert.ok((await node.store.getFile(fileId)).buffer.equals(data));
  });

  it('takes ordered writes into reserved space and completes into an ordinary, deduplicated file', async () => {
    const data = randomBytes(2 * MiB + 123);
    const s = await sessions.create({ protocol: 'tus', user: 'alice', length: data.length, filename: 'big.bin' });
    let at = 0;
    for (const part of [ data.subarray(0, 1000), data.subarray(1000, MiB), data.subarray(MiB) ]) {
      const out = await sessions.write(s.id, { user: 'alice', at, source: Readable.from([ part ]), ordered: true });
      at += part.length;
      assert.equal(out.received, part.length);
      assert.equal(out.session.offset, at);
    }
    const r = await sessions.complete(s.id, { user: 'alice' });
    assert.equal(r.fileHash, sha1(data));
    assert.equal(decodeFileId(r.fileId).offset, s.space!.offset, 'the file is where its bytes were written: no copy');
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
    assert.deepEqual(await sessions.complete(s.id, { user: 'alice' }), r, 'completing twice answers the same file');
    assert.equal((await node.store.getUserFile('alice', r.fileHash))?.name, 'big.bin');
    // the same bytes again by another user: a link, the content stored once
    const s2 = await sessions.create({ protocol: 'tus', user: 'bob', length: data.length });
    await sessions.write(s2.id, { user: 'bob', at: 0, source: Readable.from([ data ]), ordered: true });
    const r2 = await sessions.complete(s2.id, { user: 'bob', filename: 'copy.bin' });
    assert.equal(r2.fileId, r.fileId);
    assert.equal(r2.deduplicated, true);
    const blobs = scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records.filter(x => x.kind === 'blob');
    assert.equal(blobs.length, 1);
  });

  it('assembles ranges in any order, refuses to complete with a gap or a wrong sha1', async () => {
    const data = randomBytes(300_000);
    const s = await sessions.create({ protocol: 'chunked', user: 'u', length: data.length });
    const chunk = 100_000;
    const put = (i: number) => sessions.write(s.id, { user: 'u', at: i * chunk, length: Math.min(chunk, data.length - i * chunk), source: Readable.from([ data.subarray(i * chunk, (i + 1) * chunk) ]) });
    await Promise.all([ put(2), put(0) ]);
    assert.deepEqual(sessions.missing(await sessions.get(s.id)), [ { start: 100_000, end: 200_000 } ]);
    await rejectsWith(sessions.complete(s.id, { user: 'u' }), 409, 'UPLOAD_INCOMPLETE');
    // a chunk of the wrong size is discarded
    await rejectsWith(sessions.write(s.id, { user: 'u', at: chunk, length: chunk, source: Readable.from([ data.subarray(chunk, chunk + 10) ]) }), 400, 'SIZE_MISMATCH');
    assert.equal(sessions.missing(await sessions.get(s.id)).length, 1);
    await put(1);
    await rejectsWith(sessions.complete(s.id, { user: 'u', expectSha1: sha1(Buffer.from('other')) }), 400, 'FILE_HASH_MISMATCH');
    const r = await sessions.complete(s.id, { user: 'u', expectSha1: sha1(data) });
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
  });

  it('answers another user, a wrong offset and a wrong checksum without changing the upload', async () => {
    const data = randomBytes(10_000);
    const s = await sessions.create({ protocol: 'tus', user: 'alice', length: data.length });
    await rejectsWith(sessions.get(s.id, 'mallory'), 404, 'UPLOAD_NOT_FOUND');
    await rejectsWith(sessions.write(s.id, { user: 'mallory', at: 0, source: Readable.from([ data ]), ordered: true }), 404);
    await rejectsWith(sessions.write(s.id, { user: 'alice', at: 5, source: Readable.from([ data ]), ordered: true }), 409, 'OFFSET_MISMATCH');
    const bad = { algorithm: 'sha256', digest: createHash('sha256').update('nope').digest() };
    await rejectsWith(sessions.write(s.id, { user: 'alice', at: 0, source: Readable.from([ data ]), ordered: true, checksum: bad }), 460, 'CHECKSUM_MISMATCH');
    assert.equal((await sessions.get(s.id)).offset, 0);
    await rejectsWith(sessions.write(s.id, { user: 'alice', at: 0, source: Readable.from([ data, data ]), ordered: true }), 400, 'EXCEEDS_LENGTH');
    assert.equal((await sessions.get(s.id)).offset, 0);
    const good = { algorithm: 'sha1', digest: createHash('sha1').update(data).digest() };
    const out = await sessions.write(s.id, { user: 'alice', at: 0, source: Readable.from([ data ]), ordered: true, checksum: good });
    assert.equal(out.session.offset, data.length);
  });

  it('keeps the bytes of a cut body when asked (tus), discards them otherwise', async () => {
    const data = randomBytes(200_000);
    const s = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    const body = new PassThrough();
    const writing = sessions.write(s.id, { user: 'u', at: 0, source: body, ordered: true, keepPartial: true });
    body.write(data.subarray(0, 70_000));
    await new Promise(r => setTimeout(r, 50));
    body.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    const out = await writing;
    assert.equal(out.interrupted, true);
    assert.equal(out.session.offset, 70_000);
    await sessions.write(s.id, { user: 'u', at: 70_000, source: Readable.from([ data.subarray(70_000) ]), ordered: true });
    assert.equal((await node.store.getFile((await sessions.complete(s.id)).fileId)).buffer.equals(data), true);

    const c = await sessions.create({ protocol: 'chunked', user: 'u', length: 1000 });
    const cut = new PassThrough();
    const w = sessions.write(c.id, { user: 'u', at: 0, length: 1000, source: cut });
    cut.write(Buffer.alloc(500));
    await new Promise(r => setTimeout(r, 20));
    cut.destroy(new Error('aborted'));
    await rejectsWith(w, 400, 'UPLOAD_ABORTED');
    assert.deepEqual((await sessions.get(c.id)).ranges, []);
  });

  it('a kept partial write whose disk write failed keeps the running checksum at the bytes that landed', async () => {
    const data = randomBytes(300_000);
    const s = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    await sessions.write(s.id, { user: 'u', at: 0, source: Readable.from([ data.subarray(0, 100_000) ]), ordered: true, keepPartial: true });
    const before = await sessions.get(s.id);
    // The next write gets a read-only fd of the bundle, so its writev fails (EBADF).
    const files = node.store.files;
    const acquire = files.acquire.bind(files);
    const readOnly = fs.openSync(bundlePath(root, s.space!.bundle), 'r');
    files.acquire = (bundle: number) => {
      acquire(bundle); // balanced by the write's release()
      return readOnly;
    };
    try {
      const out = await sessions.write(s.id, { user: 'u', at: 100_000, source: Readable.from([ data.subarray(100_000, 200_000) ]), ordered: true, keepPartial: true });
      assert.equal(out.interrupted, true);
      assert.equal(out.received, 0);
      assert.equal(out.session.offset, 100_000);
      assert.equal(out.session.crc, before.crc, 'the crc of what is on disk, not of the bytes that failed to land');
    } finally {
      files.acquire = acquire;
      fs.closeSync(readOnly);
    }
    await sessions.write(s.id, { user: 'u', at: 100_000, source: Readable.from([ data.subarray(100_000) ]), ordered: true });
    const r = await sessions.complete(s.id);
    assert.equal(r.fileHash, sha1(data));
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
  });

  it('hands the lock to a second writer of the same upload: the first stops and keeps its bytes', async () => {
    const data = randomBytes(100_000);
    const s = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    const stalled = new PassThrough();
    const first = sessions.write(s.id, { user: 'u', at: 0, source: stalled, ordered: true, keepPartial: true });
    stalled.write(data.subarray(0, 30_000));
    await new Promise(r => setTimeout(r, 100));
    // the resuming client asks where to continue, then sends the rest
    const second = (async () => {
      for (;;) {
        const cur = await sessions.get(s.id);
        try {
          return await sessions.write(s.id, { user: 'u', at: cur.offset, source: Readable.from([ data.subarray(cur.offset) ]), ordered: true });
        } catch (err) {
          if ((err as SonofsError).status !== 409) throw err;
        }
      }
    })();
    const [ a, b ] = await Promise.all([ first, second ]);
    assert.equal(a.interrupted, true);
    assert.equal(a.received, 30_000);
    assert.equal(b.session.offset, data.length);
    assert.equal(sha1((await node.store.getFile((await sessions.complete(s.id)).fileId)).buffer), sha1(data));
  });

  it('stages a deferred length, then stores it once the length is declared', async () => {
    const data = randomBytes(50_000);
    const s = await sessions.create({ protocol: 'tus', user: 'u', filename: 'later.txt' });
    assert.ok(s.staging && fs.existsSync(s.staging));
    await sessions.write(s.id, { user: 'u', at: 0, source: Readable.from([ data.subarray(0, 20_000) ]), ordered: true });
    await rejectsWith(sessions.complete(s.id), 409, 'LENGTH_UNKNOWN');
    await sessions.declareLength(s.id, 'u', data.length);
    await rejectsWith(sessions.declareLength(s.id, 'u', 7), 400, 'LENGTH_FIXED');
    await sessions.write(s.id, { user: 'u', at: 20_000, source: Readable.from([ data.subarray(20_000) ]), ordered: true });
    const r = await sessions.complete(s.id);
    assert.equal(r.mime, 'text/plain');
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
    assert.equal(fs.existsSync(s.staging!), false);
  });

  it('resumes after the node restarts, and a crash between commit and bookkeeping does not store twice', async () => {
    const data = randomBytes(120_000);
    const s = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    await sessions.write(s.id, { user: 'u', at: 0, source: Readable.from([ data.subarray(0, 60_000) ]), ordered: true });
    await close();
    await open();
    const cur = await sessions.get(s.id, 'u');
    assert.equal(cur.offset, 60_000);
    await sessions.write(s.id, { user: 'u', at: 60_000, source: Readable.from([ data.subarray(60_000) ]), ordered: true });
    // commit the file as complete() would, then "crash" before the session is marked done
    const { SessionSpace } = require('../../lib/sessions/space');
    const committed = await node.store.commitSpace(new SessionSpace(node.store.files, cur.space), {
      user: 'u', size: data.length, sha1: createHash('sha1').update(data).digest(), crc: require('../../lib').crc32c(data),
    });
    const r = await sessions.complete(s.id);
    assert.equal(r.fileId, committed.fileId);
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
  });

  it('cancels (410 after) and sweeps expired uploads with their bytes, keeping finished files', async () => {
    await close();
    // Short enough for b to expire below, long enough that a is not gone before its write on a loaded machine.
    await open({ ttlMs: 500 });
    const a = await sessions.create({ protocol: 'chunked', user: 'u', length: 5000, key: 'u:abc' });
    await sessions.write(a.id, { user: 'u', at: 0, length: 5000, source: Readable.from([ randomBytes(5000) ]) });
    assert.equal(await sessions.findByKey('u:abc'), a.id);
    await sessions.cancel(a.id, 'u');
    await rejectsWith(sessions.get(a.id, 'u'), 410, 'UPLOAD_CANCELLED');
    assert.equal(await sessions.findByKey('u:abc'), undefined);

    const b = await sessions.create({ protocol: 'tus', user: 'u', length: 9000 });
    const data = randomBytes(3000);
    const done = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    await sessions.write(done.id, { user: 'u', at: 0, source: Readable.from([ data ]), ordered: true });
    const file = await sessions.complete(done.id);
    await new Promise(r => setTimeout(r, 550));
    await rejectsWith(sessions.get(b.id, 'u'), 410, 'UPLOAD_EXPIRED');
    assert.ok(await sessions.sweep(Date.now() + 120_000) >= 3);
    assert.equal(await sessions.db.get(b.id), undefined);
    assert.ok((await node.store.getFile(file.fileId)).buffer.equals(data), 'a finished file outlives its session');
    // the pending spaces became padding: a rebuild finds only the finished file
    const blobs = scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records.filter(x => x.kind === 'blob');
    assert.deepEqual(blobs.map(x => x.fileId), [ file.fileId ]);
  });
  it('records the node that holds a session\'s bytes; a node\'s own store sweeps every expired session on it, whatever node made it', async () => {
    await close();
    await open({ ttlMs: 200 });
    const mine = await sessions.create({ protocol: 'tus', user: 'u', length: 4000 });
    assert.equal(mine.node, '1.2');
    // made under another node name (the root was once another group or server): its bytes are still on this disk
    const renamed = { ...await sessions.create({ protocol: 'tus', user: 'u', length: 4000 }), node: '1.3' };
    await sessions.db.put(renamed);
    await new Promise(r => setTimeout(r, 250));
    assert.equal(await sweepSessions(sessions.db, root, Date.now()), 2);
    assert.equal(await sessions.db.get(mine.id), undefined);
    assert.equal(await sessions.db.get(renamed.id), undefined);
  });

  it('judges a lock holder by its node and pid through the store\'s liveness, not by a pid alone', async () => {
    const dir = path.join(root, 'shared-sessions');
    // two nodes' stores over one shared session database; node B's holders are alive while B is in the map
    const map = new Set([ 'A', 'B' ]);
    const asked: ProcessRef[] = [];
    const liveness = (h: ProcessRef) => { asked.push(h); return map.has(h.node); };
    const a = new LmdbSessionStore(dir, 'A', liveness);
    const b = new LmdbSessionStore(dir, 'B', liveness);
    try {
      assert.equal(await b.tryLock('s1', 'b-writer', 'exclusive', 60_000, false), true);
      // same pid on this machine, but another node's holder: A waits for it while B is alive
      assert.equal(await a.tryLock('s1', 'a-writer', 'exclusive', 60_000, false), false);
      assert.deepEqual(asked.at(-1), { node: 'B', pid: process.pid });
      map.delete('B');
      // B left the map (stopped beating): its lock is free although its pid lives here
      assert.equal(await a.tryLock('s1', 'a-writer', 'exclusive', 60_000, false), true);
      assert.equal(await b.renewLock('s1', 'b-writer', 60_000), false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('forgets a received range that a refused write overwrote, so the chunk is sent again', async () => {
    const data = randomBytes(30_000);
    const s = await sessions.create({ protocol: 'chunked', user: 'u', length: data.length });
    const put = (at: number, bytes: Buffer, digest = createHash('md5').update(bytes).digest()) =>
      sessions.write(s.id, { user: 'u', at, length: bytes.length, source: Readable.from([ bytes ]), checksum: { algorithm: 'md5', digest } });
    await put(0, data.subarray(0, 10_000));
    await put(10_000, data.subarray(10_000, 20_000));
    // the same chunk again, with bytes that fail their checksum: written over the good ones, then refused
    const junk = randomBytes(10_000);
    await rejectsWith(put(10_000, junk, createHash('md5').update('x').digest()), 460, 'CHECKSUM_MISMATCH');
    assert.deepEqual(sessions.missing(await sessions.get(s.id)), [ { start: 10_000, end: 30_000 } ]);
    await put(10_000, data.subarray(10_000, 20_000));
    await put(20_000, data.subarray(20_000));
    // a whole-file digest in another algorithm (fupload's md5) is verified in the same read
    const md5 = (b: Buffer) => createHash('md5').update(b).digest();
    await rejectsWith(sessions.complete(s.id, { expectDigest: { algorithm: 'md5', digest: md5(junk) } }), 400, 'FILE_HASH_MISMATCH');
    const r = await sessions.complete(s.id, { expectSha1: sha1(data), expectDigest: { algorithm: 'md5', digest: md5(data) } });
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
  });

  it('lists lookup keys by prefix, and lets the sweep keep a tombstone of an expired upload', async () => {
    await close();
    await open({ ttlMs: 30 });
    const a = await sessions.create({ protocol: 'task', user: 'u', length: 100, key: 'q:a' });
    const b = await sessions.create({ protocol: 'chunked', user: 'u', length: 100, key: 'q:b' });
    await sessions.db.setKey('other', a.id);
    assert.deepEqual(await sessions.db.keys('q:', 10), [ { key: 'q:a', id: a.id }, { key: 'q:b', id: b.id } ]);
    assert.deepEqual(await sessions.db.keys('q:', 1), [ { key: 'q:a', id: a.id } ]);
    await new Promise(r => setTimeout(r, 50));
    const seen: string[] = [];
    await sessions.sweep(Date.now(), x => {
      seen.push(x.id);
      return x.protocol === 'task' ? { ...x, state: 'cancelled', expires: Date.now() + 60_000, extra: { expired: true } } : undefined;
    });
    assert.deepEqual(seen.sort(), [ a.id, b.id ].sort());
    const tomb = await sessions.db.get(a.id);
    assert.equal(tomb?.state, 'cancelled');
    assert.equal(tomb?.space, undefined);
    assert.deepEqual(tomb?.extra, { expired: true });
    assert.equal(await sessions.db.get(b.id), undefined);
    assert.deepEqual(await sessions.db.keys('q:', 10), []);
  });

  it('stops writing the moment a body is cut: chunks still queued never land after the offset is recorded', async () => {
    // fsync off: no fdatasync gives a stray write time to land before the bookkeeping
    await close();
    await open({ fsync: false });
    const data = randomBytes(4 * MiB);
    const s = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    const body = new PassThrough({ highWaterMark: 64 * 1024 });
    for (let i = 0; i < 32; i++) body.write(data.subarray(i * 65536, (i + 1) * 65536));
    // the client goes away right after the first chunk reaches the engine
    const pipe = body.pipe.bind(body);
    body.pipe = (<T extends NodeJS.WritableStream>(dest: T) => {
      const r = pipe(dest);
      body.once('data', () => process.nextTick(() => body.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }))));
      return r;
    }) as typeof body.pipe;
    const out = await sessions.write(s.id, { user: 'u', at: 0, source: body, ordered: true, keepPartial: true });
    assert.equal(out.interrupted, true);
    await new Promise(r => setTimeout(r, 100)); // a stray write would have landed by now
    const cur = await sessions.get(s.id);
    assert.equal(cur.offset, out.session.offset);
    const rest = Readable.from(Array.from({ length: Math.ceil((data.length - cur.offset) / 65536) }, (_, i) => data.subarray(cur.offset + i * 65536, cur.offset + (i + 1) * 65536)));
    await sessions.write(s.id, { user: 'u', at: cur.offset, source: rest, ordered: true });
    const r = await sessions.complete(s.id);
    assert.equal(r.fileHash, sha1(data));
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data), 'the record checks out: bytes, sha1 and crc agree');
  });

  it('gives the disk blocks of a cancelled upload, and of one whose content was already stored, back at once', async () => {
    const data = randomBytes(3 * MiB);
    const s = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    await sessions.write(s.id, { user: 'u', at: 0, source: Readable.from([ data ]), ordered: true });
    const file = bundlePath(root, s.space!.bundle);
    const before = usedBytes(file);
    await sessions.cancel(s.id, 'u');
    assert.ok(before - usedBytes(file) >= data.length - 64 * 1024, `freed ${before - usedBytes(file)} of ${data.length} bytes`);

    const first = await node.store.upload(Readable.from([ data ]), { user: 'a', size: data.length });
    const dup = await sessions.create({ protocol: 'tus', user: 'u', length: data.length });
    await sessions.write(dup.id, { user: 'u', at: 0, source: Readable.from([ data ]), ordered: true });
    const dupFile = bundlePath(root, dup.space!.bundle);
    const withData = usedBytes(dupFile);
    const r = await sessions.complete(dup.id);
    assert.equal(r.deduplicated, true);
    assert.equal(r.fileId, first.fileId);
    assert.ok(withData - usedBytes(dupFile) >= data.length - 64 * 1024, 'the duplicate bytes were freed');
    assert.ok((await node.store.getFile(first.fileId)).buffer.equals(data));
    assert.equal((await node.store.getUserFile('u', r.fileHash))?.fileId, first.fileId, 'the link record survived the punch');
  });

  it('makes two writers of the same chunk take turns, so a failed copy cannot spoil a verified one', async () => {
    const data = randomBytes(200_000);
    const s = await sessions.create({ protocol: 'chunked', user: 'u', length: data.length });
    const chunk = data.subarray(0, 100_000);
    const stalled = new PassThrough();
    const first = sessions.write(s.id, { user: 'u', at: 0, length: chunk.length, source: stalled });
    stalled.write(Buffer.alloc(50_000, 0xee)); // wrong bytes, and it will be cut
    await new Promise(r => setTimeout(r, 50));
    let secondDone = false;
    const second = sessions.write(s.id, { user: 'u', at: 0, length: chunk.length, source: Readable.from([ chunk ]),
      checksum: { algorithm: 'sha1', digest: createHash('sha1').update(chunk).digest() } }).then(o => { secondDone = true; return o; });
    await new Promise(r => setTimeout(r, 150));
    assert.equal(secondDone, false, 'the second copy waits for the first');
    stalled.destroy(new Error('aborted'));
    await rejectsWith(first, 400, 'UPLOAD_ABORTED');
    await second;
    await sessions.write(s.id, { user: 'u', at: 100_000, length: 100_000, source: Readable.from([ data.subarray(100_000) ]) });
    const r = await sessions.complete(s.id, { expectSha1: sha1(data) });
    assert.ok((await node.store.getFile(r.fileId)).buffer.equals(data));
  });

  it('limits unfinished uploads per user (429) and the separate ranges of one upload (400)', async () => {
    await close();
    await open({ maxOpenPerUser: 2 });
    const a = await sessions.create({ protocol: 'chunked', user: 'u', length: 10 });
    await sessions.create({ protocol: 'chunked', user: 'u', length: 10 });
    await rejectsWith(sessions.create({ protocol: 'chunked', user: 'u', length: 10 }), 429, 'TOO_MANY_UPLOADS');
    await sessions.create({ protocol: 'chunked', user: 'other', length: 10 });
    // a user whose id begins with another's and a colon is counted apart
    await sessions.create({ protocol: 'chunked', user: 'u:', length: 10 });
    await sessions.create({ protocol: 'chunked', user: 'u:', length: 10 });
    await rejectsWith(sessions.create({ protocol: 'chunked', user: 'u:', length: 10 }), 429, 'TOO_MANY_UPLOADS');
    await sessions.cancel(a.id, 'u');
    await sessions.create({ protocol: 'chunked', user: 'u', length: 10 });
    // lone surrogates are no user id (they would read back as another user)
    await rejectsWith(sessions.create({ protocol: 'chunked', user: 'x\ud800', length: 10 }), 400, 'INVALID_USER');
    await rejectsWith(node.store.upload(Readable.from([ Buffer.from('x') ]), { user: 'x\udc00y', filename: 'a' }), 400, 'INVALID_USER');

    await close();
    await open({ maxRanges: 2 });
    const f = await sessions.create({ protocol: 'chunked', user: 'v', length: 10 });
    const put = (at: number) => sessions.write(f.id, { user: 'v', at, length: 1, source: Readable.from([ Buffer.from('x') ]) });
    await put(0);
    await put(4);
    await rejectsWith(put(8), 400, 'TOO_FRAGMENTED');
    for (const at of [ 1, 2, 3, 5, 6, 7, 8, 9 ]) await put(at); // bytes that join existing ranges are always taken
    assert.deepEqual((await sessions.get(f.id)).ranges, [ { start: 0, end: 10 } ]);
  });
});
