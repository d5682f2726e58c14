/**
 * HTTP/2 chaos: faults from an h2c upstream mid-call (stream reset, GOAWAY,
 * a client that stops reading) and hostile HTTP/2 input on an h2c listener,
 * written frame by frame (rapid reset, CONTINUATION flood, oversized header
 * block, WINDOW_UPDATE abuse, zero window). After each cell: no exception
 * escaped, a normal request is still answered, and the proxy is at rest
 * (bulkheads 0/0, inflight 0, no upstream stream open); after the file,
 * no handle is left.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { sleep } from '../helpers/wait.ts';
import { scaled, waitForRest } from './lib.ts';

const { constants: C } = http2;
const CHUNK = Buffer.alloc(16 * 1024, 0x61);

// --- frames, by hand (RFC 9113 §4.1) --------------------------------------------
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInt(first: number, prefixBits: number, n: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([first | n]);
  const out = [first | max];
  n -= max;
  while (n >= 128) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
/** Literal without indexing, name from the static table (RFC 7541 §6.2.2). */
const literalIndexed = (index: number, value: string): Buffer => Buffer.concat([hpackInt(0x00, 4, index), hpackInt(0, 7, Buffer.byteLength(value)), Buffer.from(value)]);
/** Literal without indexing, new name. */
const literalNew = (name: string, value: string | Buffer): Buffer =>
  Buffer.concat([Buffer.from([0x00]), hpackInt(0, 7, name.length), Buffer.from(name), hpackInt(0, 7, value.length), Buffer.from(value)]);
/** GET `path` (static table: 0x82 :method GET, 0x86 :scheme http, 1 :authority, 4 :path). */
const getBlock = (path: string): Buffer => Buffer.concat([Buffer.from([0x82, 0x86]), literalIndexed(1, 'h2.test'), literalIndexed(4, path)]);

interface RawH2 {
  socket: net.Socket;
  /** Frame types received, in order, with their stream and (GOAWAY/RST) error code. */
  frames: { type: number; stream: number; code?: number }[];
  closed: Promise<void>;
  send(b: Buffer): void;
}

/** A raw HTTP/2 client connection: preface and empty SETTINGS sent, the server's SETTINGS acked. */
function rawH2(port: number): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const frames: RawH2['frames'] = [];
    let buf = Buffer.alloc(0);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        const code = type === T.GOAWAY && len >= 8 ? payload.readUInt32BE(4) : type === T.RST_STREAM && len === 4 ? payload.readUInt32BE(0) : undefined;
        frames.push(code === undefined ? { type, stream } : { type, stream, code });
        if (type === T.SETTINGS && (flags & F.ACK) === 0 && !socket.destroyed) socket.write(frame(T.SETTINGS, F.ACK, 0));
      }
    });
    socket.once('connect', () => {
      socket.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]));
      resolve({ socket, frames, closed, send: (b) => void (socket.destroyed || socket.write(b)) });
    });
    socket.once('error', reject);
  });
}

/** Resolves when `p` settles or after `ms`, whichever is first. */
const within = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true, () => true), sleep(ms).then(() => false)]);

