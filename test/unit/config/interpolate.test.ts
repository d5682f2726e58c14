import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { substitute } from '../../../src/config/interpolate.ts';
import { REDACTED } from '../../../src/config/redact.ts';
import { config, errorAt, errors, load, yaml } from './helpers.ts';

describe('${NAME} substitution', () => {
  it('replaces variables and uses a default when the variable is unset or empty', () => {
    assert.equal(substitute('Bearer ${TOKEN}', { TOKEN: 'abc' }).value, 'Bearer abc');
    assert.equal(substitute('${A}-${B}', { A: '1', B: '2' }).value, '1-2');
    assert.equal(substitute('${PORT:-8080}', {}).value, '8080');
    assert.equal(substitute('${PORT:-8080}', { PORT: '' }).value, '8080');
    assert.equal(substitute('${PORT:-8080}', { PORT: '9090' }).value, '9090');
    assert.equal(substitute('${EMPTY}', { EMPTY: '' }).value, '');
    assert.equal(substitute('${X:-}', {}).value, '');
    assert.equal(substitute('${X:-a:-b}', {}).value, 'a:-b');
  });

  it('names every missing variable and every malformed reference', () => {
    assert.deepEqual(substitute('${A}${B:-x}${C}', {}).missing, ['A', 'C']);
    assert.equal(substitute('${lower-case}', {}).malformed, '${lower-case}');
    assert.equal(substitute('${}', {}).malformed, '${}');
    assert.equal(substitute('open ${NEVER', {}).malformed, '${NEVER');
  });

  it('writes a literal ${ for $${ and leaves text without references alone', () => {
    const s = substitute('cost: $${PRICE} and $5', {});
    assert.equal(s.value, 'cost: ${PRICE} and $5');
    assert.equal(s.interpolated, false);
    assert.equal(substitute('no refs $ { }', {}).value, 'no refs $ { }');
  });

  it('is the identity on text without ${ and never throws (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,5}$/), fc.string()), (text, env) => {
        const s = substitute(text, env);
        if (!text.includes('${')) assert.equal(s.value, text);
        assert.equal(typeof s.value, 'string');
      }),
    );
  });
});

