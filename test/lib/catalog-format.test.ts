import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { open } from 'lmdb';
import {
  BlobInfo, ExtentAllocator, HEADER_SIZE, LmdbCatalog, LocalExtentSource, NodeOptions, RecordKind, SonofsStore, UserFile, bundlePath,
  catalogDir, createBundle, decodeFileId, encodeFileId, encodeSmallRecord, fixLayout, mimeCode, openStandalone, scanAll,
} from '../../lib';
import { decodeBlob, decodeLink, encodeBlob, encodeLink } from '../../lib/catalog-encoding';
import { LmdbCatalogV1 } from '../fixtures/catalog-v1/lmdb-catalog-v1';

const MiB = 1 << 20;
const BOOT = 'boot-1';
const CRASHER = path.join(__dirname, '..', 'fixtures', 'scripts', 'catalog-rebuild-crash.ts');
const USERS = [ 'alice', 'bob', '6f1c2a4e-93b7-4c1d-a1f0-5b7e2d9c8e11' ];

function options(root: string, over: Partial<NodeOptions> = {}): NodeOptions {
  return { root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync: true, bootId: BOOT, ...over };
}

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/** What a store held, as its catalog answered: every user's files, every content's blob, and the bytes. */
interface Held {
  lists: Map<string, UserFile[]>;
  blobs: Map<string, BlobInfo>;
  content: Map<string, Buffer>;
  /** contents whose last link went */
  gone: { fileId: string; fileHash: string }[];
  records: number;
}

/**
 * Stores files through the engine with the catalog of format 1 (the code of the time): several
 * users, a duplicate, a 秒传 link, a rename, deletes, a type the file id has no code for, an
 * empty file, a name in Chinese. Answers what that catalog then held.
 */
async function writeFormat1Store(root: string): Promise<Held> {
  const opts = options(root);
  fixLayout(root, opts);
  const catalog = new LmdbCatalogV1(catalogDir(root), { bootId: BOOT });
  const allocator = new ExtentAllocator(catalog, opts);
  await allocator.init();
  const store = new SonofsStore(opts, catalog, new LocalExtentSource(allocator));
  const content = new Map<string, Buffer>();
  // A rebuild dates a link by its record, format 1 by its own clock a moment later; a list
  // sorted by time keeps its order through the rebuild only when operations are apart.
  const apart = () => new Promise(resolve => setTimeout(resolve, 3));
  const put = async (user: string, data: Buffer, filename: string, mime?: string) => {
    await apart();
    const r = await store.upload(Readable.from([ data ]), { user, filename, mime });
    content.set(r.fileHash, data);
    return r;
  };
  const [ alice, bob, carol ] = USERS;
  const files = [];
  for (let i = 0; i < 30; i++) files.push(await put(alice, randomBytes(100 + i * 97), `file-${String(i).padStart(6, '0')}.bin`));
  await put(alice, Buffer.from('# notes\n'), 'notes.md');
  await put(alice, Buffer.from('{"a":1}'), 'data.sonofs', 'application/x-sonofs-test');
  await put(alice, Buffer.alloc(0), 'empty.txt');
  await put(carol, randomBytes(3000), '季度报告 2026.pdf');
  assert.equal((await put(bob, content.get(files[0].fileHash)!, 'copy.bin')).deduplicated, true);
  await apart();
  await store.link(bob, files[3].fileHash, 'linked.bin');
  await apart();
  await store.rename(alice, files[1].fileHash, 'renamed.bin');
  await store.remove(alice, files[2].fileHash);
  await store.remove(alice, files[3].fileHash); // bob still links it
  const held: Held = { lists: new Map(), blobs: new Map(), content, gone: [ files[2] ], records: 0 };
  for (const user of USERS) held.lists.set(user, await store.listUserFiles(user, 1000));
  for (const hash of content.keys()) {
    const blob = await catalog.getBlob(hash);
    if (blob) held.blobs.set(hash, blob);
  }
  assert.equal(held.blobs.get(files[0].fileHash)!.refs, 2);
  assert.equal(held.blobs.get(files[2].fileHash), undefined);
  held.records = 35 + 1 + 1 + 2; // the uploads, the link, the rename, the deletes
  await store.close();
  await catalog.close({ last: true });
  return held;
}

