/**
 * gRPC as breakwater reads it (SPEC §10.2): which requests are gRPC, the
 * status codes and their names, the `grpc-timeout` and
 * `grpc-retry-pushback-ms` headers, and the status a gRPC client derives
 * from an HTTP status when no `grpc-status` came. Pure functions, no state:
 * the classifier (classify.ts) and the layers call them.
 */

/**
 * The 17 status codes of gRPC, by number, as the config writes them
 * (kebab-case) and the `grpc_status` metric label shows them.
 */
export const GRPC_CODE_NAMES = Object.freeze([
  'ok',
  'cancelled',
  'unknown',
  'invalid-argument',
  'deadline-exceeded',
  'not-found',
  'already-exists',
  'permission-denied',
  'resource-exhausted',
  'failed-precondition',
  'aborted',
  'out-of-range',
  'unimplemented',
  'internal',
  'unavailable',
  'data-loss',
  'unauthenticated',
] as const);

export type GrpcCodeName = (typeof GRPC_CODE_NAMES)[number];

/** No gRPC status known (not a gRPC exchange, not yet arrived, or cut off before it came). */
export const NO_GRPC_STATUS = -1;

export const GRPC = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INTERNAL: 13,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
});

/** A code's name; a code outside 0–16 is read as `unknown`, as gRPC clients do. */
export function grpcCodeName(code: number): GrpcCodeName {
  return GRPC_CODE_NAMES[code] ?? 'unknown';
}

/** The code of a config name (`unavailable` → 14), or -1. */
export function grpcCodeOf(name: string): number {
  return (GRPC_CODE_NAMES as readonly string[]).indexOf(name);
}

/**
 * A request is gRPC when its content-type starts with `application/grpc`
 * (`+proto`, `+json`... included). gRPC-Web (`application/grpc-web…`) is not:
 * it carries its trailers inside the body, where breakwater does not look,
 * so it is proxied and classified as plain HTTP.
 */
export function isGrpcContentType(ct: string | string[] | undefined): boolean {
  if (typeof ct !== 'string' || ct.length < 16 || (ct.charCodeAt(0) | 0x20) !== 97 /* a */) return false;
  const lower = ct.toLowerCase();
  return lower.startsWith('application/grpc') && !lower.startsWith('application/grpc-web');
}

/**
 * The `grpc-status` header or trailer: its code (any non-negative integer:
 * one outside 0–16 is still a failure, read as `unknown` by name), or
 * NO_GRPC_STATUS when absent; a value that is not a number is `unknown` (2).
 */
export function parseGrpcStatus(v: string | string[] | undefined): number {
  if (v === undefined) return NO_GRPC_STATUS;
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || !/^\d{1,9}$/.test(s)) return GRPC.UNKNOWN;
  return Number(s);
}

/**
 * The status a gRPC client derives from the HTTP status of a response that
 * carries no `grpc-status` (gRPC's doc/http-grpc-status-mapping.md): what
 * the caller sees when, say, a plain HTTP proxy or load balancer answers.
 */
export function grpcStatusFromHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC.INTERNAL;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.UNKNOWN;
  }
}

const TIMEOUT_UNITS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * `grpc-timeout` (gRPC over HTTP/2: `TimeoutValue TimeoutUnit`, at most 8
 * digits, unit one of H M S m u n) in milliseconds, or null when absent or
 * malformed (then it is ignored: it can only tighten `timeout.total`).
 */
export function parseGrpcTimeout(v: string | string[] | undefined): number | null {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return null;
  const m = /^(\d{1,8})([HMSmun])$/.exec(s);
  if (m === null) return null;
  return Number(m[1]) * TIMEOUT_UNITS[m[2]!]!;
}

/**
 * `grpc-retry-pushback-ms` (gRPC A6): ms to wait before a retry; null when
 * absent. 'refuse' when present but negative or malformed: the server says
 * not to retry at all.
 */
export function parsePushback(v: string | string[] | undefined): number | null | 'refuse' {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return null;
  if (!/^\d{1,10}$/.test(s)) return 'refuse';
  return Number(s);
}

/**
 * `grpc-message` is percent-encoded (gRPC over HTTP/2): everything outside
 * printable ASCII, and `%` itself.
 */
export function encodeGrpcMessage(msg: string): string {
  let out = '';
  for (const byte of Buffer.from(msg, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
