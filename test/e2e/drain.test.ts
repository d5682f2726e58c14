/**
 * Drain on SIGTERM (SPEC §1, §7), against the built CLI as a child process
 * (dist/cli.js; `npm test` builds first): readiness fails at once, listeners
 * keep serving for `drain.delay`, in-flight requests finish, a request on a
 * kept-alive connection is answered `draining`, the process exits 0; a second
 * SIGTERM exits at once.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { json, request } from '../helpers/http.ts';
import { startUpstream, type Step, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor, freePort, tryConnect, getVia } from '../helpers/wait.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'cli.js');

interface Running {
  child: ChildProcess;
  out: () => string;
  /** Resolves with the exit code and Date.now() at exit. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function startCli(file: string): Running {
  const child = spawn(process.execPath, [cli, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal, at: Date.now() })),
  );
  return { child, out: () => out, exited };
}

const byPath = (req: { url: string }): Step => {
  const slow = /\/slow\/(\d+)/.exec(req.url);
  if (slow !== null) return { status: 200, body: `slow ${req.url}`, delayMs: Number(slow[1]) };
  return { status: 200, body: `ok ${req.url}` };
};

describe('drain on SIGTERM (CLI)', () => {
  let dir: string;
  let up: Upstream;
  const children: ChildProcess[] = [];
  const agents: http.Agent[] = [];

  before(async () => {
    assert.ok(existsSync(cli), `${cli} exists (run npm run build)`);
    dir = mkdtempSync(path.join(tmpdir(), 'bw-drain-'));
    up = await startUpstream(byPath);
  });
  after(async () => {
    for (const a of agents) a.destroy();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function launch(name: string, drain: string): Promise<{ run: Running; port: number; admin: number }> {
    const [port, admin] = [await freePort(), await freePort()];
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `version: 1\nadmin: { address: 127.0.0.1:${admin} }\ndrain: ${drain}\nlisteners:\n  - { name: main, address: 127.0.0.1:${port}, upstream: u }\nupstreams:\n  u: { url: "${up.origin}", retry: { maxRetries: 0 } }\n`,
    );
    const run = startCli(file);
    children.push(run.child);
    await waitFor(`readiness of ${name}`, async () => (await request(`http://127.0.0.1:${admin}/readyz`)).status === 200, 15_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${run.out()}`);
    });
    return { run, port, admin };
  }

  it('finishes in-flight requests, answers kept-alive connections with draining, and exits 0', async (t) => {
    const { run, port, admin } = await launch('graceful', '{ delay: 1s, timeout: 20s }');
    const base = `http://127.0.0.1:${port}`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    assert.equal((await getVia(agent, `${base}/warm`)).status, 200);
    up.reset();

    // Both outlive drain.delay: one on the kept-alive connection, one on its own.
    const kept = getVia(agent, `${base}/slow/2200/kept`).then((r) => ({ r, at: Date.now() }));
    const other = request(`${base}/slow/3500/other`, { timeoutMs: 20_000 }).then((r) => ({ r, at: Date.now() }));
    await waitFor('both requests reached the upstream', () => up.inFlight === 2);

    const t0 = Date.now();
    run.child.kill('SIGTERM');
    let readyz = 0;
    await waitFor('readiness fails', async () => (readyz = (await request(`http://127.0.0.1:${admin}/readyz`)).status) === 503, 3000);
    const readyAfter = Date.now() - t0;
    // Well inside drain.delay (1s): readiness fails before the listener stops accepting.
    assert.ok(readyAfter < 900, `/readyz answered 503 ${readyAfter}ms after SIGTERM`);
    assert.equal(readyz, 503);

    // drain.delay: a new connection is still served.
    const during = await request(`${base}/during-delay`);
    assert.equal(during.status, 200, 'served during drain.delay');

    await waitFor('the listener stops accepting', async () => (await tryConnect(port)) === 'ECONNREFUSED', 5000);
    const stoppedAfter = Date.now() - t0;
    assert.ok(stoppedAfter >= 900, `kept accepting for drain.delay (stopped after ${stoppedAfter}ms)`);

    const k = await kept;
    assert.equal(k.r.status, 200, 'the in-flight request on the kept-alive connection finished');
    assert.equal(k.r.body, 'slow /slow/2200/kept');
    const next = await getVia(agent, `${base}/after-drain`).catch((e: Error) => e);
    if (next instanceof Error) {
      assert.fail(`expected a draining answer on the kept-alive connection, got ${next.message}`);
    }
    assert.equal(next.reused, true, 'sent on the kept-alive connection');
    assert.equal(next.status, 503);
    assert.equal(next.headers['x-breakwater-error'], 'draining');
    assert.equal(next.headers.connection, 'close');
    assert.equal(json(next).error, 'draining');

    const o = await other;
    assert.equal(o.r.status, 200, 'the other in-flight request finished');
    const exit = await run.exited;
    assert.equal(exit.code, 0, run.out());
    assert.ok(exit.at >= o.at - 100, 'the process exited only after the last in-flight request');
    assert.ok(exit.at - o.at < 3000, `and soon after it (${exit.at - o.at}ms)`);
    assert.match(run.out(), /"msg":"drain_complete"/);
    t.diagnostic(`readyz 503 after ${readyAfter}ms; stopped accepting after ${stoppedAfter}ms; exited ${exit.at - o.at}ms after the last response`);
    assert.equal(up.requests.filter((r) => r.url === '/after-drain').length, 0);
  });

  it('exits 0 at once on a second SIGTERM during a long drain', async (t) => {
    const { run, port } = await launch('impatient', '{ delay: 0s, timeout: 60s }');
    up.reset();
    const stuck = request(`http://127.0.0.1:${port}/slow/30000/stuck`, { timeoutMs: 40_000 }).catch((e: Error) => e);
    await waitFor('the request reached the upstream', () => up.inFlight === 1);
    run.child.kill('SIGTERM');
    await sleep(500);
    assert.equal(run.child.exitCode, null, 'still draining after the first SIGTERM');
    const t0 = Date.now();
    run.child.kill('SIGTERM');
    const exit = await run.exited;
    const took = exit.at - t0;
    assert.equal(exit.code, 0, run.out());
    assert.ok(took < 1000, `exited ${took}ms after the second SIGTERM`);
    t.diagnostic(`exited ${took}ms after the second SIGTERM`);
    await stuck;
  });
});
