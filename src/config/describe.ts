/**
 * What `breakwater validate` prints: the effective policy of every route,
 * after defaults and overrides are merged, in readable units, then the
 * warnings. The layout is stable (operators diff it between versions of a
 * config): one block per listener, one per route, one line per policy.
 * Values injected with requestHeaders.set are never printed.
 */
import path from 'node:path';
import type {
  BreakwaterConfig,
  BulkheadConfig,
  CircuitBreakerConfig,
  ConditionSet,
  CacheConfig,
  FallbackConfig,
  RateLimitConfig,
  RetryConfig,
  RouteConfig,
  RouteMatch,
  TimeoutConfig,
  UpstreamConfig,
} from './types.ts';
import { describeRedis } from './redis.ts';
import { BUILTIN_FALLBACK_ON } from './schema.ts';
import { formatDuration, formatRate, formatSize } from './units.ts';

const LABEL_WIDTH = 11;

export function describeConfig(config: BreakwaterConfig): string {
  const out: string[] = [];
  const line = (indent: number, label: string, text: string): void => {
    out.push(`${' '.repeat(indent)}${label.padEnd(LABEL_WIDTH)}${text}`);
  };
  out.push(`breakwater config ${config.source.file}`);
  line(2, 'sha256', config.source.hash);
  line(2, 'admin', `${config.admin.address.text}; ${describeAdminToken(config.admin)}`);
  line(2, 'audit', `config changes and admin actions as audit: true lines ${config.audit.file === null ? 'on the log stream (stdout)' : `appended to ${config.audit.file}, reopened on every reload`}`);
  const log = config.log;
  line(
    2,
    'log',
    `level ${log.level}; access log ${log.access ? 'on' : 'off'}; query strings ${log.includeQuery ? 'logged' : 'not logged'}; headers ${log.headers.length > 0 ? log.headers.join(', ') : 'none'}`,
  );
  if (config.redis !== null) line(2, 'redis', describeRedis(config.redis));
  const tr = config.tracing;
  line(
    2,
    'tracing',
    tr === null
      ? 'off'
      : `OTLP/HTTP to ${traceTarget(tr.endpoint)}; sample ${tr.sampleRatio * 100}% of new traces (parent-based); service ${tr.serviceName ?? '$OTEL_SERVICE_NAME, else breakwater'}; queue ${tr.queueSize} spans (drops when full)`,
  );
  line(2, 'drain', `keep serving ${formatDuration(config.drain.delay)}, then wait up to ${formatDuration(config.drain.timeout)} for in-flight requests`);

  const used = new Set<string>();
  for (const l of config.listeners) {
    out.push('');
    const body = l.limits.bodySize === null ? 'unlimited' : `≤ ${formatSize(l.limits.bodySize)}`;
    out.push(`listener ${l.name} on ${l.address.text} (request head ≤ ${formatSize(l.limits.headerSize)}, body ${body})`);
    for (const r of l.routes) {
      used.add(r.upstream);
      const u = config.upstreams.get(r.upstream);
      out.push(`  route ${r.name}`);
      line(4, 'match', describeMatch(r.match, r.stripPrefix));
      if (r.allowConnect && u !== undefined) {
        const to = u.endpoints.filter((e) => e.port !== 80).map((e) => e.authority);
        line(4, 'connect', `CONNECT tunnels allowed to ${to.length === 0 ? 'none of its endpoints' : to.join(', ')}`);
      }
      if (u === undefined) {
        line(4, 'upstream', `${r.upstream} (unknown)`);
        continue;
      }
      policyLines(u, r, (label, text) => line(4, label, text));
    }
  }
  const fallbackOnly = [...config.upstreams.values()].filter((u) => !used.has(u.name));
  for (const u of fallbackOnly) {
    out.push('');
    out.push(`upstream ${u.name} (no route: reached only as a fallback)`);
    policyLines(u, null, (label, text) => line(2, label, text));
  }

  out.push('');
  if (config.warnings.length === 0) {
    out.push('no warnings');
  } else {
    out.push(`${config.warnings.length} warning${config.warnings.length === 1 ? '' : 's'}:`);
    for (const w of config.warnings) out.push(`  warning [${w.code}] ${w.path}: ${w.message}`);
  }
  return `${out.join('\n')}\n`;
}

/** Whether a token is set and where from, never the token. */
export function describeAdminToken(a: BreakwaterConfig['admin']): string {
  if (a.token === null) return 'no token (loopback only)';
  const from = a.tokenFrom.length === 0 ? 'the environment' : a.tokenFrom.map((n) => `$${n}`).join(', ');
  return `token set (from ${from}); required on every endpoint but /healthz, /readyz, /metrics`;
}

