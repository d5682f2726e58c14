/**
 * HTTP/2 response trailers kept behind the body they follow.
 *
 * undici's HTTP/2 client stops listening for a stream's DATA the moment the
 * stream emits 'trailers' (`onTrailers` in lib/dispatcher/client-h2.js
 * removes its 'data' listener: in 8.12.4, 8.14.0 and its main branch alike).
 * node emits 'trailers' as soon as the trailing HEADERS frame is read off the
 * socket, not once the body before it has been read: a stream that is paused
 * still holds DATA in its buffer then. breakwater pauses a response twice —
 * held between head and commit (upstream/attempt.ts), and whenever the client
 * reads more slowly than the upstream sends (http/relay.ts) — and whatever
 * DATA was buffered at the trailers was dropped on resume, after which undici
 * ended the response with the trailers as if it were whole. For gRPC that
 * is a message lost from a call that still ends OK, or a unary answer
 * without its message (grpc-js: 12 UNIMPLEMENTED "No message received").
 * Plain HTTP/2 responses with trailers lost the same bytes.
 *
 * The fix sits where undici listens: every stream opened on an HTTP/2
 * session to one of our upstreams emits 'trailers' just before 'end' —
 * which a Readable emits only after its last buffered chunk has been read —
 * so undici sees the body, then the trailers, then the end, as they were on
 * the wire. undici completes a response on 'end' with the trailers it stored,
 * so holding them until then changes nothing else. A stream cut before its
 * end never shows its trailers: undici fails it as cut, which it is.
 *
 * Streams are found through node's `http2.client.stream.created` diagnostics
 * channel (in every node our engines allow; marked experimental, so the
 * pool test below is what says it still works), which publishes a stream
 * before undici attaches its listeners;
 * only streams on sockets our connector made and marked are touched (other
 * HTTP/2 clients in the process, such as a gRPC client, are left alone). The
 * channel is subscribed on the first HTTP/2 connection to an upstream, so a
 * process without one pays nothing.
 *
 * NOTE: this patches an instance's emit, which is undici's bug to fix; it
 * is harmless once undici keeps its 'data' listener (the trailers then
 * still arrive before 'end'). test/unit/upstream/h2-trailers.test.ts shows the
 * loss through a plain undici Client, so an undici upgrade that fixes it is
 * seen, and the test of our pools shows this module still applies.
 */
import dc from 'node:diagnostics_channel';
import type { ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';

const kUpstreamH2 = Symbol('breakwater.upstreamH2');
const kEmit = Symbol('breakwater.emit');
const kTrailers = Symbol('breakwater.heldTrailers');

type MarkedSocket = Socket & { alpnProtocol?: string | false | null; [kUpstreamH2]?: true };
type HoldingStream = ClientHttp2Stream & {
  [kEmit]: (...args: unknown[]) => boolean;
  [kTrailers]: unknown[] | null;
};

let subscribed = false;

/**
 * An undici connector whose HTTP/2 sockets (`alpnProtocol` h2: negotiated by
 * TLS, or set by the h2c connector) are marked as ours, so that the streams
 * of their sessions keep their trailers behind their body.
 */
export function keepingTrailersLast(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (err !== null) return callback(err, null);
      const s = socket as MarkedSocket;
      if (s.alpnProtocol === 'h2') {
        s[kUpstreamH2] = true;
        if (!subscribed) {
          subscribed = true;
          dc.subscribe('http2.client.stream.created', onStreamCreated);
        }
      }
      callback(null, socket);
    });
}

function onStreamCreated(message: unknown): void {
  const stream = (message as { stream: ClientHttp2Stream }).stream;
  let ours = false;
  try {
    // session.socket is node's proxy of the socket: it reads our mark through.
    ours = (stream.session?.socket as MarkedSocket | undefined)?.[kUpstreamH2] === true;
  } catch {
    // a session without its socket any more: not one to touch
  }
  if (ours) keepTrailersLast(stream);
}

/** From now on `stream` emits 'trailers' right before 'end' (or as it comes, if after). */
export function keepTrailersLast(stream: ClientHttp2Stream): void {
  const s = stream as HoldingStream;
  s[kEmit] = s.emit as HoldingStream[typeof kEmit];
  s[kTrailers] = null;
  s.emit = emitTrailersLast as ClientHttp2Stream['emit'];
}

// One function for every stream, its state on the stream: no closure per
// stream, and `arguments` passed on as is (a 'data' event per chunk goes
// through here).
function emitTrailersLast(this: HoldingStream, event: string | symbol): boolean {
  if (event === 'trailers' && !this.readableEnded) {
    this[kTrailers] = Array.prototype.slice.call(arguments);
    return true;
  }
  if (event === 'end') {
    const held = this[kTrailers];
    if (held !== null) {
      this[kTrailers] = null;
      Reflect.apply(this[kEmit], this, held);
    }
  }
  return Reflect.apply(this[kEmit], this, arguments);
}