/**
 * Links as a rebuild gives them. A 秒传 link's `at` and a rename's `mtime` are those of its
 * record, which the store takes from the clock a moment before the catalog takes its own: they
 * may differ by a millisecond (as in any rebuild from the bundles).
 */
function assertSameFiles(actual: UserFile[], expected: UserFile[], what: string) {
  const exact = ({ at: _at, mtime: _mtime, ...rest }: UserFile) => rest;
  assert.deepEqual(actual.map(exact), expected.map(exact), what);
  for (const [ i, f ] of actual.entries()) {
    assert(Math.abs(f.at - expected[i].at) <= 50 && Math.abs(f.mtime - expected[i].mtime) <= 50, `${what}: the times of ${f.name}`);
  }
}

/** The node holds exactly what the format-1 catalog held, and every byte of it reads back. */
async function expectHeld(node: Awaited<ReturnType<typeof openStandalone>>, held: Held) {
  for (const [ user, list ] of held.lists) {
    assertSameFiles(await node.store.listUserFiles(user, 1000), list, `${user}'s files`);
    for (const f of list) {
      assertSameFiles([ (await node.store.getUserFile(user, f.sha1))! ], [ f ], `${user}'s ${f.name}`);
      const read = await node.store.getFile(f.fileId);
      assert(read.buffer.equals(held.content.get(f.sha1)!), `the bytes of ${f.name}`);
      assert.equal(read.mime, f.mime);
    }
  }
  for (const [ hash, blob ] of held.blobs) assert.deepEqual(await node.catalog.getBlob(hash), blob);
  for (const gone of held.gone) {
    assert.equal(await node.catalog.getBlob(gone.fileHash), undefined);
    await assert.rejects(node.store.getFile(gone.fileId), { status: 404 });
  }
}

