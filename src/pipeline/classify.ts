/**
 * The one classifier of attempt outcomes. Retry `on`, breaker `failOn`, the
 * `upstream_attempts_total{result}` label and the access log's `tries[].outcome`
 * all read the kind this module returns, so they can never disagree.
 */
import type { ConditionSet, OutcomeKind } from '../config/types.ts';

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

/** Does a classified attempt meet a condition set (retry `on`, breaker `failOn`)? */
export function matches(set: ConditionSet, kind: OutcomeKind, status: number): boolean {
  switch (kind) {
    case 'connect_failure':
      return set.connectFailure;
    case 'reset':
      return set.reset;
    case 'timeout':
      return set.timeout;
    default:
      return set.statuses.has(status);
  }
}

/** The generated error code for an attempt that produced no response. */
export function errorCodeFor(kind: OutcomeKind): 'connect_failure' | 'upstream_reset' | 'timeout' {
  return kind === 'connect_failure' ? 'connect_failure' : kind === 'timeout' ? 'timeout' : 'upstream_reset';
}
