/**
 * The dead-letter spool when the disk is full (SPEC §11.1): a real tmpfs
 * of 512 KiB (needs root: mount(2)), filled up after the spool was opened.
 * A request that fails while the spool cannot be written is answered
 * exactly as without a spool (its §4.7 failure, no dead-letter header), the
 * write error is logged with its reason and counted, nothing already
 * spooled is lost, and once space is freed spooling works again.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { json, request } from '../helpers/http.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort } from '../helpers/upstream.ts';
import { scrapedValue } from '../helpers/metrics.ts';

function tryMount(dir: string): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Writes until the filesystem is full: ENOSPC. */
function fill(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

const metric = (px: TestProxy, series: string): Promise<number> => scrapedValue(px.adminUrl, series);

describe('dead-letter spool on a full disk (tmpfs)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-dl-full-'));
  const why = tryMount(dir);
  let px: TestProxy;

  before(async () => {
    if (why !== null) return;
    const dead = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: l
    address: 127.0.0.1:0
    routes:
      - { name: r, upstream: u, deadLetter: { path: ${dir}/spool.db } }
upstreams:
  u: { url: "http://127.0.0.1:${dead}", timeout: { connect: 300ms }, retry: { maxRetries: 0 } }
`);
  });

  after(async () => {
    await px?.close();
    if (why === null) execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a write that does not fit is answered as without a spool, logged and counted; freed space spools again', { skip: why === null ? false : `cannot mount a tmpfs: ${why}` }, async () => {
    const post = (body: string) => request(`${px.url('l')}/orders`, { method: 'POST', body });
    const first = await post('before the disk filled');
    assert.equal(first.status, 503);
    const kept = first.headers['x-breakwater-dead-letter'] as string;
    assert.equal(typeof kept, 'string');

    fill(path.join(dir, 'filler'));
    let refused = 0;
    // Small pages may still fit for a while: a body of 64 KiB cannot.
    for (let i = 0; i < 5; i++) {
      const r = await post('y'.repeat(64 * 1024));
      assert.equal(r.status, 503);
      assert.equal(json(r).error, 'connect_failure');
      if (r.headers['x-breakwater-dead-letter'] === undefined) refused++;
    }
    assert.ok(refused >= 1, 'a write on a full disk was refused');
    assert.equal(await metric(px, 'breakwater_dead_letters_dropped_total{route="r",reason="write_error"}'), refused);
    const logged = px.logs.find((l) => l.msg === 'dead_letters_dropped' && l.reason === 'write_error');
    assert.match(String(logged?.error), /write failed: .*(full|disk)/i);
    await px.waitForRequests(6);
    const unspooled = px.requests().filter((l) => !((l.flags as string[] | undefined) ?? []).includes('dead_letter'));
    assert.equal(unspooled.length, refused, 'a refused write leaves no dead_letter flag in the access log');

    rmSync(path.join(dir, 'filler'));
    const again = await post('after space came back');
    assert.equal(typeof again.headers['x-breakwater-dead-letter'], 'string');
    const ids = json(await request(`${px.adminUrl}/dead-letters`)).entries.map((e: { id: string }) => e.id);
    assert.ok(ids.includes(kept), 'what was spooled before the disk filled is still there');
    assert.ok(ids.includes(again.headers['x-breakwater-dead-letter']));
  });
});
