import assert from 'node:assert/strict';
import { hashPassword, verifyPassword } from '../example/lib/password';
import { TokenSigner } from '../example/lib/tokens';

/** The demo's password hashes and tokens on their own (test/demo-users.test.ts runs them behind HTTP). */
describe('demo auth: password hashes and tokens', () => {
  // a low cost keeps this quick; the demo stores its default (2^15) with each hash
  const cost = { logN: 10, r: 8, p: 1 };

  it('hashes a password with a salt of its own, and verifies only that password', async () => {
    const [ a, b ] = await Promise.all([ hashPassword('pässword-1', cost), hashPassword('pässword-1', cost) ]);
    assert.match(a, /^scrypt\$10\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    assert.notEqual(a, b, 'two hashes of one password differ by their salt');
    assert.equal(await verifyPassword('pässword-1', a), true);
    assert.equal(await verifyPassword('pässword-1', b), true);
    // the same text in another Unicode form is the same password
    assert.equal(await verifyPassword('pa\u0308ssword-1', a), true);
    assert.equal(await verifyPassword('pässword-2', a), false);
    assert.equal(await verifyPassword('', a), false);
    assert.equal(await verifyPassword('pässword-1', 'sha1$abc'), false);
    assert.equal(await verifyPassword('pässword-1', a.slice(0, -4)), false);
  });

  it('issues tokens that name their user, and refuses expired, forged and foreign ones', () => {
    const signer = new TokenSigner(Buffer.from('k'.repeat(32)), 60_000);
    const now = 1_800_000_000_000;
    const { token, expiresAt } = signer.issue('j.doe-1', now);
    assert.equal(expiresAt, now + 60_000);
    assert.deepEqual(signer.check(token, now + 59_999), { ok: true, user: 'j.doe-1', expiresAt });
    assert.deepEqual(signer.check(token, expiresAt), { ok: false, why: 'expired' });
    const [ , exp, mac ] = /^(?:.+)\.(\d+)\.([\w-]+)$/.exec(token)!;
    for (const forged of [ `j.doe-2.${exp}.${mac}`, `j.doe-1.${Number(exp) + 1}.${mac}`, `j.doe-1.${exp}.${'A'.repeat(43)}` ]) {
      assert.deepEqual(signer.check(forged, now), { ok: false, why: 'invalid' }, forged);
    }
    assert.deepEqual(new TokenSigner(Buffer.from('x'.repeat(32)), 60_000).check(token, now), { ok: false, why: 'invalid' });
    for (const garbage of [ '', 'abc', `${token}.`, `j.doe-1.${exp}`, `j.doe-1.-5.${mac}`, `${'a'.repeat(300)}.${exp}.${mac}` ]) {
      assert.deepEqual(signer.check(garbage, now), { ok: false, why: 'malformed' }, garbage);
    }
  });
});
