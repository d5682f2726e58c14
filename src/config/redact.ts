/**
 * The config as served by `GET /config`: the document as written, as plain
 * JSON, after interpolation, with every value that came from `${...}` and
 * every `requestHeaders.set` value (credential injection) and `admin.token` replaced by
 * "[redacted]". `x-` extension keys (anchor templates) are left out: whatever
 * they hold appears, merged and redacted, where it is used.
 */
import { isMap, isScalar, isSeq, type Document, type Scalar } from 'yaml';
import { redactRedisUrl } from './redis.ts';
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

/** Under the top-level redis block: URLs lose their credentials, passwords are redacted whole. */
const REDIS = 8;
const REDIS_URL = 9;
const REDIS_SENTINEL = 10;
const REDIS_CLUSTER = 11;

function step(state: number, key: string): number {
  if (state === ROOT) return key === 'upstreams' ? UPSTREAMS : key === 'admin' ? ADMIN : key === 'redis' ? REDIS : OTHER;
  if (state === ADMIN) return key === 'token' ? SECRET : OTHER;
  if (state === REDIS) return key === 'url' ? REDIS_URL : key === 'password' ? SECRET : key === 'sentinel' ? REDIS_SENTINEL : key === 'cluster' ? REDIS_CLUSTER : OTHER;
  if (state === REDIS_SENTINEL) return key === 'password' ? SECRET : OTHER;
  if (state === REDIS_CLUSTER) return key === 'nodes' ? REDIS_URL : OTHER;
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
      if (state === REDIS_URL && typeof node.value === 'string') return redactRedisUrl(node.value);
      const v = node.value;
      return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : null;
    }
    if (isSeq(node)) return node.items.map((item) => toJson(item as AnyNode, state === REDIS_URL ? REDIS_URL : OTHER));
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
