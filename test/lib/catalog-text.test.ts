import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NodeOptions, catalogDir, encodeFileId, mimeCode, openStandalone } from '../../lib';
import { decodeBlob, decodeLink, encodeBlob, encodeLink, userKey } from '../../lib/catalog-encoding';

const MiB = 1 << 20;

function options(root: string): NodeOptions {
  return { root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync: true, bootId: 'boot-1' };
}

describe('lib: text in catalog keys and values', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>> | undefined;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-text-'));
  });

  afterEach(async () => {
    await node?.close();
    node = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('keeps apart two users whose ids differ only by a lone surrogate (UTF-8 makes both "x\\ufffd"), before and after a rebuild', async () => {
    const owner = 'x\ud800';
    const other = 'x\ufffd';
    const data = Buffer.from('the owner\'s bytes');
    node = await openStandalone(options(root));
    const mine = await node.store.upload(Readable.from([ data ]), { user: owner, filename: 'a.txt' });

    const expectApart = async (otherHasCopy: boolean) => {
      const n = node!;
      assert.deepEqual((await n.store.listUserFiles(owner, 10)).map(f => [ f.user, f.name, f.fileId ]), [ [ owner, 'a.txt', mine.fileId ] ]);
      assert.equal((await n.store.getUserFile(owner, mine.fileHash))?.name, 'a.txt');
      const seen = await n.store.listUserFiles(other, 10);
      assert.deepEqual(seen.map(f => [ f.user, f.name ]), otherHasCopy ? [ [ other, 'copy.txt' ] ] : []);
      if (!otherHasCopy) {
        assert.equal(await n.store.getUserFile(other, mine.fileHash), undefined);
        await assert.rejects(n.store.rename(other, mine.fileHash, 'taken.txt'), { code: 'FILE_NOT_FOUND' });
        await assert.rejects(n.store.remove(other, mine.fileHash), { code: 'FILE_NOT_FOUND' });
      }
      assert.equal((await n.store.getUserFile(owner, mine.fileHash))?.name, 'a.txt', 'the owner\'s file is untouched');
    };
    await expectApart(false);

    // the other uploads the same bytes: a link of its own, which it may delete without touching the owner's
    const copy = await node.store.upload(Readable.from([ data ]), { user: other, filename: 'copy.txt' });
    assert.equal(copy.deduplicated, true);
    await expectApart(true);
    assert.deepEqual(await node.store.remove(other, mine.fileHash), { contentGone: false });
    await expectApart(false);
    assert.equal((await node.store.getFile(mine.fileId)).buffer.toString(), data.toString());

    // the bundles' records (JSON meta) keep both ids exactly: a rebuild keeps them apart too
    await node.close();
    node = undefined;
    fs.rmSync(catalogDir(root), { recursive: true, force: true });
    node = await openStandalone(options(root));
    assert.equal(node.recovery.mode, 'rebuild');
    await expectApart(false);
  });

  it('keeps the bytes of well-formed text as format 2 always wrote them, and gives back text with lone surrogates exactly', () => {
    // existing catalogs stay valid: their keys are found again
    assert.deepEqual(userKey('alice'), Buffer.from('ialice'));
    assert.deepEqual(userKey('季度'), Buffer.concat([ Buffer.from('i'), Buffer.from('季度', 'utf8') ]));
    assert.notDeepEqual(userKey('x\ud800'), userKey('x\ufffd'));
    assert.notDeepEqual(userKey('\udc00\ud800'), userKey('\ud800\udc00'));
    const at = Date.UTC(2026, 11, 5);
    for (const name of [ 'plain', '季度报告.pdf', '\ud83d\ude00.png', 'a\ud800', '\udfff', 'x\ufffd', '' ]) {
      assert.deepEqual(decodeLink(encodeLink({ name, at, mtime: at })), { name, at, mtime: at });
    }
    assert.deepEqual(encodeLink({ name: 'é', at, mtime: at }).subarray(7), Buffer.from('é', 'utf8'));
    const fileId = encodeFileId({ group: 1, server: 2, bundle: 0, offset: 0, size: 3, mimeCode: mimeCode('application/x-a\udc00'), cookie: 1 });
    const blob = { sha1: 'a'.repeat(40), fileId, size: 3, mime: 'application/x-a\udc00', time: at, refs: 1 };
    assert.deepEqual(decodeBlob(blob.sha1, encodeBlob(blob)), blob);
  });
});
