/**
 * The one Redis connection every global rate limit shares (SPEC §12).
 *
 * Made by a build without touching the network; `start()` (the state plan's
 * commit) creates the client. ioredis, not node-redis: one client class for
 * standalone, Sentinel (followed through failovers) and Cluster with the
 * same call surface; `enableOfflineQueue: false`, so a command while
 * disconnected fails at once instead of queueing behind a reconnect;
 * `commandTimeout` per command; and scripts sent as EVALSHA that fall back
 * to EVAL by themselves when a restarted Redis has lost its script cache.
 *
 * Every call is bounded by `redis.timeout` twice over: ioredis's command
 * timeout and a timer of our own (one per call, not per request), so a
 * Redis that accepts the connection and never answers (SIGSTOP, a full
 * network buffer) costs a caller at most the timeout. ioredis reconnects by
 * itself, with backoff; nothing here restarts anything.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/types.ts';
import { redactRedisUrl } from '../config/redis.ts';
import { TAKE_SCRIPT } from './take-script.ts';

export type RedisErrorReason = 'timeout' | 'connection' | 'script';

export class RedisCallError extends Error {
  readonly reason: RedisErrorReason;
  /**
   * A timeout of a call already sent: Redis may still run it. Its answer,
   * when it comes (rejected if Redis refused it), so the caller can settle
   * what it owed and what was granted instead of charging twice.
   */
  readonly late: Promise<TakeAnswer> | null;
  constructor(reason: RedisErrorReason, message: string, late: Promise<TakeAnswer> | null = null) {
    super(message);
    this.reason = reason;
    this.late = late;
  }
}

/** What the take script answers (redis/take-script.ts). */
export interface TakeAnswer {
  readonly granted: number;
  /** ms until the bucket holds a whole token again (0: it holds one now). */
  readonly nextMs: number;
  /** Processes that took from this bucket within the last 10 s, this one included. */
  readonly peers: number;
}

export interface TakeArgs {
  readonly perMs: number;
  readonly burst: number;
  readonly want: number;
  /** Tokens admitted on credit since the last call: charged whatever the bucket holds. */
  readonly owe: number;
  /** Leased tokens that expired unused: given back (up to the burst). */
  readonly give: number;
}

type Client = Redis | Cluster;
type WithTake = Client & { bwTake(k1: string, k2: string, ...args: (string | number)[]): Promise<[number, string, number]> };

export interface RedisLinkEvents {
  /** The connection dropped or failed (logged once per outage by the listener). */
  onDown(reason: string): void;
  onUp(): void;
}

export class RedisLink {
  readonly config: RedisConfig;
  /** A stable text of the block (secrets included; never printed): a reload with the same text keeps the link. */
  readonly identity: string;
  /** This process's name among the bucket's peers. */
  readonly peerId: string;
  #client: WithTake | null = null;
  #closed = false;
  #events: RedisLinkEvents | null = null;
  #up = false;
  #downSaid = false;
  /** Has the client ever been ready? Calls made before are held (within their deadline) until it is. */
  #everReady = false;
  readonly #firstReady = new Set<() => void>();

  constructor(config: RedisConfig, peerId: string) {
    this.config = config;
    this.identity = JSON.stringify(config);
    this.peerId = peerId;
  }

