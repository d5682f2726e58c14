/**
 * `GET /tap` (SPEC §13): finished requests' access-log lines, and tunnels'
 * `tunnel` lines, as NDJSON, live, filtered by the query (`route`,
 * `upstream`, `status` = `5xx` | `503`, `flag`). The hub (observability/tap.ts) decides who gets a line; this side
 * owns the HTTP stream and its bounds:
 *
 * - at most `hub.maxSubscribers` streams (8); one more gets 503 `tap_full`;
 * - a subscriber whose unsent bytes (response + socket buffers) would pass
 *   `maxBuffered` (1 MiB) is dropped: the stream ends with
 *   `{"tap":"dropped","reason":"slow"}` and the socket is destroyed a moment
 *   later whether or not the reader took it — nothing waits on it unbounded;
 * - an empty line every 15 s keeps an idle stream (a port-forward) open;
 * - on shutdown every stream ends with `{"tap":"end","reason":"shutdown"}`.
 *
 * The admin server's `requestTimeout` bounds receiving the request only, so
 * it does not cut a long stream (checked by test/integration/tap.test.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import { parseTapFilter, type TapHub, type TapSubscriber } from '../observability/tap.ts';
import { send } from './reply.ts';

/** A refused subscriber may come back: the 503s say when. */
const RETRY_LATER = Object.freeze({ 'retry-after': 5 });

/** Unsent bytes a subscriber may hold before it is dropped as too slow. */
export const TAP_MAX_BUFFERED = 1024 * 1024;
/** How long a dropped subscriber's last line may take to leave before its socket is destroyed. */
const DROP_GRACE_MS = 1_000;

export function serveTap(hub: TapHub, logger: Logger, req: IncomingMessage, res: ServerResponse, maxBuffered = TAP_MAX_BUFFERED): void {
  const q = (req.url ?? '').indexOf('?');
  const filter = parseTapFilter(new URLSearchParams(q < 0 ? '' : req.url!.slice(q + 1)));
  if ('error' in filter) return send(res, 400, { error: 'bad_filter', message: filter.error });
  if (req.method === 'HEAD') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.end();
    return;
  }
  const client = req.socket.remoteAddress;
  let live = true;
  const finish = (last: string, destroyAfter: boolean): void => {
    live = false;
    hub.remove(sub);
    res.end(last);
    if (destroyAfter) {
      // The response 'finish'es (and 'close's) once its bytes are handed to
      // the socket, read or not: the socket itself is what must go.
      const socket = req.socket;
      const grace = setTimeout(() => socket.destroy(), DROP_GRACE_MS);
      grace.unref();
      socket.once('close', () => clearTimeout(grace));
    }
  };
  const sub: TapSubscriber = {
    filter,
    send(line) {
      if (!live) return;
      if (res.writableLength + line.length > maxBuffered) {
        hub.dropped++;
        logger.warn({ client, buffered: res.writableLength, limit: maxBuffered }, 'tap_dropped');
        finish('{"tap":"dropped","reason":"slow"}\n', true);
        return;
      }
      res.write(line);
    },
    end(reason) {
      if (live) finish(`{"tap":"end","reason":${JSON.stringify(reason)}}\n`, false);
    },
    heartbeat() {
      if (live && res.writableLength === 0) res.write('\n');
    },
  };
  if (!hub.add(sub)) {
    return hub.closed
      ? send(res, 503, { error: 'draining', message: 'breakwater is shutting down' }, RETRY_LATER)
      : send(res, 503, { error: 'tap_full', message: `${hub.maxSubscribers} tap subscribers are connected already (the limit); try again when one leaves`, limit: hub.maxSubscribers }, RETRY_LATER);
  }
  res.on('close', () => {
    live = false;
    hub.remove(sub);
  });
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  logger.info({ client, filter }, 'tap_subscribed');
}

