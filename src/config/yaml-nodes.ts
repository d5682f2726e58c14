/**
 * Helpers over the `yaml` library's node tree, shared by the interpolator,
 * the validator and the redactor: alias resolution (with a budget, so a
 * "billion laughs" document cannot make a walk explode), mapping entries with
 * `<<` merge keys expanded, and config paths written the way messages show them.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type Node as YamlNode, type Scalar } from 'yaml';

export type AnyNode = YamlNode;

/** Aliases followed in one walk before the document is refused. */
export const ALIAS_LIMIT = 10_000;

export class AliasBudget {
  left = ALIAS_LIMIT;
  exhausted = false;
  /** The refusal was reported (once is enough). */
  reported = false;
}

/** The node an alias points at; null when the budget is spent or the anchor is unknown. */
export function resolve(node: AnyNode | null, doc: Document, budget: AliasBudget): AnyNode | null {
  let n: AnyNode | null = node;
  while (n !== null && isAlias(n)) {
    if (budget.left-- <= 0) {
      budget.exhausted = true;
      return null;
    }
    n = (n.resolve(doc) as AnyNode | undefined) ?? null;
  }
  return n;
}

export interface Entry {
  readonly key: AnyNode | null;
  /** The key as a string, or null when the key is not a scalar. */
  readonly name: string | null;
  readonly value: AnyNode | null;
}

/**
 * The entries of a mapping, `<<: *anchor` (or `<<: [*a, *b]`) merges expanded:
 * keys written in the mapping win over merged ones, earlier sources over later.
 */
export function entriesOf(map: AnyNode, doc: Document, budget: AliasBudget, expanding: Set<AnyNode> = new Set()): Entry[] {
  if (!isMap(map) || expanding.has(map)) return []; // a mapping merged into itself adds nothing
  expanding.add(map);
  const own: Entry[] = [];
  const merges: AnyNode[] = [];
  for (const pair of map.items) {
    const key = (pair.key as AnyNode | null) ?? null;
    const name = key !== null && isScalar(key) ? scalarKey(key) : null;
    if (name === '<<' && key !== null && isScalar(key) && (key as Scalar).type === 'PLAIN') {
      const v = pair.value as AnyNode | null;
      if (v !== null && isSeq(v)) for (const item of v.items) merges.push(item as AnyNode);
      else if (v !== null) merges.push(v);
      continue;
    }
    own.push({ key, name, value: (pair.value as AnyNode | null) ?? null });
  }
  if (merges.length === 0) {
    expanding.delete(map);
    return own;
  }
  const seen = new Set(own.map((e) => e.name));
  const out = [...own];
  for (const m of merges) {
    const source = resolve(m, doc, budget);
    if (source === null || !isMap(source)) {
      out.push({ key: m, name: '<<', value: m });
      continue;
    }
    for (const e of entriesOf(source, doc, budget, expanding)) {
      if (e.name !== null && seen.has(e.name)) continue;
      seen.add(e.name);
      out.push(e);
    }
  }
  expanding.delete(map);
  return out;
}

function scalarKey(key: Scalar): string | null {
  const v = key.value;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/** Source offset where the node starts. */
export function offsetOf(node: AnyNode | null | undefined): number | null {
  const r = node?.range;
  return r ? r[0] : null;
}

const PLAIN_SEGMENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** `listeners[0].routes[1]`, `upstreams.payments`, `upstreams["payments.v2"]`. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (!PLAIN_SEGMENT.test(key)) return `${parent}[${JSON.stringify(key)}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

/** The segments of a config path written by `childPath`: names and list indices. */
export function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /\.?([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < path.length && (m = re.exec(path)) !== null) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
  }
  return out;
}

/**
 * Source offset of the node at a config path, or of its nearest existing
 * ancestor (a missing key is reported at the mapping that lacks it). Looked
 * up only when an error needs it, so a valid file pays nothing for it.
 * Names are compared case-insensitively as a fallback: header names are
 * stored lower-case.
 */
export function locate(doc: Document, path: string): number {
  const budget = new AliasBudget();
  let node = resolve((doc.contents as AnyNode | null) ?? null, doc, budget);
  let best = offsetOf(node) ?? 0;
  for (const seg of pathSegments(path)) {
    let next: AnyNode | null = null;
    if (typeof seg === 'number' && node !== null && isSeq(node)) {
      next = (node.items[seg] as AnyNode | undefined) ?? null;
    } else if (typeof seg === 'string' && node !== null && isMap(node)) {
      const entries = entriesOf(node, doc, budget);
      const e = entries.find((x) => x.name === seg) ?? entries.find((x) => x.name?.toLowerCase() === seg.toLowerCase());
      if (e !== undefined) next = e.value ?? e.key;
      if (e !== undefined && e.value === null) return offsetOf(e.key) ?? best;
    }
    node = resolve(next, doc, budget);
    const o = offsetOf(node);
    if (node === null || o === null) return best;
    best = o;
  }
  return best;
}
