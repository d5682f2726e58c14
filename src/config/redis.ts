/**
 * The top-level `redis` block (SPEC §12): compiled to a RedisConfig, checked
 * against the rate limits that need it, and shown without its secrets.
 */
import path from 'node:path';
import { withBuiltIns, type Layer } from './merge.ts';
import { compileRateLimit, need } from './policies.ts';
import { redisSchema, type RawConfig, type RawRateLimit, type RawRedis } from './schema.ts';
import type { RateLimitConfig, RedisConfig } from './types.ts';
import { formatDuration, formatRate } from './units.ts';
import { readTlsMaterial } from './tls.ts';
import { childPath } from './yaml-nodes.ts';

export function compileRedis(raw: RawRedis | undefined, baseDir: string): RedisConfig | null {
  if (raw === undefined) return null;
  // Structure from the block as written (the built-ins would fill in sentinel and cluster), values with the built-ins.
  const r = withBuiltIns(redisSchema, raw);
  const s = raw.sentinel;
  const mode = raw.url !== undefined ? 'standalone' : s !== undefined ? 'sentinel' : 'cluster';
  const urls = raw.url !== undefined ? [raw.url] : (raw.cluster?.nodes ?? []).filter((u): u is string => u !== undefined);
  return {
    mode,
    urls,
    sentinel:
      s === undefined
        ? null
        : {
            name: need(s.name, 'redis.sentinel.name'),
            sentinels: (s.sentinels ?? []).filter((x): x is string => x !== undefined).map(hostPort),
            password: s.password ?? null,
          },
    username: raw.username ?? null,
    password: raw.password ?? null,
    tls: raw.tls === undefined ? null : { ca: raw.tls.ca === undefined ? null : path.resolve(baseDir, raw.tls.ca), servername: raw.tls.servername ?? null },
    timeout: need(r.timeout, 'redis.timeout'),
    onRedisError: need(r.onRedisError, 'redis.onRedisError'),
    keyPrefix: need(r.keyPrefix, 'redis.keyPrefix'),
  };
}

function hostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(text.slice(i + 1)) };
}

/**
 * Every `rateLimit.scope: global` needs the top-level redis block: reported
 * at the scope key. Limits that share a key share one bucket, so they must
 * agree on rate and burst (after merging with defaults).
 */
export function checkGlobalLimits(raw: RawConfig, report: (path: string, message: string) => void): void {
  if (raw.redis !== undefined) {
    checkSharedKeys(raw, report);
    return;
  }
  const message = 'rateLimit.scope global needs the top-level redis block (redis: { url: ${REDIS_URL} }): there is nowhere to share the bucket';
  if (raw.defaults?.rateLimit?.scope === 'global') report('defaults.rateLimit.scope', message);
  for (const [name, u] of raw.upstreams ?? []) if (u?.rateLimit?.scope === 'global') report(`${childPath('upstreams', name)}.rateLimit.scope`, message);
  (raw.listeners ?? []).forEach((l, i) =>
    (l?.routes ?? []).forEach((r, j) => {
      if (r?.rateLimit?.scope === 'global') report(`listeners[${i}].routes[${j}].rateLimit.scope`, message);
    }),
  );
}

/**
 * What the pattern cannot see and the connection would throw on at commit:
 * every URL parses with a host and a port in range, and `tls.ca` is a
 * readable PEM (the only other file the redis block names). Messages never
 * repeat a URL (it may hold a password).
 */
export function validateRedis(raw: RawConfig, baseDir: string, report: (path: string, message: string) => void): void {
  const r = raw.redis;
  if (r === undefined) return;
  const check = (p: string, u: string | undefined): void => {
    if (u === undefined) return;
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      report(p, 'not a valid redis:// URL (scheme, host, optional port and /db)');
      return;
    }
    if (url.hostname === '') report(p, 'the URL names no host');
    if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) report(p, 'the path of a redis URL is a database number (/0), nothing else');
  };
  check('redis.url', r.url);
  (r.cluster?.nodes ?? []).forEach((u, i) => check(`redis.cluster.nodes[${i}]`, u));
  if (r.tls?.ca !== undefined) {
    const read = readTlsMaterial({ ca: path.resolve(baseDir, r.tls.ca), cert: null, key: null });
    if (!read.ok) for (const problem of read.problems) report('redis.tls.ca', problem.message);
  }
}

