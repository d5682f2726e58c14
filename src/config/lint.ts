/**
 * Warnings for configs that are valid but probably not what was meant (the
 * "known traps" `breakwater validate` prints). Each has a stable code (never
 * reused once retired) and the config path it is about: the most specific
 * place that wrote the key in question, so a trap inherited from `defaults`
 * is reported once, at `defaults`, not once per upstream.
 */
import type { Compiled } from './compile.ts';
import { policyLayers } from './compile.ts';
import { innermost, originOf, type Layer } from './merge.ts';
import { isLoopback } from './net.ts';
import { mergedTimeout } from './policies.ts';
import { BUILTIN_FALLBACK_ON, type RawConfig, type RawTimeout } from './schema.ts';
import type { FallbackConfig, RetryConfig, RouteConfig, UpstreamConfig, Warning } from './types.ts';
import { formatDuration, formatRate } from './units.ts';
import { childPath } from './yaml-nodes.ts';

export const WARNING_CODES = [
  'retry-post',
  'retry-no-budget',
  'backoff-base-above-max',
  'pertry-capped',
  'breaker-minimum-unreachable',
  'breaker-no-trigger',
  'fallback-no-on',
  'fallback-never-fires',
  'admin-not-loopback',
  'dead-letter-never-spools',
  'dead-letter-replay-no-breaker',
  'cache-never-stores',
  'cache-never-serves',
] as const;
export type WarningCode = (typeof WARNING_CODES)[number];

const UNSAFE_METHODS = ['POST', 'PATCH'] as const;
/** The methods a dead-letter spool takes (SPEC §11.1). */
const SPOOLED_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;

