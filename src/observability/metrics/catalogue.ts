/**
 * The metrics catalogue (SPEC §8): every metric breakwater exports, declared
 * once with its help text and label names, plus the bounded label
 * vocabularies the handles use (methods, duration buckets). Nothing here
 * holds a value; families.ts builds one family per entry.
 */

/** Methods that get their own label value; anything else is "OTHER" (labels are bounded). */
export const METHODS: readonly string[] = Object.freeze(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT']);
export const METHOD_LABELS: readonly string[] = Object.freeze([...METHODS, 'OTHER']);

/**
 * Latency buckets, in seconds, for a sidecar: a loopback hop is well under a
 * millisecond, a slow third-party API with retries takes tens of seconds
 * (the built-in `timeout.total` is 15s).
 */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

export const PREFIX = 'breakwater_';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricSpec {
  /** Without the prefix, as SPEC §8 writes it. */
  readonly name: string;
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly help: string;
}

const spec = (name: string, type: MetricType, labels: readonly string[], help: string): MetricSpec =>
  Object.freeze({ name, type, labels: Object.freeze([...labels]), help });

/** SPEC §8, in its order, then the metrics of later sections. Names are exported with `PREFIX`. */
export const CATALOGUE: readonly MetricSpec[] = Object.freeze([
  spec('requests_total', 'counter', ['listener', 'route', 'upstream', 'method', 'code'], 'Requests answered to clients, by the status sent.'),
  spec('request_duration_seconds', 'histogram', ['listener', 'route', 'upstream', 'method', 'code_class'], 'From request arrival to the end of the response, as the client saw it.'),
  spec('upstream_attempts_total', 'counter', ['upstream', 'result'], 'Attempts sent upstream, by classified outcome.'),
  spec('upstream_attempt_duration_seconds', 'histogram', ['upstream'], 'From the start of one attempt to its response headers or failure.'),
  spec('retries_total', 'counter', ['route', 'upstream', 'reason'], 'Retries made, by the outcome that was retried (timeout, connect_failure, reset or the status code).'),
  spec('retry_budget_exhausted_total', 'counter', ['upstream'], 'Retries not made because the retry budget was spent.'),
  spec('rejected_total', 'counter', ['route', 'upstream', 'reason'], 'Requests breakwater refused itself (rate_limited, bulkhead_full, circuit_open, no_route).'),
  spec('circuit_state', 'gauge', ['upstream', 'state'], 'Circuit breaker state: 1 on the current state, 0 on the others.'),
  spec('circuit_transitions_total', 'counter', ['upstream', 'from', 'to'], 'Circuit breaker state changes.'),
  spec('bulkhead_active', 'gauge', ['upstream'], 'Requests holding a bulkhead slot.'),
  spec('bulkhead_queued', 'gauge', ['upstream'], 'Requests waiting for a bulkhead slot.'),
  spec('fallbacks_total', 'counter', ['route', 'upstream', 'kind'], 'Fallbacks served, by kind (cache, upstream or response).'),
  spec('inflight_requests', 'gauge', ['listener'], 'Requests in progress on a listener.'),
  spec('config_reloads_total', 'counter', ['result'], 'Config reloads, by result (success, failure, unchanged).'),
  spec('config_last_reload_success_timestamp_seconds', 'gauge', [], 'Unix time the running config was loaded.'),
  spec('config_info', 'gauge', ['hash'], 'The running config: 1, labelled with its content hash.'),
  // SPEC §10.3: CONNECT byte tunnels (HTTPS_PROXY).
  spec('connect_tunnels_total', 'counter', ['listener', 'route', 'upstream', 'result'], 'CONNECT tunnels, by how they ended (success, connect_failure, timeout, idle_timeout, reset, client_abort) or why they were refused (rate_limited, circuit_open, bulkhead_full).'),
  spec('connect_tunnel_bytes_total', 'counter', ['route', 'upstream', 'direction'], 'Bytes carried by CONNECT tunnels: in (client to upstream), out (upstream to client).'),
  spec('connect_tunnels_active', 'gauge', ['upstream'], 'CONNECT tunnels open (or connecting) now.'),
  // SPEC §10.4: rotations of an upstream's TLS files seen on disk.
  spec('tls_reloads_total', 'counter', ['upstream', 'result'], 'Rotations of an upstream’s TLS files: success (new connections use them) or failure (refused, the files in use are kept).'),
  // SPEC §10.2: gRPC calls by the status their client got; the label holds one of the 17 code names (a code outside 0–16 counts as unknown).
  spec('grpc_responses_total', 'counter', ['route', 'upstream', 'grpc_status'], 'gRPC calls answered, by the grpc-status the client got (ok, cancelled, unknown, ..., unavailable, unauthenticated): the upstream’s, or breakwater’s own.'),
  // SPEC §11.1: the dead-letter spool. `reason` and `result` hold a few fixed words (dead-letter/hub.ts).
  spec('dead_letters', 'gauge', ['route'], 'Requests in the dead-letter spool, per route.'),
  spec('dead_letters_total', 'counter', ['route', 'reason'], 'Requests spooled, by the failure that spooled them (circuit_open, timeout, connect_failure, reset, rate_limited, bulkhead_full, retries_exhausted, status).'),
  spec('dead_letter_replays_total', 'counter', ['route', 'result'], 'Replays of spooled requests: success (removed), failure (kept), rejected (a 4xx: kept, parked), circuit_open (not sent).'),
  spec('dead_letters_dropped_total', 'counter', ['route', 'reason'], 'Requests not spooled, or removed unreplayed: max_entries, max_bytes, max_age, too_large, write_error.'),
  // SPEC §11.2: the stale-if-error cache.
  spec('cache_hits_total', 'counter', ['route', 'upstream', 'result'], 'Requests answered from a route’s stale-if-error cache: stale (the upstream failed) or fresh (serveFresh, the upstream not asked).'),
  spec('cache_evictions_total', 'counter', ['route', 'upstream'], 'Stored responses evicted from a route’s cache to keep it within maxEntries and maxBytes.'),
  // SPEC §12: global rate limits shared through Redis.
  spec('global_rate_limit_errors_total', 'counter', ['reason'], 'Calls to Redis for a global rate limit that failed: timeout (slower than redis.timeout), connection or script.'),
  spec('global_rate_limit_tokens_total', 'counter', ['limit', 'source'], 'Tokens of a global rate limit: leased from Redis (source redis), or admitted by the local share while Redis failed (source fallback).'),
  spec('global_rate_limit_fallback', 'gauge', ['limit'], 'A global rate limit running on its local share because Redis failed: 1, else 0.'),
  // SPEC §13: finished spans that never reached the collector (only with a `tracing` block).
  spec('trace_spans_dropped_total', 'counter', ['reason'], 'Finished trace spans dropped instead of exported: queue_full (the bounded export queue was full; nothing waits) or export_failed (the OTLP collector failed or was unreachable).'),
]);
