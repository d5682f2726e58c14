/**
 * The one classifier of attempt outcomes. Retry `on`, breaker `failOn`, the
 * `upstream_attempts_total{result}` label and the access log's `tries[].outcome`
 * all read the kind this module returns, so they can never disagree.
 *
 * A gRPC call (SPEC §10.2) is classified by its gRPC status too: `grpc-status`
 * 0 is `success`, another on a non-error HTTP status is `grpc_error`, and the
 * code itself travels beside the kind so that conditions naming gRPC statuses
 * (`unavailable`...) can match it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ConditionSet, OutcomeKind } from '../config/types.ts';
import { GRPC, NO_GRPC_STATUS, grpcStatusFromHttp, isGrpcContentType, parseGrpcStatus } from './grpc.ts';

/** Raised by breakwater itself when an attempt's perTry (or the request's total) expires before headers. */
export class AttemptTimeoutError extends Error {
  readonly code = 'BW_ATTEMPT_TIMEOUT';
  /** True when the request's `timeout.total` (not `perTry`) is what ran out. */
  readonly total: boolean;
  constructor(total: boolean) {
    super(total ? 'request timeout (total) expired' : 'attempt timeout (perTry) expired');
    this.total = total;
  }
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  // The rest of OpenSSL's verification failures (SPEC §10.4: a certificate
  // that does not verify means the upstream was never reached).
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_CHAIN_TOO_LONG',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_HANDSHAKE_TIMEOUT',
  // protocol: h2 and the server's ALPN chose something else (upstream/pool.ts).
  'BW_ALPN_NOT_H2',
]);

/**
 * `ERR_SSL_*`: the TLS handshake failed (an alert from the server: no
 * client certificate, unknown CA, no common version...). The request was
 * never processed, so it is a connect failure, like a refused connection.
 */
function tlsHandshakeFailure(code: string): boolean {
  return code.startsWith('ERR_SSL_');
}

const TIMEOUT_CODES = new Set(['BW_ATTEMPT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']);

/** Kind of an attempt that produced a response head. */
export function classifyStatus(status: number): OutcomeKind {
  if (status >= 500) return '5xx';
  if (status >= 400) return '4xx';
  return 'success';
}

/** Kind of an attempt that ended in an error before a response head. */
export function classifyError(err: unknown): OutcomeKind {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (CONNECT_CODES.has(code) || tlsHandshakeFailure(code)) return 'connect_failure';
    if (TIMEOUT_CODES.has(code)) return 'timeout';
    // undici wraps the socket's error: look one level down for a connect error.
    const cause = (err as { cause?: { code?: unknown } }).cause?.code;
    if (typeof cause === 'string' && CONNECT_CODES.has(cause)) return 'connect_failure';
  }
  // ECONNRESET, EPIPE, UND_ERR_SOCKET ("other side closed"), UND_ERR_ABORTED and
  // anything unknown: the connection ended before a complete response head.
  return 'reset';
}

/**
 * Does a classified attempt meet a condition set (retry `on`, breaker
 * `failOn`)? `grpc` is the attempt's gRPC status (NO_GRPC_STATUS for a
 * plain HTTP exchange): a response meets the set by its HTTP status or by
 * a gRPC status name the set lists.
 */
export function matches(set: ConditionSet, kind: OutcomeKind, status: number, grpc = NO_GRPC_STATUS): boolean {
  switch (kind) {
    case 'connect_failure':
      return set.connectFailure;
    case 'reset':
      return set.reset;
    case 'timeout':
      return set.timeout;
    default:
      return set.statuses.has(status) || grpcListed(set, grpc);
  }
}

/** The set names this gRPC status (a code outside 0–16 counts as `unknown`). */
export function grpcListed(set: ConditionSet, grpc: number): boolean {
  if (grpc <= 0 || set.grpc === 0) return false;
  return (set.grpc & (1 << (grpc <= 16 ? grpc : GRPC.UNKNOWN))) !== 0;
}

/**
 * The gRPC status of a gRPC call's response head (SPEC §10.2): the
 * `grpc-status` of a trailers-only response; PENDING_GRPC when the status
 * is still to come in the trailers (a 200 with a gRPC content-type);
 * otherwise the status a gRPC client derives from the HTTP status.
 */
export function grpcStatusAtHead(status: number, headers: IncomingHttpHeaders): number {
  const received = parseGrpcStatus(headers['grpc-status']);
  if (received !== NO_GRPC_STATUS) return received;
  if (status === 200 && isGrpcContentType(headers['content-type'])) return PENDING_GRPC;
  return grpcStatusFromHttp(status);
}

/** The status of a gRPC response arrives with its trailers. */
export const PENDING_GRPC = -2;

/**
 * Kind of a gRPC call's response with a known gRPC status: a non-zero
 * status on an HTTP status below 400 is `grpc_error`; otherwise the HTTP
 * status decides, as for any response.
 */
export function classifyGrpc(status: number, grpc: number): OutcomeKind {
  if (grpc > 0 && status < 400) return 'grpc_error';
  return classifyStatus(status);
}

/** The generated error code for an attempt that produced no response. */
export function errorCodeFor(kind: OutcomeKind): 'connect_failure' | 'upstream_reset' | 'timeout' {
  return kind === 'connect_failure' ? 'connect_failure' : kind === 'timeout' ? 'timeout' : 'upstream_reset';
}
