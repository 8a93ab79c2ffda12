import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, JsonSink, multipart, request, sha1, SimpleResponse, startJsonSink, uploadTo } from './support/http';
import { buildDemo, demoEnv, RunningDemo, startDemo } from './support/demo';

const COURSE_TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** A POST of a urlencoded form (how the course's pages and clients send their fields). */
function postForm(url: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<SimpleResponse> {
  const body = Buffer.from(new URLSearchParams(fields).toString());
  return request(url, {
    method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length, ...headers },
  });
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('demo users: /user/signup, /user/signin, /user/info and the token on /file/* (the demo as built, agent + 2 workers)', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-demo-users-'));
    build = path.join(dir, 'build');
    buildDemo(build);
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('SONOFS_DEMO_USERS=1: every request names its user', () => {
    let demo: RunningDemo;
    let root: string;
    let base: string;

    const signup = (username: string, password: string) => postForm(`${base}/user/signup`, { username, password });
    async function signin(username: string, password: string): Promise<string> {
      const res = await postForm(`${base}/user/signin`, { username, password });
      assert.equal(res.status, 200, res.body.toString());
      return res.json().data.Token;
    }

    before(async () => {
      root = path.join(dir, 'required', 'data');
      demo = await startDemo(build, root, { SONOFS_DEMO_USERS: '1' });
      base = demo.base;
    });

    after(async () => {
      await demo?.stop();
    });

    it('signs up, signs in and answers /user/info with the course fields', async () => {
      const up = await signup('Alice', 'alice-pass-1');
      assert.equal(up.status, 200, up.body.toString());
      assert.equal(up.json().code, 0);
      assert.equal(up.json().msg, 'Signup succeeded');
      assert.equal(up.json().data.Username, 'Alice');
      assert.match(up.json().data.SignupAt, COURSE_TIME);

      const res = await postForm(`${base}/user/signin`, { username: 'alice', password: 'alice-pass-1' });
      assert.equal(res.status, 200, res.body.toString());
      const { code, msg, data } = res.json();
      assert.equal(code, 0);
      assert.equal(msg, 'OK');
      assert.equal(data.Location, '/file/upload');
      assert.equal(data.Username, 'Alice');
      assert.match(data.Token, /^[\w.-]+$/, 'a token goes into a query string as it is');
      assert(data.ExpiresIn > 86_000 && data.ExpiresIn <= 86_400, `default lifetime 24 h, got ${data.ExpiresIn} s`);
      assert.match(data.ExpiresAt, COURSE_TIME);

      // the course's clients POST username and token as a form
      const info = await postForm(`${base}/user/info`, { username: 'Alice', token: data.Token });
      assert.equal(info.status, 200, info.body.toString());
      assert.deepEqual(Object.keys(info.json().data), [ 'Username', 'Email', 'Phone', 'SignupAt', 'LastActiveAt', 'Status' ]);
      assert.equal(info.json().data.Username, 'Alice');
      assert.equal(info.json().data.SignupAt, up.json().data.SignupAt);
      assert.match(info.json().data.LastActiveAt, COURSE_TIME);
      assert(info.json().data.LastActiveAt >= info.json().data.SignupAt);

      // the stored hash is scrypt's with a salt of its own, never the password or a bare digest of it
      const mdb = fs.readFileSync(path.join(root, 'demo-users', 'data.mdb'));
      assert(!mdb.includes('alice-pass-1'));
      assert(!mdb.includes(createHash('sha1').update('alice-pass-1*#890').digest('hex')));
      assert(mdb.includes('scrypt$15$8$1$'));
      assert.equal(fs.statSync(path.join(root, 'demo-users')).mode & 0o777, 0o700);
    });

    it('refuses a wrong password and an unknown name alike, and GET on the form routes', async () => {
      assert.equal((await signup('erin', 'erin-pass-1')).status, 200);
      const wrong = await postForm(`${base}/user/signin`, { username: 'erin', password: 'erin-pass-2' });
      const unknown = await postForm(`${base}/user/signin`, { username: 'nobody-here', password: 'erin-pass-1' });
      for (const res of [ wrong, unknown ]) {
        assert.equal(res.status, 401);
        assert.deepEqual(res.json(), { code: -1, msg: 'login failed: wrong username or password', data: null, error: 'LOGIN_FAILED' });
      }
      const missing = await postForm(`${base}/user/signin`, { username: 'erin' });
      assert.equal(missing.status, 400);
      assert.match(missing.json().msg, /password is required/);
      for (const p of [ '/user/signup', '/user/signin' ]) {
        const get = await request(`${base}${p}`);
        assert.equal(get.status, 405);
        assert.equal(get.headers.allow, 'POST');
        assert.equal(get.json().error, 'METHOD_NOT_ALLOWED');
      }
    });

    it('takes the token as Authorization: Bearer, in the query with username, and in a form', async () => {
      assert.equal((await signup('frank', 'frank-pass-1')).status, 200);
      const token = await signin('frank', 'frank-pass-1');
      const data = randomBytes(5000);
      // the CLI and the upload page: a bearer header
      const up = await uploadTo(base, data, 'frank.bin', bearer(token));
      assert.equal(up.status, 200, up.body.toString());
      const hash = up.json().data.FileSha1;
      // the course's clients: username and token in the query
      const q = new URLSearchParams({ username: 'frank', token, filehash: hash });
      const dl = await request(`${base}/file/download?${q}`);
      assert.equal(dl.status, 200, dl.body.toString());
      assert.equal(sha1(dl.body), sha1(data));
      // ... or in a urlencoded form
      const listed = await postForm(`${base}/file/query`, { username: 'frank', token, limit: '5' });
      assert.equal(listed.status, 200, listed.body.toString());
      assert.deepEqual(listed.json().map((f: any) => f.FileName), [ 'frank.bin' ]);
      // the token alone names the user too
      assert.equal((await request(`${base}/user/info?token=${token}`)).json().data.Username, 'frank');
      // tus and the course's chunked upload take it as well
      const tus = await request(`${base}/files/`, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '3', ...bearer(token) } });
      assert.equal(tus.status, 201, tus.body.toString());
      const init = await postForm(`${base}/file/mpupload/init?${new URLSearchParams({ username: 'frank', token })}`, { filehash: sha1(Buffer.from('abc')), filesize: '3' });
      assert.equal(init.status, 200, init.body.toString());
    });

    it('answers 401 JSON on /file/* without a valid token, never acting as anonymous', async () => {
      assert.equal((await signup('grace', 'grace-pass-1')).status, 200);
      const token = await signin('grace', 'grace-pass-1');
      const [ name, exp, mac ] = [ token.slice(0, token.indexOf('.')), ...token.slice(token.indexOf('.') + 1).split('.') ];
      const forged = [
        `${name}.${Number(exp) + 86_400_000}.${mac}`, // a longer life
        `erin.${exp}.${mac}`, // another user
        `${token.slice(0, -2)}${token.endsWith('AA') ? 'BA' : 'AA'}`, // another mac
      ];
      const refused: Array<[string, SimpleResponse, string | RegExp]> = [
        [ 'no token', await request(`${base}/file/query`), /sign in first/ ],
        [ 'username without token', await request(`${base}/file/query?username=grace`), /token required/ ],
        [ 'another user\'s name', await request(`${base}/file/query?username=erin&token=${token}`), 'token invalid for user erin' ],
        [ 'garbage', await request(`${base}/file/query`, { headers: bearer('not-a-token') }), 'token malformed' ],
        ...await Promise.all(forged.map(async t => [ `forged ${t}`, await request(`${base}/file/query`, { headers: bearer(t) }), 'token invalid' ] as [string, SimpleResponse, string])),
        [ 'upload', await uploadTo(base, Buffer.from('x'), 'x.bin'), /sign in first/ ],
      ];
      for (const [ what, res, msg ] of refused) {
        assert.equal(res.status, 401, `${what}: ${res.body}`);
        assert.equal(res.json().code, 'UNAUTHORIZED', what);
        if (typeof msg === 'string') assert.equal(res.json().msg, msg, what);
        else assert.match(res.json().msg, msg, what);
        assert.match(String(res.headers['www-authenticate']), /^Bearer realm="sonofs-demo"/, what);
      }
      // the course's routes answer with its StatusTokenInvalid
      const chunked = await postForm(`${base}/file/mpupload/init`, { filehash: sha1(Buffer.from('abc')), filesize: '3' });
      assert.equal(chunked.status, 401);
      assert.equal(chunked.json().code, 10005);
      const tus = await request(`${base}/files/`, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '3' } });
      assert.equal(tus.status, 401);
      const info = await request(`${base}/user/info`, { headers: bearer(forged[0]) });
      assert.equal(info.status, 401);
      assert.deepEqual(info.json(), { code: 10005, msg: 'token invalid', data: null, error: 'UNAUTHORIZED' });
      assert.match(String(info.headers['www-authenticate']), /error="invalid_token"/);
      // nothing was stored for anyone
      assert.deepEqual((await request(`${base}/file/query`, { headers: bearer(token) })).json(), []);
    });

    it('keeps two users\' files apart (query, meta, download, delete), also for the same content', async () => {
      assert.equal((await signup('hana', 'hana-pass-1')).status, 200);
      assert.equal((await signup('ivan', 'ivan-pass-1')).status, 200);
      const hana = bearer(await signin('hana', 'hana-pass-1'));
      const ivan = bearer(await signin('ivan', 'ivan-pass-1'));
      const secret = randomBytes(20_000);
      const shared = randomBytes(3000);
      const h1 = (await uploadTo(base, secret, 'hana-secret.bin', hana)).json().data;
      assert.equal((await uploadTo(base, shared, 'hana-copy.bin', hana)).status, 200);
      assert.equal((await uploadTo(base, shared, 'ivan-copy.bin', ivan)).status, 200);

      const names = async (h: Record<string, string>) => (await request(`${base}/file/query?limit=100`, { headers: h })).json().map((f: any) => f.FileName).sort();
      assert.deepEqual(await names(hana), [ 'hana-copy.bin', 'hana-secret.bin' ]);
      assert.deepEqual(await names(ivan), [ 'ivan-copy.bin' ]);

      for (const p of [ `/file/meta?filehash=${h1.FileSha1}`, `/file/download?filehash=${h1.FileSha1}` ]) {
        const res = await request(`${base}${p}`, { headers: ivan });
        assert.equal(res.status, 404, `${p}: ${res.body}`);
        assert.equal(res.json().code, 'FILE_NOT_FOUND');
      }
      const del = await postForm(`${base}/file/delete`, { filehash: h1.FileSha1 }, ivan);
      assert.equal(del.status, 404);
      const rename = await postForm(`${base}/file/update`, { op: '0', filehash: h1.FileSha1, filename: 'mine.bin' }, ivan);
      assert.equal(rename.status, 404);
      // each downloads the shared content under the name they gave it
      const own = await request(`${base}/file/download?filehash=${sha1(shared)}`, { headers: ivan });
      assert.equal(own.status, 200);
      assert.match(String(own.headers['content-disposition']), /ivan-copy\.bin/);
      // hana's file is untouched
      const back = await request(`${base}/file/download?filehash=${h1.FileSha1}`, { headers: hana });
      assert.equal(back.status, 200);
      assert.equal(sha1(back.body), sha1(secret));
      assert.match(String(back.headers['content-disposition']), /hana-secret\.bin/);
    });

    it('answers bad sign-up input with 400 naming the problem, and stores nothing', async () => {
      const cases: Array<[Record<string, string>, RegExp]> = [
        [ { password: 'long-enough-1' }, /username is required/ ],
        [ { username: 'judy' }, /password is required/ ],
        [ { username: 'judy', password: 'short' }, /password must be at least 8 characters/ ],
        [ { username: 'judy', password: 'x'.repeat(1025) }, /password must be at most 1024 characters/ ],
        [ { username: 'jd', password: 'long-enough-1' }, /username must be 3 to 64 characters long \(got 2\)/ ],
        [ { username: `j${'u'.repeat(64)}`, password: 'long-enough-1' }, /username must be 3 to 64 characters long \(got 65\)/ ],
        [ { username: 'judy smith', password: 'long-enough-1' }, /username may contain only letters, digits/ ],
        [ { username: '../judy', password: 'long-enough-1' }, /username must start with a letter/ ],
        [ { username: 'judy/../x', password: 'long-enough-1' }, /username may contain only/ ],
        [ { username: '123456', password: 'long-enough-1' }, /username must start with a letter/ ],
        [ { username: 'Anonymous', password: 'long-enough-1' }, /username "anonymous" is reserved/ ],
      ];
      for (const [ fields, msg ] of cases) {
        const res = await postForm(`${base}/user/signup`, fields);
        assert.equal(res.status, 400, `${JSON.stringify(fields).slice(0, 80)}: ${res.body}`);
        assert.equal(res.json().code, -1);
        assert.equal(res.json().error, 'INVALID_PARAM');
        assert.match(res.json().msg, msg);
      }
      // a field given twice is not a name
      const body = Buffer.from('username=judy&username=jude&password=long-enough-1');
      const twice = await request(`${base}/user/signup`, {
        method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length },
      });
      assert.equal(twice.status, 400, twice.body.toString());
      assert.match(twice.json().msg, /username must be given once/);
      // judy was not created by any of them
      assert.equal((await postForm(`${base}/user/signin`, { username: 'judy', password: 'short' })).status, 401);
      assert.equal((await signup('judy', 'long-enough-1')).status, 200);
      // names are unique whatever their case
      const again = await signup('JUDY', 'another-pass-1');
      assert.equal(again.status, 409);
      assert.deepEqual(again.json(), { code: -2, msg: 'signup failed: user JUDY exists', data: null, error: 'USER_EXISTS' });
      await signin('judy', 'long-enough-1');
    });

    it('lets exactly one of concurrent sign-ups of one name win, across both workers', async () => {
      const attempts = Array.from({ length: 10 }, (_, i) => `race-pass-${i}`);
      const answers = await Promise.all(attempts.map(p => signup('racer', p)));
      assert.equal(new Set(answers.map(r => r.headers['x-served-by'])).size, 2, 'both workers took sign-ups');
      const won = answers.flatMap((r, i) => (r.status === 200 ? [ i ] : []));
      assert.equal(won.length, 1, answers.map(r => `${r.status} ${r.body}`).join('\n'));
      for (const r of answers.filter(a => a.status !== 200)) {
        assert.equal(r.status, 409);
        assert.equal(r.json().error, 'USER_EXISTS');
      }
      // the winner's password is the account's, on either worker
      for (let i = 0; i < 4; i++) await signin('racer', attempts[won[0]]);
      const loser = attempts[(won[0] + 1) % attempts.length];
      assert.equal((await postForm(`${base}/user/signin`, { username: 'racer', password: loser })).status, 401);
    });

    it('keeps accounts, their tokens and their files across a restart (the token key is kept in the data root)', async () => {
      assert.equal((await signup('kate', 'kate-pass-1')).status, 200);
      const token = await signin('kate', 'kate-pass-1');
      const data = randomBytes(7000);
      assert.equal((await uploadTo(base, data, 'kate.bin', bearer(token))).status, 200);
      await demo.stop();
      demo = await startDemo(build, root, { SONOFS_DEMO_USERS: '1' });
      base = demo.base;
      const info = await request(`${base}/user/info`, { headers: bearer(token) });
      assert.equal(info.status, 200, info.body.toString());
      assert.equal(info.json().data.Username, 'kate');
      const dl = await request(`${base}/file/download?filehash=${sha1(data)}`, { headers: bearer(token) });
      assert.equal(dl.status, 200);
      assert.equal(sha1(dl.body), sha1(data));
      await signin('Alice', 'alice-pass-1');
      assert.equal((await signup('kate', 'kate-pass-2')).status, 409);
    });
  });

  describe('users optional (the default), SONOFS_DEMO_TOKEN_TTL=2, SONOFS_DEMO_SECRET and the fupload variables', () => {
    let demo: RunningDemo;
    let base: string;
    let notify: JsonSink;
    const FUPLOAD_TOKEN = 'demo-business-token-1234';

    before(async () => {
      notify = await startJsonSink('/done');
      demo = await startDemo(build, path.join(dir, 'optional', 'data'), {
        SONOFS_DEMO_TOKEN_TTL: '2',
        SONOFS_DEMO_SECRET: randomBytes(32).toString('hex'),
        SONOFS_FUPLOAD_TOKEN: FUPLOAD_TOKEN,
        SONOFS_FUPLOAD_NOTIFY_URL: notify.url,
      });
      base = demo.base;
    });

    after(async () => {
      await demo?.stop();
      await notify?.close();
    });

    it('lets a request without credentials act as the shared user anonymous, apart from signed-in users', async () => {
      const data = randomBytes(4000);
      const anon = await uploadTo(base, data, 'anon.bin');
      assert.equal(anon.status, 200, anon.body.toString());
      assert.equal((await postForm(`${base}/user/signup`, { username: 'lena', password: 'lena-pass-1' })).status, 200);
      const token = (await postForm(`${base}/user/signin`, { username: 'lena', password: 'lena-pass-1' })).json().data.Token;
      assert.deepEqual((await request(`${base}/file/query`, { headers: bearer(token) })).json(), []);
      assert.deepEqual((await request(`${base}/file/query`)).json().map((f: any) => f.FileName), [ 'anon.bin' ]);
      // a token that does not hold is refused, not taken as anonymous
      const bad = await request(`${base}/file/query`, { headers: bearer(`${token}x`) });
      assert.equal(bad.status, 401);
      // /user/info has no anonymous answer
      assert.equal((await request(`${base}/user/info`)).status, 401);
      // a download by file id is a capability: it needs no token
      const byId = await request(`${base}/file/download?fileid=${anon.json().data.FileId}`, { headers: bearer(token) });
      assert.equal(byId.status, 200);
    });

    it('refuses a token once its lifetime is over', async () => {
      assert.equal((await postForm(`${base}/user/signup`, { username: 'mike', password: 'mike-pass-1' })).status, 200);
      const signin = (await postForm(`${base}/user/signin`, { username: 'mike', password: 'mike-pass-1' })).json();
      assert(signin.data.ExpiresIn <= 2, JSON.stringify(signin));
      const token = signin.data.Token;
      assert.equal((await request(`${base}/user/info`, { headers: bearer(token) })).status, 200);
      await new Promise(r => setTimeout(r, 2100));
      for (const res of [
        await request(`${base}/user/info`, { headers: bearer(token) }),
        await request(`${base}/file/query?username=mike&token=${token}`),
      ]) {
        assert.equal(res.status, 401, res.body.toString());
        assert.equal(res.json().msg, 'token expired: sign in again');
      }
    });

    it('turns the fupload task API on for the one business server of SONOFS_FUPLOAD_TOKEN, calling back SONOFS_FUPLOAD_NOTIFY_URL', async () => {
      const data = randomBytes(10_000);
      const task = (token: string) => {
        const body = Buffer.from(JSON.stringify({ token, userId: 42, storePath: 'x', fileName: 'f.bin', fileSize: data.length, fileMd5: md5(data), feedBackParameter: 'fb-1' }));
        return request(`${base}/api/upload/new/task`, { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'Content-Length': body.length } });
      };
      const wrong = await task('another-token-5678');
      assert.equal(wrong.status, 403);
      assert.equal(wrong.json().retCode, '1');
      const created = await task(FUPLOAD_TOKEN);
      assert.equal(created.status, 200, created.body.toString());
      const { taskId } = created.json().data;
      const { body, contentType } = multipart([
        { name: 'partMd5', data: md5(data) }, { name: 'startByte', data: '0' }, { name: 'endByte', data: String(data.length - 1) },
        { name: 'file', filename: 'blob', data },
      ]);
      const block = await request(`${base}/api/upload/files/block?taskId=${taskId}`, {
        method: 'POST', body, headers: { 'Content-Type': contentType, 'Content-Length': body.length },
      });
      assert.equal(block.status, 200, block.body.toString());
      const deadline = Date.now() + 20_000;
      while (!notify.received.some(c => c.taskId === taskId) && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
      const cb = notify.received.find(c => c.taskId === taskId);
      assert(cb, 'the business server was called back');
      assert.equal(cb.retCode, '0');
      assert.equal(cb.data, 'fb-1');
      assert.equal(cb.fileHash, sha1(data));
    });
  });

  it('refuses to start on settings it cannot use, naming them', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [ { SONOFS_FUPLOAD_TOKEN: 'demo-business-token-1234' }, /SONOFS_FUPLOAD_NOTIFY_URL: set both/ ],
      [ { SONOFS_DEMO_USERS: 'yes' }, /SONOFS_DEMO_USERS: is "yes"/ ],
    ];
    for (const [ env, message ] of cases) {
      const port = String(await freePort());
      const run = spawnSync(process.execPath, [ path.join(__dirname, '..', 'scripts', 'start.js') ], {
        env: demoEnv(build, path.join(dir, 'refused', 'data'), { PORT: port, EGG_TITLE: `sonofs-demo-refused-${port}`, ...env }),
        encoding: 'utf8', timeout: 60_000,
      });
      assert.notEqual(run.status, 0);
      assert.match(run.stdout + run.stderr, message);
    }
  });
});
