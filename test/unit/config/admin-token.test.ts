import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { config, errors, FILE } from './helpers.ts';

const doc = (admin: string) => `version: 1\nadmin:\n${admin}\nlisteners:\n  - { name: l, address: 127.0.0.1:0, upstream: u }\nupstreams:\n  u: { url: http://127.0.0.1:1 }\n`;
const TOKEN = 'an-admin-token-from-the-env-0123';

describe('admin.token (SPEC §11.3)', () => {
  it('is optional on loopback and null when absent', () => {
    assert.equal(config(doc('  address: 127.0.0.1:9901')).admin.token, null);
  });

  it('is required off loopback: an error at admin.address with file, line and column', () => {
    for (const addr of ['0.0.0.0:9901', '10.1.2.3:9901', '"[::]:9901"']) {
      const e = errors(doc(`  address: ${addr}`));
      assert.equal(e.length, 1, e.map(String).join('\n'));
      assert.equal(e[0]!.path, 'admin.address');
      assert.match(e[0]!.toString(), new RegExp(`^${FILE}:3:12: admin\\.address: .*needs admin\\.token`));
    }
  });

  it('comes from the environment: a literal is refused, without echoing it', () => {
    const e = errors(doc('  token: literal-token-written-in-the-file'));
    assert.equal(e.length, 1);
    assert.equal(e[0]!.path, 'admin.token');
    assert.match(e[0]!.message, /\$\{NAME\} reference/);
    assert.ok(!e[0]!.toString().includes('literal-token-written'));
  });

  it('is long enough and has no spaces; the message never shows the value', () => {
    for (const v of ['short', 'has a space in it somewhere here', '']) {
      const e = errors(doc('  token: ${T}'), { T: v });
      assert.equal(e[0]!.path, 'admin.token');
      assert.match(e[0]!.message, /at least 16 characters/);
      if (v !== '') assert.ok(!e.map(String).join('\n').includes(v));
    }
    assert.match(errors(doc('  token: ${UNSET_VAR}'))[0]!.message, /UNSET_VAR is not set/);
  });

  it('off loopback, a token that is written but invalid gives its own error only, not "needs admin.token" too', () => {
    for (const [token, env] of [['${UNSET_VAR}', {}], ['${T}', { T: 'short' }], ['literal-token-written-in-the-file', {}]] as const) {
      const e = errors(doc(`  address: 0.0.0.0:9901\n  token: ${token}`), env);
      assert.deepEqual(
        e.map((x) => x.path),
        ['admin.token'],
        e.map(String).join('\n'),
      );
    }
  });

  it('is kept for the admin API, with the variables it came from, and redacted in the served document', () => {
    const c = config(doc('  address: 0.0.0.0:9901\n  token: "${BW_ADMIN}"'), { BW_ADMIN: TOKEN });
    assert.equal(c.admin.token, TOKEN);
    assert.deepEqual(c.admin.tokenFrom, ['BW_ADMIN']);
    assert.deepEqual((c.source.redacted as { admin: unknown }).admin, { address: '0.0.0.0:9901', token: '[redacted]' });
    assert.ok(!JSON.stringify(c.source.redacted).includes(TOKEN));
    assert.ok(c.warnings.some((w) => w.code === 'admin-not-loopback'), 'still warned about: the port is reachable');
  });
});
