import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from 'node:assert';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertNoLeaks, snapshotHandles } from '../../helpers/leaks.ts';
import { startUpstream } from '../../helpers/upstream.ts';
import { request } from '../../helpers/http.ts';

// A handle closed by the previous test disappears from the active list a
// loop turn after its close callback; let that happen before each baseline.
async function settledSnapshot(): Promise<Map<string, number>> {
  await sleep(20);
  return snapshotHandles();
}

async function listen(server: net.Server): Promise<void> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
}

test('snapshotHandles counts active resources by type', async () => {
  const before = await settledSnapshot();
  const server = net.createServer();
  await listen(server);
  try {
    assert.equal(snapshotHandles().get('TCPServerWrap') ?? 0, (before.get('TCPServerWrap') ?? 0) + 1);
  } finally {
    server.close();
  }
});

test('assertNoLeaks detects a server left listening, and passes once it is closed', async () => {
  const baseline = await settledSnapshot();
  const server = net.createServer();
  await listen(server);
  try {
    await assert.rejects(assertNoLeaks(baseline, { settleMs: 200 }), (err: unknown) => {
      assert.ok(err instanceof AssertionError);
      assert.match(err.message, /TCPServerWrap: 1 now, 0 at baseline/);
      return true;
    });
  } finally {
    server.close();
  }
  await assertNoLeaks(baseline);
});

test("assertNoLeaks detects a ref'd timer nobody cleared", async () => {
  const baseline = await settledSnapshot();
  const timer = setTimeout(() => {}, 60_000);
  try {
    await assert.rejects(assertNoLeaks(baseline, { settleMs: 100 }), /Timeout: 1 now, 0 at baseline/);
  } finally {
    clearTimeout(timer);
  }
  await assertNoLeaks(baseline);
});

test('assertNoLeaks detects an open connection, and waits for sockets that are still closing', async () => {
  const baseline = await settledSnapshot();
  const up = await startUpstream({ body: 'hi' });
  const agent = new http.Agent({ keepAlive: true });
  try {
    await request(up.origin, { agent });
    // The idle keep-alive connection's server side stays open (and ref'd).
    await assert.rejects(assertNoLeaks(baseline, { settleMs: 200 }), /TCPSocketWrap: /);
  } finally {
    agent.destroy();
    // Not awaited: the handles go away a few loop turns later, which the poll absorbs.
    void up.close();
  }
  await assertNoLeaks(baseline);
});
