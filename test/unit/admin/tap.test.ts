/**
 * serveTap on a plain node:http server with a small hub: the heartbeat line,
 * the drop bound (small here, 1 MiB in the proxy) and the shutdown line,
 * without a proxy around them.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { serveTap } from '../../../src/admin/tap.ts';
import { TapHub } from '../../../src/observability/tap.ts';
import type { Exchange } from '../../../src/pipeline/exchange.ts';
import { assertNoLeaks, snapshotHandles } from '../../helpers/leaks.ts';
import { waitFor } from '../../helpers/wait.ts';

const ex = { route: 'r', upstream: 'u', flags: null } as unknown as Exchange;

describe('serveTap', () => {
  const baseline = snapshotHandles();
  const hub = new TapHub(2, 40);
  const logger = pino({ level: 'silent' });
  let server: http.Server;
  let port: number;

  before(async () => {
    server = http.createServer((req, res) => serveTap(hub, logger, req, res, 64 * 1024));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await assertNoLeaks(baseline);
  });

  it('sends an empty line while idle, the lines, and a last line on close', async () => {
    let body = '';
    const ended = new Promise<void>((resolve) => {
      http.get(`http://127.0.0.1:${port}/tap`, { agent: false }, (res) => {
        assert.equal(res.headers['content-type'], 'application/x-ndjson');
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', resolve);
      });
    });
    await waitFor('subscribed', () => hub.subscribers === 1);
    await waitFor('a heartbeat', () => body.includes('\n'));
    assert.match(body, /^\n+$/, 'only empty lines while nothing happens');
    hub.publish('{"a":1}\n', ex, 200);
    await waitFor('the line', () => body.includes('{"a":1}'));
    hub.close('shutdown');
    await ended;
    const lines = body.split('\n').filter((l) => l !== '');
    assert.deepEqual(lines, ['{"a":1}', '{"tap":"end","reason":"shutdown"}']);
    assert.equal(hub.subscribers, 0);
  });
});

describe('serveTap drop bound', () => {
  const baseline = snapshotHandles();
  const hub = new TapHub(2, 60_000);
  let server: http.Server;
  let port: number;
  before(async () => {
    server = http.createServer((req, res) => serveTap(hub, pino({ level: 'silent' }), req, res, 64 * 1024));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await assertNoLeaks(baseline);
  });

  it('drops a reader that does not read once the bound is passed, and never holds more than the bound', async () => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('GET /tap HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor('subscribed', () => hub.subscribers === 1);
    sock.pause();
    const line = `${'x'.repeat(8 * 1024)}\n`;
    let offered = 0;
    // The kernel's buffers fill first; then at most 64 KiB may wait in node.
    while (hub.dropped === 0 && offered < 20_000) {
      hub.publish(line, ex, 200);
      offered++;
      if (offered % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(hub.dropped, 1, `dropped after ${offered} lines`);
    assert.equal(hub.subscribers, 0);
    assert.equal(hub.active, false);
    const conns = () => new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    await waitFor('connection destroyed after the grace second', async () => (await conns()) === 0, 4_000);
    sock.destroy();
  });
});
