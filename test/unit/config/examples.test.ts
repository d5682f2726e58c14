import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, loadConfigText } from '../../../src/config/load.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('config/breakwater.yaml, the example config', () => {
  it('is valid without any environment variable, on loopback, with no warnings', () => {
    const r = loadConfigFile(path.join(root, 'config', 'breakwater.yaml'), {});
    assert.ok(r.ok, r.ok ? '' : r.errors.map(String).join('\n'));
    const c = r.config;
    assert.deepEqual(c.warnings, []);
    assert.deepEqual(
      c.listeners.map((l) => l.address.text),
      ['127.0.0.1:15001', '127.0.0.1:15002'],
    );
    for (const u of c.upstreams.values()) for (const e of u.endpoints) assert.equal(e.hostname, '127.0.0.1');
    assert.deepEqual(c.upstreams.get('payments')!.requestHeaders.set, [['authorization', 'Bearer dev-token']]);
    assert.deepEqual([...c.upstreams.keys()], ['payments', 'payments-dr', 'inventory']);
  });

  it('takes the payments token from the environment when it is set', () => {
    const r = loadConfigFile(path.join(root, 'config', 'breakwater.yaml'), { PAYMENTS_TOKEN: 'prod' });
    assert.ok(r.ok);
    assert.deepEqual(r.config.upstreams.get('payments')!.requestHeaders.set, [['authorization', 'Bearer prod']]);
  });
});

describe('loading a large config', () => {
  it('stays linear: a thousand upstreams and routes load in well under a second', () => {
    const routes: string[] = [];
    const upstreams: string[] = [];
    for (let i = 0; i < 1000; i++) {
      routes.push(`      - { match: { host: svc${i}.internal }, upstream: u${i}, timeout: { total: 3s } }\n`);
      upstreams.push(`  u${i}:\n    url: http://127.0.0.1:${10_000 + i}\n    retry: { maxRetries: 3 }\n    circuitBreaker: {}\n    fallback: { upstream: ${i === 999 ? 'last' : `u${i + 1}`}, on: [timeout] }\n`);
    }
    const text = `version: 1\nlisteners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n${routes.join('')}upstreams:\n${upstreams.join('')}  last: { url: "http://127.0.0.1:1" }\n`;
    loadConfigText(text, 'big.yaml', {}); // warm up the JIT
    const t0 = performance.now();
    const r = loadConfigText(text, 'big.yaml', {});
    const ms = performance.now() - t0;
    assert.ok(r.ok, r.ok ? '' : r.errors.slice(0, 3).map(String).join('\n'));
    assert.equal(r.config.upstreams.size, 1001);
    // Measured about 150 ms on a 2-core machine; a quadratic step would take seconds.
    assert.ok(ms < 1000, `loaded in ${ms.toFixed(0)} ms`);
  });
});
