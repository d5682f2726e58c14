/**
 * The audit log and the admin token with the built CLI as a child process
 * (dist/cli.js; run `npm run build` first): a SIGHUP reload and a file-watch
 * reload are one `config_change` line each, with the right source and hashes;
 * the token never appears on stdout or stderr; an admin address off loopback
 * without a token stops the start with exit 2 and a message naming the file,
 * line, column and key.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from '../helpers/http.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { freePort, sleep, waitFor } from '../helpers/wait.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'cli.js');
const TOKEN = 'e2e-token-7c1f9a3e5b8d2f4a6c0e';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Line {
  msg: string;
  audit?: boolean;
  [k: string]: unknown;
}

describe('the CLI writes audit lines and keeps the admin token secret', () => {
  let dir: string;
  let up: Upstream;
  const children: ChildProcess[] = [];

  before(async () => {
    assert.ok(existsSync(cli), `${cli} exists (run npm run build)`);
    dir = mkdtempSync(path.join(tmpdir(), 'bw-audit-'));
    up = await startUpstream({ status: 200, body: 'ok' });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function spawnCli(file: string, env: Record<string, string>) {
    const child = spawn(process.execPath, [cli, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return {
      child,
      exited,
      out: () => stdout + stderr,
      audits: (): Line[] =>
        stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Line)
          .filter((l) => l.audit === true),
    };
  }

  const config = (admin: number, port: number, prefix: string) =>
    `version: 1\nadmin:\n  address: 127.0.0.1:${admin}\n  token: \${BW_ADMIN_TOKEN}\nlisteners:\n  - name: main\n    address: 127.0.0.1:${port}\n    routes:\n      - { name: r, match: { pathPrefix: ${prefix} }, upstream: u }\nupstreams:\n  u: { url: "${up.origin}" }\n`;

  it('SIGHUP and the file watch each give one config_change line; the token is never printed', async () => {
    const [port, admin] = [await freePort(), await freePort()];
    const d = mkdtempSync(path.join(dir, 'run-'));
    const file = path.join(d, 'breakwater.yaml');
    const v1 = config(admin, port, '/v1/');
    writeFileSync(file, v1);
    const bw = spawnCli(file, { BW_ADMIN_TOKEN: TOKEN });
    try {
      await waitFor('readiness', async () => (await request(`http://127.0.0.1:${admin}/readyz`)).status === 200, 15_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${bw.out()}`);
      });
      await waitFor('the start line', () => bw.audits().length >= 1, 5_000);
      assert.deepEqual(
        bw.audits().map((l) => [l.msg, l.source, l.newHash]),
        [['config_change', 'start', sha256(v1)]],
      );

      // SIGHUP with the file unchanged: one line, result unchanged.
      bw.child.kill('SIGHUP');
      await waitFor('the SIGHUP line', () => bw.audits().length >= 2, 5_000);
      // An edit seen by the watch: one line, result success, old and new hash.
      await sleep(300);
      const v2 = config(admin, port, '/v2/');
      writeFileSync(`${file}.tmp`, v2);
      renameSync(`${file}.tmp`, file);
      await waitFor('the new route', async () => (await request(`http://127.0.0.1:${port}/v2/x`)).status === 200, 5_000);
      // Time for the watcher's stat poll (2s) to see the same change and find it unchanged.
      await sleep(2_800);
      // A refused admin call and an audited one, for the token check.
      assert.equal((await request(`http://127.0.0.1:${admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer wrong-token-000000000000' } })).status, 401);
      await waitFor('the 401 line', () => bw.audits().length >= 4, 5_000);
      await sleep(200);
      const lines = bw.audits();
      assert.deepEqual(
        lines.map((l) => [l.msg, l.source ?? null, l.result ?? null, l.oldHash ?? null, l.newHash ?? null]),
        [
          ['config_change', 'start', 'success', null, sha256(v1)],
          ['config_change', 'SIGHUP', 'unchanged', sha256(v1), sha256(v1)],
          ['config_change', 'watch', 'success', sha256(v1), sha256(v2)],
          ['admin_unauthorized', null, null, null, null],
        ],
        bw.out(),
      );
      assert.deepEqual((lines[2]!.changes as { routes: unknown }).routes, { added: [], removed: [], changed: ['r'] });
    } finally {
      bw.child.kill('SIGTERM');
      assert.equal(await bw.exited, 0, bw.out());
    }
    assert.ok(!bw.out().includes(TOKEN), 'the token is on neither stdout nor stderr');
  });

  it('refuses to start with the admin API off loopback and no token: exit 2, file:line:col and the key', async () => {
    const file = path.join(dir, 'open-admin.yaml');
    writeFileSync(file, `version: 1\nadmin:\n  address: 0.0.0.0:${await freePort()}\nlisteners:\n  - { name: l, address: 127.0.0.1:${await freePort()}, upstream: u }\nupstreams:\n  u: { url: "${up.origin}" }\n`);
    const bw = spawnCli(file, {});
    assert.equal(await bw.exited, 2);
    assert.match(bw.out(), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:12: admin\\.address: .*needs admin\\.token`));
    assert.match(bw.out(), /not starting/);
  });

  it('refuses to start when audit.file cannot be opened: exit 2, naming the file and the key', async () => {
    const file = path.join(dir, 'bad-audit.yaml');
    writeFileSync(file, `version: 1\naudit: { file: no-such-dir/audit.log }\nlisteners:\n  - { name: l, address: 127.0.0.1:${await freePort()}, upstream: u }\nupstreams:\n  u: { url: "${up.origin}" }\n`);
    const bw = spawnCli(file, {});
    assert.equal(await bw.exited, 2, bw.out());
    assert.match(bw.out(), /breakwater: cannot open the audit file .*no-such-dir\/audit\.log \(audit\.file\): its directory does not exist/);
  });

  it('breakwater validate says where the token comes from and never prints it', async () => {
    const file = path.join(dir, 'validate.yaml');
    writeFileSync(file, config(9901, 15001, '/v/'));
    const child = spawn(process.execPath, [cli, 'validate', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BW_ADMIN_TOKEN: TOKEN } });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0, out);
    assert.match(out, /token set \(from \$BW_ADMIN_TOKEN\)/);
    assert.ok(!out.includes(TOKEN));
  });
});
