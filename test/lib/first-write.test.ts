import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { openStandalone, UploadSessions, LmdbSessionStore, sessionsDir, scanAll, SonofsError } from '../../lib';

const MiB = 1 << 20;
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/** The engine's lazy sessions (first-write.ts): no space until the first write. */
describe('lib: a lazy session\'s first write', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>>;
  let sessions: UploadSessions;

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-first-write-'));
    node = await openStandalone({ root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync: true });
    sessions = new UploadSessions(node.store, new LmdbSessionStore(sessionsDir(root), '1.2'), {
      root, node: '1.2', ttlMs: 60_000, doneTtlMs: 60_000, lockTimeoutMs: 2_000, fsync: true, maxFileSize: 64 * MiB, lazyMax: 100_000,
    });
  });

  afterEach(async () => {
    await sessions.close();
    await node.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const create = (length: number | undefined, lazy = true) => sessions.create({ protocol: 'tus', user: 'u', length, lazy, filename: 'f.bin' });
  const whole = (data: Buffer) => ({ user: 'u', at: 0, source: Readable.from([ data ]), ordered: true, keepPartial: true, complete: { user: 'u' }, bodyLength: data.length });

  it('is lazy only when asked, with a length from 1 to lazyMax', async () => {
    assert.equal((await create(5000)).space, undefined);
    assert.ok((await create(5000, false)).space, 'not asked');
    assert.ok((await create(100_001)).space, 'above lazyMax');
    assert.ok((await create(undefined)).staging, 'a deferred length stages as before');
  });

  it('stores a whole first write as one record, the one file in the bundles', async () => {
    const data = randomBytes(20_000);
    const s = await create(data.length);
    const out = await sessions.write(s.id, whole(data));
    assert.equal(out.session.state, 'done');
    assert.equal(out.received, data.length);
    assert.equal(out.session.result!.fileHash, sha1(data));
    const stored = await sessions.get(s.id);
    assert.equal(stored.state, 'done');
    assert.equal(stored.space, undefined);
    assert.deepEqual(stored.ranges, [ { start: 0, end: data.length } ]);
    assert.ok((await node.store.getFile(stored.result!.fileId)).buffer.equals(data));
    const blobs = scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records.filter(x => x.kind === 'blob');
    assert.equal(blobs.length, 1);
    assert.equal(await node.store.getUserFile('u', sha1(data)).then(l => l?.name), 'f.bin');
  });

  it('a partial first write reserves the space then; the rest completes it in place', async () => {
    const data = randomBytes(50_000);
    const s = await create(data.length);
    const first = await sessions.write(s.id, { ...whole(data.subarray(0, 10_000)), bodyLength: 10_000 });
    assert.equal(first.session.offset, 10_000);
    assert.ok(first.session.space);
    const rest = await sessions.write(s.id, { ...whole(data.subarray(10_000)), at: 10_000, bodyLength: 40_000 });
    assert.equal(rest.session.state, 'done');
    assert.equal(rest.session.result!.fileHash, sha1(data));
  });

  it('a whole first write cut short keeps nothing and reserves nothing; the next one stores the file', async () => {
    const data = randomBytes(60_000);
    const s = await create(data.length);
    const body = new PassThrough();
    const cut = sessions.write(s.id, { ...whole(data), source: body });
    body.write(data.subarray(0, 30_000));
    setTimeout(() => body.destroy(new Error('aborted')), 50);
    const out = await cut;
    assert.equal(out.interrupted, true);
    assert.equal(out.received, 0);
    const after = await sessions.get(s.id);
    assert.equal(after.offset, 0);
    assert.equal(after.space, undefined);
    assert.equal(after.state, 'active');
    const again = await sessions.write(s.id, whole(data));
    assert.equal(again.session.result!.fileHash, sha1(data));
  });

  it('a write that is refused for its size changes nothing', async () => {
    const data = randomBytes(10_000);
    const s = await create(data.length);
    await assert.rejects(sessions.write(s.id, { ...whole(Buffer.concat([ data, data ])), bodyLength: 20_000 }), (err: SonofsError) => err.status === 400);
    const after = await sessions.get(s.id);
    assert.equal(after.offset, 0);
  });

  it('cancel and the sweep remove a session that has no space yet', async () => {
    const a = await create(1000);
    await sessions.cancel(a.id, 'u');
    await assert.rejects(sessions.get(a.id), (err: SonofsError) => err.status === 410);
    await create(1000);
    assert.ok(await sessions.sweep(Date.now() + 120_000) >= 1);
  });
});

