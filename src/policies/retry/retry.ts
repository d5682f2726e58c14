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
 * `retry_pushback` (a gRPC server's negative or malformed
 * `grpc-retry-pushback-ms`), `retry_deadline` (the wait would not fit in
 * `total`), `retry_budget_exhausted`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RetryConfig } from '../../config/types.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import { NO_GRPC_STATUS, parsePushback } from '../../pipeline/grpc.ts';
import type { AttemptHandler } from '../../upstream/attempt.ts';
import { backoffDelay } from './backoff.ts';
import type { RetryBudget } from './budget.ts';
import { isRetriableKind, methodMayRetry, retryReason } from './decide.ts';
import { RETRY_AFTER_CAP_MS, parseRetryAfter } from './retry-after.ts';

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
        const grpc = r.grpcStatus;
        if (!isRetriableKind(policy, kind, r.status, grpc)) return r;
        if (!methodMayRetry(policy, kind, ex.method, ex.idempotencyKey, grpc)) {
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
        const ra = policy.respectRetryAfter ? serverDelay(r.status, grpc, r.headers) : null;
        if (ra === 'refuse') {
          // gRPC A6: a malformed or negative pushback means "do not retry".
          ex.flag('retry_pushback');
          return r;
        }
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
        onRetry(retryReason(kind, r.status, grpc));
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

/**
 * How long the upstream asked us to wait (`respectRetryAfter`): a gRPC
 * call's `grpc-retry-pushback-ms` (SPEC §10.2; 'refuse' when malformed or
 * negative), else a 429/503's `Retry-After`; null: use the backoff.
 */
function serverDelay(status: number, grpc: number, headers: IncomingHttpHeaders | null): number | null | 'refuse' {
  if (grpc !== NO_GRPC_STATUS) {
    const p = parsePushback(headers?.['grpc-retry-pushback-ms']);
    if (p !== null) return p === 'refuse' ? p : Math.min(p, RETRY_AFTER_CAP_MS);
  }
  return status === 429 || status === 503 ? parseRetryAfter(headers?.['retry-after'], Date.now()) : null;
}
