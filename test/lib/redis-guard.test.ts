import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MetadataUnavailableError, encodeFileId, newCookie } from '../../lib';
import { RedisCatalog } from '../../lib/catalog/redis-catalog';
import { unavailableFrom } from '../../lib/catalog/redis-guard';
import { IORedis, PrivateRedis, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const hex = (s: string) => createHash('sha1').update(s).digest('hex');

/** Runs `call`, expecting MetadataUnavailableError within `ms`; returns it. */
async function refused(call: () => Promise<unknown>, ms: number): Promise<MetadataUnavailableError> {
  const t0 = Date.now();
  const err = await call().then(() => undefined, e => e);
  const took = Date.now() - t0;
  assert(err instanceof MetadataUnavailableError, `expected MetadataUnavailableError, got ${err}`);
  assert.equal(err.status, 503);
  assert.equal(err.code, 'METADATA_UNAVAILABLE');
  assert(took < ms, `refused after ${took} ms`);
  return err;
}

describe('the catalog on a Redis that goes away (a Redis of the test\'s own, a client that would wait forever)', function () {
  this.timeout(60_000);
  const redis = new PrivateRedis();
  let client: any;
  let catalog: RedisCatalog;
  let n = 0;

  const upload = () => {
    const sha1 = hex(`content ${n}`);
    const fileId = encodeFileId({ group: 1, server: 1, bundle: 0, offset: 8 * n++, size: 1, mimeCode: 0, cookie: newCookie() });
    return catalog.commitUpload({ user: 'u', name: 'f', blob: { sha1, fileId, size: 1, mime: 'text/plain', time: Date.now() } }, () => undefined, () => undefined);
  };

  before(async () => {
    await redis.start();
    // neither fail-fast setting: ioredis alone would queue every call until Redis came back
    client = new IORedis(redis.url, { maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: () => 100 });
    client.on('error', () => undefined);
    await new Promise(r => client.once('ready', r));
    catalog = new RedisCatalog(client, { namespace: uniqueNamespace('guard'), callTimeoutMs: 500 });
  });

  after(async () => {
    client?.disconnect();
    await redis.remove();
  });

  it('fails a call on a hung Redis after the call timeout, saying its change may have been applied, and works again once it answers', async () => {
    const { blob } = await upload();
    redis.pause();
    try {
      const err = await refused(() => catalog.getBlob(blob.sha1), 2000);
      assert.equal(err.maybeApplied, true);
      assert.match(err.message, /shared catalog \(Redis\) is not reachable \(no answer within 500 ms\)/);
      await refused(upload, 2000);
    } finally {
      redis.resume();
    }
    assert.equal((await catalog.getBlob(blob.sha1))?.fileId, blob.fileId);
  });

  it('fails every call at once while the client is not connected, and works again once it reconnects by itself', async () => {
    await redis.stop();
    await until('the client to notice', () => client.status !== 'ready', 5000);
    for (const call of [ () => catalog.getBlob(hex('x')), () => catalog.listUserFiles('u', 10), upload ]) {
      const err = await refused(call, 300);
      assert.equal(err.maybeApplied, false);
    }
    await redis.start();
    await until('the catalog answering again', () => catalog.getBlob(hex('x')).then(() => true, () => false), 10_000, 100);
    assert.equal((await upload()).created, true);
  });

  it('maps ioredis\'s refusals and lost connections, and nothing else', () => {
    const notSent = unavailableFrom(new Error('Stream isn\'t writeable and enableOfflineQueue options is false'));
    assert(notSent instanceof MetadataUnavailableError);
    assert.equal(notSent.maybeApplied, false);
    assert.equal(unavailableFrom(new Error('Cluster isn\'t ready and enableOfflineQueue options is false'))?.maybeApplied, false);
    assert.equal(unavailableFrom(new Error('LOADING Redis is loading the dataset in memory'))?.maybeApplied, false);
    const lost = Object.assign(new Error('Reached the max retries per request limit (which is 1).'), { name: 'MaxRetriesPerRequestError' });
    assert.equal(unavailableFrom(lost)?.maybeApplied, true);
    assert.equal(unavailableFrom(new Error('Connection is closed.'))?.maybeApplied, true);
    assert.equal(unavailableFrom(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))?.maybeApplied, true);
    assert.equal(unavailableFrom(new Error('ERR wrong number of arguments')), undefined);
    assert.equal(unavailableFrom(new RangeError('not a sha1')), undefined);
  });
});
