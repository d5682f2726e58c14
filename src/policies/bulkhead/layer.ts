/**
 * The bulkhead layer (SPEC §4.4). The slot is held from admission until the
 * response body ends or the client goes away — not just until headers — so
 * it is released from the exchange's finish hook, which runs on every path.
 */
import { failure } from '../../errors.ts';
import type { Exchange, Handler, Layer } from '../../pipeline/exchange.ts';
import { BULKHEAD, type Bulkhead } from './bulkhead.ts';

export function bulkheadLayer(bulkhead: Bulkhead, onReject: () => void, onChange: () => void): Layer {
  const release = (): void => {
    bulkhead.release();
    onChange();
  };
  return (next: Handler): Handler =>
    async (ex: Exchange) => {
      switch (bulkhead.tryAcquire()) {
        case BULKHEAD.ACQUIRED:
          break;
        case BULKHEAD.OBSERVED:
          ex.flag('bulkhead_full_observed');
          break;
        case BULKHEAD.QUEUE: {
          onChange();
          const ok = await bulkhead.enqueue(ex.signal);
          onChange();
          if (!ok) {
            if (ex.clientAborted) return failure('bulkhead_full');
            onReject();
            return failure('bulkhead_full');
          }
          if (ex.clientAborted) {
            release();
            return failure('bulkhead_full');
          }
          break;
        }
        default:
          onReject();
          return failure('bulkhead_full');
      }
      onChange();
      ex.onFinish(release);
      return next(ex);
    };
}
