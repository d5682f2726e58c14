import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonical, diffConfigs, fingerprint, isEmptyDiff, MAX_NAMES } from '../../../src/config/diff.ts';
import { config, yaml } from './helpers.ts';

const base = (extra = '', upstreams = '') => yaml`
  version: 1
  defaults: { retry: { maxRetries: 2 } }
  listeners:
    - name: main
      address: 127.0.0.1:0
      routes:
        - { name: a, match: { pathPrefix: /a/ }, upstream: ua }
        - { name: b, match: { pathPrefix: /b/ }, upstream: ub }
  upstreams:
    ua: { url: http://127.0.0.1:1, requestHeaders: { set: { authorization: "\${SECRET}" } } }
    ub: { url: http://127.0.0.1:2 }
` + extra + upstreams;

describe('config diff for the audit log', () => {
  it('finds nothing between two loads of one text, or between two spellings of one config', () => {
    const a = config(base(), { SECRET: 's1' });
    assert.ok(isEmptyDiff(diffConfigs(a, config(base(), { SECRET: 's1' }))));
    const respelled = base().replace('{ url: http://127.0.0.1:2 }', '\n      url: http://127.0.0.1:2\n      timeout: { total: 15s }');
    assert.ok(isEmptyDiff(diffConfigs(a, config(respelled, { SECRET: 's1' }))), 'the built-in written out is no change');
  });

  it('names upstreams and routes added, removed and changed, by their compiled config', () => {
    const a = config(base(), { SECRET: 's1' });
    const b = config(
      base().replace('- { name: b, match: { pathPrefix: /b/ }, upstream: ub }', '- { name: c, match: { pathPrefix: /c/ }, upstream: ub, timeout: { total: 2s } }').replace('ub: { url: http://127.0.0.1:2 }', 'ub: { url: http://127.0.0.1:3 }\n  uc: { url: http://127.0.0.1:4 }'),
      { SECRET: 's1' },
    );
    const d = diffConfigs(a, b);
    assert.deepEqual(d.upstreams, { added: ['uc'], removed: [], changed: ['ub'] });
    assert.deepEqual(d.routes, { added: ['c'], removed: ['b'], changed: [] });
    assert.deepEqual(d.listeners, { added: [], removed: [], changed: ['main'] });
    assert.deepEqual(d.settings, []);
  });

  it('sees a defaults edit as a change of every upstream it reaches, and top-level blocks as settings', () => {
    const a = config(base(), { SECRET: 's1' });
    const b = config(base().replace('maxRetries: 2', 'maxRetries: 3') + 'drain: { timeout: 5s }\n', { SECRET: 's1' });
    const d = diffConfigs(a, b);
    assert.deepEqual(d.upstreams.changed, ['ua', 'ub']);
    assert.deepEqual(d.routes.changed, ['a', 'b']);
    assert.deepEqual(d.settings, ['drain']);
  });

  it('counts a rotated injected credential as a change of its upstream, without ever printing it', () => {
    const a = config(base(), { SECRET: 'old-secret-value' });
    const b = config(base(), { SECRET: 'new-secret-value' });
    const d = diffConfigs(a, b);
    assert.deepEqual(d.upstreams.changed, ['ua']);
    assert.ok(!JSON.stringify(d).includes('secret-value'));
  });

  it('at the first load, lists everything as added; long lists are cut with a count', () => {
    const many = Array.from({ length: MAX_NAMES + 5 }, (_, i) => `  x${i}: { url: http://127.0.0.1:${1000 + i} }\n`).join('');
    const d = diffConfigs(null, config(base('', many), { SECRET: 's' }));
    assert.equal(d.upstreams.added.length, MAX_NAMES + 1);
    assert.equal(d.upstreams.added.at(-1), '…and 7 more');
    assert.deepEqual(d.routes.added, ['a', 'b']);
  });

  it('canonical form: set order does not matter, map order and values do; maps, sets and regexps are not empty objects', () => {
    assert.equal(canonical(new Set(['x', 'y'])), canonical(new Set(['y', 'x'])));
    assert.notEqual(canonical(new Set([1])), canonical(new Set([2])));
    assert.notEqual(canonical({ m: new Map([['a', 1]]) }), canonical({ m: new Map([['a', 2]]) }));
    assert.notEqual(canonical(/a/), canonical(/b/));
    assert.notEqual(canonical([1, 2]), canonical([2, 1]));
    assert.notEqual(canonical(new Map([['a', 1], ['b', 2]])), canonical(new Map([['b', 2], ['a', 1]])));
    assert.notEqual(canonical(null), canonical(undefined));
    assert.notEqual(canonical('1'), canonical(1));
    assert.match(fingerprint('a-secret'), /^[0-9a-f]{64}$/);
  });
});
