/**
 * The runtime configuration: what `loadConfig` produces from a YAML file once
 * it is parsed, interpolated, validated, merged with the built-ins and frozen.
 *
 * Invariants every consumer may rely on:
 * - nothing here is a raw string the runtime must still parse: durations are
 *   milliseconds, sizes are bytes, rates are tokens per millisecond, retry and
 *   breaker conditions are compiled into flags and status sets;
 * - every route carries its *effective* policy (built-in < defaults < upstream
 *   < route, key by key), so the request path never merges anything;
 * - the whole object graph is deeply frozen.
 */

/** Milliseconds. */
export type Millis = number;
/** Bytes. */
export type Bytes = number;

/**
 * The outcome of one upstream attempt, as the one classifier names it (SPEC §5 `tries[].outcome`).
 * `grpc_error`: a gRPC call answered with a non-zero `grpc-status` on an HTTP status below 400 (SPEC §10.2).
 */
export type OutcomeKind = 'success' | '5xx' | '4xx' | 'timeout' | 'connect_failure' | 'reset' | 'grpc_error';

/**
 * A compiled list of conditions such as retry `on` or breaker `failOn`:
 * `connect-failure`, `reset`, `timeout` become flags; `5xx` (500–599),
 * `gateway-error` (502, 503, 504) and explicit codes become one status set.
 */
export interface ConditionSet {
  readonly connectFailure: boolean;
  readonly reset: boolean;
  readonly timeout: boolean;
  readonly statuses: ReadonlySet<number>;
  /** gRPC status codes listed by name (`unavailable`...), as a bit mask: bit n set = code n (SPEC §10.2). */
  readonly grpc: number;
  /** The conditions as written (after defaults), for display by `validate` and `/config`. */
  readonly source: readonly (string | number)[];
}

export interface TimeoutConfig {
  /** TCP+TLS connect of one attempt. */
  readonly connect: Millis;
  /** Start of one attempt to its response headers; capped at `total`. */
  readonly perTry: Millis;
  /** Request arrival to response headers sent to the client. */
  readonly total: Millis;
  /** Longest gap between body chunks, either direction, after headers. */
  readonly idle: Millis;
}

export type BackoffStrategy = 'immediate' | 'constant' | 'linear' | 'exponential' | 'fibonacci';
export type Jitter = 'none' | 'full' | 'equal';

export interface BackoffConfig {
  readonly strategy: BackoffStrategy;
  readonly base: Millis;
  readonly max: Millis;
  readonly jitter: Jitter;
}

export interface BudgetConfig {
  /** Share of requests in the window that may be retries. */
  readonly ratio: number;
  /** Floor: retries per second always allowed (may be fractional). */
  readonly minPerSecond: number;
  readonly window: Millis;
}

export interface RetryConfig {
  /** Retries after the first attempt; 0 disables. At most 10. */
  readonly maxRetries: number;
  readonly on: ConditionSet;
  /** Upper-case method names that may be retried. */
  readonly methods: ReadonlySet<string>;
  /** Lower-case header name; a request carrying it is retriable whatever its method. */
  readonly idempotencyKeyHeader: string;
  readonly backoff: BackoffConfig;
  /** null when the config says `budget: null` (unbounded retries; `validate` warns). */
  readonly budget: BudgetConfig | null;
  readonly respectRetryAfter: boolean;
  readonly bufferLimit: Bytes;
}

export type PolicyMode = 'enforce' | 'observe';

export interface CircuitBreakerConfig {
  /** Consecutive failed attempts that open the breaker; null = trigger off. */
  readonly consecutiveFailures: number | null;
  /** Percent (0–100] of failed attempts in `window` that opens it; null = trigger off. */
  readonly failureRate: number | null;
  readonly minimumRequests: number;
  readonly window: Millis;
  readonly openDuration: Millis;
  readonly halfOpenRequests: number;
  readonly successThreshold: number;
  readonly failOn: ConditionSet;
  readonly mode: PolicyMode;
}

export interface BulkheadConfig {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly queueTimeout: Millis;
  readonly mode: PolicyMode;
}

export interface Rate {
  /** Tokens added per `periodMs`. */
  readonly tokens: number;
  readonly periodMs: Millis;
  /** tokens / periodMs, precomputed. */
  readonly perMs: number;
  /** As written, e.g. "100/s", for display. */
  readonly source: string;
}

export interface RateLimitConfig {
  readonly rate: Rate;
  /** Bucket size; built-in: one second's worth of `rate` (at least 1). */
  readonly burst: number;
  readonly maxWait: Millis;
  readonly mode: PolicyMode;
  /** local: this process's bucket; global: shared through `redis` (SPEC §12). */
  readonly scope: 'local' | 'global';
  /** scope global: the key as written, or null for the built-in (upstream:NAME / route:NAME). */
  readonly key: string | null;
  /** scope global: this limit's own `onRedisError`, or null for the redis block's. */
  readonly onRedisError: 'allow' | 'deny' | null;
}

