import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/errors.ts';
import { loadConfigFile } from '../../../src/config/load.ts';
import { FILE, config, errorAt, errors, withUpstream, yaml } from './helpers.ts';

describe('config errors: location and format', () => {
  it('print as file:line:column: path: message', () => {
    const e = new ConfigError('schema', 'a.yaml', 3, 7, 'upstreams.u.url', 'expected a URL');
    assert.equal(e.toString(), 'a.yaml:3:7: upstreams.u.url: expected a URL');
    assert.equal(String(new ConfigError('read', 'a.yaml', 0, 0, '', 'cannot read')), 'a.yaml: cannot read');
  });

  it('report an unknown key at the key itself, with the path, what is expected and a suggestion', () => {
    const e = errorAt(
      yaml`
        version: 1
        listeners: []
        upstreams:
          payments:
            url: http://127.0.0.1:8080
            retry:
              backof: { base: 10ms }
      `,
      'upstreams.payments.retry.backof',
    );
    assert.equal(e.kind, 'schema');
    assert.equal(e.file, FILE);
    assert.equal(e.line, 7);
    assert.equal(e.column, 7);
    assert.match(e.message, /unknown key backof: did you mean backoff\?/);
    assert.match(e.message, /expected one of maxRetries, on, methods/);
  });

  it('report a bad value at the value, with the nested path', () => {
    const e = errorAt(
      yaml`
        version: 1
        listeners: []
        upstreams:
          payments:
            url: http://127.0.0.1:8080
            retry:
              backoff: { strategy: constant, base: 10 seconds }
      `,
      'upstreams.payments.retry.backoff.base',
    );
    assert.equal(e.line, 7);
    assert.equal(e.column, 44);
    assert.match(e.message, /expected a duration such as 250ms, 2s, 1m, 1h.*found string "10 seconds"/);
  });

  it('report a missing required key at the mapping that lacks it', () => {
    const e = errorAt(
      yaml`
        version: 1
        listeners: []
        upstreams:
          u:
            url: http://127.0.0.1:8080
            rateLimit:
              burst: 5
      `,
      'upstreams.u.rateLimit.rate',
    );
    assert.equal(e.line, 7);
    assert.equal(e.column, 7);
    assert.match(e.message, /missing required key rate \(expected a rate such as 100\/s/);
  });

  it('report a route naming an unknown upstream at the name, in listeners[i].routes[j] form', () => {
    const e = errorAt(
      yaml`
        version: 1
        listeners:
          - name: egress
            address: 127.0.0.1:0
            routes:
              - upstream: u
              - match: { pathPrefix: /x }
                upstream: nope
        upstreams:
          u: { url: "http://127.0.0.1:8080" }
      `,
      'listeners[0].routes[1].upstream',
    );
    assert.equal(e.kind, 'semantic');
    assert.equal(e.line, 8);
    assert.equal(e.column, 19);
    assert.match(e.message, /unknown upstream nope \(defined: u\)/);
  });

  it('list every error of a file at once, in file order', () => {
    const all = errors(yaml`
      version: 1
      bogus: true
      listeners:
        - { name: a, address: 127.0.0.1:0, upstream: missing }
      upstreams:
        u:
          url: http://127.0.0.1:8080
          retry: { maxRetries: 11, backof: {} }
          timeout: { total: soon }
    `);
    assert.deepEqual(
      all.map((e) => e.path),
      ['bogus', 'listeners[0].upstream', 'upstreams.u.retry.maxRetries', 'upstreams.u.retry.backof', 'upstreams.u.timeout.total'],
    );
    const lines = all.map((e) => e.line);
    assert.deepEqual(lines, [...lines].sort((a, b) => a - b));
  });

  it('report YAML syntax errors with their position, and nothing else', () => {
    const all = errors('version: 1\nlisteners: [\n  - a\nupstreams: {}\n');
    assert.ok(all.length >= 1);
    for (const e of all) {
      assert.equal(e.kind, 'syntax');
      assert.ok(e.line >= 1 && e.column >= 1);
      assert.doesNotMatch(e.message, /\n/);
    }
  });

  it('refuse an empty document and a document that is not a mapping', () => {
    assert.match(errors('')[0]!.message, /expected a mapping, found an empty value/);
    assert.match(errors('- 1\n- 2\n')[0]!.message, /expected a mapping, found a list/);
  });

  it('refuse a key given twice in one mapping', () => {
    const e = errorAt('version: 1\nversion: 1\nlisteners: []\nupstreams: {}\n', 'version');
    assert.equal(e.line, 2);
    assert.match(e.message, /given twice/);
  });

  it('give a read error for a file that cannot be read', () => {
    const r = loadConfigFile(path.join(tmpdir(), 'breakwater-no-such-dir', 'missing.yaml'));
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.kind, 'read');
    assert.match(r.errors[0]!.toString(), /missing\.yaml: cannot read the config file: no such file/);
  });
});

