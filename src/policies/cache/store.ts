/**
 * A route's stored responses, bounded (SPEC §11.2): at most `maxEntries`
 * URLs and `maxBytes` bytes, the least recently used evicted first.
 *
 * NOTE: the LRU is lru-cache's, not undici's MemoryCacheStore. undici's store
 * evicts by halving the whole store in insertion order when it is full, keys
 * entries by method (a HEAD could not be answered from a GET's entry),
 * takes each body through a Writable stream (an object per stored
 * response, and the stream machinery PERF-NOTES measured as costly), and
 * says nothing about what it evicts. lru-cache gives a true LRU with byte
 * accounting (`maxSize` + `sizeCalculation`), a count bound (`max`), and a
 * `dispose` callback with the reason, which is how evictions are counted.
 *
 * One LRU entry per URL holds that URL's variants (`Vary`): a lookup by URL
 * then by the request's Vary'd values, at most MAX_VARIANTS per URL (the
 * oldest goes), so a header with endless values cannot grow one URL without
 * bound; its bytes count in full against `maxBytes`.
 *
 * NOTE: lru-cache allocates its index for `max` entries up front (two
 * arrays and two typed arrays, about 24 bytes an entry), which is why the
 * schema caps maxEntries at 100,000 (~2.4 MB for a route at the cap).
 *
 * State that outlives reloads (runtime/state.ts): a reload that keeps the
 * route keeps its store; new bounds are applied by `update()` at commit,
 * carrying the entries over in their recency order.
 */
import { LRUCache } from 'lru-cache';
import type { IncomingHttpHeaders } from 'node:http';
import type { CacheConfig } from '../../config/types.ts';
import { varyKey } from './rules.ts';

export const MAX_VARIANTS = 8;

/** One stored response. Immutable once stored. */
export interface StoredResponse {
  readonly status: number;
  /** The response head as served: no hop-by-hop, no Age, no Content-Length (the body's length is), no x-request-id. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer;
  /** The endpoint that answered (host:port), for the Location rewrite of http/response-headers.ts. */
  readonly endpoint: string;
  /** Epoch ms the response head arrived. */
  readonly storedAt: number;
  /** Its age then, ms. */
  readonly initialAge: number;
  /** Freshness lifetime, ms. */
  readonly lifetime: number;
  /** How long past the lifetime it may still answer a failure, ms. */
  readonly staleWindow: number;
  /** `no-cache`: never served as fresh. */
  readonly noCache: boolean;
  /** Sorted lower-case Vary names; null: none. */
  readonly vary: readonly string[] | null;
  /** The storing request's values of those names (rules.ts varyKey). */
  readonly varyKey: string;
  /** Bytes accounted: body, header names and values, and a fixed overhead. */
  readonly size: number;
}

interface Variants {
  readonly list: readonly StoredResponse[];
  readonly size: number;
}

/** A stored response's current age, ms. */
export function ageOf(e: StoredResponse, now: number): number {
  return e.initialAge + Math.max(0, now - e.storedAt);
}

export type Bounds = Pick<CacheConfig, 'maxEntries' | 'maxBytes' | 'maxEntrySize'>;

export class ResponseCache {
  #bounds: Bounds;
  #lru: LRUCache<string, Variants>;
  /** Variants evicted by the bounds since the last `takeEvicted()`. */
  #evicted = 0;

  constructor(bounds: Bounds) {
    this.#bounds = bounds;
    this.#lru = this.#make(bounds);
  }

  #make(b: Bounds): LRUCache<string, Variants> {
    return new LRUCache<string, Variants>({
      max: b.maxEntries,
      maxSize: b.maxBytes,
      maxEntrySize: b.maxBytes,
      sizeCalculation: (v) => Math.max(1, v.size),
      dispose: (v, _k, reason) => {
        if (reason === 'evict') this.#evicted += v.list.length;
      },
    });
  }

  get maxEntrySize(): number {
    return this.#bounds.maxEntrySize;
  }

  /** URLs held. */
  get entries(): number {
    return this.#lru.size;
  }

  /** Bytes accounted, never above maxBytes. */
  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  /** The variant of `url` this request selects, or null. Marks the URL recently used. */
  lookup(url: string, req: IncomingHttpHeaders): StoredResponse | null {
    const v = this.#lru.get(url);
    if (v === undefined) return null;
    const list = v.list;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.varyKey === varyKey(e.vary, req)) return e;
    }
    return null;
  }

  /** Stores (or replaces) one variant of `url`. Too large for maxEntrySize: not stored. */
  put(url: string, e: StoredResponse): void {
    if (e.size > this.#bounds.maxEntrySize) return;
    const old = this.#lru.peek(url);
    let list: StoredResponse[];
    if (old === undefined) list = [e];
    else {
      // The same variant is replaced; a URL whose Vary changed starts over.
      list = old.list.filter((x) => x.varyKey !== e.varyKey && sameNames(x.vary, e.vary));
      list.push(e);
      if (list.length > MAX_VARIANTS) list.splice(0, list.length - MAX_VARIANTS);
    }
    let size = 0;
    for (const x of list) size += x.size;
    this.#lru.set(url, { list, size });
  }

  /** Drops one stored variant (past its stale window: it can never answer again). */
  remove(url: string, e: StoredResponse): void {
    const v = this.#lru.peek(url);
    if (v === undefined || !v.list.includes(e)) return;
    if (v.list.length === 1) {
      this.#lru.delete(url);
      return;
    }
    const list = v.list.filter((x) => x !== e);
    this.#lru.set(url, { list, size: v.size - e.size });
  }

  /** Drops a URL (an unsafe method succeeded on it: RFC 9111 §4.4). */
  delete(url: string): void {
    this.#lru.delete(url);
  }

  /** Variants evicted since the last call, for the metrics. */
  takeEvicted(): number {
    const n = this.#evicted;
    this.#evicted = 0;
    return n;
  }

  /**
   * New bounds (a reload changed them): a new LRU gets the entries in their
   * recency order, so what no longer fits is the least recently used.
   */
  update(bounds: Bounds): void {
    const b = this.#bounds;
    if (b.maxEntries === bounds.maxEntries && b.maxBytes === bounds.maxBytes && b.maxEntrySize === bounds.maxEntrySize) return;
    const old = this.#lru;
    this.#bounds = bounds;
    this.#lru = this.#make(bounds);
    const all = [...old.entries()].reverse(); // least recently used first
    for (const [url, v] of all) {
      const list = v.list.filter((e) => e.size <= bounds.maxEntrySize);
      if (list.length === 0) continue;
      let size = 0;
      for (const e of list) size += e.size;
      this.#lru.set(url, { list, size });
    }
    old.clear();
    this.#evicted = 0;
  }

  clear(): void {
    this.#lru.clear();
  }
}

function sameNames(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
