/**
 * Streaming a committed upstream response into the client's response: the
 * head, then body chunks straight from undici's dispatch callbacks (no
 * intermediate stream objects: see the PERF notes in bench/README.md), with
 * backpressure — a client that reads slowly pauses the upstream — and the
 * idle watchdog of `timeout.idle`, trailers in the last chunk, and the cut
 * when the upstream fails mid-body (the status is gone by then).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ClientAbortError, type Exchange } from '../pipeline/exchange.ts';
import { responseHeaders } from './response-headers.ts';

/** What the relay drives on the upstream side. */
export interface RelaySource {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

export class IdleTimeoutError extends Error {
  readonly code = 'BW_IDLE_TIMEOUT';
  constructor() {
    super('no body chunk within timeout.idle');
  }
}

function onIdle(r: ResponseRelay): void {
  r.idleTimedOut();
}

export class ResponseRelay {
  readonly #ex: Exchange;
  readonly #source: RelaySource;
  readonly #idle: number;
  #timer: NodeJS.Timeout | null = null;
  #onDrain: (() => void) | null = null;

  constructor(ex: Exchange, source: RelaySource, idleMs: number) {
    this.#ex = ex;
    this.#source = source;
    this.#idle = idleMs;
  }

  /** Writes the head and arms the idle watchdog (one timer per streaming response, refreshed per chunk). */
  start(status: number, headers: IncomingHttpHeaders, endpoint: string): void {
    const ex = this.#ex;
    const list = responseHeaders(headers, ex, status, endpoint);
    if (ex.grpc && headers['grpc-status'] !== undefined) holdHead(ex, status, list);
    else ex.res.writeHead(status, list);
    if (this.#idle > 0) this.#timer = setTimeout(onIdle, this.#idle, this);
  }

  data(chunk: Buffer): void {
    const ex = this.#ex;
    ex.bytesOut += chunk.length;
    this.#timer?.refresh();
    if (!ex.res.write(chunk)) {
      this.#source.pause();
      ex.res.once(
        'drain',
        (this.#onDrain ??= () => {
          this.#timer?.refresh();
          this.#source.resume();
        }),
      );
    }
  }

  end(trailers: IncomingHttpHeaders | undefined): void {
    this.#clear();
    const res = this.#ex.res;
    // Trailers go out in the last chunk of a chunked answer; node drops them from a length-delimited one.
    if (trailers !== undefined && hasKeys(trailers)) res.addTrailers(trailers as Record<string, string>);
    res.end();
  }

  /** The upstream failed mid-body: the status is already gone, so all that is left is to cut the client off. */
  error(err: Error): void {
    this.#clear();
    if (!(err instanceof ClientAbortError) && !(err instanceof IdleTimeoutError)) this.#ex.flag('upstream_reset');
    this.#ex.res.destroy();
  }

  /** `timeout.idle` passed with no body chunk moving in either direction. */
  idleTimedOut(): void {
    this.#timer = null;
    this.#ex.flag('idle_timeout');
    this.#source.abort(new IdleTimeoutError());
    this.#ex.res.destroy();
  }

  #clear(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/**
 * A gRPC trailers-only answer (`grpc-status` in the head, SPEC §10.2): the
 * head is set, not written, so that it leaves with the end of the response.
 * To an HTTP/2 client that puts END_STREAM on the HEADERS frame, which is
 * what makes it trailers-only: a gRPC client reads the status of a head
 * without END_STREAM as mere metadata, then fails the call as INTERNAL when
 * no trailers follow. (node's writeHead sends the head at once.) An HTTP/1.1
 * client sees no difference.
 */
function holdHead(ex: Exchange, status: number, list: string[]): void {
  const res = ex.res;
  res.statusCode = status;
  const grouped: Record<string, string | string[]> = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const prev = grouped[name];
    grouped[name] = prev === undefined ? list[i + 1]! : Array.isArray(prev) ? [...prev, list[i + 1]!] : [prev, list[i + 1]!];
  }
  for (const name in grouped) res.setHeader(name, grouped[name]!);
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
