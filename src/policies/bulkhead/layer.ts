/**
 * The bulkhead layer (SPEC §4.4). The slot is held from admission until the
 * response body ends or the client goes away — not just until headers — so
 * it is released from the exchange's finish hook, which runs on every path.
 */
import { failure } from '../../errors.ts';
import type { Exchange, Handler, Layer, Reply } from '../../pipeline/exchange.ts';
import { BULKHEAD, type Bulkhead } from './bulkhead.ts';

export function bulkheadLayer(bulkhead: Bulkhead, onReject: () => void, onChange: () => void): Layer {
  const release = (): void => {
    bulkhead.release();
    onChange();
  };
  const queued = async (ex: Exchange, next: Handler): Promise<Reply> => {
    // The gauge is set once the request is in the queue, not before.
    const waiting = bulkhead.enqueue(ex.signal);
    onChange();
    const ok = await waiting;
    onChange();
    if (!ok) {
      if (!ex.clientAborted) onReject();
      return failure('bulkhead_full');
    }
    if (ex.clientAborted) {
      release();
      return failure('bulkhead_full');
    }
    ex.onFinish(release);
    return next(ex);
  };
  // Not an async function: a free slot adds no promise of its own; only a
  // request that has to queue allocates one.
  return (next: Handler): Handler =>
    (ex: Exchange) => {
      switch (bulkhead.tryAcquire()) {
        case BULKHEAD.ACQUIRED:
          break;
        case BULKHEAD.OBSERVED:
          ex.flag('bulkhead_full_observed');
          break;
        case BULKHEAD.QUEUE:
          return queued(ex, next);
        default:
          onReject();
          return Promise.resolve(failure('bulkhead_full'));
      }
      onChange();
      ex.onFinish(release);
      return next(ex);
    };
}
