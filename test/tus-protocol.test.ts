import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SonofsError } from '../lib';
import {
  TUS_MAX_CONCAT_PARTS, TrailerChecksum, announcesChecksumTrailer, checkTusResumable, corsHeaders, formatMetadata, parseChecksum, parseConcat,
  parseMetadata, parseSize, publicOrigin, uploadIdFromUrl, uploadUrl,
} from '../lib/tus';

/** The pure protocol parsers of lib/tus, without an app. */
describe('lib/tus: protocol parsing', () => {
  const fails = (fn: () => unknown, status: number, code: string) => assert.throws(fn, (e: SonofsError) => e.status === status && e.code === code);

  it('sizes are digits only, within the safe-integer range', () => {
    assert.equal(parseSize('0', 'Upload-Offset'), 0);
    assert.equal(parseSize('9007199254740991', 'Upload-Length'), Number.MAX_SAFE_INTEGER);
    assert.equal(parseSize(undefined, 'Upload-Length'), undefined);
    for (const bad of [ '-0', '1.0', '1e2', ' 1', '0x10', '9007199254740993' ]) fails(() => parseSize(bad, 'Upload-Offset'), 400, 'INVALID_UPLOAD_OFFSET');
  });

  it('Tus-Resumable: 1.0.0 on everything but OPTIONS; a plain GET may omit it', () => {
    checkTusResumable(undefined, 'OPTIONS');
    checkTusResumable('9', 'OPTIONS');
    checkTusResumable('1.0.0', 'PATCH');
    checkTusResumable(undefined, 'GET');
    fails(() => checkTusResumable(undefined, 'HEAD'), 412, 'UNSUPPORTED_TUS_VERSION');
    fails(() => checkTusResumable('1.0', 'GET'), 412, 'UNSUPPORTED_TUS_VERSION');
  });

  it('metadata round-trips, values are bytes, and the parser is strict', () => {
    const header = formatMetadata({ filename: 'über.txt', empty: '', bin: Buffer.from([ 0, 255 ]) });
    const m = parseMetadata(header);
    assert.equal(m.get('filename')!.toString(), 'über.txt');
    assert.equal(m.get('empty')!.length, 0);
    assert.deepEqual([ ...m.get('bin')! ], [ 0, 255 ]);
    assert.equal(parseMetadata(undefined).size, 0);
    for (const bad of [ 'a YQ', 'a YQ==,a Yg==', ',a', 'a,', 'a b c', 'a,b YQ==YQ==' ]) fails(() => parseMetadata(bad), 400, 'INVALID_METADATA');
  });

  it('Upload-Checksum: supported algorithms, base64 digests of the right length', () => {
    const d = createHash('sha256').update('x').digest();
    assert.deepEqual(parseChecksum(`sha256 ${d.toString('base64')}`), { algorithm: 'sha256', digest: d });
    assert.equal(parseChecksum(`SHA256 ${d.toString('base64')}`).algorithm, 'sha256');
    fails(() => parseChecksum(`crc32 ${d.toString('base64')}`), 400, 'CHECKSUM_ALGORITHM_UNSUPPORTED');
    fails(() => parseChecksum(`sha1 ${d.toString('base64')}`), 400, 'INVALID_CHECKSUM');
    fails(() => parseChecksum('sha1'), 400, 'INVALID_CHECKSUM');
  });

  it('a trailer checksum is verified once the body ended', async () => {
    const body = Buffer.from('trailing bytes');
    const run = async (trailer: string | undefined) => {
      const req = { trailers: {} as Record<string, string | undefined> };
      const t = new TrailerChecksum(req);
      const chunks: Buffer[] = [];
      t.on('data', c => chunks.push(c));
      const ended = new Promise<void>((resolve, reject) => { t.on('end', resolve); t.on('error', reject); });
      t.write(body);
      req.trailers['upload-checksum'] = trailer; // Node fills req.trailers before 'end'
      t.end();
      await ended;
      assert.deepEqual(Buffer.concat(chunks), body);
    };
    await run(`md5 ${createHash('md5').update(body).digest('base64')}`);
    await assert.rejects(run(`sha1 ${createHash('sha1').update('other').digest('base64')}`), (e: SonofsError) => e.status === 460);
    await assert.rejects(run(undefined), (e: SonofsError) => e.code === 'MISSING_CHECKSUM_TRAILER');
    assert.equal(announcesChecksumTrailer({ trailer: 'Upload-Checksum', 'transfer-encoding': 'chunked' }), true);
    assert.equal(announcesChecksumTrailer({ trailer: 'Upload-Checksum' }), false, 'only a chunked body has trailers');
  });

  it('Upload-Concat and the upload ids in a final\'s URLs', () => {
    assert.deepEqual(parseConcat('partial'), { kind: 'partial' });
    assert.deepEqual(parseConcat('final;/files/a http://h/files/b'), { kind: 'final', urls: [ '/files/a', 'http://h/files/b' ] });
    assert.equal(parseConcat(undefined), undefined);
    fails(() => parseConcat('final'), 400, 'INVALID_UPLOAD_CONCAT');
    const urls = (n: number) => `final;${Array(n).fill('/files/a').join(' ')}`;
    assert.equal((parseConcat(urls(TUS_MAX_CONCAT_PARTS)) as { urls: string[] }).urls.length, 1000);
    fails(() => parseConcat(urls(TUS_MAX_CONCAT_PARTS + 1)), 400, 'TOO_MANY_PARTS');
    const id = 'AbCdEfGhIjKlMnOpQrSt_-';
    assert.equal(uploadIdFromUrl(`https://x.example/api/files/${id}`, '/files'), id);
    assert.equal(uploadIdFromUrl(`/files/${id}?x=1`, '/files'), id);
    fails(() => uploadIdFromUrl(`/xfiles/${id}`, '/files'), 400, 'INVALID_UPLOAD_CONCAT');
    fails(() => uploadIdFromUrl('/files/../etc/passwd', '/files'), 400, 'INVALID_UPLOAD_CONCAT');
  });

  it('Location: forwarded headers only when trusted, and only well-formed ones', () => {
    const h = { host: 'in:7001', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'out.example, proxy2', 'x-forwarded-prefix': '/api/' };
    assert.equal(uploadUrl(publicOrigin(h, { trustProxy: false, encrypted: false }), '/files', 'ID'), 'http://in:7001/files/ID');
    assert.equal(uploadUrl(publicOrigin(h, { trustProxy: true, encrypted: false }), '/files', 'ID'), 'https://out.example/api/files/ID');
    const bad = { host: 'in', 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'a/b', 'x-forwarded-prefix': 'no-slash' };
    assert.equal(uploadUrl(publicOrigin(bad, { trustProxy: true, encrypted: true }), '/files', 'ID'), 'https://in/files/ID');
    assert.equal(uploadUrl(publicOrigin({}, { trustProxy: false, encrypted: false }), '/files', 'ID'), '/files/ID');
  });

  it('CORS: allowed origins are echoed, others get nothing', () => {
    const o = { origins: [ 'https://a.example' ], allowHeaders: [ 'X-Token' ], credentials: true, maxAge: 60 };
    const pre = corsHeaders('https://a.example', true, o);
    assert.equal(pre['Access-Control-Allow-Origin'], 'https://a.example');
    assert.equal(pre['Access-Control-Allow-Credentials'], 'true');
    assert.match(pre['Access-Control-Allow-Headers'], /Upload-Offset.*X-Token/);
    assert.equal(corsHeaders('https://b.example', true, o)['Access-Control-Allow-Origin'], undefined);
    assert.deepEqual(corsHeaders(undefined, false, o), {});
    assert.equal(corsHeaders('https://any', false, { ...o, origins: [ '*' ] })['Access-Control-Allow-Methods'], undefined);
  });
});
