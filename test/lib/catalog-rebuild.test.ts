import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  HEADER_SIZE, RecordKind, RecordMeta, bundlePath, catalogDir, crc32c, createBundle, decodeFileId, decodeHeader, encodeHeader, encodeMeta,
  encodeSmallRecord, openStandalone, recordLength,
} from '../../lib';

const MiB = 1 << 20;
const CHILD = path.join(__dirname, '..', 'fixtures', 'scripts', 'rebuild-small-heap.ts');
const USERS = [ 'alice', 'bob', 'carol' ];
/** Old space for the child: the rebuild that held every record as an object ran out of 160 MiB for 300,000; this one needs under 44. */
const HEAP_MIB = 96;

const content = (i: number) => Buffer.from(`content of file ${i}`);
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest();

/**
 * Blob records of `count` small files written straight into `bundles` bundles, record i in bundle
 * i % bundles, so seq order jumps between them as with workers writing side by side.
 */
function writeBundles(root: string, count: number, bundles: number, bundleSize: number): void {
  const parts: Buffer[][] = Array.from({ length: bundles }, () => []);
  const used = new Array<number>(bundles).fill(0);
  const time = Date.UTC(2026, 11, 4);
  for (let i = 0; i < count; i++) {
    const data = content(i);
    const meta = encodeMeta({ u: USERS[i % USERS.length], n: `f${i}.txt` });
    const slotLen = recordLength(data.length, meta.length);
    const header = encodeHeader({
      kind: RecordKind.Blob, mimeCode: 0, slotLen, dataLen: data.length, seq: i + 1, time: time + i, cookie: i, metaLen: meta.length,
      sha1: sha1(data), dataCrc: crc32c(data), metaCrc: crc32c(meta),
    });
    const b = i % bundles;
    parts[b].push(header, data, meta, Buffer.alloc(slotLen - HEADER_SIZE - data.length - meta.length));
    used[b] += slotLen;
  }
  for (let b = 0; b < bundles; b++) {
    assert(used[b] <= bundleSize, 'the records fit their bundle');
    createBundle(root, b, bundleSize);
    const fd = fs.openSync(bundlePath(root, b), 'r+');
    fs.writeSync(fd, Buffer.concat(parts[b]), 0, used[b], 0);
    fs.closeSync(fd);
  }
}

describe('lib: rebuilding a large catalog', () => {
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-rebuild-'));
  });

  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it(`rebuilds the catalog of 300,000 files in a process with ${HEAP_MIB} MiB of old space`, async () => {
    const count = 300_000;
    const bundleSize = 32 * MiB;
    writeBundles(root, count, 3, bundleSize);
    const r = spawnSync(process.execPath, [ `--max-old-space-size=${HEAP_MIB}`, '-r', 'ts-node/register/transpile-only', CHILD, root, String(bundleSize) ],
      { encoding: 'utf8', timeout: 110_000 });
    assert.equal(r.status, 0, `the rebuild should finish: ${r.signal} ${r.stderr.slice(-2000)}`);
    const { mode, applied, corrupt } = JSON.parse(r.stdout);
    assert.deepEqual({ mode, applied, corrupt }, { mode: 'rebuild', applied: count, corrupt: 0 });

    const node = await openStandalone({
      root, group: 1, server: 2, bundleSize, extentSize: bundleSize, maxFileSize: 64 * MiB, fsync: true, bootId: 'boot-1',
    });
    try {
      assert.equal(node.recovery.mode, 'reconcile');
      for (const [ u, user ] of USERS.entries()) {
        const files = await node.store.listUserFiles(user, count);
        assert.equal(files.length, count / USERS.length, `${user}'s files`);
        // newest first: the last file of the user, then back in steps of three
        assert.deepEqual(files.slice(0, 3).map(f => f.name), [ 0, 1, 2 ].map(k => `f${count - USERS.length + u - k * USERS.length}.txt`));
      }
      for (const i of [ 0, 1, 2, 99_999, 150_001, count - 1 ]) {
        const data = content(i);
        const f = await node.store.getUserFile(USERS[i % USERS.length], sha1(data).toString('hex'));
        assert.equal(f?.name, `f${i}.txt`);
        assert((await node.store.getFile(f!.fileId)).buffer.equals(data), `the bytes of f${i}.txt`);
        assert.equal((await node.catalog.getBlob(f!.sha1))?.refs, 1);
      }
    } finally {
      await node.close();
    }
  });
});