  /** Creates the client and starts connecting. Once; a no-op after close. */
  start(events: RedisLinkEvents): void {
    if (this.#client !== null || this.#closed) return;
    this.#events = events;
    let c: WithTake;
    try {
      c = createClient(this.config) as WithTake;
    } catch (err) {
      // The config checks what would throw here (URLs, the CA file); a file
      // gone since then must not break the commit that starts us: the link
      // stays down, every global limit runs on its fallback, and it says so.
      events.onDown(`cannot create the Redis client: ${(err as Error).name}`);
      return;
    }
    c.defineCommand('bwTake', { numberOfKeys: 2, lua: TAKE_SCRIPT });
    c.on('ready', () => {
      if (!this.#everReady) {
        this.#everReady = true;
        const waiting = [...this.#firstReady];
        this.#firstReady.clear();
        for (const send of waiting) send();
      }
      if (this.#up) return;
      this.#up = true;
      this.#downSaid = false;
      this.#events?.onUp();
    });
    c.on('error', (err: Error) => this.#down(errorText(err)));
    c.on('close', () => this.#down('connection closed'));
    this.#client = c;
  }

  get started(): boolean {
    return this.#client !== null;
  }

  /**
   * One atomic take from the bucket `key`, within `config.timeout`.
   * Rejects with a RedisCallError (timeout, connection or script).
   */
  take(key: string, a: TakeArgs): Promise<TakeAnswer> {
    const c = this.#client;
    if (c === null || this.#closed) return Promise.reject(new RedisCallError('connection', 'redis is not connected'));
    const prefix = this.config.keyPrefix;
    // One hash tag per limit: both keys land on one Cluster slot.
    const bucketKey = `${prefix}:{${key}}:bucket`;
    const peersKey = `${prefix}:{${key}}:peers`;
    const ms = this.config.timeout;
    return new Promise<TakeAnswer>((resolve, reject) => {
      let sent: Promise<TakeAnswer> | null = null;
      let send: (() => void) | null = () => {
        send = null;
        sent = c.bwTake(bucketKey, peersKey, String(a.perMs), a.burst, a.want, a.owe, a.give, this.peerId).then(
          (r) => ({ granted: Number(r[0]), nextMs: Number(r[1]), peers: Math.max(1, Number(r[2])) }),
          (err: unknown) => {
            throw classify(err);
          },
        );
        sent.then(
          (answer) => {
            clearTimeout(timer);
            resolve(answer);
          },
          (err: RedisCallError) => {
            clearTimeout(timer);
            reject(err);
          },
        );
      };
      // One deadline for the whole call, the wait for a first connection included.
      const timer = setTimeout(() => {
        if (send !== null) this.#firstReady.delete(send);
        send = null;
        reject(new RedisCallError('timeout', `redis did not answer within ${ms}ms`, sent));
      }, ms);
      // Just started and not connected yet (the first requests after a start): wait for the
      // connection within the deadline rather than fail at once. Later, a lost connection fails at once.
      if (this.#everReady) send();
      else this.#firstReady.add(send);
    });
  }

  /** Closes the connection (shutdown, or the redis block changed). */
  async close(): Promise<void> {
    this.#closed = true;
    const c = this.#client;
    this.#client = null;
    this.#events = null;
    if (c === null) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([c.quit(), new Promise((r) => (timer = setTimeout(r, 200).unref()))]);
    } catch {
      // already gone
    } finally {
      clearTimeout(timer);
    }
    c.disconnect();
  }

  /** Logged once per outage: ioredis reports every failed reconnect. */
  #down(reason: string): void {
    if (this.#downSaid) return;
    this.#downSaid = true;
    this.#up = false;
    this.#events?.onDown(reason);
  }
}

/** An ioredis error as one of the bounded reasons of global_rate_limit_errors_total. */
function classify(err: unknown): RedisCallError {
  if (err instanceof RedisCallError) return err;
  const text = errorText(err);
  if (/timed? ?out/i.test(text)) return new RedisCallError('timeout', text);
  // A reply error (ERR, NOSCRIPT that could not be mended, WRONGTYPE, OOM...) comes from Redis itself.
  if (err instanceof Error && err.name === 'ReplyError') return new RedisCallError('script', text);
  return new RedisCallError('connection', text);
}

/** An error's message without any URL credentials it may quote. */
export function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/rediss?:\/\/[^\s@/]*@/g, (m) => redactRedisUrl(m + 'x').slice(0, -1));
}

function tlsOptions(cfg: RedisConfig, host: string | undefined): ConnectionOptions | undefined {
  const wantsTls = cfg.tls !== null || cfg.urls.some((u) => u.startsWith('rediss:'));
  if (!wantsTls) return undefined;
  const o: ConnectionOptions = {};
  if (cfg.tls?.ca != null) o.ca = readFileSync(cfg.tls.ca);
  const sn = cfg.tls?.servername ?? host;
  if (sn !== undefined) o.servername = sn;
  return o;
}

/** Options every connection shares: fail fast while down, reconnect with capped backoff. */
function baseOptions(cfg: RedisConfig): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: cfg.timeout,
    connectTimeout: Math.max(1000, cfg.timeout),
    // Reconnect for ever: 50 ms, 100 ms, ... at most 2 s apart.
    retryStrategy: (times: number) => Math.min(times * 50, 2000),
    enableReadyCheck: true,
    autoResubscribe: false,
    lazyConnect: false,
    ...(cfg.username !== null ? { username: cfg.username } : {}),
    ...(cfg.password !== null ? { password: cfg.password } : {}),
  };
}

function createClient(cfg: RedisConfig): Client {
  const base = baseOptions(cfg);
  if (cfg.mode === 'sentinel' && cfg.sentinel !== null) {
    const s = cfg.sentinel;
    const tls = tlsOptions(cfg, undefined);
    return new Redis({
      ...base,
      sentinels: s.sentinels.map((x) => ({ host: x.host, port: x.port })),
      name: s.name,
      ...(s.password !== null ? { sentinelPassword: s.password } : {}),
      ...(tls !== undefined ? { tls, enableTLSForSentinelMode: true } : {}),
      sentinelRetryStrategy: (times: number) => Math.min(times * 50, 2000),
    });
  }
  if (cfg.mode === 'cluster') {
    const nodes = cfg.urls.map((u) => {
      const x = new URL(u);
      return { host: x.hostname, port: Number(x.port || 6379) };
    });
    const tls = tlsOptions(cfg, nodes[0]?.host);
    const first = new URL(cfg.urls[0]!);
    const opts: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(times * 50, 2000),
      redisOptions: {
        ...base,
        ...(cfg.username === null && first.username !== '' ? { username: decodeURIComponent(first.username) } : {}),
        ...(cfg.password === null && first.password !== '' ? { password: decodeURIComponent(first.password) } : {}),
        ...(tls !== undefined ? { tls } : {}),
      },
    };
    return new Cluster(nodes, opts);
  }
  // The URL carries host, port, db and perhaps credentials; the block's own username/password win.
  const u = new URL(cfg.urls[0]!);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const tls = tlsOptions(cfg, host);
  const db = Number(u.pathname.slice(1) || 0);
  return new Redis({
    ...base,
    host,
    port: Number(u.port || 6379),
    db: Number.isInteger(db) ? db : 0,
    ...(cfg.username === null && u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(cfg.password === null && u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(tls !== undefined ? { tls } : {}),
  });
}
