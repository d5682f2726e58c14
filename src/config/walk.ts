/**
 * The validator: walks the YAML node tree with a schema (dsl.ts) and returns
 * the validated value: durations in ms, sizes in bytes, rates parsed, names
 * normalised. It never stops at the first problem: an invalid value is
 * reported at its own node and left out of the result (lists and maps keep
 * the slot, so indices and names stay those of the file), and the walk goes
 * on, so one run lists every schema error of the file.
 *
 * String scalars are interpolated (`${NAME}`) as the walk reaches them, so
 * the document is traversed once; the nodes that received a value are
 * collected in `fromEnv` for redaction and for messages that must not echo them.
 */
import { isMap, isScalar, isSeq, type Document, type Scalar } from 'yaml';
import { expectedOf, type AnySchema, type Node } from './dsl.ts';
import type { ConfigErrorKind } from './errors.ts';
import { substitute, substitutionProblems, type Env } from './interpolate.ts';
import { ALIAS_LIMIT, childPath, entriesOf, offsetOf, resolve, type AliasBudget, type AnyNode } from './yaml-nodes.ts';

export const INVALID: unique symbol = Symbol('invalid');

export interface WalkContext {
  readonly doc: Document;
  readonly env: Env;
  readonly budget: AliasBudget;
  /** Filled by the walk: scalars whose value came (at least in part) from `${...}`. */
  readonly fromEnv: Set<Scalar>;
  /** Filled by the walk: scalars already interpolated (an anchored one is reached once per alias). */
  readonly interpolated: Set<Scalar>;
  /** Filled by the walk: scalars whose interpolation failed (reported once, not validated). */
  readonly broken: Set<Scalar>;
  report(offset: number | null, path: string, message: string, kind?: ConfigErrorKind): void;
}

export function walk(schema: AnySchema, raw: AnyNode | null, path: string, ctx: WalkContext, at: number | null): unknown {
  const node = resolve(raw, ctx.doc, ctx.budget);
  const offset = offsetOf(node) ?? offsetOf(raw) ?? at;
  if (node === null) {
    if (ctx.budget.exhausted) {
      if (!ctx.budget.reported) ctx.report(offset, path, `too many aliases (more than ${ALIAS_LIMIT} expansions): refusing the document`);
      ctx.budget.reported = true;
    } else if (raw !== null) ctx.report(offset, path, 'alias to an unknown anchor');
    else return scalar(schema, null, null, path, ctx, offset);
    return INVALID;
  }
  if (isScalar(node)) {
    if (typeof node.value === 'string' && node.value.includes('${') && !ctx.interpolated.has(node)) interpolate(node, path, ctx, offset);
    if (ctx.broken.has(node)) return INVALID; // its interpolation error is already reported
    return scalar(schema, node, node.value, path, ctx, offset);
  }
  const n = schema.node;
  switch (n.kind) {
    case 'object':
      return object(n, schema, node, path, ctx, offset);
    case 'map':
      return mapping(n, node, path, ctx, offset);
    case 'list':
      return sequence(n, node, path, ctx, offset);
    case 'nullable':
      return walk(n.inner, node, path, ctx, offset);
    default:
      ctx.report(offset, path, `expected ${expectedOf(schema)}, found ${found(node, undefined, false)}`);
      return INVALID;
  }
}

function interpolate(node: Scalar, path: string, ctx: WalkContext, offset: number | null): void {
  ctx.interpolated.add(node);
  const s = substitute(node.value as string, ctx.env);
  const problems = substitutionProblems(s);
  if (problems.length > 0) {
    ctx.broken.add(node);
    for (const m of problems) ctx.report(offset, path, m, 'semantic');
    return;
  }
  node.value = s.value;
  if (s.interpolated) ctx.fromEnv.add(node);
}