describe('lib: records a catalog cannot hold', () => {
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-rebuild-'));
  });

  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('a record with a checksum that holds what the catalog cannot store (a link time past 48 bits or negative, a name that is no string, a user the store refuses) is counted as corrupt, and the start goes on', async () => {
    const time = Date.UTC(2026, 11, 5);
    const good = Buffer.from('good bytes');
    const hash = sha1(good);
    const parts: Buffer[] = [];
    let seq = 0;
    const blob = (data: Buffer, meta: unknown) => {
      const m = encodeMeta(meta as RecordMeta);
      const slotLen = recordLength(data.length, m.length);
      const header = encodeHeader({
        kind: RecordKind.Blob, mimeCode: 0, slotLen, dataLen: data.length, seq: ++seq, time, cookie: seq, metaLen: m.length,
        sha1: sha1(data), dataCrc: crc32c(data), metaCrc: crc32c(m),
      });
      parts.push(header, data, m, Buffer.alloc(slotLen - HEADER_SIZE - data.length - m.length));
    };
    const link = (meta: unknown) => {
      const slotLen = recordLength(0, encodeMeta(meta as RecordMeta).length);
      const r = encodeSmallRecord({ kind: RecordKind.Link, mimeCode: 0, slotLen, seq: ++seq, time, cookie: 0, sha1: hash }, meta as RecordMeta);
      parts.push(r, Buffer.alloc(slotLen - r.length));
    };
    blob(good, { u: 'alice', n: 'good.txt' });
    blob(Buffer.from('a'), { u: 'alice', n: 42 });
    blob(Buffer.from('b'), { u: 'alice', n: { text: 'b.txt' } });
    blob(Buffer.from('c'), { u: 'alice', n: 'c.txt', m: [ 'text/plain' ] });
    blob(Buffer.from('d'), { u: 'x'.repeat(2000), n: 'd.txt' });
    link({ u: 'bob', n: 'late.txt', at: 2 ** 48 });
    link({ u: 'carol', n: 'early.txt', at: -1 });
    link({ u: 'dave', n: 'half.txt', at: 1.5 });
    link({ u: 'erin', n: 'text.txt', at: String(time) });
    link({ u: 'bob', n: 'linked.txt', at: time });
    // records end to end, each slot as long as its header says
    const bundle = Buffer.concat(parts);
    createBundle(root, 0, 8 << 20);
    const fd = fs.openSync(bundlePath(root, 0), 'r+');
    fs.writeSync(fd, bundle, 0, bundle.length, 0);
    fs.closeSync(fd);

    const node = await openStandalone({ root, group: 1, server: 2, bundleSize: 8 << 20, extentSize: 1 << 20, maxFileSize: 64 << 20, fsync: true, bootId: 'boot-1' });
    try {
      assert.equal(node.recovery.mode, 'rebuild');
      assert.equal(node.recovery.corrupt, 8);
      assert.equal(node.recovery.applied, 2);
      assert.deepEqual((await node.store.listUserFiles('alice', 10)).map(f => f.name), [ 'good.txt' ]);
      assert.deepEqual((await node.store.listUserFiles('bob', 10)).map(f => f.name), [ 'linked.txt' ]);
      for (const user of [ 'carol', 'dave', 'erin' ]) assert.deepEqual(await node.store.listUserFiles(user, 10), [], user);
      const f = await node.store.getUserFile('bob', hash.toString('hex'));
      assert((await node.store.getFile(f!.fileId)).buffer.equals(good));
    } finally {
      await node.close();
    }
  });
});

