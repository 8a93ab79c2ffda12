import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { open } from 'lmdb';
import {
  HEADER_SIZE, LmdbCatalog, RecordKind, bundlePath, catalogDir, createBundle, decodeFileId, encodeFileId, encodeSmallRecord, mimeCode,
  openStandalone, scanAll,
} from '../../lib';
import { decodeBlob, decodeLink, encodeBlob, encodeLink } from '../../lib/catalog/lmdb-encoding';
import { BOOT, MiB, USERS, assertSameFiles, expectHeld, options, writeFormat1Store } from '../fixtures/catalog-v1/format1-store';
import { LmdbCatalogV1 } from '../fixtures/catalog-v1/lmdb-catalog-v1';

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

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

  /** A store of format 2 with two files of alice's, closed. */
  async function writeFormat2Store() {
    node = await openStandalone(options(root));
    const files = [];
    for (const name of [ 'a.txt', 'b.txt' ]) files.push(await node.store.upload(Readable.from([ Buffer.from(`content of ${name}`) ]), { user: 'alice', filename: name }));
    await node.close();
    node = undefined;
    return files;
  }

  /** Reads, or changes, the catalog as bytes. */
  async function withRawCatalog<T>(fn: (db: ReturnType<typeof open<Buffer, Buffer>>) => T): Promise<T> {
    const db = open<Buffer, Buffer>({ path: catalogDir(root), keyEncoding: 'binary', encoding: 'binary' });
    try {
      return fn(db);
    } finally {
      await db.close();
    }
  }

  it('a version before format 2 refuses to start on a catalog of format 2, saying why, before it writes anything', async () => {
    const files = await writeFormat2Store();
    const before = fs.readFileSync(path.join(catalogDir(root), 'data.mdb'));
    // what format 1's leader did first at every start (lib/standalone.ts and recoverCatalog at 3cd8fef)
    const v1 = new LmdbCatalogV1(catalogDir(root), { bootId: BOOT });
    try {
      assert.equal(await v1.isEmpty(), false);
      await assert.rejects(v1.getAllocState(), /"\[egg-sonofs\] this catalog is in format 2: this older egg-sonofs cannot read it \(no downgrade\)"/);
    } finally {
      await v1.close();
    }
    assert(fs.readFileSync(path.join(catalogDir(root), 'data.mdb')).equals(before));
    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'reconcile');
    assert.deepEqual((await node.store.listUserFiles('alice', 10)).map(f => f.fileId), files.reverse().map(f => f.fileId));
  });

  it('rebuilds a catalog of format 2 that a version before it wrote to (before catalogs had the guard)', async () => {
    const files = await writeFormat2Store();
    await withRawCatalog(db => db.removeSync(Buffer.from('alloc')));
    // an older version's start: no allocator state of its own, so it replays every bundle into format-1 keys
    const v1 = new LmdbCatalogV1(catalogDir(root), { bootId: BOOT });
    assert.equal(await v1.getAllocState(), undefined);
    await v1.replay(scanAll(root, { group: 1, server: 2, extentSize: MiB, verifyData: true }).records);
    await v1.close({ last: true });
    assert.notEqual(await withRawCatalog(db => db.getBinary(Buffer.from('seq'))), undefined);
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: BOOT }), /a version of egg-sonofs older than format 2 wrote to the catalog/);

    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, true);
    assert.equal(node.recovery.mode, 'rebuild');
    assert.deepEqual((await node.store.listUserFiles('alice', 10)).map(f => f.fileId), files.reverse().map(f => f.fileId));
    assert.equal((await node.catalog.anyBlob())?.fileId, files[0].fileId);
    await node.close();
    node = undefined;
    // none of format 1's keys is left (its blobs, links, time index, seq), and the guard is back
    await withRawCatalog(db => {
      assert.match(db.getBinary(Buffer.from('alloc'))!.toString('latin1'), /this older egg-sonofs cannot read it/);
      const kinds: Record<string, number> = {};
      for (const key of db.getKeys()) kinds[String.fromCharCode(key[0])] = (kinds[String.fromCharCode(key[0])] ?? 0) + 1;
      // allocator state and guard, two blobs, the user count, the format, one user, two links, the seq, two times
      assert.deepEqual(kinds, { a: 2, b: 2, c: 1, f: 1, i: 1, l: 2, s: 1, t: 2 });
    });
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
