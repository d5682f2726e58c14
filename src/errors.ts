/**
 * The catalogue of responses breakwater generates itself (SPEC §4.7).
 *
 * Every response that does not come from an upstream is one of these codes, and
 * is rendered in exactly one place (`http/respond.ts`). Layers never write
 * responses: they return a `Failure` carrying one of these codes.
 *
 * Codes are forever: a retired code is never reused for another meaning.
 */

export interface ErrorSpec {
  readonly code: ErrorCode;
  readonly status: number;
  /** The access-log flag the code raises, if any (SPEC §5). */
  readonly flag: string | null;
  readonly message: string;
}

export const ERROR_CODES = [
  'no_route',
  'method_not_allowed',
  'rate_limited',
  'circuit_open',
  'bulkhead_full',
  'connect_failure',
  'upstream_reset',
  'timeout',
  'request_too_large',
  'header_too_large',
  'bad_request',
  'draining',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

function spec(code: ErrorCode, status: number, flag: string | null, message: string): ErrorSpec {
  return Object.freeze({ code, status, flag, message });
}

export const ERRORS: Readonly<Record<ErrorCode, ErrorSpec>> = Object.freeze({
  no_route: spec('no_route', 404, 'no_route', 'no route matches this request'),
  method_not_allowed: spec('method_not_allowed', 405, null, 'CONNECT is allowed only to port 80 of a host a route matches, or to an endpoint of a route with allowConnect'),
  rate_limited: spec('rate_limited', 429, 'rate_limited', 'rate limit exceeded'),
  circuit_open: spec('circuit_open', 503, 'circuit_open', 'circuit breaker is open'),
  bulkhead_full: spec('bulkhead_full', 503, 'bulkhead_full', 'too many concurrent requests to the upstream'),
  connect_failure: spec('connect_failure', 503, 'connect_failure', 'could not connect to the upstream'),
  upstream_reset: spec('upstream_reset', 502, 'upstream_reset', 'the upstream closed the connection before a complete response'),
  timeout: spec('timeout', 504, 'timeout', 'the upstream did not answer in time'),
  request_too_large: spec('request_too_large', 413, null, 'request body is larger than this listener allows'),
  header_too_large: spec('header_too_large', 431, null, 'request head is larger than this listener allows'),
  bad_request: spec('bad_request', 400, null, 'malformed request'),
  draining: spec('draining', 503, null, 'breakwater is shutting down'),
});

/** Reason phrases for the raw responses written on a socket outside node's ServerResponse. */
export const REASON: Readonly<Record<number, string>> = Object.freeze({
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
});

/**
 * A failure travelling from a layer to the rescue point. Allocated only on the
 * failure path. `retryAfterMs` becomes a `Retry-After` header (whole seconds,
 * rounded up) for `rate_limited` and `circuit_open`.
 */
export interface Failure {
  readonly type: 'failure';
  readonly code: ErrorCode;
  readonly retryAfterMs: number;
  /** The answer closes the connection (the rest of the request is not read). */
  readonly close: boolean;
}

export function failure(code: ErrorCode, retryAfterMs = 0, close = false): Failure {
  return { type: 'failure', code, retryAfterMs, close };
}

/** The JSON body of a generated response (SPEC §4.7). */
export function errorBody(code: ErrorCode, upstream: string | null, route: string | null, requestId: string, message?: string): string {
  return JSON.stringify({ error: code, message: message ?? ERRORS[code].message, upstream, route, requestId });
}
