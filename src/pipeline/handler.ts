/**
 * The pipeline's vocabulary: what a handler produces (a Reply), the Handler
 * and Layer shapes every policy shares, and `compose`, which builds a stack
 * of layers once per config load.
 */
import type { Failure } from '../errors.ts';
import type { Exchange } from './exchange.ts';
import type { UpstreamResponse } from './upstream-response.ts';

/** A static answer: a fallback `response` block, or a stored response (policies/cache/). */
export interface StaticReply {
  readonly type: 'static';
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: string | Buffer;
  /** Its `x-breakwater-fallback` value: absent, `response`; `cache`, a stale stored response; null, none (a fresh stored response, the dead-letter spool's 202). */
  readonly fallback?: 'cache' | null;
}

/** What a handler produces: an upstream response to commit or discard, a static answer, or a failure to render. */
export type Reply = UpstreamResponse | StaticReply | Failure;

/** A handler takes an exchange and produces its reply. */
export type Handler = (ex: Exchange) => Promise<Reply>;
/** A layer wraps the next handler: built once per config load. */
export type Layer = (next: Handler) => Handler;

/**
 * Composes layers, first outermost, around the innermost handler. Layers that
 * do not apply are left out at build time (`null` entries are skipped), so the
 * request path never tests "is this policy on?".
 */
export function compose(layers: readonly (Layer | null)[], inner: Handler): Handler {
  let h = inner;
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i];
    if (layer === null || layer === undefined) continue;
    if (typeof layer !== 'function') throw new TypeError(`pipeline layer ${i} is not a function`);
    const next = layer(h);
    if (typeof next !== 'function') throw new TypeError(`pipeline layer ${i} did not return a handler`);
    h = next;
  }
  return h;
}
