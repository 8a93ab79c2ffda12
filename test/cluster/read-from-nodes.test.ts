import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { NodeUnavailableError } from '../../lib';
import {
  NODE_AUTH_HEADER, NODE_FILE_PATH, ReadCandidate, RemoteReadOptions, readCandidates, readFromNodes, verifyNodeRequest,
} from '../../lib/cluster';
import { freePort } from '../support/http';

const SECRET = 'engine-test-secret';
const ID = 'AQEBAAAAAAAAAAAAAAAKAQAAAAEx'; // only its place in the path matters here
const FILE = { group: 1, server: 1 };

type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A real HTTP server standing in for a node; `behave` decides its answer. */
async function fakeNode(behave: Behaviour): Promise<{ url: string; close(): Promise<void>; seen: http.IncomingHttpHeaders[] }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    if (!verifyNodeRequest(SECRET, req.method!, req.url!, req.headers[NODE_AUTH_HEADER] as string)) {
      res.writeHead(401).end('{}');
      return;
    }
    behave(req, res);
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, seen,
    close: () => new Promise(r => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const candidate = (url: string, own = true, server = own ? 1 : 2): ReadCandidate => ({ group: 1, server, url, own });
const opts = (o: Partial<RemoteReadOptions> = {}): RemoteReadOptions => ({ secret: SECRET, method: 'GET', headers: {}, timeoutMs: 500, ...o });

function readAll(body: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    body.on('data', c => chunks.push(c));
    body.on('end', () => resolve(Buffer.concat(chunks)));
    body.on('close', () => body.complete || reject(new Error('cut')));
  });
}

describe('cluster remote reads: which node to ask, and asking it', () => {
  const closing: Array<() => Promise<void>> = [];
  afterEach(async () => { for (const c of closing.splice(0)) await c(); });

  async function node(behave: Behaviour) {
    const n = await fakeNode(behave);
    closing.push(n.close);
    return n;
  }

  it('lists the file\'s own server first, group members next only with groupCopies, never itself or a node that is not up', () => {
    const n = (group: number, server: number, state = 'up', instance = `i${group}${server}`) => ({ group, server, url: `http://n${group}${server}/`, instance, state });
    const nodes = [ n(1, 2), n(2, 1), n(1, 3, 'starting'), n(1, 1), n(1, 4, 'up', 'me') ];
    assert.deepEqual(readCandidates(nodes, FILE, { self: 'me' }), [ { group: 1, server: 1, url: 'http://n11', own: true } ]);
    assert.deepEqual(readCandidates(nodes, FILE, { self: 'me', groupCopies: true }).map(c => `${c.group}.${c.server}`), [ '1.1', '1.2' ]);
    assert.deepEqual(readCandidates(nodes, { group: 1, server: 9 }, { self: 'me' }), []);
    assert.deepEqual(readCandidates(nodes, { group: 1, server: 4 }, { self: 'me' }), []);
  });

  it('signs the request for its method and path and passes the range and conditional headers on', async () => {
    const a = await node((req, res) => {
      assert.equal(req.url, `${NODE_FILE_PATH}${ID}`);
      res.writeHead(206, { 'Content-Range': 'bytes 0-1/10', 'Content-Length': 2, ETag: '"x"', 'X-Other': 'not passed' }).end('ab');
    });
    const got = await readFromNodes([ candidate(a.url) ], FILE, ID, opts({ headers: { range: 'bytes=0-1', 'if-range': '"x"' } }));
    assert.equal(got.status, 206);
    assert.deepEqual(got.headers, { 'content-range': 'bytes 0-1/10', etag: '"x"', 'content-length': '2' });
    assert.equal((await readAll(got.body)).toString(), 'ab');
    assert.equal(a.seen[0].range, 'bytes=0-1');
    assert.equal(a.seen[0]['if-range'], '"x"');
    const head = await readFromNodes([ candidate(a.url) ], FILE, ID, opts({ method: 'HEAD' }));
    assert.equal(head.status, 206); // the fake answers HEAD the same; it was signed as HEAD
    head.body.resume();
  });

  it('skips a node that refuses the connection, fails, refuses the signature or (another member) lacks the file', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const failing = await node((_req, res) => res.writeHead(500).end());
    const lacking = await node((_req, res) => res.writeHead(404).end('{}'));
    const otherSecret = await fakeNode(() => undefined); // answers 401 to our signature below
    closing.push(otherSecret.close);
    const good = await node((_req, res) => res.end('data'));
    const got = await readFromNodes(
      [ candidate(closed), candidate(failing.url, false, 2), candidate(lacking.url, false, 3), candidate(good.url, false, 4) ], FILE, ID, opts());
    assert.equal(got.from.server, 4);
    assert.equal((await readAll(got.body)).toString(), 'data');

    const err = await readFromNodes([ candidate(closed), candidate(otherSecret.url, false, 2) ], FILE, ID, opts({ secret: 'wrong' }))
      .then(() => assert.fail('answered'), e => e);
    assert(err instanceof NodeUnavailableError);
    assert.equal(err.status, 503);
    assert.equal(err.code, 'NODE_UNAVAILABLE');
    assert.equal(err.details.length, 2);
    assert.match(err.details[1], /cluster\.secret/);
    await assert.rejects(readFromNodes([], FILE, ID, opts()), { code: 'NODE_UNAVAILABLE', message: /not in the cluster map|no node/ });
  });

  it('takes the file\'s own server\'s 404 as the answer', async () => {
    const lacking = await node((_req, res) => res.writeHead(404).end('{}'));
    const never = await node(() => assert.fail('asked after the owner said 404'));
    const got = await readFromNodes([ candidate(lacking.url), candidate(never.url, false) ], FILE, ID, opts());
    assert.equal(got.status, 404);
    got.body.resume();
  });

  it('gives up on a node that does not answer within the timeout', async () => {
    const silent = await node(() => undefined);
    const t0 = Date.now();
    await assert.rejects(readFromNodes([ candidate(silent.url) ], FILE, ID, opts({ timeoutMs: 300 })), { code: 'NODE_UNAVAILABLE', message: /no answer within 300 ms/ });
    const took = Date.now() - t0;
    assert(took >= 290 && took < 2000, `took ${took} ms`);
  });

  it('cuts a body whose node falls silent while it is read, not while the reader waits', async () => {
    let finish: () => void = () => undefined;
    const stalling = await node((_req, res) => {
      res.writeHead(200, { 'Content-Length': 10 });
      res.write('abcde');
      finish = () => res.end('fghij');
    });
    // nobody reads for longer than the timeout: the answer is still whole
    const waited = await readFromNodes([ candidate(stalling.url) ], FILE, ID, opts({ timeoutMs: 200 }));
    await new Promise(r => setTimeout(r, 500));
    finish();
    assert.equal((await readAll(waited.body)).toString(), 'abcdefghij');
    // read while the node sends nothing more: cut after the timeout
    const read = await readFromNodes([ candidate(stalling.url) ], FILE, ID, opts({ timeoutMs: 200 }));
    const t0 = Date.now();
    await assert.rejects(readAll(read.body), /cut/);
    assert(Date.now() - t0 < 1500, `cut after ${Date.now() - t0} ms`);
    assert.equal(read.body.complete, false);
  });
});
