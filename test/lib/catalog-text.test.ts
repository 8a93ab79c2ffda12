import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NodeOptions, encodeFileId, mimeCode, openStandalone } from '../../lib';
import { decodeBlob, decodeLink, encodeBlob, encodeLink, userKey } from '../../lib/catalog/lmdb-encoding';

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

  it('keeps apart two users whose ids differ only by a lone surrogate (UTF-8 makes both "x\\ufffd"); the store refuses such ids first', async () => {
    const owner = 'x\ud800';
    const other = 'x\ufffd';
    node = await openStandalone(options(root));
    // the routes and the store take no such id (validate.ts checkUser)
    await assert.rejects(node.store.upload(Readable.from([ Buffer.from('x') ]), { user: owner, filename: 'a.txt' }), { status: 400, code: 'INVALID_USER' });
    // the catalog, should one reach it, keeps them apart all the same
    const c = node.catalog;
    const fileId = encodeFileId({ group: 1, server: 2, bundle: 0, offset: 0, size: 3, mimeCode: 0, cookie: 7 });
    const sha1 = 'b'.repeat(40);
    const noWrite = () => undefined;
    await c.commitUpload({ user: owner, name: 'a.txt', blob: { sha1, fileId, size: 3, mime: 'application/octet-stream', time: Date.now() } }, noWrite, noWrite);
    assert.deepEqual((await c.listUserFiles(owner, 10)).map(f => [ f.user, f.name ]), [ [ owner, 'a.txt' ] ]);
    assert.deepEqual(await c.listUserFiles(other, 10), []);
    assert.equal(await c.getUserFile(other, sha1), undefined);
    await assert.rejects(c.rename(other, sha1, 'taken.txt', noWrite), { code: 'FILE_NOT_FOUND' });
    await assert.rejects(c.unlink(other, sha1, noWrite), { code: 'FILE_NOT_FOUND' });
    assert.equal((await c.getUserFile(owner, sha1))?.name, 'a.txt', 'the owner\'s file is untouched');
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
