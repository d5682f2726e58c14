/**
 * The TLS source of an upstream (src/upstream/tls.ts) without a network:
 * what a rotation on disk does to it, and the pool key its settings give.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TlsConfig } from '../../../src/config/types.ts';
import { poolKey } from '../../../src/upstream/pool.ts';
import { TlsSource, type TlsReloadResult } from '../../../src/upstream/tls.ts';
import { CertFactory, opensslMissing, type Pem } from '../../helpers/certs.ts';

const missing = opensslMissing();
const skip = missing !== null && process.env['CI'] !== 'true' ? missing : false;

describe('TlsSource', { skip }, () => {
  let certs: CertFactory;
  let a: Pem;
  let b: Pem;
  let cfg: TlsConfig;
  const events: [TlsReloadResult, readonly string[]][] = [];
  const source = () => new TlsSource('payments', cfg, (_u, result, errors) => events.push([result, errors]));
  const write = (cert: string, key: string) => {
    writeFileSync(cfg.cert!, cert);
    writeFileSync(cfg.key!, key);
  };

  before(() => {
    if (missing !== null) throw new Error(missing);
    certs = new CertFactory();
    const ca = certs.ca('ca');
    a = certs.leaf('a', ca);
    b = certs.leaf('b', ca);
    cfg = { ca: ca.certFile, caMode: 'replace', cert: path.join(certs.dir, 'tls.crt'), key: path.join(certs.dir, 'tls.key'), servername: null, minVersion: 'TLSv1.2' };
  });
  after(() => certs?.close());

  it('applies a consistent new pair once, and reports nothing when the files are unchanged', () => {
    write(a.cert, a.key);
    const s = source();
    events.length = 0;
    assert.equal(s.reload(), 'unchanged');
    write(b.cert, b.key);
    assert.equal(s.reload(), 'success');
    assert.equal(s.reload(), 'unchanged');
    assert.deepEqual(events, [['success', []]]);
  });

  it('refuses a mismatched pair once per distinct content, then applies the pair that completes it', () => {
    write(a.cert, a.key);
    const s = source();
    events.length = 0;
    write(b.cert, a.key);
    assert.equal(s.reload(), 'failure');
    assert.equal(s.reload(), 'unchanged', 'the same broken files are not reported again');
    write(b.cert, b.key);
    assert.equal(s.reload(), 'success');
    assert.equal(events.length, 2);
    assert.equal(events[0]![0], 'failure');
    assert.match(events[0]![1].join(), /tls\.key: the key in .* does not belong to the certificate/);
  });

  it('refuses to start from files that do not check out, naming the config path', () => {
    write(a.cert, b.key);
    assert.throws(() => source(), /upstreams\.payments\.tls\.key: the key in .* does not belong/);
  });

  it('gives pools of different TLS settings different keys, and plain pools the key they always had', () => {
    write(a.cert, a.key);
    const o = { connections: 1, keepAlive: 1000, connectTimeout: 100 };
    const plain = poolKey('https://api:443', o);
    assert.equal(plain, poolKey('https://api:443', { ...o, tls: null }));
    const one = poolKey('https://api:443', { ...o, tls: source() });
    const named = poolKey('https://api:443', { ...o, tls: new TlsSource('payments', { ...cfg, servername: 'api.internal' }, () => {}) });
    assert.notEqual(one, plain);
    assert.notEqual(one, named);
    assert.equal(one, poolKey('https://api:443', { ...o, tls: source() }));
  });
});
