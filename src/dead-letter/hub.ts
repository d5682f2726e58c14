/**
 * The dead letters of one running breakwater: the spool files (one open
 * handle per path, kept across reloads, closed at shutdown), the routes
 * that spool and how to replay to their upstreams (re-bound at every
 * commit), the metrics and logs of SPEC §11.1, and the replay passes.
 *
 * Replay (README: Dead letters):
 * - automatic (`replay.auto`) when the route's upstream breaker closes, and
 *   once after a start or reload commits (a restarted breakwater has a
 *   closed breaker and may hold entries spooled before it died);
 * - manual through the admin API (one entry, all, or filtered);
 * - oldest first, one at a time per route, paced at `replay.rate`; each
 *   entry is claimed before it is sent, so two passes never send it twice;
 * - through the upstream's current credentials (requestHeaders), balancer,
 *   breaker admission (nothing is sent while it is open; each replay's
 *   outcome is recorded on it) and rate limit; no retries: an entry that
 *   fails stays, with one attempt more, and a pass stops at its first
 *   failure (the upstream is not well yet; order is kept).
 * - 2xx/3xx removes the entry; 408, 425, 429 and 5xx or no answer keep it;
 *   any other 4xx keeps it *parked*: the upstream refused the request
 *   itself, so automatic replay skips it until an operator replays or
 *   deletes it (nothing is thrown away without a person deciding).
 */
import type { CircuitBreaker } from '../policies/breaker/breaker.ts';
import { breakerGuard } from '../policies/breaker/permit.ts';
import type { RateLimiter } from '../policies/rate-limit/rate-limit.ts';
import type { DeadLetterConfig, HeaderRewrite } from '../config/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics/index.ts';
import { classifyError, classifyStatus } from '../pipeline/classify.ts';
import { stripPrefix } from '../http/router.ts';
import type { Balancer } from '../upstream/pool.ts';
import { SpoolStore, type DropReason, type EntryWithBody, type Filter, type InsertResult, type NewEntry } from './store.ts';
import path from 'node:path';

/** How one route's entries are replayed: bound at build time, in force from commit. */
export interface ReplayBinding {
  readonly route: string;
  readonly upstream: string;
  readonly config: DeadLetterConfig;
  readonly store: SpoolStore;
  readonly balancer: Balancer;
  readonly rewrite: HeaderRewrite;
  readonly preserveHost: boolean;
  /** `match.pathPrefix` when the route strips it. */
  readonly stripPrefix: string | null;
  readonly breaker: CircuitBreaker | null;
  readonly bucket: RateLimiter | null;
  /** The upstream's timeout.total: one replay's bound. */
  readonly timeout: number;
}

interface PendingWrite {
  readonly route: string;
  readonly cfg: DeadLetterConfig;
  readonly entry: NewEntry;
  readonly requestId: string;
  readonly resolve: (id: string | null) => void;
}

export type ReplayResult = 'success' | 'failure' | 'rejected' | 'circuit_open';

export interface ReplayOutcome {
  readonly id: string;
  readonly result: ReplayResult | 'busy' | 'not_found' | 'no_route';
  readonly status?: number;
  readonly error?: string;
}

export class DeadLetters {
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #stores = new Map<string, SpoolStore>();
  #bindings = new Map<string, ReplayBinding>();
  /** Running passes by route (one at a time per route). */
  readonly #passes = new Map<string, Promise<unknown>>();
  /** Routes whose breaker closed again while their pass ran. */
  readonly #again = new Set<string>();
  /** Every replay in flight (passes' and manual ones): close waits for them to settle their entries. */
  readonly #inflight = new Set<Promise<ReplayOutcome>>();
  readonly #stop = new AbortController();
  /** Writes waiting for this turn's group commit, per file. */
  readonly #pending = new Map<SpoolStore, PendingWrite[]>();
  #closed = false;

