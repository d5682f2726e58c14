/**
 * The pure half of retrying: "would this attempt's outcome be retried?",
 * a function of the outcome and the policy alone. The retry layer adds what
 * needs state or time (attempt count, budget, breaker, deadline, backoff).
 */
import type { OutcomeKind, RetryConfig } from '../../config/types.ts';
import { grpcListed, matches } from '../../pipeline/classify.ts';
import { NO_GRPC_STATUS, grpcCodeName } from '../../pipeline/grpc.ts';

/**
 * A retriable outcome is one listed in `on`, for a request whose method may be
 * retried — except that a connect failure is retriable for every method (the
 * request never left), a request carrying the idempotency key header is
 * retriable whatever its method, and so is a gRPC call whose status `on`
 * names (gRPC calls are all POSTs: naming a gRPC status is the opt-in, as in
 * gRPC's own retry policy). `grpc` is NO_GRPC_STATUS for plain HTTP.
 */
export function isRetriable(
  policy: RetryConfig,
  kind: OutcomeKind,
  status: number,
  method: string,
  idempotencyKey: boolean,
  grpc = NO_GRPC_STATUS,
): boolean {
  return isRetriableKind(policy, kind, status, grpc) && methodMayRetry(policy, kind, method, idempotencyKey, grpc);
}

/** The outcome is one `on` lists (whatever the method). */
export function isRetriableKind(policy: RetryConfig, kind: OutcomeKind, status: number, grpc = NO_GRPC_STATUS): boolean {
  return kind !== 'success' && matches(policy.on, kind, status, grpc);
}

/** The request's method (or its idempotency key, or a gRPC status `on` names) allows a retry of this kind. */
export function methodMayRetry(policy: RetryConfig, kind: OutcomeKind, method: string, idempotencyKey: boolean, grpc = NO_GRPC_STATUS): boolean {
  return kind === 'connect_failure' || idempotencyKey || policy.methods.has(method) || grpcListed(policy.on, grpc);
}

/**
 * The reason label of `retries_total` and the log: the outcome kind, the
 * gRPC status name for a gRPC failure, or the status code for responses.
 */
export function retryReason(kind: OutcomeKind, status: number, grpc = NO_GRPC_STATUS): string {
  if (kind === 'grpc_error') return grpcCodeName(grpc);
  return kind === '5xx' || kind === '4xx' ? String(status) : kind;
}