function object(n: Node & { kind: 'object' }, schema: AnySchema, node: AnyNode, path: string, ctx: WalkContext, offset: number | null): unknown {
  if (!isMap(node)) {
    ctx.report(offset, path, `expected ${expectedOf(schema)}, found ${found(node, undefined, false)}`);
    return INVALID;
  }
  const out: Record<string, unknown> = {};
  const seen = new Map<string, AnyNode | null>();
  const all = new Set<string>();
  for (const e of entriesOf(node, ctx.doc, ctx.budget)) {
    const keyAt = offsetOf(e.key) ?? offset;
    if (e.name === null) {
      ctx.report(keyAt, path, `expected a string key, found ${e.key === null ? 'an empty key' : found(e.key, undefined, false)}`);
      continue;
    }
    if (all.has(e.name)) {
      ctx.report(keyAt, childPath(path, e.name), `key ${e.name} is given twice in this mapping`);
      continue;
    }
    all.add(e.name);
    const field = Object.hasOwn(n.fields, e.name) ? n.fields[e.name] : undefined;
    const p = childPath(path, e.name);
    if (field === undefined) {
      if (n.extensions && e.name.startsWith('x-')) continue;
      if (e.name === '<<') {
        ctx.report(keyAt, p, 'a << merge key needs an alias to a mapping, or a list of them');
        continue;
      }
      ctx.report(keyAt, p, unknownKey(e.name, Object.keys(n.fields).filter((k) => n.fields[k]!.node.kind !== 'forbidden')));
      continue;
    }
    seen.set(e.name, e.key);
    if (field.node.kind === 'forbidden') {
      ctx.report(keyAt, p, field.node.message);
      continue;
    }
    const v = walk(field, e.value, p, ctx, keyAt);
    if (v !== INVALID) out[e.name] = v;
  }
  for (const [k, f] of Object.entries(n.fields)) {
    if (f.meta.required === true && !seen.has(k)) {
      ctx.report(offset, childPath(path, k), `missing required key ${k} (expected ${expectedOf(f)})`);
    }
  }
  for (const group of n.exactlyOne) {
    const present = group.filter((k) => seen.has(k));
    if (present.length === 0) {
      ctx.report(offset, path, `expected one of ${group.join(' or ')}, found neither`);
    } else if (present.length > 1) {
      // Reported at whichever of them comes later in the file.
      const at = (k: string): number => offsetOf(seen.get(k)) ?? 0;
      const [first, second] = [...present].sort((a, b) => at(a) - at(b)) as [string, string];
      ctx.report(offsetOf(seen.get(second)) ?? offset, childPath(path, second), `${first} and ${second} exclude each other: keep one`);
    }
  }
  return out;
}

function mapping(n: Node & { kind: 'map' }, node: AnyNode, path: string, ctx: WalkContext, offset: number | null): unknown {
  if (!isMap(node)) {
    ctx.report(offset, path, `expected a mapping, found ${found(node, undefined, false)}`);
    return INVALID;
  }
  const out = new Map<string, unknown>();
  for (const e of entriesOf(node, ctx.doc, ctx.budget)) {
    const keyAt = offsetOf(e.key) ?? offset;
    if (e.name === null) {
      ctx.report(keyAt, path, `expected ${n.keyExpected}, found ${e.key === null ? 'an empty key' : found(e.key, undefined, false)}`);
      continue;
    }
    const name = n.lowerCaseKeys ? e.name.toLowerCase() : e.name;
    const p = childPath(path, name);
    if (n.keyPattern !== null && !n.keyPattern.test(e.name)) {
      ctx.report(keyAt, p, `expected ${n.keyExpected}, found ${JSON.stringify(e.name)}`);
      continue;
    }
    if (out.has(name)) {
      ctx.report(keyAt, p, `${JSON.stringify(e.name)} is given twice in this mapping${n.lowerCaseKeys ? ' (names are case-insensitive)' : ''}`);
      continue;
    }
    const v = walk(n.value, e.value, p, ctx, keyAt);
    out.set(name, v === INVALID ? undefined : v);
  }
  return out;
}

function sequence(n: Node & { kind: 'list' }, node: AnyNode, path: string, ctx: WalkContext, offset: number | null): unknown {
  if (!isSeq(node)) {
    ctx.report(offset, path, `expected a list, found ${found(node, undefined, false)}`);
    return INVALID;
  }
  const out: unknown[] = [];
  node.items.forEach((item, i) => {
    const v = walk(n.item, item as AnyNode, childPath(path, i), ctx, offset);
    out.push(v === INVALID ? undefined : v);
  });
  if (out.length < n.minItems) ctx.report(offset, path, `expected a list of at least ${n.minItems} item${n.minItems === 1 ? '' : 's'}, found an empty list`);
  return out;
}

