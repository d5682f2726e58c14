/**
 * From the validated tree (every value parsed, nothing merged yet) to the
 * runtime types of types.ts: listeners, routes and upstreams with their
 * effective policies. Runs only on a tree without errors.
 *
 * Work is per upstream plus per route *override*: a route that overrides
 * nothing shares its upstream's PolicySet object, so a file with a thousand
 * upstreams costs a thousand merges.
 */
import { compileCache } from './cache.ts';
import { resolve as resolvePath } from 'node:path';
import { fieldOf } from './dsl.ts';
import { FrozenMap, FrozenSet } from './freeze.ts';
import { builtIn, withBuiltIns, type Layer } from './merge.ts';
import {
  ConditionCache,
  compileBreaker,
  compileBulkhead,
  compileDeadLetter,
  compileFallback,
  compileRateLimit,
  compileRetry,
  compileTimeout,
  defined,
  need,
} from './policies.ts';
import {
  configSchema,
  limitsSchema,
  poolSchema,
  requestHeadersSchema,
  routeSchema,
  upstreamSchema,
  type RawConfig,
  type RawDefaults,
  type RawRoute,
  type RawUpstream,
} from './schema.ts';
import { compileRedis } from './redis.ts';
import { compileTls } from './tls.ts';
import type { BreakwaterConfig, ListenerConfig, PolicySet, RouteConfig, RouteMatch, UpstreamConfig } from './types.ts';
import { childPath } from './yaml-nodes.ts';

export type Compiled = Omit<BreakwaterConfig, 'warnings' | 'source'>;

const MATCH_ALL: RouteMatch = { host: null, pathPrefix: null, methods: null, headers: null };

const layer = <T>(path: string, value: T | undefined): Layer<T> => ({ path, value });

/** The layers a policy key of an upstream (and optionally a route) merges, most general first. */
export function policyLayers<K extends keyof RawDefaults & keyof RawUpstream>(
  raw: RawConfig,
  key: K,
  upstream: string,
  route?: { path: string; raw: RawRoute },
): Layer<NonNullable<RawDefaults[K]>>[] {
  const layers: Layer<NonNullable<RawDefaults[K]>>[] = [
    layer(`defaults.${key}`, raw.defaults?.[key] as NonNullable<RawDefaults[K]> | undefined),
    layer(`${childPath('upstreams', upstream)}.${key}`, raw.upstreams?.get(upstream)?.[key] as NonNullable<RawDefaults[K]> | undefined),
  ];
  if (route !== undefined) layers.push(layer(`${route.path}.${key}`, (route.raw as Record<string, unknown>)[key] as NonNullable<RawDefaults[K]> | undefined));
  return layers;
}

/** `baseDir`: where relative paths of the file (tls files) are read from, the config file's directory. */
export function compile(raw: RawConfig, baseDir: string = process.cwd()): Compiled {
  const top = withBuiltIns(configSchema, raw);
  const conds = new ConditionCache();
  const upstreams = new Map<string, UpstreamConfig>();
  const shared = new Map<string, PolicySet>();
  for (const [name, u] of need(raw.upstreams, 'upstreams')) {
    const c = compileUpstream(raw, name, need(u, `upstreams.${name}`), conds, baseDir);
    upstreams.set(name, c);
    shared.set(name, { timeout: c.timeout, retry: c.retry, fallback: c.fallback });
  }
  const listeners: ListenerConfig[] = [];
  need(raw.listeners, 'listeners').forEach((l, i) => {
    const L = need(l, `listeners[${i}]`);
    const name = need(L.name, 'listener name');
    const limits = withBuiltIns(limitsSchema, L.limits ?? {});
    const routes: RouteConfig[] = [];
    if (L.upstream !== undefined) {
      // The shorthand: one catch-all route named like the listener.
      const policy = need(shared.get(L.upstream), `upstream ${L.upstream}`);
      routes.push({ name, match: MATCH_ALL, upstream: L.upstream, stripPrefix: false, allowConnect: false, policy, rateLimit: null, deadLetter: null, cache: null });
    } else {
      need(L.routes, 'routes').forEach((r, j) => {
        const path = `listeners[${i}].routes[${j}]`;
        routes.push(compileRoute(raw, need(r, path), `${name}/${j}`, path, shared, conds));
      });
    }
    listeners.push({
      name,
      address: need(L.address, 'listener address'),
      routes,
      limits: {
        headerSize: need(limits.headerSize, 'limits.headerSize'),
        bodySize: need(limits.bodySize, 'limits.bodySize'),
        headerTimeout: need(limits.headerTimeout, 'limits.headerTimeout'),
        requestTimeout: need(limits.requestTimeout, 'limits.requestTimeout'),
        maxConcurrentStreams: need(limits.maxConcurrentStreams, 'limits.maxConcurrentStreams'),
      },
      underscoreHeaders: L.underscoreHeaders ?? 'drop',
    });
  });
  const admin = need(top.admin, 'admin');
  const log = need(top.log, 'log');
  const drain = need(top.drain, 'drain');
  const tracing = top.tracing;
  return {
    version: 1,
    admin: { address: need(admin.address, 'admin.address'), token: admin.token ?? null, tokenFrom: [] },
    audit: { file: raw.audit?.file == null ? null : resolvePath(baseDir, raw.audit.file) },
    log: {
      level: need(log.level, 'log.level'),
      access: need(log.access, 'log.access'),
      includeQuery: need(log.includeQuery, 'log.includeQuery'),
      headers: defined(log.headers),
    },
    drain: { delay: need(drain.delay, 'drain.delay'), timeout: need(drain.timeout, 'drain.timeout') },
    tracing:
      tracing === undefined
        ? null
        : {
            endpoint: need(tracing.endpoint, 'tracing.endpoint'),
            sampleRatio: need(tracing.sampleRatio, 'tracing.sampleRatio'),
            serviceName: tracing.serviceName ?? null,
            queueSize: need(tracing.queueSize, 'tracing.queueSize'),
          },
    listeners,
    upstreams: new FrozenMap(upstreams),
    redis: compileRedis(raw.redis, baseDir),
  };
}

