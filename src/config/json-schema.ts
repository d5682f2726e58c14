/**
 * JSON Schema (draft 2020-12) generated from a dsl.ts schema, for editors and
 * CI linters. Blocks with a `ref` are emitted once under `$defs`. What JSON
 * Schema cannot say (cross-field rules such as fallback cycles) is checked by
 * validate.ts only; everything it can say comes from the same declarations
 * the validator walks with.
 */
import type { AnySchema, Meta } from './dsl.ts';

type Json = Record<string, unknown>;

export function toJsonSchema(root: AnySchema, header: { title: string; description: string }): Json {
  const defs: Record<string, Json> = {};
  const gen = (s: AnySchema): Json => {
    const ref = s.meta.ref;
    if (ref === undefined) return body(s);
    if (!Object.hasOwn(defs, ref)) {
      defs[ref] = {}; // reserve the name first: a block may refer to itself
      defs[ref] = body(s);
    }
    return { $ref: `#/$defs/${ref}` };
  };
  const body = (s: AnySchema): Json => ({ ...docs(s.meta), ...shape(s) });
  const shape = (s: AnySchema): Json => {
    const n = s.node;
    switch (n.kind) {
      case 'object': {
        const properties: Json = {};
        const required: string[] = [];
        for (const [k, f] of Object.entries(n.fields)) {
          properties[k] = gen(f);
          if (f.meta.required === true) required.push(k);
        }
        const out: Json = { type: 'object', properties };
        if (required.length > 0) out['required'] = required;
        if (n.extensions) out['patternProperties'] = { '^x-': { description: 'Extension key, ignored: a place for YAML anchors.' } };
        out['additionalProperties'] = false;
        const groups = n.exactlyOne.map((g) => ({ oneOf: g.map((k) => ({ required: [k] })) }));
        if (groups.length === 1) Object.assign(out, groups[0]);
        else if (groups.length > 1) out['allOf'] = groups;
        return out;
      }
      case 'map': {
        const out: Json = { type: 'object' };
        if (n.keyPattern !== null) out['propertyNames'] = { pattern: n.keyPattern.source };
        out['additionalProperties'] = gen(n.value);
        return out;
      }
      case 'list': {
        const out: Json = { type: 'array', items: gen(n.item) };
        if (n.minItems > 0) out['minItems'] = n.minItems;
        return out;
      }
      case 'string': {
        const out: Json = { type: 'string' };
        if (n.minLength > 0) out['minLength'] = n.minLength;
        if (n.pattern !== null) out['pattern'] = n.pattern.source;
        return out;
      }
      case 'enum':
        if (!n.caseInsensitive) return { enum: [...n.values] };
        // JSON Schema regexes have no flags: spell each letter both ways.
        return { type: 'string', pattern: `^(?:${n.values.map(anyCase).join('|')})$` };
      case 'integer':
      case 'number': {
        const out: Json = { type: n.kind };
        if (n.min !== null) out[n.kind === 'number' && n.exclusiveMin ? 'exclusiveMinimum' : 'minimum'] = n.min;
        if (n.max !== null) out['maximum'] = n.max;
        return out;
      }
      case 'boolean':
        return { type: 'boolean' };
      case 'literal':
        return { const: n.value };
      case 'nullable':
        return { anyOf: [gen(n.inner), { type: 'null' }] };
      case 'union':
        return { anyOf: n.options.map(gen) };
      case 'forbidden':
        return { not: {} };
      case 'custom':
        return { ...n.json };
    }
  };
  const root_ = gen(root);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: header.title,
    description: header.description,
    ...root_,
    $defs: defs,
  };
}

function docs(meta: Meta): Json {
  const out: Json = {};
  if (meta.description !== undefined) out['description'] = meta.description;
  if (meta.default !== undefined) out['default'] = meta.default;
  return out;
}

function anyCase(word: string): string {
  return [...word].map((c) => (c.toLowerCase() === c.toUpperCase() ? escape(c) : `[${c.toUpperCase()}${c.toLowerCase()}]`)).join('');
}

function escape(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c;
}