/** A URL without its credentials: redis://[redacted]@host:port/db. */
export function redactRedisUrl(url: string): string {
  const at = url.lastIndexOf('@');
  const scheme = url.indexOf('://');
  if (at < 0 || scheme < 0 || at < scheme) return url;
  return `${url.slice(0, scheme + 3)}[redacted]@${url.slice(at + 1)}`;
}

/** `breakwater validate`'s line for the redis block: effective values, no secrets. */
export function describeRedis(r: RedisConfig): string {
  const where =
    r.mode === 'sentinel' && r.sentinel !== null
      ? `sentinel ${r.sentinel.name} via ${r.sentinel.sentinels.map((x) => `${x.host}:${x.port}`).join(', ')}`
      : `${r.mode} ${r.urls.map(redactRedisUrl).join(', ')}`;
  const tls = r.tls !== null || r.urls.some((u) => u.startsWith('rediss:')) ? 'tls on' : 'tls off';
  const auth = r.password !== null ? `password set${r.username !== null ? ` (user ${r.username})` : ''}` : 'no password';
  return `${where}; ${tls}; ${auth}; timeout ${formatDuration(r.timeout)}; on redis error ${r.onRedisError}; key prefix ${r.keyPrefix}`;
}

/** One bucket, one rate: the first limit to use a key sets it, a later one that differs is reported at its rateLimit. */
function checkSharedKeys(raw: RawConfig, report: (path: string, message: string) => void): void {
  const first = new Map<string, { path: string; rl: RateLimitConfig }>();
  const note = (path: string, builtInKey: string, layers: Layer<RawRateLimit>[]): void => {
    let rl: RateLimitConfig | null;
    try {
      rl = compileRateLimit(layers);
    } catch {
      return; // an invalid block: its own error is reported elsewhere
    }
    if (rl === null || rl.scope !== 'global') return;
    const key = rl.key ?? builtInKey;
    const seen = first.get(key);
    if (seen === undefined) first.set(key, { path, rl });
    else if (seen.rl.rate.perMs !== rl.rate.perMs || seen.rl.burst !== rl.burst) {
      report(
        path,
        `global rate limit key ${key} is also used by ${seen.path} with ${formatRate(seen.rl.rate)} burst ${seen.rl.burst}, here ${formatRate(rl.rate)} burst ${rl.burst}: one bucket has one rate; use the same values or another key`,
      );
    } else if (seen.rl.onRedisError !== rl.onRedisError) {
      report(
        `${path}.onRedisError`,
        `global rate limit key ${key} is also used by ${seen.path} with onRedisError ${seen.rl.onRedisError ?? '(the redis block’s)'}, here ${rl.onRedisError ?? '(the redis block’s)'}: one bucket has one answer while Redis fails; use the same or another key`,
      );
    }
  };
  for (const [name, u] of raw.upstreams ?? []) {
    const p = `${childPath('upstreams', name)}.rateLimit`;
    note(p, `upstream:${name}`, [
      { path: 'defaults.rateLimit', value: raw.defaults?.rateLimit },
      { path: p, value: u?.rateLimit },
    ]);
  }
  (raw.listeners ?? []).forEach((l, i) =>
    (l?.routes ?? []).forEach((r, j) => {
      const p = `listeners[${i}].routes[${j}].rateLimit`;
      if (r?.rateLimit !== undefined) note(p, `route:${r.name ?? `${l?.name ?? ''}/${j}`}`, [{ path: p, value: r.rateLimit }]);
    }),
  );
}
