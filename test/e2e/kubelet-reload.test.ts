/**
 * The CLI's config watcher (SPEC §7) against the layouts it meets in the wild,
 * with the built CLI as a child process (dist/cli.js):
 * - a Kubernetes ConfigMap volume exactly as the kubelet writes it: a
 *   timestamped folder, a `..data` symlink to it, `breakwater.yaml` →
 *   `..data/breakwater.yaml`; an update writes a new folder and swaps `..data`
 *   atomically (symlink `..data_tmp`, rename over `..data`), then deletes the
 *   old folder;
 * - an editor's save: write a temp file, rename it over the config.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { json, request } from '../helpers/http.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor, freePort } from '../helpers/wait.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'cli.js');

/** What the kubelet's atomic writer does for one update of a ConfigMap volume. */
class ConfigMapVolume {
  readonly dir: string;
  #current: string | null = null;
  #n = 0;
  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }
  /** First call: creates the layout. Later calls: a new folder, `..data` swapped atomically, the old folder removed. */
  publish(content: string): void {
    const ts = `..2026_11_23_10_${String(this.#n).padStart(2, '0')}_00.00000000${++this.#n}`;
    mkdirSync(path.join(this.dir, ts));
    writeFileSync(path.join(this.dir, ts, 'breakwater.yaml'), content);
    if (this.#current === null) {
      symlinkSync(ts, path.join(this.dir, '..data'));
      symlinkSync('..data/breakwater.yaml', path.join(this.dir, 'breakwater.yaml'));
    } else {
      symlinkSync(ts, path.join(this.dir, '..data_tmp'));
      renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
      rmSync(path.join(this.dir, this.#current), { recursive: true, force: true });
    }
    this.#current = ts;
  }
  get file(): string {
    return path.join(this.dir, 'breakwater.yaml');
  }
}

describe('the CLI follows its config file on disk', () => {
  let dir: string;
  let up: Upstream;
  const children: ChildProcess[] = [];

  before(async () => {
    assert.ok(existsSync(cli), `${cli} exists (run npm run build)`);
    dir = mkdtempSync(path.join(tmpdir(), 'bw-kubelet-'));
    up = await startUpstream({ status: 200, body: 'from upstream' });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(file: string, port: number, admin: number) {
    const child = spawn(process.execPath, [cli, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor('readiness', async () => (await request(`http://127.0.0.1:${admin}/readyz`)).status === 200, 15_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${out}`);
    });
    return {
      out: () => out,
      async stop(): Promise<number | null> {
        child.kill('SIGTERM');
        return exited;
      },
      status: (p: string) => request(`http://127.0.0.1:${port}${p}`).then((r) => r.status),
    };
  }

  const config = (admin: number, port: number, prefix: string) =>
    `version: 1\nadmin: { address: 127.0.0.1:${admin} }\nlisteners:\n  - name: main\n    address: 127.0.0.1:${port}\n    routes:\n      - { match: { pathPrefix: ${prefix} }, upstream: u }\nupstreams:\n  u: { url: "${up.origin}" }\n`;

  it('reloads when the kubelet swaps the ..data symlink of a ConfigMap volume', async (t) => {
    const [port, admin] = [await freePort(), await freePort()];
    const vol = new ConfigMapVolume(path.join(dir, 'configmap'));
    vol.publish(config(admin, port, '/v1/'));
    const bw = await start(vol.file, port, admin);
    try {
      assert.equal(await bw.status('/v1/x'), 200);
      assert.equal(await bw.status('/v2/x'), 404);
      await sleep(100);

      vol.publish(config(admin, port, '/v2/'));
      const took = await waitFor('the new route answers', async () => (await bw.status('/v2/x')) === 200, 5000);
      assert.ok(took < 5000, `new route after ${took}ms`);
      t.diagnostic(`new route answered ${took}ms after the ..data swap`);
      assert.equal(await bw.status('/v1/x'), 404);
      const cfg = json(await request(`http://127.0.0.1:${admin}/config`));
      assert.equal(cfg.lastReload?.ok, true);

      // An invalid update keeps the running config; the next valid one is picked up.
      vol.publish(config(admin, port, '/v3/').replace('upstream: u', 'upstream: missing'));
      await waitFor('the failed reload is reported', async () => json(await request(`http://127.0.0.1:${admin}/config`)).lastReload?.ok === false, 5000);
      assert.equal(await bw.status('/v2/x'), 200, 'the old config keeps serving');
      vol.publish(config(admin, port, '/v4/'));
      await waitFor('the next valid update answers', async () => (await bw.status('/v4/x')) === 200, 5000);
      assert.match(bw.out(), /"msg":"reload"/);
      assert.match(bw.out(), /"msg":"reload_failed"/);
    } finally {
      assert.equal(await bw.stop(), 0, bw.out());
    }
  });

  it('reloads after an editor-style save (temp file renamed over the config)', async (t) => {
    const [port, admin] = [await freePort(), await freePort()];
    const d = path.join(dir, 'editor');
    mkdirSync(d);
    const file = path.join(d, 'breakwater.yaml');
    writeFileSync(file, config(admin, port, '/v1/'));
    const bw = await start(file, port, admin);
    try {
      assert.equal(await bw.status('/v2/x'), 404);
      await sleep(100);
      writeFileSync(path.join(d, '.breakwater.yaml.swp'), config(admin, port, '/v2/'));
      renameSync(path.join(d, '.breakwater.yaml.swp'), file);
      const took = await waitFor('the new route answers', async () => (await bw.status('/v2/x')) === 200, 5000);
      assert.ok(took < 5000, `new route after ${took}ms`);
      t.diagnostic(`new route answered ${took}ms after the rename`);
      assert.equal(await bw.status('/v1/x'), 404);
    } finally {
      assert.equal(await bw.stop(), 0, bw.out());
    }
  });
});