/** The top-level `redis` block (SPEC §12). Holds secrets: never logged or printed as is. */
export interface RedisConfig {
  readonly mode: 'standalone' | 'sentinel' | 'cluster';
  /** standalone: one URL; cluster: the seed nodes; sentinel: empty. */
  readonly urls: readonly string[];
  readonly sentinel: { readonly name: string; readonly sentinels: readonly { host: string; port: number }[]; readonly password: string | null } | null;
  readonly username: string | null;
  readonly password: string | null;
  /** null: no TLS (unless a rediss:// URL asks for it). `ca` is the file's absolute path. */
  readonly tls: { readonly ca: string | null; readonly servername: string | null } | null;
  readonly timeout: Millis;
  readonly onRedisError: 'allow' | 'deny';
  readonly keyPrefix: string;
}

export type FallbackTrigger =
  | 'circuit-open'
  | 'connect-failure'
  | 'timeout'
  | 'retries-exhausted'
  | 'bulkhead-full'
  | 'rate-limited'
  | '5xx';

export interface StaticResponse {
  readonly status: number;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface FallbackConfig {
  /** Another upstream's name, tried with its own policies. */
  readonly upstream: string | null;
  readonly response: StaticResponse | null;
  readonly on: ReadonlySet<FallbackTrigger>;
}

/** A route's stale-if-error cache (SPEC §11.2); sizes in bytes, durations in ms. */
export interface CacheConfig {
  readonly maxEntries: number;
  readonly maxBytes: Bytes;
  /** Already capped at maxBytes. */
  readonly maxEntrySize: Bytes;
  readonly staleIfError: Millis;
  readonly serveFresh: boolean;
}

/** The policies that apply to one request on one route (already merged). */
export interface PolicySet {
  readonly timeout: TimeoutConfig;
  readonly retry: RetryConfig;
  /** null = no fallback. */
  readonly fallback: FallbackConfig | null;
}

export interface Endpoint {
  /** e.g. "http://payments.default.svc:8080" — what undici's Pool is created with. */
  readonly origin: string;
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  readonly port: number;
  /** host:port as logged (`endpoint` field) and sent as Host unless preserveHost. */
  readonly authority: string;
}

export type BalanceMode = 'round-robin' | 'least-request' | 'random';

/**
 * How breakwater talks to an upstream (SPEC §10.1): HTTP/1.1; HTTP/2 with
 * prior knowledge over cleartext (h2c, http:// endpoints); HTTP/2 over TLS,
 * required by ALPN (h2, https:// endpoints); or auto: ALPN picks on https://
 * (h2 preferred), HTTP/1.1 on http://.
 */
export type UpstreamProtocol = 'http1' | 'h2c' | 'h2' | 'auto';

export interface HeaderRewrite {
  /** [lower-case name, value] pairs set on every request upstream. */
  readonly set: readonly (readonly [string, string])[];
  /** Lower-case names removed from every request upstream. */
  readonly remove: readonly string[];
}

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/**
 * TLS to an upstream's https:// endpoints (SPEC §10.4). Paths are absolute
 * (relative ones are resolved against the config file's directory); the
 * files' contents never enter the config: they are read, checked and
 * watched by src/upstream/tls.ts.
 */
export interface TlsConfig {
  /** PEM file of CA certificates; null: the system roots only. */
  readonly ca: string | null;
  /** replace: trust only `ca` (as curl --cacert or Envoy's trusted_ca); add: `ca` and the system roots. */
  readonly caMode: 'replace' | 'add';
  /** Client certificate chain (PEM) for mTLS; set together with `key`. */
  readonly cert: string | null;
  /** Private key (PEM, unencrypted) of `cert`. */
  readonly key: string | null;
  /** SNI and the name the server certificate is verified against; null: the endpoint's host. */
  readonly servername: string | null;
  readonly minVersion: TlsVersion;
}

export interface UpstreamConfig {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  /** null: https:// endpoints are verified against the system roots with node's defaults. */
  readonly tls: TlsConfig | null;
  readonly protocol: UpstreamProtocol;
  readonly balance: BalanceMode;
  readonly pool: { readonly connections: number; readonly keepAlive: Millis };
  readonly preserveHost: boolean;
  readonly requestHeaders: HeaderRewrite;
  /** Effective upstream-level policies (built-in < defaults < upstream). */
  readonly timeout: TimeoutConfig;
  readonly retry: RetryConfig;
  readonly fallback: FallbackConfig | null;
  readonly circuitBreaker: CircuitBreakerConfig | null;
  readonly bulkhead: BulkheadConfig | null;
  readonly rateLimit: RateLimitConfig | null;
}

export type HostMatch =
  | { readonly kind: 'exact'; readonly host: string }
  /** `*.suffix`: `suffix` is stored with its leading dot, lower-case (".internal"). */
  | { readonly kind: 'suffix'; readonly suffix: string };

export interface RouteMatch {
  readonly host: HostMatch | null;
  readonly pathPrefix: string | null;
  /** Upper-case. */
  readonly methods: ReadonlySet<string> | null;
  /** [lower-case name, exact value] pairs; all must match. */
  readonly headers: readonly (readonly [string, string])[] | null;
}

/** What a dead-letter spool takes (SPEC §11.1): failure kinds, or upstream statuses. */
export type DeadLetterTrigger = 'retries-exhausted' | 'circuit-open' | 'bulkhead-full' | 'rate-limited' | 'timeout' | 'connect-failure' | 'reset' | '5xx';

export interface DeadLetterConfig {
  /** The spool file as written (relative: under the working directory). */
  readonly path: string;
  readonly maxEntries: number;
  readonly maxBytes: Bytes;
  readonly maxAge: Millis;
  readonly maxBodySize: Bytes;
  readonly respond: 'error' | 'accepted';
  readonly on: ReadonlySet<DeadLetterTrigger>;
  /** Upstream statuses listed in `on` (besides `5xx`). */
  readonly statuses: ReadonlySet<number>;
  readonly replay: { readonly auto: boolean; readonly rate: Rate };
}

export interface RouteConfig {
  /** Explicit name, or "<listener>/<index>"; the shorthand route is named like its listener. */
  readonly name: string;
  readonly match: RouteMatch;
  readonly upstream: string;
  readonly stripPrefix: boolean;
  /** `CONNECT host:PORT` (PORT ≠ 80) to one of the upstream's endpoints opens a byte tunnel (SPEC §10.3). */
  readonly allowConnect: boolean;
  /** Effective policies: built-in < defaults < upstream < route. */
  readonly policy: PolicySet;
  /** Route-level rate limit (a bucket of its own); null when the route sets none. */
  readonly rateLimit: RateLimitConfig | null;
  /** Dead-letter spool (SPEC §11.1); null: off. */
  readonly deadLetter: DeadLetterConfig | null;
  /** The route's stale-if-error cache (SPEC §11.2); null when the route sets none. */
  readonly cache: CacheConfig | null;
}

export interface ListenerAddress {
  readonly host: string;
  readonly port: number;
  /** As written after normalisation: "127.0.0.1:15001", "[::1]:15001". */
  readonly text: string;
}

export interface ListenerConfig {
  readonly name: string;
  readonly address: ListenerAddress;
  readonly routes: readonly RouteConfig[];
  readonly limits: ListenerLimits;
  /** Request header names containing "_": dropped (built-in), passed on, or refused with 400. */
  readonly underscoreHeaders: 'drop' | 'allow' | 'reject';
}

export interface ListenerLimits {
  readonly headerSize: Bytes;
  readonly bodySize: Bytes | null;
  /** The request head must arrive within this (ms). */
  readonly headerTimeout: number;
  /** The whole request must arrive within this (ms); 0: unbounded. */
  readonly requestTimeout: number;
  /** HTTP/2: streams one client connection may have open at once. */
  readonly maxConcurrentStreams: number;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface LogConfig {
  readonly level: LogLevel;
  readonly access: boolean;
  readonly includeQuery: boolean;
  /** Lower-case request header names to log; never authorization, cookie, proxy-authorization. */
  readonly headers: readonly string[];
}

export interface Warning {
  /** Stable code, e.g. "retry-post", "retry-no-budget"; never reused once retired. */
  readonly code: string;
  /** Config path the warning is about, e.g. "upstreams.payments.retry.methods". */
  readonly path: string;
  readonly message: string;
}

export interface AdminConfig {
  readonly address: ListenerAddress;
  /** The bearer token the admin API requires (admin-token.ts); null: none. Never logged or shown. */
  readonly token: string | null;
  /** The environment variables `token` was read from, for `breakwater validate`. */
  readonly tokenFrom: readonly string[];
}

export interface AuditConfig {
  /** Absolute path audit lines are appended to; null: the log stream (stdout). */
  readonly file: string | null;
}

/** SPEC §13: OpenTelemetry traces; null (the whole feature absent) unless a `tracing` block is present. */
export interface TracingConfig {
  /** OTLP/HTTP traces URL. */
  readonly endpoint: string;
  /** 0..1, for new traces (parent-based). */
  readonly sampleRatio: number;
  /** The config's serviceName, or null: $OTEL_SERVICE_NAME, else "breakwater" (resolved when the exporter starts). */
  readonly serviceName: string | null;
  /** Finished spans waiting for export. */
  readonly queueSize: number;
}

export interface BreakwaterConfig {
  readonly version: 1;
  readonly admin: AdminConfig;
  readonly audit: AuditConfig;
  readonly log: LogConfig;
  readonly tracing: TracingConfig | null;
  readonly drain: { readonly delay: Millis; readonly timeout: Millis };
  readonly listeners: readonly ListenerConfig[];
  /** In file order. */
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  /** The top-level `redis` block, or null. */
  readonly redis: RedisConfig | null;
  readonly warnings: readonly Warning[];
  readonly source: ConfigSource;
}

export interface ConfigSource {
  /** Absolute path of the file that was read. */
  readonly file: string;
  /** sha256 (hex) of the file's bytes, before interpolation. */
  readonly hash: string;
  /**
   * The document as plain JSON after interpolation, with every value that came
   * from `${...}` and every `requestHeaders.set` value replaced by "[redacted]".
   * Served by `GET /config`.
   */
  readonly redacted: unknown;
}
