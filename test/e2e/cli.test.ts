/**
 * The built CLI as a child process: exit codes, signals, reload by SIGHUP.
 * Runs dist/cli.js, so `npm test` builds first.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from '../helpers/http.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { freePort } from '../helpers/wait.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'cli.js');

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
}

async function waitFor(fn: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}

describe('the breakwater CLI', () => {
  let dir: string;
  let up: Upstream;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bw-cli-'));
    up = await startUpstream({ status: 200, body: 'from upstream' });
  });
  after(async () => {
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints its version and help and exits 0', () => {
    const v = run(['--version']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^breakwater \d+\.\d+\.\d+/);
    const h = run(['--help']);
    assert.equal(h.status, 0);
    assert.match(h.stdout, /validate FILE/);
  });

  it('validate exits 0 and prints the effective policy of a valid config', () => {
    const f = path.join(dir, 'ok.yaml');
    writeFileSync(f, `version: 1\nlisteners:\n  - { name: a, address: 127.0.0.1:15999, upstream: u }\nupstreams:\n  u: { url: "http://127.0.0.1:1", retry: { methods: [GET, POST] } }\n`);
    const r = run(['validate', f]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /u/);
    assert.match(r.stdout + r.stderr, /POST/i, 'warns about POST in retry.methods');
  });

  it('validate exits 1 listing every error with file:line:column and path', () => {
    const f = path.join(dir, 'bad.yaml');
    writeFileSync(f, `version: 1\nlisteners:\n  - name: a\n    address: 127.0.0.1:15998\n    upstream: nope\nupstreams:\n  u:\n    url: http://127.0.0.1:1\n    retry: { maxRetries: 11, backof: {} }\n`);
    const r = run(['validate', f]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.yaml:5:\d+: listeners\[0\]\.upstream/);
    assert.match(r.stderr, /upstreams\.u\.retry\.maxRetries/);
    assert.match(r.stderr, /upstreams\.u\.retry\.backof/);
  });

  it('validate exits 2 on an unreadable file', () => {
    const r = run(['validate', path.join(dir, 'missing.yaml')]);
    assert.equal(r.status, 2);
  });

  it('refuses to start on an invalid config with exit code 2', () => {
    const f = path.join(dir, 'bad2.yaml');
    writeFileSync(f, 'version: 1\nlisteners: []\nupstreams: {}\nbogus: 1\n');
    const r = run(['--config', f]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bogus/);
  });

  it('exits 2 with a readable message when a listener cannot bind', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const f = path.join(dir, 'busy.yaml');
    writeFileSync(f, `version: 1\nadmin: { address: 127.0.0.1:0 }\nlisteners:\n  - { name: a, address: 127.0.0.1:${port}, upstream: u }\nupstreams:\n  u: { url: "${up.origin}" }\n`);
    const r = run(['--config', f]);
    await new Promise((res) => blocker.close(res));
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(r.stderr, /already in use/);
  });

  it('proxies, reloads on SIGHUP, drains on SIGTERM and exits 0', async () => {
    const port = await freePort();
    const admin = await freePort();
    const f = path.join(dir, 'run.yaml');
    const config = (prefix: string) =>
      `version: 1\nadmin: { address: 127.0.0.1:${admin} }\nlisteners:\n  - name: a\n    address: 127.0.0.1:${port}\n    routes:\n      - { match: { pathPrefix: ${prefix} }, upstream: u }\nupstreams:\n  u: { url: "${up.origin}" }\n`;
    writeFileSync(f, config('/old'));
    const child = spawn(process.execPath, [cli, '--config', f], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor(async () => (await request(`http://127.0.0.1:${admin}/readyz`)).status === 200);
      assert.equal((await request(`http://127.0.0.1:${port}/old/x`)).body, 'from upstream');
      assert.equal((await request(`http://127.0.0.1:${port}/new/x`)).status, 404);
      writeFileSync(f, config('/new'));
      child.kill('SIGHUP');
      await waitFor(async () => (await request(`http://127.0.0.1:${port}/new/x`)).status === 200);
      assert.equal((await request(`http://127.0.0.1:${port}/old/x`)).status, 404);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
    assert.match(out, /"msg":"start"/);
    assert.match(out, /"msg":"reload"/);
    assert.match(out, /"msg":"drain_complete"/);
  });
  it('writes the access line of a lone request to stdout within moments, not when a buffer fills', async () => {
    const port = await freePort();
    const admin = await freePort();
    const f = path.join(dir, 'quiet.yaml');
    writeFileSync(f, `version: 1\nadmin: { address: 127.0.0.1:${admin} }\nlisteners:\n  - name: a\n    address: 127.0.0.1:${port}\n    upstream: u\nupstreams:\n  u: { url: "${up.origin}" }\n`);
    const child = spawn(process.execPath, [cli, '--config', f], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const lines = (): { msg: string; path?: string }[] => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { msg: string; path?: string });
    try {
      await waitFor(async () => (await request(`http://127.0.0.1:${admin}/readyz`)).status === 200);
      assert.equal((await request(`http://127.0.0.1:${port}/lone`)).status, 200);
      // One ~400-byte line is far below any write buffer: it must still arrive while the process runs.
      await waitFor(async () => lines().some((l) => l.msg === 'request' && l.path === '/lone'), 5_000);
      // A burst arrives whole, one JSON object per line, in the order the requests finished.
      for (let i = 0; i < 200; i++) assert.equal((await request(`http://127.0.0.1:${port}/burst/${i}`)).status, 200);
      await waitFor(async () => lines().filter((l) => l.path?.startsWith('/burst/')).length === 200, 5_000);
      assert.deepEqual(
        lines().filter((l) => l.path?.startsWith('/burst/')).map((l) => l.path),
        Array.from({ length: 200 }, (_, i) => `/burst/${i}`),
      );
      assert.ok(child.exitCode === null, 'the process is still running');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
  });
});