/** The trace endpoint without its query (which may carry a key). */
function traceTarget(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}${u.search === '' ? '' : '?…'}`;
}

function policyLines(u: UpstreamConfig, r: RouteConfig | null, line: (label: string, text: string) => void): void {
  const p = r?.policy ?? { timeout: u.timeout, retry: u.retry, fallback: u.fallback };
  line('upstream', `${u.name}: ${u.endpoints.map((e) => e.origin).join(', ')}${u.protocol === 'http1' ? '' : ` (protocol ${u.protocol})`}`);
  line(
    '',
    `${u.balance}; pool ${u.pool.connections} connections, keep-alive ${formatDuration(u.pool.keepAlive)}; Host ${u.preserveHost ? 'preserved' : 'rewritten to the endpoint'}` +
      headerText(u),
  );
  if (u.tls !== null) line('tls', describeTls(u.tls));
  line('timeout', describeTimeout(p.timeout));
  for (const [i, t] of describeRetry(p.retry).entries()) line(i === 0 ? 'retry' : '', t);
  line('breaker', u.circuitBreaker === null ? 'off' : `${describeBreaker(u.circuitBreaker)} (shared by all routes to ${u.name})`);
  line('bulkhead', u.bulkhead === null ? 'off' : `${describeBulkhead(u.bulkhead)} (shared by all routes to ${u.name})`);
  const up = u.rateLimit === null ? 'off' : describeRateLimit(u.rateLimit);
  line('rateLimit', r === null ? `upstream: ${up}` : `route: ${r.rateLimit === null ? 'off' : describeRateLimit(r.rateLimit)}; upstream: ${up}`);
  line('fallback', describeFallback(p.fallback));
  // Shown only where it is on: most routes never spool.
  if (r !== null && r.deadLetter !== null) line('deadLetter', describeDeadLetter(r.deadLetter));
  if (r !== null && r.cache !== null) line('cache', describeCache(r.cache, p.fallback?.on ?? BUILTIN_FALLBACK_ON));
}

/** SPEC §11.1, with every effective value: where, how much, on what, how it answers and replays. */
function describeDeadLetter(d: NonNullable<RouteConfig['deadLetter']>): string {
  const on = [...d.on, ...d.statuses].join(', ');
  return (
    `spool ${path.resolve(d.path)} (opened on first use); at most ${d.maxEntries} entries, ${d.maxBytes} bytes, ${formatDuration(d.maxAge)} old (oldest dropped); ` +
    `bodies up to ${d.maxBodySize} bytes; on ${on === '' ? 'nothing' : on} (POST, PUT, PATCH, DELETE); ` +
    `answers ${d.respond === 'accepted' ? '202 {"deadLetter": ID}' : 'the failure'} with x-breakwater-dead-letter; ` +
    `replay ${d.replay.auto ? `automatic when the breaker closes, ${d.replay.rate.source}` : `by hand (admin API), ${d.replay.rate.source}`}`
  );
}

/** What an operator checks before a rotation: which files, which trust, which name. Paths only: never file contents. */
function describeTls(t: NonNullable<UpstreamConfig['tls']>): string {
  const parts: string[] = [];
  parts.push(t.ca === null ? 'system roots' : `${t.caMode === 'add' ? 'system roots + ' : ''}CA ${t.ca}`);
  if (t.cert !== null) parts.push(`client certificate ${t.cert} (key ${t.key ?? '?'})`);
  if (t.servername !== null) parts.push(`servername ${t.servername}`);
  parts.push(`min ${t.minVersion}`);
  parts.push('files watched, rotated without a restart');
  return parts.join('; ');
}

function headerText(u: UpstreamConfig): string {
  const parts: string[] = [];
  if (u.requestHeaders.set.length > 0) parts.push(`sets ${u.requestHeaders.set.map(([k]) => k).join(', ')} (values hidden)`);
  if (u.requestHeaders.remove.length > 0) parts.push(`removes ${u.requestHeaders.remove.join(', ')}`);
  return parts.length === 0 ? '' : `; ${parts.join('; ')}`;
}

export function describeMatch(m: RouteMatch, stripPrefix = false): string {
  const parts: string[] = [];
  if (m.host !== null) parts.push(`host ${m.host.kind === 'exact' ? m.host.host : `*${m.host.suffix}`}`);
  if (m.pathPrefix !== null) parts.push(`path prefix ${m.pathPrefix}${stripPrefix ? ' (stripped before forwarding)' : ''}`);
  if (m.methods !== null) parts.push(`methods ${[...m.methods].join(' ')}`);
  if (m.headers !== null) for (const [k, v] of m.headers) parts.push(`header ${k}: ${v}`);
  return parts.length === 0 ? 'everything' : parts.join(', ');
}

export function describeTimeout(t: TimeoutConfig): string {
  return `connect ${formatDuration(t.connect)}, perTry ${formatDuration(t.perTry)}, total ${formatDuration(t.total)}, idle ${formatDuration(t.idle)}`;
}

function conditions(c: ConditionSet): string {
  return c.source.length === 0 ? 'nothing' : c.source.join(', ');
}

export function describeRetry(r: RetryConfig): string[] {
  if (r.maxRetries === 0) return ['off (maxRetries 0)'];
  const b = r.backoff;
  const backoff =
    b.strategy === 'immediate' ? 'no backoff' : `backoff ${b.strategy} ${formatDuration(b.base)} up to ${formatDuration(b.max)}, ${b.jitter === 'none' ? 'no' : b.jitter} jitter`;
  const budget =
    r.budget === null
      ? 'no retry budget'
      : `budget ${round(r.budget.ratio * 100)}% of requests (at least ${round(r.budget.minPerSecond)}/s) over ${formatDuration(r.budget.window)}`;
  return [
    `up to ${r.maxRetries} ${r.maxRetries === 1 ? 'retry' : 'retries'} on ${conditions(r.on)}`,
    `methods ${[...r.methods].join(' ') || 'none'} (any method carrying ${r.idempotencyKeyHeader}; connect failures always)`,
    `${backoff}; ${budget}`,
    `Retry-After ${r.respectRetryAfter ? 'respected' : 'ignored'}; bodies up to ${formatSize(r.bufferLimit)} replayed`,
  ];
}

export function describeBreaker(c: CircuitBreakerConfig): string {
  const triggers: string[] = [];
  if (c.consecutiveFailures !== null) triggers.push(`${c.consecutiveFailures} consecutive failures`);
  if (c.failureRate !== null) triggers.push(`${round(c.failureRate)}% failures of at least ${c.minimumRequests} attempts in ${formatDuration(c.window)}`);
  const opens = triggers.length === 0 ? 'never opens' : `opens on ${triggers.join(' or ')}`;
  const probes = `${c.halfOpenRequests} probe${c.halfOpenRequests === 1 ? '' : 's'}`;
  return `${opens} (failures: ${conditions(c.failOn)}); open ${formatDuration(c.openDuration)}, then ${probes}, closes after ${c.successThreshold} success${c.successThreshold === 1 ? '' : 'es'}; ${c.mode}`;
}

export function describeBulkhead(b: BulkheadConfig): string {
  const queue = b.maxQueue === 0 ? 'no queue' : `queue ${b.maxQueue} for up to ${formatDuration(b.queueTimeout)}`;
  return `${b.maxConcurrent} concurrent, ${queue}; ${b.mode}`;
}

export function describeRateLimit(r: RateLimitConfig): string {
  const wait = r.maxWait === 0 ? 'no wait' : `wait up to ${formatDuration(r.maxWait)}`;
  const scope = r.scope === 'global' ? `; global (Redis key ${r.key ?? 'built-in'}${r.onRedisError === null ? '' : `, on redis error ${r.onRedisError}`})` : '';
  return `${formatRate(r.rate)}, burst ${r.burst}, ${wait}; ${r.mode}${scope}`;
}

export function describeFallback(f: FallbackConfig | null): string {
  if (f === null) return 'off';
  const to: string[] = [];
  if (f.upstream !== null) to.push(`upstream ${f.upstream}`);
  if (f.response !== null) to.push(`static ${f.response.status} response`);
  const on = f.on.size === 0 ? 'never (on is empty)' : [...f.on].join(', ');
  return `${to.join(', then ')} on ${on}`;
}

/** `on`: the failures it answers (the route's fallback on, else the fallback's built-in). */
export function describeCache(c: CacheConfig | null, on: Iterable<string>): string {
  if (c === null) return 'off';
  const fresh = c.serveFresh ? 'fresh ones served without asking the upstream, stale ones' : 'served';
  const failures = [...on];
  return (
    `GET/HEAD, up to ${c.maxEntries} URLs and ${formatSize(c.maxBytes)} (${formatSize(c.maxEntrySize)} each); ` +
    `${fresh} up to ${formatDuration(c.staleIfError)} stale (or the response's own stale-if-error) on ${failures.length === 0 ? 'nothing (fallback on is empty)' : failures.join(', ')}; before any fallback`
  );
}

function round(n: number): string {
  return String(Math.round(n * 100) / 100);
}