describe('config validation rules', () => {
  it('requires version 1', () => {
    assert.match(errorAt('version: 2\nlisteners: []\nupstreams: {}\n', 'version').message, /expected 1, found integer 2/);
    assert.match(errorAt('listeners: []\nupstreams: {}\n', 'version').message, /missing required key version/);
  });

  it('rejects values of the wrong type, saying what was found', () => {
    assert.match(errorAt(withUpstream('preserveHost: "yes"'), 'upstreams.u.preserveHost').message, /expected true or false, found string "yes"/);
    assert.match(errorAt(withUpstream('pool: { connections: 1.5 }'), 'upstreams.u.pool.connections').message, /expected an integer ≥ 1, found number 1.5/);
    assert.match(errorAt(withUpstream('retry: { methods: GET }'), 'upstreams.u.retry.methods').message, /expected a list, found string "GET"/);
    assert.match(errorAt(withUpstream('timeout: 5s'), 'upstreams.u.timeout').message, /expected a mapping, found string "5s"/);
  });

  it('rejects bad durations, sizes and rates', () => {
    assert.match(errorAt(withUpstream('timeout: { connect: 5 sec }'), 'upstreams.u.timeout.connect').message, /expected a duration/);
    assert.match(errorAt(withUpstream('timeout: { connect: 0s }'), 'upstreams.u.timeout.connect').message, /at least 1ms/);
    assert.match(errorAt(withUpstream('retry: { bufferLimit: 10M }'), 'upstreams.u.retry.bufferLimit').message, /expected a size such as 512B, 64KiB/);
    assert.match(errorAt(withUpstream('rateLimit: { rate: 100 }'), 'upstreams.u.rateLimit.rate').message, /expected a rate such as 100\/s, 6000\/m or 50\/100ms, found integer 100/);
  });

  it('rejects maxRetries above 10 or below 0', () => {
    assert.match(errorAt(withUpstream('retry: { maxRetries: 11 }'), 'upstreams.u.retry.maxRetries').message, /from 0 to 10, found integer 11/);
    assert.match(errorAt(withUpstream('retry: { maxRetries: -1 }'), 'upstreams.u.retry.maxRetries').message, /from 0 to 10/);
    assert.equal(config(withUpstream('retry: { maxRetries: 10 }')).upstreams.get('u')!.retry.maxRetries, 10);
  });

  it('rejects perTry greater than total in the same block, wherever the block is', () => {
    assert.match(errorAt(withUpstream('timeout: { perTry: 5s, total: 2s }'), 'upstreams.u.timeout.perTry').message, /perTry 5s is greater than total 2s in the same block/);
    const d = errorAt(withUpstream('', 'defaults:\n  timeout: { perTry: 3s, total: 1s }\n'), 'defaults.timeout.perTry');
    assert.equal(d.kind, 'semantic');
    const r = errors(yaml`
      version: 1
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes: [{ upstream: u, timeout: { perTry: 2s, total: 1s } }]
      upstreams: { u: { url: "http://127.0.0.1:1" } }
    `);
    assert.deepEqual(r.map((e) => e.path), ['listeners[0].routes[0].timeout.perTry']);
  });

  it('rejects circuitBreaker and bulkhead on a route, saying they belong to the upstream', () => {
    const all = errors(yaml`
      version: 1
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes:
            - upstream: u
              circuitBreaker: { consecutiveFailures: 5 }
              bulkhead: {}
      upstreams: { u: { url: "http://127.0.0.1:1" } }
    `);
    const cb = all.find((e) => e.path === 'listeners[0].routes[0].circuitBreaker')!;
    assert.match(cb.message, /protects an upstream.*move it to upstreams\.<name>\.circuitBreaker/);
    assert.equal(cb.line, 7);
    assert.equal(cb.column, 9);
    assert.match(all.find((e) => e.path === 'listeners[0].routes[0].bulkhead')!.message, /protects an upstream.*move it to upstreams\.<name>\.bulkhead/);
  });

  it('requires a listener to have routes or upstream, not neither and not both', () => {
    const neither = errorAt('version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0 }\nupstreams: {}\n', 'listeners[0]');
    assert.match(neither.message, /expected one of routes or upstream, found neither/);
    assert.equal(neither.line, 3);
    const both = errorAt(
      'version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0, upstream: u, routes: [] }\nupstreams: { u: { url: "http://127.0.0.1:1" } }\n',
      'listeners[0].routes',
    );
    assert.match(both.message, /upstream and routes exclude each other/);
  });

  it('rejects two routes with one name across listeners, default names included, and two listeners with one name', () => {
    const all = errors(yaml`
      version: 1
      listeners:
        - name: a
          address: 127.0.0.1:0
          routes:
            - { name: shared, upstream: u }
            - { upstream: u }
        - name: b
          address: 127.0.0.1:0
          routes:
            - { name: shared, upstream: u }
            - { name: a/1, upstream: u }
        - { name: b, address: 127.0.0.1:0, upstream: u }
      upstreams: { u: { url: "http://127.0.0.1:1" } }
    `);
    const msg = (p: string) => all.find((e) => e.path === p)?.message ?? '';
    assert.match(msg('listeners[1].routes[0].name'), /route name shared is already used by listeners\[0\]\.routes\[0\]\.name/);
    assert.match(msg('listeners[1].routes[1].name'), /route name a\/1 is already used by listeners\[0\]\.routes\[1\]/);
    assert.match(msg('listeners[2].name'), /listener name b is already used by listeners\[1\]/);
    // The shorthand route of listener b (named "b") does not clash with anything else.
    assert.equal(all.length, 3, all.map(String).join('\n'));
  });

  it('rejects two listeners on one address, except port 0, and a wildcard host clashes with any host on its port', () => {
    const all = errors(yaml`
      version: 1
      admin: { address: 127.0.0.1:9901 }
      listeners:
        - { name: a, address: 127.0.0.1:15001, upstream: u }
        - { name: b, address: 127.0.0.1:15001, upstream: u }
        - { name: c, address: 0.0.0.0:15002, upstream: u }
        - { name: d, address: 127.0.0.1:15002, upstream: u }
        - { name: e, address: 127.0.0.1:9901, upstream: u }
        - { name: f, address: 127.0.0.1:0, upstream: u }
        - { name: g, address: 127.0.0.1:0, upstream: u }
      upstreams: { u: { url: "http://127.0.0.1:1" } }
    `);
    assert.deepEqual(
      all.map((e) => e.path),
      ['listeners[1].address', 'listeners[3].address', 'listeners[4].address'],
    );
    assert.match(all[0]!.message, /address 127\.0\.0\.1:15001 is already taken by listener a \(listeners\[0\]\)/);
    assert.match(all[2]!.message, /the admin API/);
  });

  it('checks listen addresses: host:port or [v6]:port with a port up to 65535', () => {
    const c = config('version: 1\nadmin: { address: "[::1]:9901" }\nlisteners:\n  - { name: l, address: "LocalHost:15001", upstream: u }\nupstreams: { u: { url: "http://127.0.0.1:1" } }\n');
    assert.deepEqual(c.admin.address, { host: '::1', port: 9901, text: '[::1]:9901' });
    assert.deepEqual(c.listeners[0]!.address, { host: 'localhost', port: 15001, text: 'localhost:15001' });
    for (const bad of ['127.0.0.1', '127.0.0.1:65536', '::1:80', '[nothex]:80', ':80', '127.0.0.1:-1', 'a b:80']) {
      assert.match(errorAt(`version: 1\nlisteners:\n  - { name: l, address: "${bad}", upstream: u }\nupstreams: { u: { url: "http://127.0.0.1:1" } }\n`, 'listeners[0].address').message, /expected an address host:port/, bad);
    }
  });

  it('rejects unknown methods, and stores methods upper-case whatever their case', () => {
    const e = errorAt(withUpstream('retry: { methods: [get, FETCH] }'), 'upstreams.u.retry.methods[1]');
    assert.match(e.message, /expected one of GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, CONNECT, found string "FETCH"/);
    const c = config(withUpstream('retry: { methods: [get, Put] }'));
    assert.deepEqual([...c.upstreams.get('u')!.retry.methods], ['GET', 'PUT']);
  });

  it('requires exactly one of url and endpoints on an upstream, http(s) without path or query', () => {
    const neither = errorAt('version: 1\nlisteners: []\nupstreams:\n  u: { balance: random }\n', 'upstreams.u');
    assert.match(neither.message, /expected one of url or endpoints, found neither/);
    assert.match(errorAt('version: 1\nlisteners: []\nupstreams:\n  u: { url: "http://a", endpoints: ["http://b"] }\n', 'upstreams.u.endpoints').message, /exclude each other/);
    for (const bad of ['ftp://a', 'http://a/path', 'http://a/?q=1', 'http://a#f', 'not a url', 'http://']) {
      errorAt(`version: 1\nlisteners: []\nupstreams:\n  u: { url: "${bad}" }\n`, 'upstreams.u.url');
    }
    assert.match(errorAt('version: 1\nlisteners: []\nupstreams:\n  u: { endpoints: [] }\n', 'upstreams.u.endpoints').message, /at least 1 item/);
  });

  it('never echoes a URL that carries credentials', () => {
    const e = errorAt('version: 1\nlisteners: []\nupstreams:\n  u: { url: "http://user:hunter2@a" }\n', 'upstreams.u.url');
    assert.match(e.message, /without credentials/);
    assert.doesNotMatch(e.message, /hunter2/);
  });

  it('resolves endpoint URLs with default ports 80 and 443', () => {
    const c = config('version: 1\nlisteners: []\nupstreams:\n  u: { endpoints: ["http://A.example", "https://b.example/", "http://[::1]:8080"] }\n');
    assert.deepEqual(c.upstreams.get('u')!.endpoints, [
      { origin: 'http://a.example:80', protocol: 'http:', hostname: 'a.example', port: 80, authority: 'a.example:80' },
      { origin: 'https://b.example:443', protocol: 'https:', hostname: 'b.example', port: 443, authority: 'b.example:443' },
      { origin: 'http://[::1]:8080', protocol: 'http:', hostname: '::1', port: 8080, authority: '[::1]:8080' },
    ]);
  });

  it('checks upstream names', () => {
    assert.match(errorAt('version: 1\nlisteners: []\nupstreams:\n  -bad: { url: "http://a" }\n', 'upstreams["-bad"]').message, /expected an upstream name matching/);
    const c = config('version: 1\nlisteners: []\nupstreams:\n  payments.v2_x-1: { url: "http://a" }\n  "2": { url: "http://b" }\n  "1": { url: "http://c" }\n');
    assert.deepEqual([...c.upstreams.keys()], ['payments.v2_x-1', '2', '1'], 'file order, even for names that look like integers');
  });

  it('rejects a fallback naming an unknown upstream, wherever it is written', () => {
    const all = errors(yaml`
      version: 1
      defaults: { fallback: { upstream: ghost1 } }
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes: [{ upstream: u, fallback: { upstream: ghost3 } }]
      upstreams:
        u: { url: "http://127.0.0.1:1", fallback: { upstream: ghost2 } }
    `);
    assert.deepEqual(
      all.map((e) => [e.path, e.message.replace(/ \(.*/, '')]),
      [
        ['defaults.fallback.upstream', 'unknown fallback upstream ghost1'],
        ['listeners[0].routes[0].fallback.upstream', 'unknown fallback upstream ghost3'],
        ['upstreams.u.fallback.upstream', 'unknown fallback upstream ghost2'],
      ],
    );
  });

  it('rejects a fallback cycle once, and a route whose fallback leads into it', () => {
    const all = errors(yaml`
      version: 1
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes: [{ upstream: d, fallback: { upstream: c } }]
      upstreams:
        a: { url: "http://127.0.0.1:1", fallback: { upstream: b } }
        b: { url: "http://127.0.0.1:1", fallback: { upstream: a } }
        c: { url: "http://127.0.0.1:1", fallback: { upstream: a } }
        d: { url: "http://127.0.0.1:1" }
    `);
    assert.deepEqual(
      all.map((e) => [e.path, e.message]),
      [
        ['listeners[0].routes[0].fallback.upstream', 'fallback c leads into the fallback cycle a → b → a'],
        ['upstreams.a.fallback.upstream', 'fallback chain has a cycle: a → b → a'],
      ],
    );
  });

  it('rejects an upstream that falls back to itself, also through defaults, unless it cancels the inherited fallback', () => {
    assert.match(errorAt(withUpstream('fallback: { upstream: u }'), 'upstreams.u.fallback.upstream').message, /cycle: u → u/);
    const viaDefaults = errorAt(
      'version: 1\ndefaults: { fallback: { upstream: dr } }\nlisteners: []\nupstreams:\n  a: { url: "http://a" }\n  dr: { url: "http://dr" }\n',
      'defaults.fallback.upstream',
    );
    assert.match(viaDefaults.message, /cycle: dr → dr/);
    const c = config('version: 1\ndefaults: { fallback: { upstream: dr } }\nlisteners: []\nupstreams:\n  a: { url: "http://a" }\n  dr: { url: "http://dr", fallback: { upstream: null, response: {} } }\n');
    assert.equal(c.upstreams.get('a')!.fallback!.upstream, 'dr');
    assert.equal(c.upstreams.get('dr')!.fallback!.upstream, null);
  });

  it('allows fallback chains without a cycle', () => {
    const c = config('version: 1\nlisteners: []\nupstreams:\n  a: { url: "http://a", fallback: { upstream: b } }\n  b: { url: "http://b", fallback: { upstream: c } }\n  c: { url: "http://c" }\n');
    assert.equal(c.upstreams.get('b')!.fallback!.upstream, 'c');
  });

  it('requires a fallback to have an upstream or a response once merged', () => {
    assert.match(errorAt(withUpstream('fallback: { on: [timeout] }'), 'upstreams.u.fallback').message, /needs upstream and\/or response/);
    // Inherited by several upstreams, reported once, where it is written.
    const inherited = errors('version: 1\ndefaults: { fallback: { on: [timeout] } }\nlisteners: []\nupstreams:\n  a: { url: "http://a" }\n  b: { url: "http://b" }\n  c: { url: "http://c", fallback: { response: {} } }\n');
    assert.deepEqual(inherited.map((e) => [e.path, e.line]), [['defaults.fallback', 2]]);
    // A route may change only the triggers of its upstream's fallback.
    const c = config(yaml`
      version: 1
      listeners:
        - name: l
          address: 127.0.0.1:0
          routes: [{ upstream: u, fallback: { on: [5xx] } }]
      upstreams:
        u: { url: "http://127.0.0.1:1", fallback: { response: { status: 503 } } }
    `);
    const f = c.listeners[0]!.routes[0]!.policy.fallback!;
    assert.deepEqual([...f.on], ['5xx']);
    assert.equal(f.response!.status, 503);
  });

  it('checks failureRate is in (0, 100] and status codes are 100–599', () => {
    assert.match(errorAt(withUpstream('circuitBreaker: { failureRate: 0 }'), 'upstreams.u.circuitBreaker.failureRate').message, /above 0 and at most 100, or null/);
    errorAt(withUpstream('circuitBreaker: { failureRate: 100.5 }'), 'upstreams.u.circuitBreaker.failureRate');
    assert.equal(config(withUpstream('circuitBreaker: { failureRate: 100 }')).upstreams.get('u')!.circuitBreaker!.failureRate, 100);
    assert.match(errorAt(withUpstream('retry: { on: [600] }'), 'upstreams.u.retry.on[0]').message, /or a status code from 100 to 599, found integer 600/);
    errorAt(withUpstream('circuitBreaker: { failOn: [99] }'), 'upstreams.u.circuitBreaker.failOn[0]');
    errorAt(withUpstream('fallback: { response: { status: 700 } }'), 'upstreams.u.fallback.response.status');
  });

  it('rejects unknown conditions and fallback triggers', () => {
    assert.match(errorAt(withUpstream('retry: { on: [4xx] }'), 'upstreams.u.retry.on[0]').message, /one of connect-failure, reset, timeout, 5xx, gateway-error/);
    assert.match(errorAt(withUpstream('fallback: { response: {}, on: [circuit-opened] }'), 'upstreams.u.fallback.on[0]').message, /did you mean circuit-open\?/);
  });

  it('never logs credential headers', () => {
    for (const h of ['authorization', 'Cookie', 'proxy-authorization', 'Set-Cookie']) {
      const e = errorAt(`version: 1\nlog: { headers: [user-agent, ${h}] }\nlisteners: []\nupstreams: {}\n`, 'log.headers[1]');
      assert.match(e.message, /is never logged/);
    }
  });

  it('requires match.pathPrefix for stripPrefix, and a pathPrefix starting with /', () => {
    assert.match(
      errorAt('version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0, routes: [{ upstream: u, stripPrefix: true }] }\nupstreams: { u: { url: "http://a" } }\n', 'listeners[0].routes[0].stripPrefix').message,
      /needs match\.pathPrefix/,
    );
    errorAt('version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0, routes: [{ upstream: u, match: { pathPrefix: api } }] }\nupstreams: { u: { url: "http://a" } }\n', 'listeners[0].routes[0].match.pathPrefix');
  });

  it('checks route host matches', () => {
    const ok = config('version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0, routes: [{ upstream: u, match: { host: "Pay.Internal:8080" } }, { upstream: u, match: { host: "*.Svc.Local" } }] }\nupstreams: { u: { url: "http://a" } }\n');
    assert.deepEqual(ok.listeners[0]!.routes[0]!.match.host, { kind: 'exact', host: 'pay.internal' });
    assert.deepEqual(ok.listeners[0]!.routes[1]!.match.host, { kind: 'suffix', suffix: '.svc.local' });
    for (const bad of ['*', '*.', 'a..b', 'a b', '*.*.x']) {
      errorAt(`version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0, routes: [{ upstream: u, match: { host: "${bad}" } }] }\nupstreams: { u: { url: "http://a" } }\n`, 'listeners[0].routes[0].match.host');
    }
  });

  it('ignores x- extension keys at the top, so anchors can live there, and expands << merge keys', () => {
    const c = config(yaml`
      version: 1
      x-policies: &fast
        timeout: { total: 2s }
        retry: { maxRetries: 1 }
      listeners: []
      upstreams:
        a:
          <<: *fast
          url: http://a
          retry: { maxRetries: 4 }
    `);
    const a = c.upstreams.get('a')!;
    assert.equal(a.timeout.total, 2000);
    assert.equal(a.retry.maxRetries, 4, 'a key written beside the merge wins');
    assert.equal((c.source.redacted as Record<string, unknown>)['x-policies'], undefined);
  });
});

describe('hostile YAML', () => {
  it('survives a mapping merged into itself', () => {
    const c = config('version: 1\nlisteners: []\nupstreams:\n  a: &x { url: "http://a", <<: *x }\n');
    assert.equal(c.upstreams.get('a')!.endpoints.length, 1);
    assert.match(errorAt('version: 1\nlisteners: []\nupstreams:\n  a: { <<: 5, url: "http://a" }\n', 'upstreams.a["<<"]').message, /needs an alias to a mapping/);
  });

  it('refuses a document whose aliases expand without bound, quickly', () => {
    const routes = Array.from({ length: 120 }, () => '*r').join(', ');
    const listeners = Array.from({ length: 100 }, () => '*l').join(', ');
    const text = `version: 1\nx-r: &r { upstream: u }\nx-l: &l { name: l, address: 127.0.0.1:0, routes: [${routes}] }\nlisteners: [${listeners}]\nupstreams: { u: { url: "http://a" } }\n`;
    const t0 = performance.now();
    const all = errors(text);
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(all.length, 1, 'only the refusal: the rest of such a document is noise');
    assert.match(all[0]!.message, /too many aliases/);
  });

  it('lists at most 200 errors, the last one saying how many more there are', () => {
    const text = `version: 1\nlisteners: []\nupstreams:\n${Array.from({ length: 300 }, (_, i) => `  u${i}: { url: ftp://x }\n`).join('')}`;
    const all = errors(text);
    assert.equal(all.length, 200);
    assert.equal(all[199]!.message, '... and 101 more errors not shown');
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the file, records its absolute path and the sha256 of its bytes', () => {
    const file = path.join(dir, 'ok.yaml');
    writeFileSync(file, 'version: 1\nlisteners: []\nupstreams: {}\n');
    const r = loadConfigFile(file, {});
    assert.ok(r.ok);
    assert.equal(r.config.source.file, file);
    assert.equal(r.config.source.hash, createHash('sha256').update(readFileSync(file)).digest('hex'));
  });

  it('names the file as given in error messages', () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'version: 1\nlisteners: []\nupstreams: {}\nbogus: 1\n');
    const r = loadConfigFile(file, {});
    assert.ok(!r.ok);
    assert.equal(r.errors[0]!.toString(), `${file}:4:1: bogus: unknown key bogus (expected one of version, admin, log, drain, audit, defaults, redis, tracing, listeners, upstreams)`);
  });

  it('answers unchanged without parsing when the bytes hash to the running config, and loads them when they do not', () => {
    const file = path.join(dir, 'same.yaml');
    writeFileSync(file, 'version: 1\nlisteners: []\nupstreams: {}\n');
    const first = loadConfigFile(file, {});
    assert.ok(first.ok);
    assert.deepEqual(loadConfigFile(file, {}, first.config.source.hash), { unchanged: true });
    // Invalid now: had it been parsed, this would be an error; the hash differs, so it is parsed.
    writeFileSync(file, 'version: 1\nlisteners: []\nupstreams: {}\nbogus: 1\n');
    const changed = loadConfigFile(file, {}, first.config.source.hash);
    assert.ok('ok' in changed && !changed.ok);
    assert.equal(changed.errors[0]!.path, 'bogus');
  });

  it('gives a read error for a directory', () => {
    const r = loadConfigFile(dir, {});
    assert.ok(!r.ok);
    assert.equal(r.errors[0]!.kind, 'read');
  });
});
