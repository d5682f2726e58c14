/**
 * The pure half of retrying: "would this attempt's outcome be retried?",
 * a function of the outcome and the policy alone. The retry layer adds what
 * needs state or time (attempt count, budget, breaker, deadline, backoff).
 */
import type { OutcomeKind, RetryConfig } from '../../config/types.ts';
import { matches } from '../../pipeline/classify.ts';

/**
 * A retriable outcome is one listed in `on`, for a request whose method may be
 * retried — except that a connect failure is retriable for every method (the
 * request never left), and a request carrying the idempotency key header is
 * retriable whatever its method.
 */
export function isRetriable(policy: RetryConfig, kind: OutcomeKind, status: number, method: string, idempotencyKey: boolean): boolean {
  return isRetriableKind(policy, kind, status) && methodMayRetry(policy, kind, method, idempotencyKey);
}

/** The outcome is one `on` lists (whatever the method). */
export function isRetriableKind(policy: RetryConfig, kind: OutcomeKind, status: number): boolean {
  return kind !== 'success' && matches(policy.on, kind, status);
}

/** The request's method (or its idempotency key) allows a retry of this kind. */
export function methodMayRetry(policy: RetryConfig, kind: OutcomeKind, method: string, idempotencyKey: boolean): boolean {
  return kind === 'connect_failure' || idempotencyKey || policy.methods.has(method);
}

/** The reason label of `retries_total` and the log: the outcome kind, or the status code for responses. */
export function retryReason(kind: OutcomeKind, status: number): string {
  return kind === '5xx' || kind === '4xx' ? String(status) : kind;
}