class Warnings {
  readonly list: Warning[] = [];
  readonly #seen = new Set<string>();
  add(code: WarningCode, path: string, message: string): void {
    const key = `${code} ${path}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.list.push({ code, path, message });
  }
}

export function lint(raw: RawConfig, c: Compiled): Warning[] {
  const w = new Warnings();
  const admin = c.admin.address;
  if (!isLoopback(admin.host)) {
    w.add(
      'admin-not-loopback',
      'admin.address',
      `the admin API listens on ${admin.text}, not a loopback address: whoever reaches it and holds admin.token can read the config, reload it and force breakers; /healthz, /readyz and /metrics answer without the token`,
    );
  }
  for (const [name, u] of c.upstreams) {
    const where = `upstream ${name}`;
    retry(w, policyLayers(raw, 'retry', name), u.retry, where);
    timeout(w, policyLayers(raw, 'timeout', name), `${childPath('upstreams', name)}.timeout`, where, null);
    fallback(w, policyLayers(raw, 'fallback', name), u.fallback);
    breaker(w, raw, name, u);
  }
  raw.listeners?.forEach((l, i) => {
    l?.routes?.forEach((r, j) => {
      if (r === undefined || r.upstream === undefined) return;
      const compiled = c.listeners[i]?.routes[j];
      const u = c.upstreams.get(r.upstream);
      if (compiled === undefined || u === undefined) return;
      const route = { path: `listeners[${i}].routes[${j}]`, raw: r };
      const where = `route ${compiled.name}`;
      if (r.retry !== undefined) retry(w, policyLayers(raw, 'retry', r.upstream, route), compiled.policy.retry, where);
      if (r.timeout !== undefined) timeout(w, policyLayers(raw, 'timeout', r.upstream, route), `${route.path}.timeout`, where, policyLayers(raw, 'timeout', r.upstream));
      if (r.fallback !== undefined) fallback(w, policyLayers(raw, 'fallback', r.upstream, route), compiled.policy.fallback);
      degrade(w, route.path, compiled, u);
    });
  });
  return w.list;
}

function retry(w: Warnings, layers: Layer<unknown>[], r: RetryConfig, where: string): void {
  const unsafe = UNSAFE_METHODS.filter((m) => r.methods.has(m));
  if (unsafe.length > 0) {
    const what = unsafe.join(' and ');
    w.add(
      'retry-post',
      originOf(layers, ['methods']) ?? `${layers[layers.length - 1]!.path}.methods`,
      `${what} ${unsafe.length === 1 ? 'is' : 'are'} in retry.methods (${where}): a request whose answer was lost may already have taken effect, and a retry runs it twice; ` +
        `list only idempotent methods, and let clients that can deduplicate send ${r.idempotencyKeyHeader}`,
    );
  }
  if (r.maxRetries > 0 && r.budget === null) {
    w.add(
      'retry-no-budget',
      originOf(layers, ['budget']) ?? `${layers[layers.length - 1]!.path}.budget`,
      `retries have no budget (${where}, maxRetries ${r.maxRetries}): when the upstream fails, every request becomes ${r.maxRetries + 1} attempts and the retries deepen the outage`,
    );
  }
  if (r.backoff.base > r.backoff.max && r.backoff.strategy !== 'immediate') {
    w.add(
      'backoff-base-above-max',
      originOf(layers, ['backoff', 'base']) ?? `${layers[layers.length - 1]!.path}.backoff`,
      `backoff base ${formatDuration(r.backoff.base)} is above max ${formatDuration(r.backoff.max)} (${where}): every delay is cut to ${formatDuration(r.backoff.max)}; raise max too`,
    );
  }
}

/**
 * A route's own timeout block is reported only when it changes the outcome:
 * a route that inherits its upstream's capped perTry is covered by the upstream's warning.
 */
function timeout(w: Warnings, layers: Layer<RawTimeout>[], path: string, where: string, inherited: Layer<RawTimeout>[] | null): void {
  const t = mergedTimeout(layers);
  if (t.perTry <= t.total) return;
  if (inherited !== null) {
    const u = mergedTimeout(inherited);
    if (u.perTry === t.perTry && u.total === t.total) return;
  }
  const perTryFrom = originOf(layers, ['perTry']) ?? 'the built-in';
  const totalFrom = originOf(layers, ['total']) ?? 'the built-in';
  w.add(
    'pertry-capped',
    path,
    `effective perTry ${formatDuration(t.perTry)} (from ${perTryFrom}) is above effective total ${formatDuration(t.total)} (from ${totalFrom}) (${where}): perTry is capped at ${formatDuration(t.total)}, so a slow attempt is never retried`,
  );
}

function fallback(w: Warnings, layers: Layer<unknown>[], f: FallbackConfig | null): void {
  if (f === null) return;
  const on = originOf(layers, ['on']);
  if (on === null) {
    const at = innermost(layers);
    if (at === null) return;
    w.add('fallback-no-on', at.path, `fallback has no on: it serves on the built-in triggers ${BUILTIN_FALLBACK_ON.join(', ')}`);
  } else if (f.on.size === 0) {
    w.add('fallback-never-fires', on, 'fallback on is empty: this fallback never serves');
  }
}

function breaker(w: Warnings, raw: RawConfig, name: string, u: UpstreamConfig): void {
  const cb = u.circuitBreaker;
  if (cb === null) return;
  const layers = policyLayers(raw, 'circuitBreaker', name);
  const block = innermost(layers)?.path ?? `${childPath('upstreams', name)}.circuitBreaker`;
  if (cb.consecutiveFailures === null && cb.failureRate === null) {
    w.add('breaker-no-trigger', block, `both triggers are off (consecutiveFailures: null, failureRate: null): the breaker of upstream ${name} never opens`);
  }
  const rl = u.rateLimit;
  if (cb.failureRate === null || rl === null) return;
  // The most requests the upstream's bucket lets through in one breaker window.
  const most = Math.floor(rl.rate.perMs * cb.window) + rl.burst;
  if (most >= cb.minimumRequests) return;
  w.add(
    'breaker-minimum-unreachable',
    originOf(layers, ['minimumRequests']) ?? block,
    `minimumRequests ${cb.minimumRequests} can never be reached: the rate limit of upstream ${name} (${formatRate(rl.rate)}, burst ${rl.burst}) lets at most ${most} requests through in the ${formatDuration(cb.window)} window, so the failure-rate trigger never trips`,
  );
}

/** A route's dead-letter spool or cache that can never act as configured (SPEC §11). */
function degrade(w: Warnings, at: string, r: RouteConfig, u: UpstreamConfig): void {
  const methods = r.match.methods;
  const dl = r.deadLetter;
  if (dl !== null) {
    if (methods !== null && !SPOOLED_METHODS.some((m) => methods.has(m))) {
      w.add('dead-letter-never-spools', `${at}.deadLetter`, `route ${r.name} matches only ${[...methods].join(', ')}: a spool takes ${SPOOLED_METHODS.join(', ')} requests, so this one never holds anything`);
    } else if (dl.replay.auto && u.circuitBreaker === null) {
      w.add(
        'dead-letter-replay-no-breaker',
        `${at}.deadLetter`,
        `replay.auto replays when the breaker of upstream ${u.name} closes, and it has no circuitBreaker: entries replay only at start, on a reload, and by hand (breakwater dead-letters replay)`,
      );
    }
  }
  if (r.cache !== null) {
    if (methods !== null && !methods.has('GET')) {
      w.add('cache-never-stores', `${at}.cache`, `route ${r.name} matches only ${[...methods].join(', ')}: the cache stores answers to GET only (a HEAD is answered from its GET's entry), so it never holds anything`);
    } else if (!r.cache.serveFresh && r.policy.fallback !== null && r.policy.fallback.on.size === 0) {
      w.add('cache-never-serves', `${at}.cache`, `the route's fallback on is empty, and the cache serves on the same failures: it never serves`);
    }
  }
}
