/**
 * `breakwater top` and `breakwater tap` as child processes, for what a
 * terminal is not needed for: usage errors, an unreachable or refusing admin
 * API, and the bearer token (test/interop/live-views.interop.ts drives them
 * in a real terminal).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from '../helpers/http.ts';
import { startProxy } from '../helpers/proxy.ts';
import { refusedPort, startUpstream } from '../helpers/upstream.ts';
import { waitFor } from '../helpers/wait.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'cli.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });

describe('breakwater top / tap without a terminal', () => {
  it('are in --help, and refuse bad arguments with exit 2', () => {
    assert.match(run(['--help']).stdout, /breakwater top \[--admin HOST:PORT\][\s\S]*breakwater tap \[--admin HOST:PORT\]/);
    for (const args of [['top', '--interval', '5ms'], ['top', '--bogus'], ['tap', '--route'], ['tap', '--admin', 'nohost']]) {
      const r = run(args);
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr, /^breakwater (top|tap): /);
    }
  });

  it('an unreachable admin API is said at once, exit 1', async () => {
    const port = await refusedPort();
    for (const cmd of ['top', 'tap']) {
      const r = run([cmd, '--admin', `127.0.0.1:${port}`]);
      assert.equal(r.status, 1, cmd);
      assert.match(r.stderr, new RegExp(`admin API at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    }
  });

  it('send $BREAKWATER_ADMIN_TOKEN as a bearer token, and show the server’s refusal', async () => {
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":"unauthorized","message":"a valid admin token is required"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const cmd of ['top', 'tap']) {
        const child = spawn(process.execPath, [cli, cmd, '--admin', `127.0.0.1:${port}`], { env: { ...process.env, BREAKWATER_ADMIN_TOKEN: 's3cret' } });
        let err = '';
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        const code = await new Promise<number | null>((r) => child.once('exit', r));
        assert.equal(code, 1, cmd);
        assert.match(err, /401.*a valid admin token is required/);
        assert.doesNotMatch(err, /s3cret/, 'the token is never printed');
      }
      assert.deepEqual(seen, ['Bearer s3cret', 'Bearer s3cret']);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('tap whose stdout is not read pushes back: the server drops it, and it says so once its output moves again', async () => {
    const up = await startUpstream({ status: 200 });
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners: [{ name: main, address: 127.0.0.1:0, upstream: u }]
upstreams: { u: { url: "${up.origin}" } }
`);
    const child = spawn(process.execPath, [cli, 'tap', '--admin', px.adminUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      child.stdout.pause(); // nobody reads what tap prints
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      await waitFor('tap subscribed', () => px.proxy.tap.subscribers === 1, 10_000);
      const pad = 'p'.repeat(4000);
      let sent = 0;
      while (px.proxy.tap.dropped === 0 && sent < 20_000) {
        await Promise.all(Array.from({ length: 20 }, () => request(`${px.url('main')}/${pad}`)));
        sent += 20;
      }
      assert.equal(px.proxy.tap.dropped, 1, `the server dropped the tap after ${sent} requests`);
      child.stdout.resume(); // the reader is back: tap prints what it had, then learns it was dropped
      assert.equal(await exited, 1);
      assert.match(err, /the server dropped this stream: reading too slowly/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await px.close();
      await up.close();
    }
  });

  it('top piped: a plain block per interval; an admin API gone away is said on stderr and retried; SIGINT exits 0', async () => {
    const up = await startUpstream({ status: 200 });
    const px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners: [{ name: main, address: 127.0.0.1:0, upstream: u }]
upstreams: { u: { url: "${up.origin}" } }
`);
    let closed = false;
    let child: ReturnType<typeof spawn> | null = null;
    try {
      await request(`${px.url('main')}/`);
      child = spawn(process.execPath, [cli, 'top', '--admin', px.adminUrl, '--interval', '300ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      const exited = new Promise<number | null>((r) => child!.once('exit', r));
      await waitFor('two blocks', () => (out.match(/^breakwater top — /gm) ?? []).length >= 2, 10_000);
      assert.doesNotMatch(out, /\x1b/);
      assert.match(out, /^\S+\s+u\s+[\d.]+\s+(100%|-)/m, out);
      await px.close();
      closed = true;
      await waitFor('the failure said', () => /breakwater top: admin API at 127\.0\.0\.1:\d+: /.test(err), 10_000);
      child.kill('SIGINT');
      assert.equal(await exited, 0);
    } finally {
      if (child !== null && child.exitCode === null) child.kill('SIGKILL');
      if (!closed) await px.close();
      await up.close();
    }
  });
});
