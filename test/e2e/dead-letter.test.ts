/**
 * The dead-letter spool across crashes (SPEC §11.1), against the built CLI
 * as a child process: every POST answered with a dead-letter id is in the
 * spool after `kill -9` and a restart, and is delivered exactly once when
 * replayed; `breakwater dead-letters` drives it through the admin API;
 * `validate` creates no spool file.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { json, request } from '../helpers/http.ts';
import { freePort, waitFor } from '../helpers/wait.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'cli.js');

/** An upstream on a fixed port that can be down (nothing listening) or up, recording the bodies it accepted. */
class Upstream {
  readonly delivered: { body: string; key: string | undefined }[] = [];
  #server: http.Server | null = null;
  readonly port: number;
  constructor(port: number) {
    this.port = port;
  }
  up(): Promise<void> {
    this.#server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST') this.delivered.push({ body: Buffer.concat(chunks).toString(), key: req.headers['idempotency-key'] as string | undefined });
        res.end('ok');
      });
    });
    return new Promise((r) => this.#server!.listen(this.port, '127.0.0.1', () => r()));
  }
  down(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    if (s === null) return Promise.resolve();
    return new Promise((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }
}

function start(file: string): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

function bw(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dead letters across kill -9 and restarts (CLI)', () => {
  let dir: string;
  let up: Upstream;
  const children: ChildProcess[] = [];

  before(async () => {
    assert.ok(existsSync(cli), `${cli} exists (run npm run build)`);
    dir = mkdtempSync(path.join(tmpdir(), 'bw-dl-e2e-'));
    up = new Upstream(await freePort());
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await up.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('validate creates no spool file', () => {
    const file = path.join(dir, 'validate.yaml');
    const spool = path.join(dir, 'not-yet', 'spool.db');
    writeFileSync(file, `version: 1\nlisteners:\n  - name: l\n    address: 127.0.0.1:0\n    routes: [{ upstream: u, deadLetter: { path: ${spool} } }]\nupstreams:\n  u: { url: "http://127.0.0.1:1" }\n`);
    const r = bw('validate', file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deadLetter +spool .*spool\.db \(opened on first use\)/);
    assert.equal(existsSync(spool), false);
    assert.equal(existsSync(path.dirname(spool)), false);
  });

  it('every POST answered with a dead-letter id survives kill -9 and a restart, and is delivered exactly once', async () => {
    const [port, admin] = [await freePort(), await freePort()];
    const spool = path.join(dir, 'spool', 'payments.db');
    const file = path.join(dir, 'bw.yaml');
    const config = (auto: boolean): string => `version: 1
admin: { address: 127.0.0.1:${admin} }
listeners:
  - name: pay
    address: 127.0.0.1:${port}
    routes:
      - name: payments
        upstream: payments
        deadLetter: { path: ${spool}, replay: { auto: ${auto}, rate: 50/s } }
upstreams:
  payments:
    url: http://127.0.0.1:${up.port}
    timeout: { connect: 300ms, total: 3s }
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 3, openDuration: 500ms }
`;
    const launch = async (auto: boolean) => {
      writeFileSync(file, config(auto));
      const run = start(file);
      children.push(run.child);
      await waitFor('readiness', async () => (await request(`http://127.0.0.1:${admin}/readyz`).catch(() => ({ status: 0 }))).status === 200, 15_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${run.out()}`);
      });
      return run;
    };

    // 1. The upstream is down: every POST is spooled, then breakwater is killed outright.
    const first = await launch(true);
    const ids = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const r = await request(`http://127.0.0.1:${port}/pay`, { method: 'POST', body: `payment-${i}` });
      assert.equal(r.status, 503);
      const id = r.headers['x-breakwater-dead-letter'];
      assert.equal(typeof id, 'string', `payment-${i} answered without an id`);
      ids.set(id as string, `payment-${i}`);
    }
    first.child.kill('SIGKILL');
    await first.exited;

    // 2. Restarted without automatic replay: all twelve are there; a replay
    //    while the upstream is still down keeps them (CLI exit 1).
    const second = await launch(false);
    const list = bw('dead-letters', 'list', '--admin', `127.0.0.1:${admin}`, '--json');
    assert.equal(list.code, 0, list.stderr);
    const listed = JSON.parse(list.stdout) as { entries: { id: string; attempts: number }[] };
    assert.deepEqual(new Set(listed.entries.map((e) => e.id)), new Set(ids.keys()));
    const table = bw('dead-letters', 'list', '--admin', `127.0.0.1:${admin}`, '--route', 'payments');
    assert.match(table.stdout, /12 entries/);
    const failed = bw('dead-letters', 'replay', '--admin', `127.0.0.1:${admin}`);
    assert.equal(failed.code, 0, failed.stderr); // the pass ran; it stopped at the first failure
    assert.deepEqual(JSON.parse(failed.stdout).routes, [{ route: 'payments', replayed: 0, failed: 1 }]);
    const one = [...ids.keys()][0]!;
    const single = bw('dead-letters', 'replay', '--admin', `127.0.0.1:${admin}`, one);
    assert.equal(single.code, 1);
    const shown = JSON.parse(bw('dead-letters', 'show', '--admin', `127.0.0.1:${admin}`, one).stdout) as { attempts: number; body: string };
    assert.equal(shown.attempts, 2);
    assert.equal(shown.body, ids.get(one));
    assert.equal(up.delivered.length, 0);
    // A graceful restart (SIGTERM) keeps them too.
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);

    // 3. The upstream is back; a restart with automatic replay delivers each exactly once, oldest first.
    await up.up();
    const third = await launch(true);
    await waitFor('all twelve delivered', () => up.delivered.length >= 12, 15_000);
    await waitFor('the spool to be empty', async () => json(await request(`http://127.0.0.1:${admin}/dead-letters`)).count === 0, 5000);
    assert.deepEqual(up.delivered.map((d) => d.body), [...ids.values()]);
    assert.equal(new Set(up.delivered.map((d) => d.key)).size, 12, 'each with its own idempotency key');
    assert.match(bw('dead-letters', 'list', '--admin', `127.0.0.1:${admin}`).stdout, /no dead letters/);
    // Nothing more arrives: no duplicates.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(up.delivered.length, 12);
    third.child.kill('SIGTERM');
    assert.equal(await third.exited, 0);
  });
});
