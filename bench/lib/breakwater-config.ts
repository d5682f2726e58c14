/**
 * breakwater configs for the bench (SPEC §2), as YAML text. Every policy a
 * config turns on is sized so that it never trips under the bench's load: the
 * point is to measure what the machinery costs, not what it rejects.
 */

export interface Ports {
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly targetUrl: string;
  /** Upstream pool size: the same number of connections every proxy gets. */
  readonly connections: number;
}

function head(p: Ports, accessLog: boolean, defaults = ''): string {
  return `version: 1
admin: { address: 127.0.0.1:${p.adminPort} }
log: { level: info, access: ${accessLog} }
drain: { delay: 0s, timeout: 1s }
${defaults}`;
}

/** One listener, one upstream, only the built-in timeout and retry. */
export function plainConfig(p: Ports, accessLog = false): string {
  return `${head(p, accessLog)}listeners:
  - name: bench
    address: 127.0.0.1:${p.proxyPort}
    upstream: target
upstreams:
  target:
    url: ${p.targetUrl}
    pool: { connections: ${p.connections}, keepAlive: 30s }
`;
}

/**
 * plainConfig with a stale-if-error cache on its route (SPEC §11.2), never
 * triggered: the target's 200 carries no Cache-Control, so every response is
 * storable (a Cache-Control parse and, the bench's one URL being hot, a
 * lookup; its entry is replaced once a second), and nothing ever fails.
 * bench/cache-micro.ts measures the worst case, every response stored.
 */
export function cacheConfig(p: Ports): string {
  return `${head(p, false)}listeners:
  - name: bench
    address: 127.0.0.1:${p.proxyPort}
    routes:
      - { name: cached, upstream: target, cache: {} }
upstreams:
  target:
    url: ${p.targetUrl}
    pool: { connections: ${p.connections}, keepAlive: 30s }
`;
}

/** Every policy of SPEC §4 on, none of them tripping: rate far above the load, bulkhead far above the connections. */
export function allPoliciesConfig(p: Ports, accessLog: boolean): string {
  return `${head(p, accessLog)}listeners:
  - name: bench
    address: 127.0.0.1:${p.proxyPort}
    routes:
      - name: all
        upstream: target
        rateLimit: { rate: 10000000/s, burst: 1000000 }
upstreams:
  target:
    url: ${p.targetUrl}
    pool: { connections: ${p.connections}, keepAlive: 30s }
    timeout: { connect: 1s, perTry: 5s, total: 15s, idle: 60s }
    retry:
      maxRetries: 2
      on: [connect-failure, reset, timeout, 502, 503, 504]
      methods: [GET, HEAD, OPTIONS, PUT, DELETE]
      backoff: { strategy: exponential, base: 25ms, max: 250ms, jitter: full }
      budget: { ratio: 0.2, minPerSecond: 10, window: 10s }
    circuitBreaker:
      consecutiveFailures: 5
      failureRate: 50
      minimumRequests: 20
      window: 10s
      openDuration: 30s
      halfOpenRequests: 1
      successThreshold: 2
      failOn: [5xx, timeout, connect-failure, reset]
    bulkhead: { maxConcurrent: 10000, maxQueue: 1000, queueTimeout: 1s }
    rateLimit: { rate: 10000000/s, burst: 1000000 }
    fallback:
      on: [circuit-open, connect-failure, timeout, retries-exhausted]
      response:
        status: 503
        headers: { content-type: application/json }
        body: '{"degraded":true}'
`;
}

/** The Host of the n-th route of `manyRoutesConfig`. */
export function routeHost(n: number): string {
  return `svc${n}.bench`;
}

/**
 * `count` host-routed routes, each to its own upstream (all pointing at the
 * target). `mark` changes the config's content without changing its routing,
 * so alternating marks makes every reload a real one.
 */
export function manyRoutesConfig(p: Ports, count: number, mark = 0): string {
  const routes: string[] = [];
  const upstreams: string[] = [];
  for (let i = 0; i < count; i++) {
    routes.push(`      - match: { host: ${routeHost(i)} }\n        upstream: u${i}\n`);
    upstreams.push(`  u${i}:\n    url: ${p.targetUrl}\n    pool: { connections: ${p.connections}, keepAlive: 30s }\n`);
  }
  const defaults = `defaults:\n  timeout: { total: ${15 + mark}s }\n`;
  return `${head(p, false, defaults)}listeners:
  - name: bench
    address: 127.0.0.1:${p.proxyPort}
    routes:
${routes.join('')}upstreams:
${upstreams.join('')}`;
}
