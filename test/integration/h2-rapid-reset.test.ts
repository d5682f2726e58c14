/**
 * A stream the client resets in the same burst as its HEADERS (HTTP/2 rapid
 * reset) reaches the listener's request handler already gone, without a
 * session: it must be dropped, not crash the process. (The full set of
 * hostile HTTP/2 inputs is test/chaos/h2.chaos.ts.)
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}
// HPACK: :method GET and :scheme http from the static table, :authority a.test and :path / as literals without indexing.
const BLOCK = Buffer.concat([Buffer.from([0x82, 0x86, 0x01, 6]), Buffer.from('a.test'), Buffer.from([0x04, 1]), Buffer.from('/')]);

describe('HTTP/2 rapid reset on an h2c listener', () => {
  const baseline = snapshotHandles();
  let up: Upstream;
  let px: TestProxy;

  before(async () => {
    up = await startUpstream({ status: 200, body: 'ok' });
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: u }
upstreams:
  u: { url: ${up.origin}, retry: { maxRetries: 0 } }
`);
  });

  after(async () => {
    await px.close();
    await up.close();
    await assertNoLeaks(baseline);
  });

  it('drops streams reset in the same burst as their HEADERS without an exception, and keeps serving', async () => {
    const crashes: Error[] = [];
    const onCrash = (err: Error): void => void crashes.push(err);
    process.prependListener('uncaughtException', onCrash);
    try {
      const socket = net.connect(px.port('main'), '127.0.0.1');
      socket.on('error', () => {});
      socket.resume();
      await new Promise((r) => socket.once('connect', r));
      const burst: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))];
      for (let id = 1; id < 400; id += 2) burst.push(frame(1, 0x5, id, BLOCK), frame(3, 0, id, Buffer.from([0, 0, 0, 8])));
      socket.write(Buffer.concat(burst));
      await sleep(300);
      socket.destroy();
      await waitFor('the socket to close', () => socket.destroyed);
    } finally {
      process.off('uncaughtException', onCrash);
    }
    assert.deepEqual(crashes.map((e) => e.message), [], 'an exception escaped to the process');
    const s = http2.connect(px.url('main'));
    s.on('error', () => {});
    const status = await new Promise<number>((resolve, reject) => {
      const st = s.request({ ':path': '/', ':authority': 'a.test' });
      st.on('response', (h) => resolve(Number(h[':status'])));
      st.on('error', reject);
      st.resume();
    });
    s.close();
    assert.equal(status, 200);
  });
});