describe('lib: catalog format', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>> | undefined;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-format-'));
  });

  afterEach(async () => {
    await node?.close();
    node = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('rebuilds a catalog of format 1 from the bundles at start: every file listed and readable, nothing doubled', async () => {
    const held = await writeFormat1Store(root);
    // A worker must not open it before the leader rebuilt it.
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: BOOT }), /in format 1, older than this version's 2; the leader must rebuild it first/);

    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, true);
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);

    // and it goes on: new content, and a duplicate of content stored in format 1
    const [ alice, bob ] = USERS;
    const again = held.lists.get(alice)!.find(f => f.name === 'file-000005.bin')!;
    const dup = await node.store.upload(Readable.from([ held.content.get(again.sha1)! ]), { user: bob, filename: 'again.bin' });
    assert.equal(dup.deduplicated, true);
    assert.equal(dup.fileId, again.fileId);
    assert.equal((await node.catalog.getBlob(again.sha1))!.refs, 2);
    const fresh = await node.store.upload(Readable.from([ Buffer.from('after the rebuild') ]), { user: alice, filename: 'new.txt' });
    assert.equal((await node.store.listUserFiles(alice, 1))[0].fileId, fresh.fileId);
    await node.close();

    // the format is recorded: the next start keeps the catalog
    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, false);
    assert.notEqual(node.recovery.mode, 'rebuild');
    assert.equal((await node.store.getFile(fresh.fileId)).buffer.toString(), 'after the rebuild');
  });

  /** Runs a start that dies by SIGKILL part way through its rebuild (see the script). */
  function crashingRebuild(...args: string[]) {
    const r = spawnSync(process.execPath, [ '-r', 'ts-node/register/transpile-only', CRASHER, root, BOOT, ...args ], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, 'SIGKILL', `the rebuild should die by SIGKILL: ${r.stdout} ${r.stderr}`);
  }

  /** The keys of the catalog as a kill left it, by their first letter, with how many of each. */
  async function keysLeft(): Promise<Record<string, number>> {
    const probe = open<Buffer, Buffer>({ path: catalogDir(root), keyEncoding: 'binary', encoding: 'binary', readOnly: true });
    try {
      const kinds: Record<string, number> = {};
      for (const key of probe.getKeys()) {
        const kind = String.fromCharCode(key[0]);
        kinds[kind] = (kinds[kind] ?? 0) + 1;
      }
      return kinds;
    } finally {
      await probe.close();
    }
  }

  it('a kill inside a transaction of the rebuild leaves a catalog that the next start rebuilds whole', async () => {
    const held = await writeFormat1Store(root);
    crashingRebuild('inside', String(Math.floor(held.records / 2)));
    // the old catalog is gone, the new one holds its format and the rebuild's marker: the batch never committed
    assert.deepEqual(await keysLeft(), { f: 1, r: 1 });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, false);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
  });

  it('a kill between two transactions of the rebuild leaves a catalog that the next start drops and rebuilds whole', async () => {
    const held = await writeFormat1Store(root);
    crashingRebuild('between', '3', '5');
    // three batches of five records committed: a partial catalog, which says so
    const left = await keysLeft();
    assert.equal(left.r, 1);
    assert(left.b > 0 && left.b < held.blobs.size + held.gone.length, `blobs left: ${left.b}`);
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: BOOT }), /partly rebuilt from the bundles; the leader must rebuild it first/);

    node = await openStandalone(options(root, { replayBatch: 5 }));
    assert.equal(node.recovery.outdatedFormat, false);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    // the rebuild cut short read no data (a clean upgrade): neither does its second run
    assert.equal(node.recovery.verifiedData, false);
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
    assert.equal((await keysLeft()).r, undefined);
    await node.close();

    node = await openStandalone(options(root));
    assert.equal(node.recovery.unfinishedRebuild, false);
    assert.equal(node.recovery.mode, 'reconcile');
    await expectHeld(node, held);
  });

  it('reads no data to rebuild a catalog closed cleanly in an older format, and every blob\'s after an OS crash', async () => {
    const held = await writeFormat1Store(root);
    const [ alice ] = USERS;
    const victim = held.lists.get(alice)!.find(f => f.name === 'file-000007.bin')!;
    const others = held.lists.get(alice)!.filter(f => f !== victim);
    // its data changes on disk; its header and meta do not
    const loc = decodeFileId(victim.fileId);
    const fd = fs.openSync(bundlePath(root, loc.bundle), 'r+');
    fs.writeSync(fd, Buffer.from('not what was stored'), 0, 19, loc.offset + HEADER_SIZE + 10);
    fs.closeSync(fd);
    const format1 = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-format1-'));
    fs.cpSync(catalogDir(root), format1, { recursive: true });
    const restoreFormat1 = () => {
      fs.rmSync(catalogDir(root), { recursive: true, force: true });
      fs.cpSync(format1, catalogDir(root), { recursive: true });
    };

    try {
      // closed cleanly: headers and meta only, so the change goes unseen (until a read checks it)
      node = await openStandalone(options(root));
      assert.equal(node.recovery.outdatedFormat, true);
      assert.equal(node.recovery.verifiedData, false);
      assert.equal(node.recovery.corrupt, 0);
      assert.equal((await node.store.getUserFile(alice, victim.sha1))?.name, victim.name);
      await assert.rejects(node.store.getFile(victim.fileId), /failed its checksum/);
      await node.close();

      // the same catalog, open when the system went down: every blob's data is read
      restoreFormat1();
      fs.writeFileSync(`${catalogDir(root)}.unsynced`, 'boot-0\n');
      node = await openStandalone(options(root));
      assert.equal(node.recovery.tornByOsCrash, true);
      assert.equal(node.recovery.verifiedData, true);
      assert.equal(node.recovery.corrupt, 1);
      assert.equal(await node.store.getUserFile(alice, victim.sha1), undefined);
      assertSameFiles(await node.store.listUserFiles(alice, 1000), others, 'alice\'s files but the torn one');
      await node.close();

      // and a later rebuild that reads no data leaves it out too
      restoreFormat1();
      node = await openStandalone(options(root));
      assert.equal(node.recovery.verifiedData, false);
      assert.equal(node.recovery.corrupt, 0);
      assertSameFiles(await node.store.listUserFiles(alice, 1000), others, 'alice\'s files after a clean upgrade');
    } finally {
      fs.rmSync(format1, { recursive: true, force: true });
    }
  });

  it('a rebuild after an OS crash cut short by a kill reads every blob\'s data again', async () => {
    const held = await writeFormat1Store(root);
    fs.writeFileSync(`${catalogDir(root)}.unsynced`, 'boot-0\n');
    crashingRebuild('between', '2', '5');
    node = await openStandalone(options(root));
    assert.equal(node.recovery.tornByOsCrash, false);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.verifiedData, true);
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
  });

  it('takes the node identity of a store older than the pin from its format-1 catalog before rebuilding it', async () => {
    await writeFormat1Store(root);
    const file = path.join(root, 'layout.json');
    const { group, server, ...older } = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual([ group, server ], [ 1, 2 ]);
    fs.writeFileSync(file, JSON.stringify(older));

    await assert.rejects(openStandalone(options(root, { group: 0, server: 0 })), /created with group 1; config\.sonofs\.group is 0/);
    // the refused start left the old catalog alone
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: BOOT }), /in format 1/);
    node = await openStandalone(options(root));
    assert.deepEqual(node.recovery.adoptedLayout, [ 'group', 'server' ]);
    assert.equal(node.recovery.outdatedFormat, true);
  });

  it('scans a bundle of more records than a call takes arguments, as a rebuild of a million small files meets', () => {
    // link records end to end, written directly: the scan's own work, without storing 140,000 files
    const count = 140_000;
    const slot = 160;
    const bundle = Buffer.alloc(count * slot);
    const hash = randomBytes(20);
    for (let i = 0; i < count; i++) {
      encodeSmallRecord({ kind: RecordKind.Link, mimeCode: 0, slotLen: slot, seq: i + 1, time: 1, cookie: 0, sha1: hash }, { u: 'u', n: `f${i}`, at: 1 })
        .copy(bundle, i * slot);
    }
    createBundle(root, 0, bundle.length);
    fs.writeFileSync(bundlePath(root, 0), bundle);
    const r = scanAll(root, { group: 1, server: 2, extentSize: 64 * MiB, verifyData: true });
    assert.equal(r.records.length, count);
    assert.equal(r.records[count - 1].name, `f${count - 1}`);
  });

  it('refuses a catalog of a newer format, and leaves it as it is', async () => {
    fs.mkdirSync(catalogDir(root), { recursive: true });
    const db = open({ path: catalogDir(root), keyEncoding: 'binary', encoding: 'binary' });
    db.putSync(Buffer.from('f'), Buffer.from([ 3 ]));
    await db.close();
    const before = fs.readFileSync(path.join(catalogDir(root), 'data.mdb'));
    await assert.rejects(openStandalone(options(root)), /in format 3, newer than this version's 2: run a version of egg-sonofs that reads it/);
    assert(fs.readFileSync(path.join(catalogDir(root), 'data.mdb')).equals(before));
  });
});

