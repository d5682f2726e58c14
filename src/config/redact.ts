/**
 * The config as served by `GET /config`: the document as written, as plain
 * JSON, after interpolation, with every value that came from `${...}` and
 * every `requestHeaders.set` value (credential injection) and `admin.token` replaced by
 * "[redacted]". `x-` extension keys (anchor templates) are left out: whatever
 * they hold appears, merged and redacted, where it is used.
 */
import { isMap, isScalar, isSeq, type Document, type Scalar } from 'yaml';
import { AliasBudget, entriesOf, resolve, type AnyNode } from './yaml-nodes.ts';

export const REDACTED = '[redacted]';

/** Where the walk is, as far as redaction cares: the document root, a step of upstreams.<name>.requestHeaders.set.<header>, or admin.token. */
const ROOT = 0;
const UPSTREAMS = 1;
const UPSTREAM = 2;
const REQUEST_HEADERS = 3;
const SET = 4;
const SECRET = 5;
const OTHER = 6;
const ADMIN = 7;

function step(state: number, key: string): number {
  if (state === ROOT) return key === 'upstreams' ? UPSTREAMS : key === 'admin' ? ADMIN : OTHER;
  if (state === ADMIN) return key === 'token' ? SECRET : OTHER;
  if (state === UPSTREAMS) return UPSTREAM;
  if (state === UPSTREAM) return key === 'requestHeaders' ? REQUEST_HEADERS : OTHER;
  if (state === REQUEST_HEADERS) return key === 'set' ? SET : OTHER;
  if (state === SET) return SECRET;
  return OTHER;
}

export function redactedDocument(doc: Document, fromEnv: ReadonlySet<Scalar>): unknown {
  const budget = new AliasBudget();
  const toJson = (raw: AnyNode | null, state: number): unknown => {
    const node = resolve(raw, doc, budget);
    if (node === null) return null;
    if (isScalar(node)) {
      if (state === SECRET || fromEnv.has(node)) return REDACTED;
      const v = node.value;
      return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : null;
    }
    if (isSeq(node)) return node.items.map((item) => toJson(item as AnyNode, OTHER));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const e of entriesOf(node, doc, budget)) {
        if (e.name === null || (state === ROOT && e.name.startsWith('x-'))) continue;
        const value = toJson(e.value, step(state, e.name));
        // defineProperty: a key named __proto__ must stay a key.
        if (e.name === '__proto__') Object.defineProperty(out, e.name, { value, enumerable: true, writable: true, configurable: true });
        else out[e.name] = value;
      }
      return out;
    }
    return null;
  };
  return toJson(doc.contents as AnyNode | null, ROOT);
}
