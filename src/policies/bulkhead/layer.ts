/**
 * The bulkhead layer (SPEC §4.4). The slot is held from admission until the
 * response body ends or the client goes away — not just until headers — so
 * it is released from the exchange's finish hook, which runs on every path.
 * Gauges are read from the bulkhead at scrape time.
 */
import { failure, type Failure } from '../../errors.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import type { Handler, Layer, Reply } from '../../pipeline/handler.ts';
import type { Permit } from '../permit.ts';
import type { Bulkhead } from './bulkhead.ts';

export function bulkheadLayer(bulkhead: Bulkhead, onReject: () => void): Layer {
  const release = (): void => bulkhead.release();
  const admitted = (ex: Exchange, next: Handler, p: Permit): Promise<Reply> => {
    if (p.observed !== null) ex.flag(p.observed);
    ex.onFinish(release);
    return next(ex);
  };
  const queued = async (ex: Exchange, next: Handler): Promise<Reply> => {
    const p: Permit | Failure = await bulkhead.acquireQueued(ex.signal);
    if (p.type === 'failure') {
      if (!ex.clientAborted) onReject();
      return p;
    }
    if (ex.clientAborted) {
      p.release();
      return failure('bulkhead_full'); // nobody reads this: the client is gone
    }
    return admitted(ex, next, p);
  };
  // Not an async function: a free slot adds no promise of its own; only a
  // request that has to queue allocates one.
  return (next: Handler): Handler =>
    (ex: Exchange) => {
      const p = bulkhead.acquire();
      if (p === 'queue') return queued(ex, next);
      if (p.type === 'failure') {
        onReject();
        return Promise.resolve(p);
      }
      return admitted(ex, next, p);
    };
}
