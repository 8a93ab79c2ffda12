import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HEADER_SIZE, RecordKind, bundlePath, crc32c, createBundle, encodeHeader, encodeMeta, openStandalone, recordLength } from '../../lib';

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