describe('lib: LmdbCatalog in format 2', () => {
  let dir: string;
  let catalog: LmdbCatalog;
  let offset = 0;
  const noWrite = () => undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-catalog-'));
    catalog = new LmdbCatalog(dir, { bootId: null });
  });

  afterEach(async () => {
    await catalog.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function blob(data: Buffer, mime = 'application/octet-stream', time = Date.now()) {
    offset += 4096;
    const fileId = encodeFileId({ group: 3, server: 4, bundle: 7, offset, size: data.length, mimeCode: mimeCode(mime), cookie: 99 });
    return { sha1: sha1(data), fileId, size: data.length, mime, time };
  }

  it('keeps the type of a file that its id has no code for, and takes the others from the id', async () => {
    const custom = blob(Buffer.from('a'), 'application/x-sonofs-test');
    const png = blob(Buffer.from('b'), 'image/png');
    await catalog.commitUpload({ user: 'u', name: 'a.x', blob: custom }, noWrite, noWrite);
    await catalog.commitUpload({ user: 'u', name: 'b.png', blob: png }, noWrite, noWrite);
    assert.deepEqual(await catalog.getBlob(custom.sha1), { ...custom, refs: 1 });
    assert.deepEqual(await catalog.getBlob(png.sha1), { ...png, refs: 1 });
    assert.deepEqual((await catalog.listUserFiles('u', 10)).map(f => [ f.name, f.mime, f.size ]), [
      [ 'b.png', 'image/png', 1 ], [ 'a.x', 'application/x-sonofs-test', 1 ],
    ]);
  });

  it('finds nothing for a sha1 in another spelling (upper case, short, not hex), as format 1 did', async () => {
    const b = blob(Buffer.from('x'));
    await catalog.commitUpload({ user: 'u', name: 'x', blob: b }, noWrite, noWrite);
    for (const other of [ b.sha1.toUpperCase(), b.sha1.slice(0, 38), `${b.sha1.slice(0, 39)}g`, `${b.sha1}00` ]) {
      assert.equal(await catalog.getBlob(other), undefined);
      assert.equal(await catalog.getUserFile('u', other), undefined);
      await assert.rejects(catalog.link('v', other, 'n', noWrite), { code: 'FILE_NOT_FOUND' });
      await assert.rejects(catalog.rename('u', other, 'n', noWrite), { code: 'FILE_NOT_FOUND' });
      await assert.rejects(catalog.unlink('u', other, noWrite), { code: 'FILE_NOT_FOUND' });
    }
    assert.equal((await catalog.getUserFile('u', b.sha1))!.name, 'x');
  });

  it('keeps each user\'s files apart, past the users whose numbers take more than one byte', async () => {
    const users = Array.from({ length: 300 }, (_, i) => (i % 2 ? `user-${i}` : `${'é'.repeat(i % 7)}${i}`));
    const time = Date.now();
    for (const [ i, user ] of users.entries()) {
      // every user one file of their own and one shared with the next user, all at the same millisecond
      const own = blob(Buffer.from(`own ${i}`), 'text/plain', time);
      await catalog.commitUpload({ user, name: `own-${i}`, blob: own }, noWrite, noWrite);
      const shared = blob(Buffer.from(`shared ${i}`), 'text/plain', time + 1);
      await catalog.commitUpload({ user, name: `shared-${i}`, blob: shared }, noWrite, noWrite);
      // the next user's upload of the same bytes: its own space, so its own file id until the catalog links it
      const dup = blob(Buffer.from(`shared ${i}`), 'text/plain', time + 1);
      await catalog.commitUpload({ user: users[(i + 1) % users.length], name: `from-${i}`, blob: dup }, noWrite, noWrite);
    }
    assert.deepEqual(await catalog.listUserFiles('nobody', 10), []);
    for (const [ i, user ] of users.entries()) {
      const prev = (i + users.length - 1) % users.length;
      const names = (await catalog.listUserFiles(user, 10)).map(f => f.name);
      assert.deepEqual(names.slice(2), [ `own-${i}` ], user);
      assert.deepEqual(names.slice(0, 2).sort(), [ `from-${prev}`, `shared-${i}` ].sort(), user);
    }
  });

  it('stores a link changed before it was made (a clock set back) and counts past one byte', () => {
    const at = Date.UTC(2026, 11, 4);
    for (const mtime of [ at, at + 1, at - 1, at + 86_400_000 * 400, at - 3_600_000 ]) {
      for (const name of [ '', 'a', '季度报告 2026.pdf' ]) assert.deepEqual(decodeLink(encodeLink({ name, at, mtime })), { name, at, mtime });
    }
    const b = { ...blob(Buffer.from('r')), refs: 0 };
    for (const refs of [ 0, 1, 127, 128, 300, 2 ** 31 ]) {
      assert.deepEqual(decodeBlob(b.sha1, encodeBlob({ ...b, refs })), { ...b, refs });
    }
  });
});