describe('HTTP/2 chaos: upstream faults mid-call and hostile frames on the h2c listener', () => {
  const baseline = snapshotHandles();
  let upstream: http2.Http2Server;
  const upSessions = new Set<http2.ServerHttp2Session>();
  /** Upstream streams not yet closed. */
  let upOpen = 0;
  /** Requests the upstream saw, by path. */
  const upSeen = new Map<string, number>();
  /** Bytes the upstream got to write on /forever streams. */
  let foreverWritten = 0;
  let px: TestProxy;
  const crashes: Error[] = [];
  const onCrash = (err: Error): void => void crashes.push(err);
  const sessions: http2.ClientHttp2Session[] = [];

  const connect = (settings: http2.Settings = {}): http2.ClientHttp2Session => {
    const s = http2.connect(px.url('edge'), { settings });
    s.on('error', () => {});
    sessions.push(s);
    return s;
  };

  interface Got {
    status: number;
    bytes: number;
    ended: boolean;
    error: string | null;
  }
  /** One GET; settles on end, error or close; never rejects; 10 s at most. */
  const get = (s: http2.ClientHttp2Session, path: string): Promise<Got> =>
    new Promise((resolve) => {
      const got: Got = { status: 0, bytes: 0, ended: false, error: null };
      const st = s.request({ ':path': path, ':authority': 'h2.test' });
      const timer = setTimeout(() => {
        got.error = 'client timeout';
        st.close(C.NGHTTP2_CANCEL);
      }, 10_000);
      st.on('response', (h) => (got.status = Number(h[':status'])));
      st.on('data', (c: Buffer) => (got.bytes += c.length));
      st.on('end', () => (got.ended = true));
      st.on('error', (e) => (got.error = e.message));
      st.on('close', () => {
        clearTimeout(timer);
        if (st.rstCode !== undefined && st.rstCode !== C.NGHTTP2_NO_ERROR) got.error ??= `rst ${st.rstCode}`;
        resolve(got);
      });
    });

  const assertHealthy = async (cell: string): Promise<void> => {
    const escaped = [...new Set(crashes.map((e) => e.stack?.split('\n').slice(0, 3).join(' | ')))];
    const n = crashes.length;
    crashes.length = 0; // one cell's failure is not the next one's
    assert.deepEqual(escaped, [], `${cell}: ${n} exceptions escaped to the process`);
    const s = connect();
    const ok = await get(s, '/ok');
    assert.deepEqual([ok.status, ok.ended, ok.error], [200, true, null], `${cell}: a normal request afterwards`);
    s.close();
    const rest = await waitForRest(px, () => upOpen, 5000);
    assert.deepEqual(rest, { ready: 200, inflight: 0, bulkheads: { u: { active: 0, queued: 0 } }, upstreamInFlight: 0 }, `${cell}: at rest`);
  };

  before(async () => {
    process.prependListener('uncaughtException', onCrash);
    upstream = http2.createServer();
    upstream.on('session', (s) => {
      upSessions.add(s);
      s.on('close', () => upSessions.delete(s));
      s.on('error', () => {});
    });
    upstream.on('stream', (stream, headers) => {
      const path = String(headers[':path']);
      upSeen.set(path, (upSeen.get(path) ?? 0) + 1);
      upOpen++;
      stream.on('close', () => upOpen--);
      stream.on('error', () => {});
      switch (path) {
        case '/ok':
          stream.respond({ ':status': 200 });
          stream.end('ok');
          return;
        case '/reset-mid':
          stream.respond({ ':status': 200 });
          stream.write(CHUNK);
          setTimeout(() => stream.destroy(new Error('upstream fails mid-body')), 20); // RST_STREAM INTERNAL_ERROR, no END_STREAM
          return;
        case '/goaway-abrupt':
          stream.respond({ ':status': 200 });
          stream.write(CHUNK);
          setTimeout(() => {
            stream.session?.goaway(C.NGHTTP2_INTERNAL_ERROR, 0);
            stream.session?.destroy();
          }, 20);
          return;
        case '/goaway-graceful': {
          stream.respond({ ':status': 200 });
          stream.write(CHUNK);
          // "no new streams after this one"; the running stream finishes
          const session = stream.session!;
          setTimeout(() => session.goaway(C.NGHTTP2_NO_ERROR, stream.id), 10);
          setTimeout(() => stream.end(CHUNK), 60);
          return;
        }
        case '/forever': {
          // writes as fast as flow control lets it, at most 16 MiB
          stream.respond({ ':status': 200 });
          let n = 0;
          const pump = (): void => {
            while (!stream.destroyed && n < 1024) {
              n++;
              foreverWritten += CHUNK.length;
              if (!stream.write(CHUNK)) return void stream.once('drain', pump);
            }
            if (!stream.destroyed) stream.end();
          };
          pump();
          return;
        }
        default:
          stream.respond({ ':status': 404 });
          stream.end();
      }
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as net.AddressInfo).port;
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: edge
    address: 127.0.0.1:0
    upstream: u
    limits: { headerSize: 16KiB }
upstreams:
  u:
    url: http://127.0.0.1:${port}
    protocol: h2c
    timeout: { total: 5s, idle: 2s }
    retry: { maxRetries: 0 }
    bulkhead: { maxConcurrent: 200, maxQueue: 0 }
`);
  });

  after(async () => {
    process.off('uncaughtException', onCrash);
    for (const s of sessions) s.destroy();
    await px.close();
    for (const s of upSessions) s.destroy();
    await new Promise<void>((r) => upstream.close(() => r()));
    await assertNoLeaks(baseline, { settleMs: 5000 });
  });

  it('cuts the client stream (never a clean end) when the upstream resets its stream mid-body, for 20 concurrent calls', async () => {
    const s = connect();
    const n = scaled(20);
    const got = await Promise.all(Array.from({ length: n }, () => get(s, '/reset-mid')));
    for (const g of got) {
      assert.equal(g.status, 200);
      assert.ok(!g.ended || g.error !== null, `a cut answer looked complete: ${JSON.stringify(g)}`);
      assert.ok(g.bytes <= CHUNK.length);
    }
    s.close();
    await assertHealthy('upstream RST_STREAM mid-body');
  });

  it('cuts the client streams when the upstream sends GOAWAY and drops the connection mid-call', async () => {
    const s = connect();
    const got = await Promise.all(Array.from({ length: scaled(10) }, () => get(s, '/goaway-abrupt')));
    for (const g of got) assert.ok(g.status === 502 || (g.status === 200 && g.error !== null), `unexpected: ${JSON.stringify(g)}`);
    s.close();
    await assertHealthy('upstream GOAWAY + close mid-call');
  });

  it('lets the running stream finish after a graceful GOAWAY from the upstream, and the next call gets a new connection', async () => {
    const s = connect();
    const g = await get(s, '/goaway-graceful');
    assert.deepEqual([g.status, g.bytes, g.ended, g.error], [200, 2 * CHUNK.length, true, null]);
    const next = await get(s, '/ok');
    assert.deepEqual([next.status, next.ended], [200, true]);
    s.close();
    await assertHealthy('graceful GOAWAY');
  });

  it('holds the upstream back while a client stops reading (flow control, nothing buffered without bound), and frees everything when it leaves', async () => {
    foreverWritten = 0;
    const s = connect();
    const st = s.request({ ':path': '/forever', ':authority': 'h2.test' });
    st.on('error', () => {});
    await new Promise((r) => st.once('response', r));
    st.pause(); // reads nothing more: the client's window closes, then breakwater's
    // Windows and socket buffers fill within moments; then nothing more may move.
    let stalled = -1;
    for (let i = 0; i < 20 && foreverWritten !== stalled; i++) {
      stalled = foreverWritten;
      await sleep(300);
    }
    assert.equal(foreverWritten, stalled, 'the upstream kept writing into a client that reads nothing');
    assert.ok(stalled < 4 * 1024 * 1024, `${stalled} bytes left the upstream towards a stalled client`);
    st.close(C.NGHTTP2_CANCEL);
    s.close();
    await assertHealthy('stalled reader');
  });

  it('answers nothing unbounded to a zero window (SETTINGS_INITIAL_WINDOW_SIZE 0), and frees everything when the client leaves', async () => {
    const s = connect({ initialWindowSize: 0 });
    const st = s.request({ ':path': '/forever', ':authority': 'h2.test' });
    st.on('error', () => {});
    let bytes = 0;
    st.on('data', (c: Buffer) => (bytes += c.length));
    await sleep(500);
    assert.equal(bytes, 0);
    s.destroy();
    await assertHealthy('zero window');
  });

  it('survives a rapid reset flood (HEADERS + RST_STREAM, many times) without forwarding it all', async () => {
    const before = upSeen.get('/ok') ?? 0;
    const c = await rawH2(px.port('edge'));
    const n = scaled(2000);
    const block = getBlock('/ok');
    const burst: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const id = 2 * i + 1;
      burst.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, block), frame(T.RST_STREAM, 0, id, u32(C.NGHTTP2_CANCEL)));
    }
    c.send(Buffer.concat(burst));
    await within(c.closed, 2000);
    c.socket.destroy();
    const forwarded = (upSeen.get('/ok') ?? 0) - before;
    assert.ok(forwarded < n, `${forwarded} of ${n} reset streams were forwarded`);
    await assertHealthy('rapid reset');
  });

  it('closes a connection that floods CONTINUATION frames, within bounded time', async () => {
    const c = await rawH2(px.port('edge'));
    c.send(frame(T.HEADERS, 0, 1, getBlock('/ok')));
    const junk = literalNew('x-junk', Buffer.alloc(1000, 0x62));
    for (let i = 0; i < scaled(2000) && !c.socket.destroyed; i++) {
      c.send(frame(T.CONTINUATION, 0, 1, junk));
      if (i % 100 === 99) await sleep(1);
    }
    assert.ok(await within(c.closed, 5000), 'the connection is still open after a CONTINUATION flood');
    assert.ok(c.frames.some((f) => f.type === T.GOAWAY || f.type === T.RST_STREAM) || c.socket.destroyed);
    await assertHealthy('CONTINUATION flood');
  });

  it('refuses a header block over the limit (HPACK, split across CONTINUATION frames) without forwarding it', async () => {
    const before = upSeen.get('/big-head') ?? 0;
    const c = await rawH2(px.port('edge'));
    const block = Buffer.concat([getBlock('/big-head'), literalNew('x-big', Buffer.alloc(40_000, 0x63))]);
    const parts: Buffer[] = [];
    for (let off = 0; off < block.length; off += 16_384) parts.push(block.subarray(off, off + 16_384));
    c.send(frame(T.HEADERS, F.END_STREAM | (parts.length === 1 ? F.END_HEADERS : 0), 1, parts[0]!));
    for (let i = 1; i < parts.length; i++) c.send(frame(T.CONTINUATION, i === parts.length - 1 ? F.END_HEADERS : 0, 1, parts[i]!));
    await within(c.closed, 1000);
    c.socket.destroy();
    assert.equal((upSeen.get('/big-head') ?? 0) - before, 0, 'an oversized header block was forwarded');
    await assertHealthy('oversized header block');
  });

  it('closes a connection on WINDOW_UPDATE abuse (zero increment, window overflow) and stays up', async () => {
    for (const [name, frames] of [
      ['zero increment on the connection', [frame(T.WINDOW_UPDATE, 0, 0, u32(0))]],
      ['connection window past 2^31-1', [frame(T.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)), frame(T.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))]],
      ['stream window past 2^31-1', [frame(T.HEADERS, F.END_HEADERS, 1, getBlock('/ok')), frame(T.WINDOW_UPDATE, 0, 1, u32(0x7fffffff)), frame(T.WINDOW_UPDATE, 0, 1, u32(0x7fffffff))]],
      ['WINDOW_UPDATE on a stream never opened', [frame(T.WINDOW_UPDATE, 0, 99, u32(1000))]],
    ] as const) {
      const c = await rawH2(px.port('edge'));
      for (const f of frames) c.send(f);
      await within(c.closed, 1000);
      assert.ok(
        c.socket.destroyed || c.frames.some((f) => f.type === T.GOAWAY || f.type === T.RST_STREAM) || name.includes('never opened'),
        `${name}: neither GOAWAY nor RST_STREAM`,
      );
      c.socket.destroy();
      await assertHealthy(name);
    }
  });
});