describe('lib: a rebuild that reads data', () => {
  let root: string;
  const readSync = fs.readSync;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-rebuild-'));
  });

  afterEach(() => {
    fs.readSync = readSync;
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('pads a blob only when a second, whole read confirms its data is damaged: a short read or an I/O error loses no file', async () => {
    const opts = { root, group: 1, server: 2, bundleSize: 32 << 20, extentSize: 16 << 20, maxFileSize: 64 << 20, fsync: true, bootId: 'boot-1' };
    // larger than the scan's window (1 MiB): its data is read at offsets known in advance
    const blobs = [ 0, 1, 2 ].map(i => Buffer.alloc(3 << 20, `file ${i} `));
    let node = await openStandalone(opts);
    const stored: { fileId: string }[] = [];
    for (const [ i, data ] of blobs.entries()) stored.push(await node.store.upload(Readable.from([ data ]), { user: 'u', filename: `f${i}` }));
    await node.close();
    const loc = (i: number) => decodeFileId(stored[i].fileId);
    const kindAt = (i: number) => {
      const head = Buffer.alloc(HEADER_SIZE);
      const fd = fs.openSync(bundlePath(root, loc(i).bundle), 'r');
      fs.readSync(fd, head, 0, HEADER_SIZE, loc(i).offset);
      fs.closeSync(fd);
      return decodeHeader(head)!.kind;
    };
    /** Whether a read is of the second MiB of file i's data. */
    const secondMiB = (i: number, fd: number, position: number) =>
      position === loc(i).offset + HEADER_SIZE + (1 << 20) && fs.fstatSync(fd).ino === fs.statSync(bundlePath(root, loc(i).bundle)).ino;
    // a lost catalog: the rebuild reads every blob's data. File 0's second MiB comes back short once
    // (a read cut short); reading file 1's second MiB fails with EIO, every time (a bad sector).
    fs.rmSync(catalogDir(root), { recursive: true });
    let shortOnce = true;
    fs.readSync = ((fd: number, buffer: NodeJS.ArrayBufferView, offset: number, length: number, position: number) => {
      if (shortOnce && secondMiB(0, fd, position)) {
        shortOnce = false;
        return readSync(fd, buffer, offset, Math.min(length, 100), position);
      }
      if (secondMiB(1, fd, position)) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      return readSync(fd, buffer, offset, length, position);
    }) as typeof fs.readSync;
    node = await openStandalone(opts);
    try {
      assert.equal(shortOnce, false, 'the short read happened');
      assert.equal(node.recovery.mode, 'rebuild');
      assert.equal(node.recovery.corrupt, 1);
      assert.deepEqual((await node.store.listUserFiles('u', 10)).map(f => f.name), [ 'f2', 'f0' ]);
    } finally {
      await node.close();
    }
    fs.readSync = readSync;
    assert((await readBack(opts, stored[0].fileId)).equals(blobs[0]));
    // the unreadable one was left out of that catalog, not padded: once the disk reads it, a rebuild finds it
    assert.equal(kindAt(1), RecordKind.Blob);
    fs.rmSync(catalogDir(root), { recursive: true });
    node = await openStandalone(opts);
    try {
      assert.equal(node.recovery.corrupt, 0);
      assert.deepEqual((await node.store.listUserFiles('u', 10)).map(f => f.name), [ 'f2', 'f1', 'f0' ]);
      assert((await node.store.getFile(stored[1].fileId)).buffer.equals(blobs[1]));
    } finally {
      await node.close();
    }
  });
});

async function readBack(opts: Parameters<typeof openStandalone>[0], fileId: string): Promise<Buffer> {
  const node = await openStandalone(opts);
  try {
    return (await node.store.getFile(fileId)).buffer;
  } finally {
    await node.close();
  }
}
