/**
 * The running proxy: owns the listeners, the admin endpoint, the state
 * registry, metrics and logs, and the current Runtime. Used by the CLI and,
 * in-process, by the tests.
 *
 * Reload (SPEC §7): parse → validate → build the whole new runtime beside the
 * old one → swap. Listeners whose address is unchanged keep their sockets and
 * only swap the compiled routes they dispatch to; added listeners bind;
 * removed ones stop accepting and drain. State lives in the registry and is
 * re-pointed, never rebuilt.
 */
import type { DestinationStream } from 'pino';
import { loadConfigFile } from '../config/load.ts';
import type { ConfigError } from '../config/errors.ts';
import type { BreakwaterConfig, ListenerAddress, ListenerConfig } from '../config/types.ts';
import { AdminServer } from '../admin/server.ts';
import { ListenerServer } from '../http/server.ts';
import { diffConfigs } from '../config/diff.ts';
import { AccessLog } from '../observability/access-log.ts';
import { AuditLog, type Requester } from '../observability/audit.ts';
import { AuditFile } from '../observability/audit-file.ts';
import { createLogger, type Logger, type LoggerHandle } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics/index.ts';
import { TracingHost, dropReporter } from '../observability/tracing/tracing.ts';
import { readFileSync } from 'node:fs';
import { TapHub } from '../observability/tap.ts';
import { buildRuntime, type Runtime, type RuntimePlan } from './build.ts';
import { newClaims, StateRegistry, type Claims } from './state.ts';
import { DeadLetters } from '../dead-letter/hub.ts';

export interface ProxyOptions {
  /** Where log lines go (tests); stdout when absent. */
  readonly logDestination?: DestinationStream;
  /** Collect prom-client's default process metrics (default true). */
  readonly defaultMetrics?: boolean;
  /** Environment for `${VAR}` interpolation on reload (default process.env). */
  readonly env?: Record<string, string | undefined>;
}

export interface ReloadOutcome {
  readonly result: 'success' | 'failure' | 'unchanged';
  readonly hash: string;
  readonly errors: readonly string[];
}

export interface LastReload {
  readonly at: string;
  readonly ok: boolean;
  readonly errors: readonly string[];
}

export class Proxy {
  readonly metrics: Metrics;
  readonly registry: StateRegistry;
  readonly logger: Logger;
  /** SPEC §11.3: config changes here, admin actions in admin/server.ts. */
  readonly audit: AuditLog;
  /** The OTLP exporter's owner (SPEC §13): survives reloads; idle (nothing loaded) without a `tracing` block. */
  readonly tracing: TracingHost;
  /** Live access lines for `GET /tap`; outlives reloads. */
  readonly tap = new TapHub();
  readonly #log: LoggerHandle;
  readonly #env: Record<string, string | undefined>;
  #runtime: Runtime;
  #loadedAt = new Date();
  lastReload: LastReload | null = null;
  /** By address (see listenerKey). */
  readonly listeners = new Map<string, ListenerServer>();
  admin: AdminServer | null = null;
  /** Dead-letter spools and replay (SPEC §11.1): files open on first use, kept across reloads, closed at shutdown. */
  readonly deadLetters: DeadLetters;
  ready = false;
  draining = false;
  #reloading: Promise<ReloadOutcome> | null = null;
  #again: Promise<ReloadOutcome> | null = null;
  /** Who asked for the reload `#again` will run: all of them share its audit line. */
  #waiting: Requester[] = [];
  /** Where the admin API was bound at start; reloads do not move it. */
  readonly #adminAddress: ListenerAddress;
  /** Replaced runtimes that still have requests in flight: their state is kept until they are idle. */
  readonly #retired = new Set<Runtime>();
  /** Listeners a reload removed that are still draining: drain() and close() must include them. */
  readonly #retiring = new Set<ListenerServer>();

