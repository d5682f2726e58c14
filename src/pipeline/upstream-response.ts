/**
 * One owner per upstream response. The innermost handler (an attempt)
 * returns an UpstreamResponse with its head received and its body held; from
 * then on exactly one decision is taken by the layers above, once:
 *
 * - `discard()`: the retry or fallback layer drops it (a retry or another
 *   upstream follows); a small body is read and dropped so the connection is
 *   kept, a large one aborts it.
 * - `commitTo(ex)`: the rescue point sends it to the client — head now, body
 *   streamed as it arrives (http/relay.ts).
 *
 * `status` 0 means the attempt produced no response at all (`kind` says why:
 * timeout, connect_failure, reset); the rescue point then answers itself.
 */
import type { OutcomeKind } from '../config/types.ts';
import type { IncomingHttpHeaders } from 'node:http';
import type { Exchange } from './exchange.ts';

export interface UpstreamResponse {
  readonly type: 'upstream';
  /** The response status; 0 when the attempt produced no response. */
  readonly status: number;
  /** The classifier's outcome kind (SPEC §5 `tries[].outcome`). */
  readonly kind: OutcomeKind;
  /**
   * A gRPC call's status as known at the head (SPEC §10.2): a trailers-only
   * response's `grpc-status`, or the one derived from the HTTP status;
   * NO_GRPC_STATUS (-1) for plain HTTP, for no response, and while the
   * status is still to come in the trailers (then it is recorded when the
   * body ends, and the response is never retried: it is already the client's).
   */
  readonly grpcStatus: number;
  /** The response head, null when there is none. */
  readonly headers: IncomingHttpHeaders | null;
  /** What ended the attempt before a head arrived, if anything. */
  readonly error: Error | null;
  /** The request's own `timeout.total` (not a perTry) ran out during this attempt. */
  readonly totalExpired: boolean;
  /** Set by the retry layer: this was retriable but retries ran out. */
  exhausted: boolean;
  /** Drop this response: a retry or a fallback follows. Idempotent; a no-op once committed. */
  discard(): void;
  /** Send this response to the exchange's client. Called at most once, by the rescue point. */
  commitTo(ex: Exchange): void;
  /**
   * Also hand the body to `tap` as it streams to the client (the
   * stale-if-error cache stores it): each chunk as relayed, then `end()`
   * once the whole body arrived. A body that does not complete (reset,
   * idle timeout, client gone, discarded) never ends the tap. Only while
   * the response is held, before commit; a no-op otherwise.
   */
  tap(tap: BodyTap): void;
}

/** What `UpstreamResponse.tap` feeds. */
export interface BodyTap {
  data(chunk: Buffer): void;
  end(): void;
}