function compileUpstream(raw: RawConfig, name: string, u: RawUpstream, conds: ConditionCache, baseDir: string): UpstreamConfig {
  const pool = withBuiltIns(poolSchema, u.pool ?? {});
  const rh = withBuiltIns(requestHeadersSchema, u.requestHeaders ?? {});
  return {
    name,
    endpoints: u.url !== undefined ? [u.url] : defined(u.endpoints),
    tls: compileTls(u.tls, baseDir),
    protocol: u.protocol ?? (builtIn(fieldOf(upstreamSchema, 'protocol')) as UpstreamConfig['protocol']),
    balance: u.balance ?? (builtIn(fieldOf(upstreamSchema, 'balance')) as UpstreamConfig['balance']),
    pool: { connections: need(pool.connections, 'pool.connections'), keepAlive: need(pool.keepAlive, 'pool.keepAlive') },
    preserveHost: u.preserveHost ?? (builtIn(fieldOf(upstreamSchema, 'preserveHost')) as boolean),
    requestHeaders: {
      set: [...need(rh.set, 'requestHeaders.set')].map(([k, v]) => [k, need(v, `requestHeaders.set.${k}`)] as const),
      remove: defined(rh.remove),
    },
    timeout: compileTimeout(policyLayers(raw, 'timeout', name)),
    retry: compileRetry(policyLayers(raw, 'retry', name), conds),
    fallback: compileFallback(policyLayers(raw, 'fallback', name)),
    circuitBreaker: compileBreaker(policyLayers(raw, 'circuitBreaker', name), conds),
    bulkhead: compileBulkhead(policyLayers(raw, 'bulkhead', name)),
    rateLimit: compileRateLimit(policyLayers(raw, 'rateLimit', name)),
  };
}

function compileRoute(
  raw: RawConfig,
  r: RawRoute,
  defaultName: string,
  path: string,
  shared: ReadonlyMap<string, PolicySet>,
  conds: ConditionCache,
): RouteConfig {
  const upstream = need(r.upstream, 'route upstream');
  let policy = need(shared.get(upstream), `upstream ${upstream}`);
  if (r.timeout !== undefined || r.retry !== undefined || r.fallback !== undefined) {
    const route = { path, raw: r };
    policy = {
      timeout: r.timeout === undefined ? policy.timeout : compileTimeout(policyLayers(raw, 'timeout', upstream, route)),
      retry: r.retry === undefined ? policy.retry : compileRetry(policyLayers(raw, 'retry', upstream, route), conds),
      fallback: r.fallback === undefined ? policy.fallback : compileFallback(policyLayers(raw, 'fallback', upstream, route)),
    };
  }
  const m = r.match;
  const match: RouteMatch =
    m === undefined
      ? MATCH_ALL
      : {
          host: m.host ?? null,
          pathPrefix: m.pathPrefix ?? null,
          methods: m.methods === undefined ? null : new FrozenSet(defined(m.methods)),
          headers: m.headers === undefined ? null : [...m.headers].map(([k, v]) => [k, need(v, `match.headers.${k}`)] as const),
        };
  return {
    name: r.name ?? defaultName,
    match,
    upstream,
    stripPrefix: r.stripPrefix ?? (builtIn(fieldOf(routeSchema, 'stripPrefix')) as boolean),
    allowConnect: r.allowConnect ?? (builtIn(fieldOf(routeSchema, 'allowConnect')) as boolean),
    policy,
    // The route's own bucket: not merged with the upstream's, which is a bucket of its own.
    rateLimit: compileRateLimit([layer(`${path}.rateLimit`, r.rateLimit)]),
    deadLetter: compileDeadLetter([layer(`${path}.deadLetter`, r.deadLetter)]),
    cache: compileCache(r.cache),
  };
}