describe('interpolation in a config', () => {
  it('applies to any string value, including inside longer strings', () => {
    const c = config(
      yaml`
        version: 1
        admin: { address: "127.0.0.1:\${ADMIN_PORT:-9901}" }
        listeners:
          - { name: "\${NAME}", address: 127.0.0.1:0, upstream: u }
        upstreams:
          u:
            url: http://\${HOST}:8080
            requestHeaders: { set: { authorization: "Bearer \${TOKEN}" } }
      `,
      { NAME: 'egress', HOST: 'payments.internal', TOKEN: 's3cret' },
    );
    assert.equal(c.admin.address.port, 9901);
    assert.equal(c.listeners[0]!.name, 'egress');
    assert.equal(c.upstreams.get('u')!.endpoints[0]!.hostname, 'payments.internal');
    assert.deepEqual(c.upstreams.get('u')!.requestHeaders.set, [['authorization', 'Bearer s3cret']]);
  });

  it('reports a missing variable without a default as an error naming it, at its node, with every other error', () => {
    const all = errors(
      yaml`
        version: 1
        listeners: []
        upstreams:
          u:
            url: http://127.0.0.1:8080
            requestHeaders: { set: { authorization: "Bearer \${PAYMENTS_TOKEN}" } }
            retry: { maxRetries: 99 }
      `,
    );
    const e = all.find((x) => x.path === 'upstreams.u.requestHeaders.set.authorization')!;
    assert.match(e.message, /environment variable PAYMENTS_TOKEN is not set/);
    assert.equal(e.line, 6);
    assert.equal(e.column, 45);
    assert.ok(all.some((x) => x.path === 'upstreams.u.retry.maxRetries'));
  });

  it('reads numbers, booleans and durations from variables where the schema expects them', () => {
    const c = config(
      yaml`
        version: 1
        listeners: []
        upstreams:
          u:
            url: http://127.0.0.1:8080
            preserveHost: \${PRESERVE}
            retry:
              maxRetries: \${RETRIES}
              backoff: { base: "\${BASE_MS}" }
            timeout: { total: "\${TOTAL:-3s}" }
      `,
      { PRESERVE: 'true', RETRIES: '4', BASE_MS: '40' },
    );
    const u = c.upstreams.get('u')!;
    assert.equal(u.preserveHost, true);
    assert.equal(u.retry.maxRetries, 4);
    assert.equal(u.retry.backoff.base, 40);
    assert.equal(u.timeout.total, 3000);
  });

  it('never echoes an interpolated value in an error message', () => {
    const e = errorAt(
      'version: 1\nlisteners: []\nupstreams:\n  u:\n    url: http://127.0.0.1:8080\n    retry: { maxRetries: "${SECRET_RETRIES}" }\n',
      'upstreams.u.retry.maxRetries',
      { SECRET_RETRIES: 'hunter2' },
    );
    assert.doesNotMatch(e.message, /hunter2/);
    assert.match(e.message, /expected an integer from 0 to 10, found a string from \$\{\.\.\.\} \(not shown\)/);
    const u = errorAt('version: 1\nlisteners: []\nupstreams:\n  u: { url: "${URL}" }\n', 'upstreams.u.url', { URL: 'http://user:pw-hunter2@h/x' });
    assert.doesNotMatch(u.message, /hunter2/);
  });

  it('never echoes a requestHeaders.set value, even a literal one', () => {
    const e = errorAt('version: 1\nlisteners: []\nupstreams:\n  u:\n    url: http://a\n    requestHeaders: { set: { x-key: "line1\\nhunter2" } }\n', 'upstreams.u.requestHeaders.set.x-key');
    assert.doesNotMatch(e.message, /hunter2/);
  });

  it('reports a malformed reference', () => {
    const e = errorAt('version: 1\nlisteners: []\nupstreams:\n  u: { url: "http://${bad-name}" }\n', 'upstreams.u.url');
    assert.match(e.message, /malformed reference \$\{bad-name\}/);
  });

  it('does not interpolate keys', () => {
    const e = errors('version: 1\nlisteners: []\nupstreams:\n  "${NAME}": { url: "http://a" }\n', { NAME: 'u' });
    assert.equal(e[0]!.path, 'upstreams["${NAME}"]');
  });
});

describe('the redacted document', () => {
  it('is the config as written, after interpolation, with ${} values and requestHeaders.set values redacted', () => {
    const c = config(
      yaml`
        version: 1
        admin: { address: "127.0.0.1:\${ADMIN_PORT:-9901}" }
        listeners:
          - { name: l, address: 127.0.0.1:0, upstream: u }
        upstreams:
          u:
            url: http://127.0.0.1:8080
            requestHeaders:
              set: { authorization: "Bearer \${TOKEN}", x-static: literal-secret }
              remove: [x-debug]
            retry: { maxRetries: 3 }
            fallback:
              response: { status: 503, body: "$\${NOT_A_VAR}" }
      `,
      { TOKEN: 's3cret' },
    );
    assert.deepEqual(c.source.redacted, {
      version: 1,
      admin: { address: REDACTED },
      listeners: [{ name: 'l', address: '127.0.0.1:0', upstream: 'u' }],
      upstreams: {
        u: {
          url: 'http://127.0.0.1:8080',
          requestHeaders: { set: { authorization: REDACTED, 'x-static': REDACTED }, remove: ['x-debug'] },
          retry: { maxRetries: 3 },
          fallback: { response: { status: 503, body: '${NOT_A_VAR}' } },
        },
      },
    });
    assert.doesNotMatch(JSON.stringify(c.source.redacted), /s3cret|literal-secret/);
  });

  it('is plain JSON', () => {
    const c = config('version: 1\nlisteners: []\nupstreams: { u: { url: "http://a", timeout: { total: 2s } } }\n');
    assert.deepEqual(JSON.parse(JSON.stringify(c.source.redacted)), c.source.redacted);
  });

  it('needs no environment when every reference has a default', () => {
    assert.equal(load('version: 1\nlisteners: []\nupstreams: { u: { url: "http://${H:-localhost}:${P:-80}" } }\n').ok, true);
  });
});