  private constructor(config: BreakwaterConfig, opts: ProxyOptions) {
    this.#env = opts.env ?? process.env;
    this.#log = createLogger(config.log.level, opts.logDestination);
    this.logger = this.#log.logger;
    this.audit = new AuditLog(this.#log);
    this.#adminAddress = config.admin.address;
    this.metrics = new Metrics({ defaultMetrics: opts.defaultMetrics ?? true });
    this.deadLetters = new DeadLetters(this.metrics, this.logger);
    this.tracing = new TracingHost(
      {
        dropped: dropReporter(
          (reason, n) => this.metrics.spansDropped(reason, n),
          (fields, msg) => this.logger.warn(fields, msg),
        ),
        warn: (fields, msg) => this.logger.warn(fields, msg),
      },
      packageVersion(),
      this.#env,
    );
    this.registry = new StateRegistry((upstream, from, to) => {
      const um = this.metrics.upstream(upstream);
      um.circuitTransition(from, to);
      this.logger.warn({ upstream, from, to }, 'circuit_transition');
      this.deadLetters.breakerTransition(upstream, to);
    });
    const plan = this.#build(config);
    plan.commit();
    this.#runtime = plan.runtime;
    // Guard gauges are read from the guards at scrape time, never pushed, so
    // every path that changes them (HTTP, queue, tunnels, admin) is counted.
    this.metrics.beforeScrape = () => {
      for (const [name, b] of this.registry.bulkheads) this.metrics.upstream(name).bulkhead(b.active, b.queued);
      for (const [name, b] of this.registry.breakers) this.metrics.upstream(name).circuitState(b.state);
      this.deadLetters.refreshGauges();
    };
  }

  /** Build, bind every listener and the admin endpoint. Throws BindError (nothing left bound) if one cannot bind. */
  static async start(config: BreakwaterConfig, opts: ProxyOptions = {}): Promise<Proxy> {
    const p = new Proxy(config, opts);
    try {
      if (config.audit.file !== null) p.audit.useFile(AuditFile.open(config.audit.file));
      for (const [, lr] of p.#runtime.listeners) {
        const s = new ListenerServer(lr);
        await s.listen();
        p.listeners.set(listenerKey(lr.config), s);
      }
      p.admin = new AdminServer(p, config.admin.address);
      await p.admin.listen();
    } catch (err) {
      await p.close();
      throw err;
    }
    if (!isLoopback(config.admin.address.host)) {
      p.logger.warn({ address: config.admin.address.text }, 'admin_not_loopback');
    }
    p.metrics.configLoaded(config.source.hash, Date.now());
    p.ready = true;
    p.logger.info(
      {
        version: config.version,
        hash: config.source.hash,
        source: config.source.file,
        listeners: [...p.listeners.values()].map((l) => ({ name: l.current.config.name, address: `${l.address.host}:${l.port}` })),
        admin: p.admin ? `${config.admin.address.host}:${p.admin.port}` : null,
      },
      'start',
    );
    for (const w of config.warnings) p.logger.warn({ code: w.code, path: w.path }, `config_warning: ${w.message}`);
    p.audit.configChange({ requesters: [{ source: 'start' }], oldHash: null, newHash: config.source.hash, result: 'success', changes: diffConfigs(null, config), errors: [] });
    return p;
  }

  get config(): BreakwaterConfig {
    return this.#runtime.config;
  }

  get loadedAt(): Date {
    return this.#loadedAt;
  }

  /** The port a listener is bound to, by listener name (for port-0 configs). */
  port(listenerName: string): number {
    for (const l of this.listeners.values()) if (l.current.config.name === listenerName) return l.port;
    throw new Error(`no listener named "${listenerName}"`);
  }

  #build(config: BreakwaterConfig): RuntimePlan {
    // The tap works with the access log off: the line is then built only while someone listens.
    const format = new AccessLog(this.#log, config.log);
    const accessLog = config.log.access ? format : null;
    return buildRuntime(config, {
      registry: this.registry,
      metrics: this.metrics,
      logger: this.logger,
      accessLog,
      deadLetters: this.deadLetters,
      tracing: this.tracing,
      tap: { hub: this.tap, format },
    });
  }

  /**
   * Reload from the config file on disk (SIGHUP, file watch, POST /reload).
   * Reloads never overlap: a request that arrives during one is served by
   * one more reload right after it (several such requests share it), so a
   * change written while a reload runs is never lost.
   */
  reload(trigger: string, client?: string): Promise<ReloadOutcome> {
    return this.#request([client === undefined ? { source: trigger } : { source: trigger, client }]);
  }

  #request(who: Requester[]): Promise<ReloadOutcome> {
    if (this.draining) {
      // Shutting down: binding listeners or swapping routes now would only fight the drain.
      const running = this.#runtime.config.source.hash;
      const errors = ['breakwater is draining: the config is no longer reloaded'];
      this.audit.configChange({ requesters: who, oldHash: running, newHash: null, result: 'failure', changes: null, errors });
      return Promise.resolve({ result: 'failure', hash: running, errors });
    }
    if (this.#reloading === null) {
      this.#reloading = this.#reload(who).finally(() => {
        this.#reloading = null;
      });
      return this.#reloading;
    }
    this.#waiting.push(...who);
    const next = (): Promise<ReloadOutcome> => {
      this.#again = null;
      return this.#request(this.#waiting.splice(0));
    };
    this.#again ??= this.#reloading.then(next, next);
    return this.#again;
  }

  /** The file hash of the last failed load (watch's double looks at one broken edit are audited once). */
  #lastWatchFailure: string | null = null;

  async #reload(who: Requester[]): Promise<ReloadOutcome> {
    const out = await this.#load(who[0]?.source ?? 'unknown');
    const running = this.#runtime.config;
    // The watcher calls on any event in the directory and on its stat poll,
    // so one edit is seen more than once: a watch call that finds the file
    // unchanged is the watcher's double-check, not a change anyone made.
    const watchOnly = who.every((r) => r.source === 'watch');
    if (out.result === 'unchanged' && watchOnly) return { result: 'unchanged', hash: running.source.hash, errors: [] };
    // The same for a broken file: the watcher's second look at the same broken bytes is not a second change.
    const failedAgain = out.result === 'failure' && watchOnly && out.newHash !== null && out.newHash === this.#lastWatchFailure;
    this.#lastWatchFailure = out.result === 'failure' ? out.newHash : null;
    if (failedAgain) return { result: 'failure', hash: out.before.source.hash, errors: out.errors };
    // Any other reload request moves writing to a fresh open of the file (rotation).
    if (out.result !== 'success') this.#reopenAudit(running.audit.file);
    this.audit.configChange({
      requesters: who,
      oldHash: out.before.source.hash,
      newHash: out.newHash,
      result: out.result,
      changes: out.result === 'success' ? diffConfigs(out.before, running) : null,
      errors: out.errors,
    });
    return { result: out.result, hash: out.result === 'success' ? running.source.hash : out.before.source.hash, errors: out.errors };
  }

  /** Opens `file` again and writes there from now on; on failure keeps the open one (and says so). */
  #reopenAudit(file: string | null): void {
    if (file === null) return;
    try {
      this.audit.useFile(AuditFile.open(file))?.close();
    } catch (err) {
      this.logger.error({ error: (err as Error).message }, 'audit_file_reopen_failed');
    }
  }

  /** One load from disk; `before`: the config that ran when it began; `newHash`: the file's, when it was read. */
  async #load(trigger: string): Promise<{ result: ReloadOutcome['result']; errors: string[]; before: BreakwaterConfig; newHash: string | null }> {
    const before = this.#runtime.config;
    const file = before.source.file;
    const running = before.source.hash;
    const loaded = loadConfigFile(file, this.#env, running);
    const at = new Date().toISOString();
    if ('unchanged' in loaded) {
      // The file is valid again and is what runs: a failure shown earlier is over.
      if (this.lastReload !== null && !this.lastReload.ok) this.lastReload = { at, ok: true, errors: [] };
      this.metrics.reload('unchanged');
      this.logger.debug({ trigger, hash: running }, 'reload_unchanged');
      return { result: 'unchanged', errors: [], before, newHash: running };
    }
    if (!loaded.ok) {
      const errors = loaded.errors.map((e: ConfigError) => e.toString());
      this.lastReload = { at, ok: false, errors };
      this.metrics.reload('failure');
      this.logger.error({ trigger, errors }, 'reload_failed');
      return { result: 'failure', errors, before, newHash: loaded.hash ?? null };
    }
    const next = loaded.config;
    let auditFile: AuditFile | null = null;
    try {
      this.#keepsAdminToken(next);
      // Opened before the swap, so a file that cannot be opened fails the reload and changes nothing.
      if (next.audit.file !== null) auditFile = AuditFile.open(next.audit.file);
      await this.apply(next);
      this.audit.useFile(auditFile)?.close();
    } catch (err) {
      auditFile?.close();
      const errors = [(err as Error).message];
      this.lastReload = { at, ok: false, errors };
      this.metrics.reload('failure');
      this.logger.error({ trigger, errors }, 'reload_failed');
      return { result: 'failure', errors, before, newHash: next.source.hash };
    }
    this.lastReload = { at, ok: true, errors: [] };
    this.metrics.reload('success');
    this.logger.info({ trigger, hash: next.source.hash }, 'reload');
    return { result: 'success', errors: [], before, newHash: next.source.hash };
  }

  /**
   * Swap in an already validated config. The build changes nothing shared;
   * new listeners are bound; only then is the plan committed and the
   * runtime swapped. A bind failure discards the plan: nothing to roll back.
   */
  async apply(next: BreakwaterConfig): Promise<void> {
    const plan = this.#build(next);
    const rt = plan.runtime;
    const added: ListenerServer[] = [];
    try {
      for (const [, lr] of rt.listeners) {
        if (this.listeners.has(listenerKey(lr.config))) continue;
        const s = new ListenerServer(lr);
        await s.listen();
        added.push(s);
      }
      // A drain that began while we were binding has already closed the listeners it knows of.
      if (this.draining) throw new Error('breakwater began draining during the reload');
    } catch (err) {
      await Promise.all(added.map((s) => s.close(0)));
      await plan.discard();
      throw err;
    }
    plan.commit();
    // The swap: from here on every new request uses the new runtime.
    const keep = new Set<string>();
    for (const [, lr] of rt.listeners) {
      keep.add(listenerKey(lr.config));
      const s = this.listeners.get(listenerKey(lr.config));
      if (s !== undefined) s.current = lr;
    }
    for (const s of added) this.listeners.set(listenerKey(s.current.config), s);
    const removed: ListenerServer[] = [];
    for (const [addr, s] of this.listeners) {
      if (keep.has(addr)) continue;
      this.listeners.delete(addr);
      removed.push(s);
    }
    const old = this.#runtime;
    this.#runtime = rt;
    this.#loadedAt = new Date();
    // A new (or removed) admin token: taps opened with the old one end now
    // (a leaked token is rotated to cut its holder off, not only new calls).
    if (next.admin.token !== old.config.admin.token) this.tap.endAll('token_changed');
    this.metrics.configLoaded(next.source.hash, Date.now());
    this.metrics.retain({
      routes: next.listeners.flatMap((l) => l.routes.flatMap((r) => [[l.name, r.name, r.upstream] as [string, string, string], ...fallbackChain(next, r.policy.fallback?.upstream ?? null).map((f) => [l.name, r.name, f] as [string, string, string])])),
      upstreams: [...next.upstreams.keys()],
      listeners: next.listeners.map((l) => l.name),
    });
    // The old runtime's requests finish with the state and pools they started
    // with; what only it used is dropped once it is idle. Removed listeners
    // drain in the background: the reload is done, the next one may start.
    this.#retired.add(old);
    void old.activity.idle().then(() => {
      this.#retired.delete(old);
      return this.#retainLive();
    });
    for (const s of removed) {
      this.#retiring.add(s);
      void s.close(next.drain.timeout).finally(() => this.#retiring.delete(s));
    }
    await this.#retainLive();
  }

  /**
   * The admin listener is bound once, at start: a reload cannot move it. So
   * the rule "a non-loopback admin API needs a token" is checked against
   * where it really listens, or a reload that writes a loopback address and
   * drops the token would leave the bound port open.
   */
  #keepsAdminToken(next: BreakwaterConfig): void {
    const bound = this.#adminAddress;
    if (next.admin.token === null && !isLoopback(bound.host)) {
      throw new Error(`admin.token cannot be removed while the admin API listens on ${bound.text}, not a loopback address (a new admin.address takes effect only at restart)`);
    }
  }

  /** Drop registry state that neither the current runtime nor a retired, still busy one uses. */
  #retainLive(): Promise<void> {
    const keep = newClaims();
    for (const rt of [this.#runtime, ...this.#retired]) {
      for (const k of Object.keys(keep) as (keyof Claims)[]) for (const v of rt.claims[k]) keep[k].add(v);
    }
    return this.registry.retain(keep);
  }

  /**
   * Graceful shutdown (SPEC §7): readiness fails at once; keep serving for
   * `drain.delay`; then stop accepting, answer requests on kept-alive
   * connections with `draining`, wait for in-flight requests up to
   * `drain.timeout`; close pools; flush logs.
   */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.ready = false;
    const { delay, timeout } = this.#runtime.config.drain;
    this.logger.info({ delayMs: delay, timeoutMs: timeout }, 'drain_start');
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const all = [...this.listeners.values(), ...this.#retiring];
    const inflight = all.reduce((n, l) => n + l.inflight, 0);
    await Promise.all(all.map((l) => l.close(timeout)));
    const left = all.reduce((n, l) => n + l.inflight, 0);
    // In-flight requests are done or were cut at drain.timeout: whatever an
    // upstream connection still holds can only be abandoned work. Replays
    // stop first (an interrupted one keeps its entry), then the spools close.
    await this.deadLetters.close();
    await this.registry.destroy();
    // The last spans go to the collector, within a bounded wait.
    await this.tracing.shutdown();
    this.tap.close('shutdown');
    await this.admin?.close();
    this.logger.info({ inflightAtStop: inflight, abandoned: left }, 'drain_complete');
    this.audit.useFile(null)?.close();
    this.#log.flush();
  }

  /** Immediate stop: cut connections, close everything (tests, second SIGTERM). */
  async close(): Promise<void> {
    this.ready = false;
    this.draining = true;
    await Promise.all([...this.listeners.values(), ...this.#retiring].map((l) => l.close(0)));
    this.listeners.clear();
    this.#retiring.clear();
    await this.deadLetters.close();
    await this.registry.destroy();
    await this.tracing.shutdown();
    this.tap.close('shutdown');
    await this.admin?.close();
    this.metrics.registry.clear();
    this.audit.useFile(null)?.close();
    this.#log.flush();
  }
}

/** breakwater's version (service.version of its spans). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function fallbackChain(config: BreakwaterConfig, first: string | null): string[] {
  const out: string[] = [];
  let name = first;
  while (name !== null && !out.includes(name)) {
    out.push(name);
    name = config.upstreams.get(name)?.fallback?.upstream ?? null;
  }
  return out;
}

/**
 * Listeners are identified by address, so a reload that keeps an address keeps
 * its socket. Port 0 ("any free port", used by tests) names no address: such
 * listeners are identified by name instead.
 */
function listenerKey(l: ListenerConfig): string {
  return l.address.port === 0 ? `name:${l.name}` : l.address.text;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}
