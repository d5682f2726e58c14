import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { objectNode, type AnySchema } from '../../../src/config/dsl.ts';
import { builtIn } from '../../../src/config/merge.ts';
import { configSchema, jsonSchema } from '../../../src/config/schema.ts';
import { SCHEMA_FILE, schemaText } from '../../../scripts/gen-schema.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Every schema node of the format, with its path. */
function* nodes(s: AnySchema, at = ''): Generator<[string, AnySchema]> {
  yield [at, s];
  const n = s.node;
  if (n.kind === 'nullable') yield* nodes(n.inner, at);
  else if (n.kind === 'list') yield* nodes(n.item, `${at}[]`);
  else if (n.kind === 'map') yield* nodes(n.value, `${at}.*`);
  else if (n.kind === 'union') for (const o of n.options) yield* nodes(o, at);
  const o = objectNode(s);
  if (o !== null && n.kind !== 'nullable') for (const [k, f] of Object.entries(o.fields)) yield* nodes(f, at === '' ? k : `${at}.${k}`);
}

/** ajv ships with the kubernetes-models dev dependency; it checks the generated schema is a correct JSON Schema. */
function ajvValidator(): (doc: unknown) => { ok: boolean; errors: string } {
  const require = createRequire(import.meta.url);
  const Ajv2020 = require('ajv/dist/2020.js') as { default: new (o: object) => { compile(s: object): ((d: unknown) => boolean) & { errors?: unknown } } };
  const validate = new Ajv2020.default({ strict: true, strictRequired: false, allErrors: true }).compile(jsonSchema());
  return (doc) => ({ ok: validate(doc), errors: JSON.stringify(validate.errors ?? []) });
}

describe('the published JSON Schema', () => {
  it('is exactly what the schema declarations generate (run node scripts/gen-schema.ts after changing them)', () => {
    assert.equal(readFileSync(SCHEMA_FILE, 'utf8'), schemaText());
    assert.equal(SCHEMA_FILE, path.join(root, 'config', 'breakwater.schema.json'));
  });

  it('documents every key with a description, and every built-in default', () => {
    const schema = jsonSchema() as { $defs: Record<string, { description?: string }> };
    let keys = 0;
    const visit = (v: unknown, where: string): void => {
      if (Array.isArray(v)) return v.forEach((x, i) => visit(x, `${where}[${i}]`));
      if (typeof v !== 'object' || v === null) return;
      const o = v as Record<string, unknown>;
      if (typeof o['properties'] === 'object' && o['properties'] !== null) {
        for (const [k, p] of Object.entries(o['properties'] as Record<string, Record<string, unknown>>)) {
          keys++;
          const ref = typeof p['$ref'] === 'string' ? schema.$defs[(p['$ref'] as string).replace('#/$defs/', '')] : undefined;
          assert.ok(typeof (p['description'] ?? ref?.description) === 'string', `${where}.${k} has a description`);
        }
      }
      for (const [k, x] of Object.entries(o)) visit(x, `${where}.${k}`);
    };
    visit(schema, '#');
    assert.ok(keys > 80, `${keys} keys documented`);
    const s = JSON.stringify(schema);
    assert.match(s, /"default":"1s"/);
    assert.match(s, /"default":"64KiB"/);
    assert.match(s, /"default":"127\.0\.0\.1:9901"/);
    assert.match(s, /"default":\["connect-failure","reset","timeout",502,503,504\]/);
  });

  it('has built-in defaults its own parsers accept', () => {
    for (const [p, n] of nodes(configSchema)) {
      if (n.meta.default === undefined) continue;
      assert.doesNotThrow(() => builtIn(n), p);
    }
  });

  it('accepts the example configs and the SPEC-shaped ones, and rejects what the loader rejects for shape', () => {
    const validate = ajvValidator();
    for (const f of ['config/breakwater.yaml', 'config/demo.yaml', 'deploy/breakwater.yaml']) {
      const r = validate(YAML.parse(readFileSync(path.join(root, f), 'utf8')));
      assert.ok(r.ok, `${f}: ${r.errors}`);
    }
    const bad = (doc: unknown) => assert.equal(validate(doc).ok, false, JSON.stringify(doc));
    const base = { version: 1, listeners: [{ name: 'l', address: '127.0.0.1:0', upstream: 'u' }], upstreams: { u: { url: 'http://a' } } };
    assert.ok(validate(base).ok);
    bad({ ...base, bogus: 1 });
    bad({ ...base, version: 2 });
    bad({ ...base, upstreams: { u: { url: 'http://a', retry: { maxRetries: 11 } } } });
    bad({ ...base, upstreams: { u: { url: 'http://a', endpoints: ['http://b'] } } });
    bad({ ...base, upstreams: { u: {} } });
    bad({ ...base, upstreams: { u: { url: 'http://a', timeout: { total: '10 seconds' } } } });
    bad({ ...base, upstreams: { u: { url: 'http://a', rateLimit: { burst: 1 } } } });
    bad({ ...base, listeners: [{ name: 'l', address: '127.0.0.1:0' }] });
    bad({ ...base, listeners: [{ name: 'l', address: '127.0.0.1:0', routes: [{ upstream: 'u', circuitBreaker: {} }] }] });
    bad({ ...base, listeners: [{ name: 'l', address: '127.0.0.1:0', routes: [{ upstream: 'u', match: { methods: ['FETCH'] } }] }] });
    assert.ok(validate({ ...base, listeners: [{ name: 'l', address: '127.0.0.1:0', routes: [{ upstream: 'u', match: { methods: ['get', 'Post'] } }] }] }).ok);
    assert.ok(validate({ ...base, upstreams: { u: { url: '${URL}', timeout: { total: '${T:-2s}' } } } }).ok, '${} references pass');
  });
});