/** A scalar (or an empty value, `node` null) against any schema. */
function scalar(schema: AnySchema, node: Scalar | null, value: unknown, path: string, ctx: WalkContext, offset: number | null): unknown {
  const env = node !== null && ctx.fromEnv.has(node);
  const hide = env || schema.meta.sensitive === true;
  const r = check(schema, value, env);
  if (r.ok) return r.value;
  ctx.report(offset, path, `expected ${r.expected}, found ${found(node, value, hide || r.secret === true, env)}`);
  return INVALID;
}

type Checked = { ok: true; value: unknown } | { ok: false; expected: string; secret?: boolean };

/** Pure check of one scalar value; `env` says it came from `${...}` (always a string). */
function check(schema: AnySchema, value: unknown, env: boolean): Checked {
  const n = schema.node;
  const bad: Checked = { ok: false, expected: expectedOf(schema) };
  switch (n.kind) {
    case 'nullable':
      return value === null ? { ok: true, value: null } : orNull(check(n.inner, value, env));
    case 'string': {
      if (typeof value !== 'string') return bad;
      if (value.length < n.minLength) return bad;
      if (n.singleLine && /[\r\n]/.test(value)) return { ok: false, expected: `${n.expected} on a single line` };
      if (n.pattern !== null && !n.pattern.test(value)) return bad;
      return { ok: true, value: n.lowerCase ? value.toLowerCase() : value };
    }
    case 'enum': {
      if (typeof value !== 'string') return bad;
      const v = n.caseInsensitive ? n.values.find((x) => x.toUpperCase() === value.toUpperCase()) : n.values.find((x) => x === value);
      if (v !== undefined) return { ok: true, value: v };
      const hint = suggest(value, n.values);
      return hint === null ? bad : { ok: false, expected: `${expectedOf(schema)} (did you mean ${hint}?)` };
    }
    case 'integer':
    case 'number': {
      const num = typeof value === 'number' ? value : env && typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
      if (!Number.isFinite(num)) return bad;
      if (n.kind === 'integer' && !Number.isInteger(num)) return bad;
      if (n.min !== null && (n.kind === 'number' && n.exclusiveMin ? num <= n.min : num < n.min)) return bad;
      if (n.max !== null && num > n.max) return bad;
      return { ok: true, value: num };
    }
    case 'boolean':
      if (typeof value === 'boolean') return { ok: true, value };
      if (env && (value === 'true' || value === 'false')) return { ok: true, value: value === 'true' };
      return bad;
    case 'literal':
      return value === n.value || (env && value === String(n.value)) ? { ok: true, value: n.value } : bad;
    case 'union':
      for (const o of n.options) {
        const r = check(o, value, env);
        if (r.ok) return r;
      }
      return bad;
    case 'custom':
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return bad;
      return n.parse(value, env);
    case 'forbidden':
      return { ok: false, expected: n.message };
    case 'object':
    case 'map':
    case 'list':
      return bad;
  }
}

/** A nullable key's check: the inner value's expectation, plus null. */
function orNull(r: Checked): Checked {
  return r.ok ? r : { ok: false, expected: r.expected.endsWith(', or null') ? r.expected : `${r.expected}, or null` };
}

/** What was found, without ever echoing a secret. */
function found(node: AnyNode | null, value: unknown, hide: boolean, env = false): string {
  if (node !== null && isMap(node)) return 'a mapping';
  if (node !== null && isSeq(node)) return 'a list';
  if (value === null || value === undefined) return node === null || value === null ? 'an empty value (null)' : 'an empty value';
  const type = typeof value === 'string' ? 'string' : typeof value === 'number' ? (Number.isInteger(value) ? 'integer' : 'number') : typeof value;
  const a = type === 'integer' ? 'an' : 'a';
  if (hide) return env ? `${a} ${type} from \${...} (not shown)` : `${a} ${type} (not shown)`;
  if (typeof value === 'string') return `${type} ${JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)}`;
  return `${type} ${String(value)}`;
}

function unknownKey(key: string, known: readonly string[]): string {
  const hint = suggest(key, known);
  const list = known.length > 0 ? `expected one of ${known.join(', ')}` : 'no keys are expected here';
  return hint === null ? `unknown key ${key} (${list})` : `unknown key ${key}: did you mean ${hint}? (${list})`;
}

/** The closest known word, if it is close enough to be a typo. */
export function suggest(word: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const k of known) {
    const d = distance(w, k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(word.length / 4)) ? best : null;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
