/**
 * Unprompted `100 Continue` from an upstream, skipped at the socket.
 *
 * breakwater never sends `Expect: 100-continue` upstream (node answers the
 * client's own Expect itself), yet some servers send `100 Continue` to every
 * request with a body. RFC 9110 §15.2 says a client must be able to parse
 * and ignore any 1xx; undici's HTTP/1.1 parser instead destroys the
 * connection on a 100 ("bad response"), which turned an upstream's 200 into
 * a 502 and a breaker failure. undici passes every other 1xx (103 Early
 * Hints...) to the handler, which ignores it.
 *
 * The fix sits where undici reads: each pooled socket's `read()` drops whole
 * `HTTP/1.x 100 ...` interim heads that arrive where a response head is
 * expected — after a request head was written and before any byte of its
 * response. Body bytes are never inspected (a body that happens to start
 * with "HTTP/1.1 100" is not touched), and a connection costs one boolean
 * test per read once its response has started.
 */
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';

const PREFIX = Buffer.from('HTTP/1.1 100', 'latin1');
const END = Buffer.from('\r\n\r\n', 'latin1');

/**
 * An undici connector (plain, or one that reads an upstream's current TLS
 * files, upstream/tls.ts) with the filter on every HTTP/1.1 socket it makes.
 * An HTTP/2 socket (`alpnProtocol` h2: negotiated by TLS, or set by the h2c
 * connector) carries frames, not HTTP/1.1 heads, and is left alone.
 */
export function skippingContinue(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (err !== null) return callback(err, null);
      if ((socket as Socket & { alpnProtocol?: string | false | null }).alpnProtocol !== 'h2') skipContinue(socket as Socket);
      callback(null, socket);
    });
}

/** Matches `HTTP/1.0 100` or `HTTP/1.1 100` followed by SP or CR; 'more' when `buf` is a prefix of one. */
function continueHead(buf: Buffer): boolean | 'more' {
  const n = Math.min(buf.length, PREFIX.length);
  for (let i = 0; i < n; i++) {
    const c = buf[i]!;
    if (c === PREFIX[i] || (i === 7 && c === 0x30) /* HTTP/1.0 */) continue;
    return false;
  }
  if (buf.length <= PREFIX.length) return 'more';
  const next = buf[PREFIX.length];
  return next === 0x20 || next === 0x0d;
}

export function skipContinue(socket: Socket): void {
  let expectingHead = false;
  let held: Buffer | null = null;
  const write = socket.write;
  const read = socket.read;
  socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    // undici writes a request head as one latin1 string starting with the
    // method; its other string writes are chunk framing ("\r\n1f\r\n") and
    // bodies are buffers. One character tells them apart.
    if (typeof chunk === 'string') {
      const c = chunk.charCodeAt(0);
      if (c >= 65 && c <= 90) expectingHead = true;
    }
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Socket['write'];
  socket.read = function (this: Socket, size?: number): unknown {
    let chunk = read.call(this, size) as Buffer | null;
    if (!expectingHead || chunk === null) return chunk;
    if (held !== null) {
      chunk = Buffer.concat([held, chunk]);
      held = null;
    }
    for (;;) {
      const m = continueHead(chunk);
      if (m === false) break;
      const end = m === true ? chunk.indexOf(END) : -1;
      if (end < 0) {
        // A partial interim head: wait for the rest (the next 'readable').
        held = chunk;
        return null;
      }
      chunk = chunk.subarray(end + END.length);
      if (chunk.length === 0) return null;
    }
    expectingHead = false;
    return chunk;
  } as Socket['read'];
}
