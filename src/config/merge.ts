/**
 * SPEC §4 merge rules: built-in < `defaults` < upstream < route, key by key.
 * Blocks merge recursively where the schema says "object" (`retry.backoff`,
 * `retry.budget`, `fallback.response`), and are replaced whole everywhere else
 * (lists, maps, scalars, and an explicit `null`, which turns a block off). The
 * built-ins come from the schema's `default`s, converted by the same parsers
 * as the file, so `'25ms'` in the schema and `25ms` in YAML mean one thing.
 */
import { objectNode, type AnySchema, type Schema } from './dsl.ts';

/** One place of the file that may hold a block: its config path and what it says there (undefined: nothing). */
export interface Layer<T> {
  readonly path: string;
  readonly value: T | undefined;
}

/** The layers merged, later ones winning key by key; undefined when no layer holds the block. */
export function mergeBlocks<T>(schema: Schema<T>, layers: readonly Layer<T>[]): T | undefined {
  let out: unknown = undefined;
  for (const l of layers) out = mergeTwo(schema, out, l.value);
  return out as T | undefined;
}

function mergeTwo(schema: AnySchema, a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (a === undefined || a === null || b === null) return b;
  const obj = objectNode(schema);
  if (obj === null || !isPlainObject(a) || !isPlainObject(b)) return b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const field = obj.fields[k];
    out[k] = field === undefined ? v : mergeTwo(field, a[k], v);
  }
  return out;
}

/**
 * The config path of the most specific layer that writes `keys` (e.g.
 * ['backoff', 'base'] → "upstreams.payments.retry.backoff.base"), or null when
 * only the built-in applies.
 */
export function originOf(layers: readonly Layer<unknown>[], keys: readonly string[]): string | null {
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    let v: unknown = l.value;
    for (const k of keys) v = isPlainObject(v) ? v[k] : undefined;
    if (v !== undefined) return [l.path, ...keys].join('.');
  }
  return null;
}

/** The most specific layer that holds the block at all. */
export function innermost(layers: readonly Layer<unknown>[]): Layer<unknown> | null {
  for (let i = layers.length - 1; i >= 0; i--) if (layers[i]!.value !== undefined) return layers[i]!;
  return null;
}

/**
 * `value` with every key nobody wrote set to its built-in: nested blocks that
 * are always in force (`retry.backoff`) are filled too; blocks that are off
 * unless present (`fallback.response`) stay absent.
 */
export function withBuiltIns<T>(schema: Schema<T>, value: T): T {
  const n = objectNode(schema);
  if (n === null || !isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(n.fields)) {
    if (f.node.kind === 'forbidden') continue;
    const v = value[k];
    if (v !== undefined) {
      out[k] = v !== null && objectNode(f) !== null ? withBuiltIns(f, v) : v;
    } else if (f.meta.default !== undefined) {
      out[k] = builtIn(f);
    } else if (objectNode(f) !== null && !offUnlessPresent(f)) {
      out[k] = withBuiltIns(f, {});
    }
  }
  return out as T;
}

function offUnlessPresent(s: AnySchema): boolean {
  if (s.meta.offUnlessPresent === true) return true;
  return s.node.kind === 'nullable' && s.node.inner.meta.offUnlessPresent === true;
}

const builtIns = new WeakMap<AnySchema, unknown>();

/** A key's built-in value, converted once (and shared: the result is frozen with the config). */
export function builtIn(schema: AnySchema): unknown {
  if (!builtIns.has(schema)) builtIns.set(schema, convert(schema, schema.meta.default));
  return builtIns.get(schema);
}

function convert(schema: AnySchema, v: unknown): unknown {
  const n = schema.node;
  switch (n.kind) {
    case 'custom': {
      const r = n.parse(v as string | number, false);
      if (!r.ok) throw new Error(`breakwater bug: built-in ${String(v)} is not ${r.expected}`);
      return r.value;
    }
    case 'nullable':
      return v === null ? null : convert(n.inner, v);
    case 'list':
      return (v as unknown[]).map((x) => convert(n.item, x));
    case 'map':
      return new Map(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, convert(n.value, x)]));
    default:
      return v;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Set);
}