  constructor(metrics: Metrics, logger: Logger) {
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** The store for a path: one per file, made now (nothing opened: that waits for first use). */
  store(file: string): SpoolStore {
    const abs = path.resolve(file);
    let s = this.#stores.get(abs);
    if (s === undefined) this.#stores.set(abs, (s = new SpoolStore(abs)));
    return s;
  }

  /** Commit of a config load: these routes spool from now on; automatic ones get a pass. */
  bind(bindings: readonly ReplayBinding[]): void {
    this.#bindings = new Map(bindings.map((b) => [b.route, b]));
    for (const b of bindings) {
      if (b.config.replay.auto && (b.breaker === null || b.breaker.state === 'closed')) this.#startPass(b.route, 'start');
    }
  }

  get routes(): ReadonlyMap<string, ReplayBinding> {
    return this.#bindings;
  }

  /** The registry's breaker transitions: a close starts the automatic passes of the upstream's routes. */
  breakerTransition(upstream: string, to: string): void {
    if (to !== 'closed') return;
    for (const b of this.#bindings.values()) if (b.upstream === upstream && b.config.replay.auto) this.#startPass(b.route, 'circuit_closed');
  }

  // --- the spool path (failure path of the request) ---------------------------

  /**
   * Writes one entry durably; resolves with its id once it is fsynced, or
   * null when it could not be written (logged and counted). Writes of one
   * event-loop turn share a transaction and its fsync (a group commit): an
   * outage on a busy route costs one fsync per turn, not one per request.
   */
  write(route: string, cfg: DeadLetterConfig, store: SpoolStore, e: NewEntry, requestId: string): Promise<string | null> {
    // One entry larger than the route's whole byte budget would evict everything and still not fit.
    if (e.body.length + Buffer.byteLength(JSON.stringify(e.headers)) > cfg.maxBytes) {
      this.dropped(route, 'too_large', 1, { upstream: e.upstream, requestId });
      return Promise.resolve(null);
    }
    return new Promise((resolve) => {
      let q = this.#pending.get(store);
      if (q === undefined) {
        this.#pending.set(store, (q = []));
        setImmediate(() => this.#flush(store));
      }
      q.push({ route, cfg, entry: e, requestId, resolve });
    });
  }

  #flush(store: SpoolStore): void {
    const q = this.#pending.get(store);
    this.#pending.delete(store);
    if (q === undefined || q.length === 0) return;
    const f = this.#metrics.deadLetterFamilies;
    let results: InsertResult[];
    try {
      results = store.insertBatch(q.map((p) => ({ entry: p.entry, bounds: p.cfg })));
    } catch (err) {
      for (const p of q) {
        this.dropped(p.route, 'write_error', 1, { upstream: p.entry.upstream, requestId: p.requestId, error: (err as Error).message }, 'error');
        p.resolve(null);
      }
      return;
    }
    for (let i = 0; i < q.length; i++) {
      const p = q[i]!;
      const r = results[i]!;
      f.deadLettersTotal.child(p.route, p.entry.reason).v++;
      for (const [reason, n] of r.dropped) this.dropped(p.route, reason, n, { upstream: p.entry.upstream });
      this.#logger.warn({ route: p.route, upstream: p.entry.upstream, deadLetter: r.id, reason: p.entry.reason, requestId: p.requestId }, 'dead_letter_spooled');
      p.resolve(r.id);
    }
  }

  dropped(route: string, reason: DropReason, n: number, ctx: Record<string, unknown>, level: 'warn' | 'error' = 'warn'): void {
    this.#metrics.deadLetterFamilies.deadLettersDropped.child(route, reason).v += n;
    this.#logger[level]({ route, reason, count: n, ...ctx }, 'dead_letters_dropped');
  }

  /**
   * `maxAge` between writes: an idle spool is swept when it is looked at
   * (a scrape, an admin listing), so old entries leave on time even when
   * nothing fails any more.
   */
  #sweep(): void {
    for (const b of this.#bindings.values()) {
      if (!b.store.isOpen) continue;
      try {
        const n = b.store.expire(b.route, b.config.maxAge);
        if (n > 0) this.dropped(b.route, 'max_age', n, { upstream: b.upstream });
      } catch {
        // an unwritable spool: its writes report the error
      }
    }
  }

  /** Before a scrape: dead_letters{route} from every open spool. */
  refreshGauges(): void {
    this.#sweep();
    const g = this.#metrics.deadLetterFamilies.deadLetters;
    const seen = new Set<string>();
    for (const s of this.#stores.values()) {
      if (!s.isOpen) continue;
      try {
        for (const [route, n] of s.counts()) {
          g.child(route).v = n;
          seen.add(route);
        }
      } catch {
        // an unreadable spool keeps its last values
        return;
      }
    }
    g.removeWhere((l) => !seen.has(l.route!) && !this.#bindings.has(l.route!));
    for (const r of this.#bindings.keys()) if (!seen.has(r)) g.child(r).v = 0;
  }

  // --- admin ---------------------------------------------------------------------

  /** The stores admin calls read: those of current routes, and any other already open (entries of a removed route stay visible). */
  #liveStores(): SpoolStore[] {
    const out = new Set<SpoolStore>();
    for (const b of this.#bindings.values()) out.add(b.store);
    for (const s of this.#stores.values()) if (s.isOpen) out.add(s);
    return [...out];
  }

  list(f: Filter, limit = 1000): ReturnType<SpoolStore['list']> {
    this.#sweep();
    return this.#liveStores()
      .flatMap((s) => s.list(f, limit))
      .sort((a, b) => a.createdAt - b.createdAt || a.seq - b.seq)
      .slice(0, limit);
  }

  get(id: string): { entry: EntryWithBody; store: SpoolStore } | null {
    for (const s of this.#liveStores()) {
      const entry = s.get(id);
      if (entry !== null) return { entry, store: s };
    }
    return null;
  }

  delete(id: string): boolean {
    const found = this.get(id);
    if (found === null || !found.store.claim(id)) return false;
    let ok: boolean;
    try {
      ok = found.store.delete(id);
    } catch (err) {
      // Not deleted (a full disk...): the claim goes, or the entry would be stuck until a restart.
      found.store.unclaim(id);
      throw err;
    }
    if (ok) this.#logger.warn({ route: found.entry.route, deadLetter: id }, 'dead_letter_deleted');
    return ok;
  }

  /** Manual replay of one entry (parked ones too). */
  async replayOne(id: string): Promise<ReplayOutcome> {
    const found = this.get(id);
    if (found === null) return { id, result: 'not_found' };
    const b = this.#bindings.get(found.entry.route);
    if (b === undefined || b.store !== found.store) return { id, result: 'no_route' };
    if (!found.store.claim(id)) return { id, result: 'busy' };
    return this.#replay(b, found.entry);
  }

  /**
   * Manual replay of every entry (of a route, or of an upstream's routes):
   * one pass per route, awaited. A route's passes never overlap (one at a
   * time, at `replay.rate`): this one starts when the running one is over.
   */
  async replayAll(f: Filter): Promise<{ route: string; replayed: number; failed: number }[]> {
    const routes = [...this.#bindings.values()].filter((b) => (f.route === undefined || b.route === f.route) && (f.upstream === undefined || b.upstream === f.upstream));
    return Promise.all(
      routes.map(async (b) => {
        for (let running = this.#passes.get(b.route); running !== undefined; running = this.#passes.get(b.route)) await running.catch(() => {});
        const p = this.#pass(b, 'admin');
        this.#passes.set(b.route, p);
        try {
          return { route: b.route, ...(await p) };
        } finally {
          this.#passes.delete(b.route);
          if (this.#again.delete(b.route)) this.#startPass(b.route, 'breaker_closed');
        }
      }),
    );
  }

  // --- passes --------------------------------------------------------------------

  #startPass(route: string, trigger: string): void {
    if (this.#closed) return;
    // A close while a pass runs (it may be about to stop at a failure) gets a pass of its own right after.
    if (this.#passes.has(route)) {
      this.#again.add(route);
      return;
    }
    const b = this.#bindings.get(route);
    if (b === undefined) return;
    const p = this.#pass(b, trigger)
      .catch((err: unknown) => this.#logger.error({ route, err }, 'dead_letter_replay_error'))
      .finally(() => {
        this.#passes.delete(route);
        if (this.#again.delete(route)) this.#startPass(route, trigger);
      });
    this.#passes.set(route, p);
  }

  /** Oldest first, paced at `replay.rate`, until the route's spool is empty or a replay fails. */
  async #pass(b: ReplayBinding, trigger: string): Promise<{ replayed: number; failed: number }> {
    let replayed = 0;
    let failed = 0;
    let after = 0;
    const gap = b.config.replay.rate.periodMs / b.config.replay.rate.tokens;
    try {
      const n = b.store.expire(b.route, b.config.maxAge);
      if (n > 0) this.dropped(b.route, 'max_age', n, { upstream: b.upstream });
    } catch (err) {
      this.#logger.error({ route: b.route, error: (err as Error).message }, 'dead_letter_replay_error');
      return { replayed, failed };
    }
    let first = true;
    while (!this.#closed) {
      const b2 = this.#bindings.get(b.route) ?? b; // a reload mid-pass: current credentials and endpoints
      const e = b2.store.nextForReplay(b2.route, after);
      if (e === null) break;
      after = e.seq;
      if (!first && !(await this.#sleep(gap))) break;
      first = false;
      if (!b2.store.claim(e.id)) continue; // a manual replay holds it
      const r = await this.#replay(b2, e);
      if (r.result === 'success') replayed++;
      else if (r.result !== 'rejected') {
        failed++;
        break;
      } else failed++;
    }
    if (replayed + failed > 0) this.#logger.info({ route: b.route, trigger, replayed, failed }, 'dead_letter_replay_pass');
    return { replayed, failed };
  }

  #sleep(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(!this.#closed);
    return new Promise((resolve) => {
      const signal = this.#stop.signal;
      const done = (): void => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve(!this.#closed);
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }

  /** Sends one claimed entry and settles it (tracked, so close waits for it to settle its entry). */
  #replay(b: ReplayBinding, e: EntryWithBody): Promise<ReplayOutcome> {
    const p = this.#replayNow(b, e);
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p)).catch(() => {});
    return p;
  }

  /** Sends one claimed entry and settles it: removed on success, released with its error otherwise. */
  async #replayNow(b: ReplayBinding, e: EntryWithBody): Promise<ReplayOutcome> {
    const f = this.#metrics.deadLetterFamilies.deadLetterReplays;
    const outcome = await this.#send(b, e);
    try {
      if (outcome.result === 'success') b.store.delete(e.id);
      else b.store.release(e.id, outcome.error ?? `status ${outcome.status}`, outcome.result === 'rejected');
    } catch (err) {
      this.#logger.error({ route: b.route, deadLetter: e.id, error: (err as Error).message }, 'dead_letter_replay_error');
      // Not settled in the file: at least the claim goes, or the entry is stuck until a restart.
      try {
        b.store.unclaim(e.id);
      } catch {
        // the file is failing: a restart frees every claim
      }
    }
    f.child(b.route, outcome.result as ReplayResult).v++;
    const level = outcome.result === 'success' ? 'info' : 'warn';
    this.#logger[level]({ route: b.route, upstream: b.upstream, deadLetter: e.id, result: outcome.result, status: outcome.status ?? null, error: outcome.error ?? null, attempts: e.attempts + 1 }, 'dead_letter_replay');
    return outcome;
  }

  async #send(b: ReplayBinding, e: EntryWithBody): Promise<ReplayOutcome> {
    // Nothing goes to an upstream whose breaker refuses; what is sent is recorded on it.
    const permit = b.breaker === null ? null : breakerGuard(b.breaker).acquire();
    if (permit !== null && permit.type === 'failure') return { id: e.id, result: 'circuit_open', error: 'circuit open: not sent' };
    // A half-open probe permit hands over to an ordinary one once recorded;
    // the one held at the end is released (a probe never sent gives its slot back).
    let held = permit;
    try {
      if (b.bucket !== null) {
        // The upstream's limit, local or global (SPEC §12): a token, a wait for one, or no.
        const got = await b.bucket.acquire(Math.max(1000, b.timeout), false);
        if (typeof got !== 'number' && got.type === 'failure') return { id: e.id, result: 'failure', error: 'rate limited: not sent' };
        if (typeof got === 'number' && got > 0 && !(await this.#sleep(got))) return { id: e.id, result: 'failure', error: 'shutting down: not sent' };
      }
      const ep = b.balancer.pick();
      const headers = replayHeaders(e.headers, b, ep.endpoint.authority);
      const target = b.stripPrefix === null ? e.path : stripPrefix(e.path, b.stripPrefix);
      const signal = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(b.timeout)]);
      let status = 0;
      try {
        const res = await ep.pool.request({ method: e.method as 'POST', path: target, headers, body: e.body, signal });
        status = res.statusCode;
        await res.body.dump({ limit: 1 << 20 }).catch(() => {});
      } catch (err) {
        const kind = classifyError(err);
        held = held?.record(kind, 0) ?? null;
        return { id: e.id, result: 'failure', error: `${kind}: ${(err as Error).message}` };
      }
      held = held?.record(classifyStatus(status), status) ?? null;
      if (status < 400) return { id: e.id, result: 'success', status };
      if (status >= 500 || status === 408 || status === 425 || status === 429) return { id: e.id, result: 'failure', status, error: `upstream answered ${status}` };
      return { id: e.id, result: 'rejected', status, error: `upstream refused it: ${status}` };
    } finally {
      held?.release();
    }
  }

  /** Shutdown: passes stop, in-flight replays are aborted (their entries stay), files close. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stop.abort();
    // Passes, then every replay still settling its entry (a manual one too):
    // an upstream's 2xx that arrived must delete its entry before the file
    // closes, or the next process would send it again.
    await Promise.allSettled([...this.#passes.values()]);
    await Promise.allSettled([...this.#inflight]);
    for (const s of this.#stores.values()) s.close();
    this.#stores.clear();
  }
}

/** Stored headers, then the upstream's rewrite as configured now, then Host. */
function replayHeaders(stored: readonly string[], b: ReplayBinding, authority: string): string[] {
  const setNames = new Set(b.rewrite.set.map(([n]) => n));
  const out: string[] = [];
  let host = authority;
  for (let i = 0; i < stored.length; i += 2) {
    const name = stored[i]!;
    if (name === 'host') {
      if (b.preserveHost && stored[i + 1] !== '') host = stored[i + 1]!;
      continue;
    }
    if (setNames.has(name) || b.rewrite.remove.includes(name)) continue;
    out.push(name, stored[i + 1]!);
  }
  for (const [n, v] of b.rewrite.set) out.push(n, v);
  out.push('host', host);
  return out;
}
