/**
 * Compiles a route's `cache` block (SPEC §11.2). A route-only block: it is
 * not merged with defaults or the upstream's, because a cache holds one
 * route's responses.
 */
import { need } from './policies.ts';
import { withBuiltIns } from './merge.ts';
import { cacheSchema, type RawCache } from './schema.ts';
import type { CacheConfig } from './types.ts';

export function compileCache(raw: RawCache | undefined): CacheConfig | null {
  if (raw === undefined) return null;
  const c = withBuiltIns(cacheSchema, raw);
  const maxBytes = need(c.maxBytes, 'cache.maxBytes');
  return {
    maxEntries: need(c.maxEntries, 'cache.maxEntries'),
    maxBytes,
    maxEntrySize: Math.min(need(c.maxEntrySize, 'cache.maxEntrySize'), maxBytes),
    staleIfError: need(c.staleIfError, 'cache.staleIfError'),
    serveFresh: need(c.serveFresh, 'cache.serveFresh'),
  };
}
