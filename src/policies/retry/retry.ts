/**
 * The retry layer (SPEC §4.2): wraps the attempt handler, runs attempts until
 * one is final, and returns the last attempt unchanged when retries run out.
 *
 * Order of checks for a failed attempt, each a reason to stop:
 *   pure decision (`isRetriableKind`, then the method) → the request's
 *   `total` ran out → replayable body → `maxRetries` → breaker open
 *   (remaining retries abandoned) → the delay (backoff or Retry-After) fits
 *   in what is left of `total` → the retry budget.
 * The budget is spent last so that a retry that would not happen anyway does
 * not consume it.
 *
 * A retriable failure that is not retried always says why in the access
 * log: `retry_method` (the method may not be retried), `retry_body_too_large`
 * (set when the body was streamed), `retries_exhausted`, `retry_circuit_open`,
 * `retry_deadline` (the wait would not fit in `total`), `retry_budget_exhausted`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RetryConfig } from '../../config/types.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import type { AttemptHandler } from '../../upstream/attempt.ts';
import { backoffDelay } from './backoff.ts';
import type { RetryBudget } from './budget.ts';
import { isRetriableKind, methodMayRetry, retryReason } from './decide.ts';
import { parseRetryAfter } from './retry-after.ts';

export interface RetryParams {
  readonly policy: RetryConfig;
  readonly budget: RetryBudget | null;
  /** The upstream's breaker, if any: once it opens, remaining retries are abandoned. */
  readonly breaker: { isOpen(): boolean } | null;
  readonly onRetry: (reason: string) => void;
  readonly onBudgetExhausted: () => void;
}

/** Wraps the attempt handler: what it returns is always an upstream response, so no cast is needed here. */
export function retryLayer(p: RetryParams): (next: AttemptHandler) => AttemptHandler {
  const { policy, budget, breaker, onRetry, onBudgetExhausted } = p;
  return (next: AttemptHandler): AttemptHandler =>
    async (ex: Exchange) => {
      budget?.recordRequest();
      // Only a method outside `methods` needs the header: read it only then.
      if (!policy.methods.has(ex.method)) ex.idempotencyKey = ex.req.headers[policy.idempotencyKeyHeader] !== undefined;
      let retries = 0;
      for (;;) {
        ex.attempts++;
        const r = await next(ex);
        if (ex.clientAborted) return r;
        const kind = r.kind;
        if (!isRetriableKind(policy, kind, r.status)) return r;
        if (!methodMayRetry(policy, kind, ex.method, ex.idempotencyKey)) {
          if (policy.maxRetries > 0) ex.flag('retry_method');
          return r;
        }
        // The request's own deadline ran out: there is nothing left to retry in.
        if (r.totalExpired) return r;
        // A streamed body was consumed by the first attempt: it cannot be
        // replayed (already flagged retry_body_too_large when it was read).
        if (ex.body !== null && !Buffer.isBuffer(ex.body)) return r;
        if (retries >= policy.maxRetries) {
          if (policy.maxRetries > 0) {
            ex.flag('retries_exhausted');
            r.exhausted = true;
          }
          return r;
        }
        if (breaker !== null && breaker.isOpen()) {
          ex.flag('retry_circuit_open');
          return r;
        }
        let delay: number;
        const ra = policy.respectRetryAfter && (r.status === 429 || r.status === 503) ? parseRetryAfter(r.headers?.['retry-after'], Date.now()) : null;
        if (ra !== null) {
          // The upstream said when to come back; if that is past our deadline,
          // its answer is the best we have.
          if (ra >= ex.remaining()) {
            ex.flag('retry_deadline');
            return r;
          }
          delay = ra;
        } else {
          delay = backoffDelay(policy.backoff, retries + 1);
          if (delay >= ex.remaining()) {
            ex.flag('retry_deadline');
            return r;
          }
        }
        if (budget !== null && !budget.tryAcquire()) {
          ex.flag('retry_budget_exhausted');
          onBudgetExhausted();
          return r;
        }
        r.discard();
        onRetry(retryReason(kind, r.status));
        ex.flag('retried');
        retries++;
        if (delay > 0) {
          try {
            await sleep(delay, undefined, { signal: ex.signal });
          } catch {
            return r; // the client went away while we waited
          }
        }
      }
    };
}
