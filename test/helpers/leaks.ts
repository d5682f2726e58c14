// Resource-leak checks for a test file: take a snapshot before the first test,
// assert after the last one (after every other after() hook has closed its
// servers and clients) that nothing is left over.
//
//   let baseline: Map<string, number>;
//   before(() => { baseline = snapshotHandles(); });
//   after(async () => { await upstream.close(); await proxy.close(); await assertNoLeaks(baseline); });
//
// Take the baseline before the file opens anything: a handle closed a moment
// earlier can still be listed for a loop turn and would inflate it.
//
// What is watched: every resource name process.getActiveResourcesInfo()
// reports, i.e. every handle, request and timer that keeps the event loop
// alive. Unref'd handles and timers are not reported, which is right: they
// cannot keep a process from exiting. The ones that matter here:
//   - TCPServerWrap: a listener (proxy, admin, test upstream) never closed;
//   - TCPSocketWrap: a connection left open, e.g. a keep-alive socket in a
//     pool that was not closed, or a hanging upstream request;
//   - Timeout / Immediate: a ref'd timer nobody cleared (a backoff, a
//     breaker's window, a reload debounce);
//   - others such as TCPConnectWrap, GetAddrInfoReqWrap, FSReqCallback,
//     FSEventWrap (a config watcher), StatWatcher, Pipe/ProcessWrap (a child
//     process) whenever they appear in the baseline or now.
//
// Why it polls instead of checking once: closing is asynchronous. A destroyed
// socket's handle goes away on a later turn of the event loop, server.close()
// resolves before the peer's side of a loopback connection has seen the FIN,
// and a client's socket closes only after the server's FIN arrives. So the
// check retries for a while (2 s by default) and fails only if a count is
// still above its baseline at the end.
import { AssertionError } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';

/** Count of each active resource type, by name. */
export function snapshotHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

const POLL_INTERVAL_MS = 25;

/**
 * Resolves once every resource type is back at or below its count in
 * `baseline`; throws an AssertionError listing the excess if that has not
 * happened within `settleMs` (default 2000).
 */
export async function assertNoLeaks(
  baseline: Map<string, number>,
  opts: { settleMs?: number } = {},
): Promise<void> {
  const settleMs = opts.settleMs ?? 2000;
  const deadline = Date.now() + settleMs;
  for (;;) {
    const excess = findExcess(baseline);
    if (excess.length === 0) return;
    if (Date.now() >= deadline) {
      const lines = excess.map(([name, now, before]) => `  ${name}: ${now} now, ${before} at baseline`);
      throw new AssertionError({
        message: `resources leaked (still active ${settleMs}ms after the test file's cleanup):\n${lines.join('\n')}`,
        actual: Object.fromEntries(snapshotHandles()),
        expected: Object.fromEntries(baseline),
        operator: 'assertNoLeaks',
      });
    }
    // The poll's own timer is not counted: it is not active while we look.
    await sleep(POLL_INTERVAL_MS);
  }
}

function findExcess(baseline: Map<string, number>): [name: string, now: number, before: number][] {
  const now = snapshotHandles();
  const names = new Set([...baseline.keys(), ...now.keys()]);
  const excess: [string, number, number][] = [];
  for (const name of [...names].sort()) {
    const n = now.get(name) ?? 0;
    const b = baseline.get(name) ?? 0;
    if (n > b) excess.push([name, n, b]);
  }
  return excess;
}
