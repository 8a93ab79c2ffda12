import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { SonofsError, UnavailableError } from '../../lib';
import { forwardUpload, NODE_AUTH_HEADER, NODE_UPLOAD_PATH, verifyNodeRequest } from '../../lib/cluster';
import { freePort } from '../support/http';

const SECRET = 'forward-test-secret';
const opts = { secret: SECRET, user: 'u 1', filename: 'a b.txt', mime: 'text/plain', connectTimeoutMs: 1000, answerTimeoutMs: 5000 };

type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function fakeNode(behave: Behaviour) {
  const server = http.createServer((req, res) => {
    if (!verifyNodeRequest(SECRET, req.method!, req.url!, req.headers[NODE_AUTH_HEADER] as string)) {
      res.writeHead(401).end('{}');
      return;
    }
    behave(req, res);
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>(r => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** Stores by hashing: answers what a node would, from the bytes it got. */
const storing: Behaviour = (req, res) => {
  const h = createHash('sha1');
  let size = 0;
  req.on('data', (c: Buffer) => { h.update(c); size += c.length; });
  req.on('end', () => {
    const q = new URL(req.url!, 'http://x').searchParams;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ fileId: 'AQEB', fileHash: h.digest('hex'), size, user: q.get('user'), filename: q.get('name'), mime: q.get('mime') }));
  });
};

describe('forwardUpload: streaming an upload to another group\'s member', () => {
  const data = randomBytes(3 * 1024 * 1024 + 7);
  const sha1 = createHash('sha1').update(data).digest('hex');

  it('streams the bytes, signed, with user, name and mime, and returns the answer', async () => {
    const n = await fakeNode(storing);
    try {
      const { result, from } = await forwardUpload<any>([ { group: 2, server: 1, url: n.url } ], Readable.from([ data ]), { ...opts, size: data.length });
      assert.equal(from.group, 2);
      assert.deepEqual([ result.fileHash, result.size, result.user, result.filename, result.mime ], [ sha1, data.length, 'u 1', 'a b.txt', 'text/plain' ]);
    } finally { await n.close(); }
  });

  it('skips a member that refuses the connection (no byte read yet) for the next', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const n = await fakeNode(storing);
    try {
      const { result, from } = await forwardUpload<any>([ { group: 2, server: 1, url: dead }, { group: 2, server: 2, url: n.url } ], Readable.from([ data ]), opts);
      assert.equal(from.server, 2);
      assert.equal(result.fileHash, sha1);
    } finally { await n.close(); }
  });

  it('no member reachable: a 503', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(forwardUpload([ { group: 2, server: 1, url: dead } ], Readable.from([ data ]), opts),
      (e: unknown) => e instanceof UnavailableError && e.status === 503);
  });

  it('a member that dies mid-way: a 503 at once, no retry elsewhere with half the bytes gone', async () => {
    let got = 0;
    const dying = await fakeNode((req) => {
      req.on('data', (c: Buffer) => {
        got += c.length;
        if (got > 1024 * 1024) req.socket.destroy();
      });
    });
    let second = 0;
    const other = await fakeNode((req, res) => { second++; storing(req, res); });
    try {
      async function* slowly() { for (let i = 0; i < 64; i++) { yield data.subarray(i * 65536, (i + 1) * 65536); await new Promise(r => setImmediate(r)); } }
      const source = Readable.from(slowly());
      await assert.rejects(forwardUpload([ { group: 2, server: 1, url: dying.url }, { group: 2, server: 2, url: other.url } ], source, opts),
        (e: unknown) => e instanceof UnavailableError && e.code === 'PLACEMENT_FAILED');
      assert.equal(second, 0);
      assert(source.destroyed, 'the source is stopped');
    } finally { await dying.close(); await other.close(); }
  });

  it('passes a 4xx of the target on as it said it; a wrong secret is a 503', async () => {
    const n = await fakeNode((req, res) => { req.resume(); res.writeHead(413, { 'content-type': 'application/json' }).end('{"code":"FILE_TOO_LARGE","msg":"too big"}'); });
    try {
      await assert.rejects(forwardUpload([ { group: 2, server: 1, url: n.url } ], Readable.from([ data.subarray(0, 100) ]), opts),
        (e: unknown) => e instanceof SonofsError && e.status === 413 && e.code === 'FILE_TOO_LARGE');
      await assert.rejects(forwardUpload([ { group: 2, server: 1, url: n.url } ], Readable.from([ data.subarray(0, 100) ]), { ...opts, secret: 'wrong' }),
        (e: unknown) => e instanceof SonofsError && e.status === 503 && /signature/.test(e.message));
    } finally { await n.close(); }
  });

  it('the path it calls is the node upload path', () => {
    assert.equal(NODE_UPLOAD_PATH, '/_sonofs/node/upload');
  });
});
