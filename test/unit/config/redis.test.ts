import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { describeConfig } from '../../../src/config/describe.ts';
import { checkBuild } from '../../../src/runtime/check.ts';
import { config, errorAt, errors, withUpstream, yaml } from './helpers.ts';

const GLOBAL = 'rateLimit: { rate: 100/s, scope: global }';

describe('config: the redis block and rateLimit.scope global (SPEC §12)', () => {
  it('scope global without a redis block is an error at the scope key, saying what is missing', () => {
    const e = errorAt(withUpstream(GLOBAL), 'upstreams.u.rateLimit.scope');
    assert.match(e.message, /needs the top-level redis block/);
    assert.ok(e.line > 0 && e.column > 0);
  });

  it('the built-ins: timeout 20ms, onRedisError allow, key prefix breakwater; the built-in key is the upstream', () => {
    const c = config(withUpstream(GLOBAL, 'redis: { url: redis://127.0.0.1:6379 }\n'));
    assert.deepEqual(
      { timeout: c.redis!.timeout, on: c.redis!.onRedisError, prefix: c.redis!.keyPrefix, mode: c.redis!.mode },
      { timeout: 20, on: 'allow', prefix: 'breakwater', mode: 'standalone' },
    );
    const rl = c.upstreams.get('u')!.rateLimit!;
    assert.equal(rl.scope, 'global');
    assert.equal(rl.key, null);
  });

  it('URLs that would throw when the client is made, and a missing tls.ca, are config errors at their keys (never printing the URL)', () => {
    const e = errorAt(withUpstream(GLOBAL, 'redis: { url: "redis://u:pw-secret@127.0.0.1:99999" }\n'), 'redis.url');
    assert.match(e.message, /not a valid redis:\/\/ URL/);
    assert.ok(!e.message.includes('pw-secret'));
    const n = errorAt(withUpstream(GLOBAL, 'redis: { cluster: { nodes: ["redis://127.0.0.1:7000", "redis://127.0.0.1:70000"] } }\n'), 'redis.cluster.nodes[1]');
    assert.match(n.message, /not a valid/);
    const ca = errorAt(withUpstream(GLOBAL, 'redis: { url: "rediss://127.0.0.1:6380", tls: { ca: /nonexistent/redis-ca.pem } }\n'), 'redis.tls.ca');
    assert.match(ca.message, /cannot read/);
  });

  it('url, sentinel and cluster: exactly one', () => {
    const all = errors(withUpstream(GLOBAL, 'redis: { url: redis://a:1, cluster: { nodes: [redis://b:2] } }\n'));
    assert.ok(all.some((e) => e.path === 'redis' || e.path.startsWith('redis')), all.map(String).join('\n'));
    const s = config(withUpstream(GLOBAL, 'redis: { sentinel: { name: mymaster, sentinels: ["10.0.0.1:26379", "[::1]:26380"] } }\n'));
    assert.deepEqual(s.redis!.sentinel!.sentinels, [
      { host: '10.0.0.1', port: 26379 },
      { host: '::1', port: 26380 },
    ]);
  });

  it('credentials never reach messages, GET /config or validate output', () => {
    const bad = errors(withUpstream(GLOBAL, 'redis: { url: "http://user:hunter2@h:1" }\n'));
    assert.ok(!bad.map(String).join('\n').includes('hunter2'), bad.map(String).join('\n'));
    const c = config(
      withUpstream(GLOBAL, 'redis: { url: "redis://app:s3cret@10.0.0.5:6379/2", password: "${REDIS_PASSWORD}" }\n'),
      { REDIS_PASSWORD: 'fromenv' },
    );
    const redacted = JSON.stringify(c.source.redacted);
    assert.ok(!redacted.includes('s3cret') && !redacted.includes('fromenv'), redacted);
    assert.match(redacted, /redis:\/\/\[redacted\]@10\.0\.0\.5:6379\/2/);
    const text = describeConfig(c);
    assert.ok(!text.includes('s3cret') && !text.includes('fromenv'));
    assert.match(text, /redis +standalone redis:\/\/\[redacted\]@10\.0\.0\.5:6379\/2; tls off; password set; timeout 20ms; on redis error allow/);
    assert.match(text, /rateLimit +route: off; upstream: 100\/s, burst 100, no wait; enforce; global \(Redis key built-in\)/);
  });

  it('validate builds a global limit without connecting to Redis', async () => {
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      await checkBuild(config(withUpstream(GLOBAL, `redis: { url: redis://127.0.0.1:${port} }\n`)));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(connections, 0);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('limits that share a key must agree on rate and burst (one bucket, one rate); the same values are fine', () => {
    const two = (second: string): string => yaml`
      version: 1
      redis: { url: redis://127.0.0.1:6379 }
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes:
            - { name: r, upstream: u, rateLimit: ${second} }
      upstreams:
        u: { url: http://127.0.0.1:1, rateLimit: { rate: 10/s, burst: 5, scope: global, key: shared } }
    `;
    const e = errorAt(two('{ rate: 20/s, burst: 5, scope: global, key: shared }'), 'listeners[0].routes[0].rateLimit');
    assert.match(e.message, /key shared is also used by upstreams\.u\.rateLimit with 10\/s burst 5, here 20\/s burst 5/);
    assert.equal(config(two('{ rate: 10/s, burst: 5, scope: global, key: shared }')).listeners[0]!.routes[0]!.rateLimit!.key, 'shared');
    // Another key, or a local limit, is its own bucket.
    config(two('{ rate: 20/s, scope: global, key: other }'));
    config(two('{ rate: 20/s, key: shared }'));
    // One bucket, one answer while Redis fails.
    const d = errorAt(two('{ rate: 10/s, burst: 5, scope: global, key: shared, onRedisError: deny }'), 'listeners[0].routes[0].rateLimit.onRedisError');
    assert.match(d.message, /onRedisError \(the redis block’s\), here deny/);
    assert.equal(config(two('{ rate: 10/s, burst: 5, scope: global, key: other, onRedisError: deny }')).listeners[0]!.routes[0]!.rateLimit!.onRedisError, 'deny');
  });

  it('a route rate limit may be global too, under a key of its own', () => {
    const c = config(yaml`
      version: 1
      redis: { url: redis://127.0.0.1:6379, onRedisError: deny, timeout: 50ms }
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes:
            - { name: r, upstream: u, rateLimit: { rate: 10/s, scope: global, key: shared-api } }
      upstreams:
        u: { url: http://127.0.0.1:1 }
    `);
    const rl = c.listeners[0]!.routes[0]!.rateLimit!;
    assert.deepEqual([rl.scope, rl.key], ['global', 'shared-api']);
    assert.equal(c.redis!.onRedisError, 'deny');
  });
});
