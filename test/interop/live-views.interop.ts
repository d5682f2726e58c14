/**
 * `breakwater top` and `breakwater tap` as a person uses them: in a real
 * terminal (tmux, Debian's package, 120x30), against breakwater running as a
 * child process. Keys are sent, the pane is captured, and the assertions are
 * on what the screen shows: the table rows, the tap lines, and a terminal
 * given back as it was (main screen, cursor visible) after `q` / Ctrl-C.
 * The non-terminal modes (plain blocks, raw NDJSON) run as plain children.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { PEERS, ROOT, cleanEnv, requirePeers, run, skipUnless, startCli, type Cli } from './lib.ts';

const CLI = path.join(ROOT, 'dist', 'cli.js');

const config = (up: Upstream) => `
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { pathPrefix: /api }, upstream: users }
      - { name: web, match: { pathPrefix: / }, upstream: web }
upstreams:
  users:
    url: ${up.origin}
    retry: { maxRetries: 1, backoff: { strategy: immediate } }
    bulkhead: { maxConcurrent: 20, maxQueue: 5 }
  web:
    url: ${up.origin}
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 3, failureRate: null, openDuration: 60s }
`;

/** A private tmux server (its own socket), so nothing here touches a user's sessions. */
class Tmux {
  readonly #dir = mkdtempSync(path.join(tmpdir(), 'bw-tmux-'));
  readonly #sock = path.join(this.#dir, 'sock');

  async cmd(...args: string[]): Promise<string> {
    const r = await run('tmux', ['-S', this.#sock, '-f', '/dev/null', ...args], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`tmux ${args[0]} failed: ${r.stderr}`);
    return r.stdout;
  }

  /** A detached 120x30 window running `shell` under bash (which goes on after a child that handled Ctrl-C). */
  async open(name: string, shell: string): Promise<void> {
    await this.cmd('new-session', '-d', '-s', name, '-x', '120', '-y', '30', 'bash', '--norc', '-c', shell);
  }

  /** What a person sees in the window now (`joined`: lines the terminal wrapped are joined back). */
  capture(name: string, joined = false): Promise<string> {
    return this.cmd('capture-pane', '-p', ...(joined ? ['-J'] : []), '-t', `${name}:`);
  }

  async flag(name: string, f: string): Promise<string> {
    return (await this.cmd('display-message', '-p', '-t', `${name}:`, `#{${f}}`)).trim();
  }

  async waitScreen(name: string, what: string, test: (screen: string) => boolean, ms = 20_000, joined = false): Promise<string> {
    let screen = '';
    try {
      await waitFor(what, async () => test((screen = await this.capture(name, joined))), ms);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${screen}`);
    }
    return screen;
  }

  async close(): Promise<void> {
    await run('tmux', ['-S', this.#sock, 'kill-server'], { timeoutMs: 10_000 }).catch(() => undefined);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('breakwater top and tap in a real terminal (tmux)', { skip: skipUnless(PEERS.tmux) }, () => {
  let up: Upstream;
  let bw: Cli;
  let tmux: Tmux;
  let admin: string;
  let traffic: NodeJS.Timeout | null = null;

  before(async () => {
    requirePeers(PEERS.tmux);
    up = await startUpstream((req) => ({ status: req.url.includes('fail') ? 503 : 200, body: 'ok', delayMs: req.url.includes('slow') ? 30 : 0 }));
    bw = await startCli(config(up));
    admin = bw.adminUrl.replace('http://', '');
    tmux = new Tmux();
  });

  after(async () => {
    if (traffic !== null) clearInterval(traffic);
    await tmux?.close();
    await bw?.close();
    await up?.close();
  });

  /** Steady traffic: api (fast and slow, all 200) at ~40/s, web failing (its breaker opens) at ~10/s. */
  function startTraffic(): void {
    let i = 0;
    traffic = setInterval(() => {
      i++;
      void request(`${bw.url('main')}/api/${i % 2 === 0 ? 'slow' : 'ok'}`).catch(() => undefined);
      if (i % 4 === 0) void request(`${bw.url('main')}/web/fail`).catch(() => undefined);
    }, 25);
  }

  it('top: a live table sorted by traffic, breaker and bulkhead state; q gives the terminal back', async () => {
    startTraffic();
    await tmux.open('top', `${q(process.execPath)} ${q(CLI)} top --admin ${admin} --interval 500ms; echo "top exited $?"; exec sleep 120`);
    const screen = await tmux.waitScreen('top', 'the table with both routes and the open breaker', (s) => /^api\s+users\s+\d/m.test(s) && /^web\s+open\s/m.test(s));
    assert.equal(await tmux.flag('top', 'alternate_on'), '1', 'top draws on the alternate screen');
    assert.equal(await tmux.flag('top', 'cursor_flag'), '0', 'the cursor is hidden while it draws');
    const lines = screen.split('\n');
    assert.match(lines[0]!, new RegExp(`^breakwater top — ${admin.replace(/\./g, '\\.')} — .* UTC — every 0\\.5s — q to quit`));
    const head = lines.findIndex((l) => /^ROUTE\s+UPSTREAM\s+REQ\/S\s+OK%\s+P50\s+P99\s+RETRY\/S\s+REJECT\/S$/.test(l));
    assert.ok(head >= 0, screen);
    assert.match(lines[head + 1]!, /^api\s+users\s+[\d.]+\s+100%\s+[\d.]+m?s\s+[\d.]+m?s/, 'api first: the busiest route, every answer a success');
    assert.match(lines[head + 2]!, /^web\s+web\s+[\d.]+\s+0\.0%/, 'web second, every answer a 503');
    assert.match(screen, /^UPSTREAM\s+CIRCUIT\s+ATTEMPT\/S\s+OK%\s+P99\s+BULKHEAD\s+RETRY\/S\s+REJECTED\/S$/m);
    assert.match(screen, /^users\s+-\s+[\d.]+\s+100%\s+\S+\s+\d+ \+\d+q/m, 'users: no breaker, its bulkhead in use');
    assert.match(screen, /^web\s+open\s+.*circuit_open [\d.]+$/m, 'web: breaker open, rejections by reason');
    assert.ok(lines.every((l) => l.length <= 120));

    await tmux.cmd('send-keys', '-t', 'top:', 'q');
    const after = await tmux.waitScreen('top', 'top exited', (s) => s.includes('top exited'));
    assert.match(after, /top exited 0/);
    assert.doesNotMatch(after, /ROUTE|UPSTREAM/, 'the table went away with the alternate screen');
    assert.equal(await tmux.flag('top', 'alternate_on'), '0', 'back on the main screen');
    assert.equal(await tmux.flag('top', 'cursor_flag'), '1', 'the cursor is visible again');
    // A resize redraws, Ctrl-C quits just as q does.
    await tmux.open('top2', `${q(process.execPath)} ${q(CLI)} top --admin ${admin} --interval 500ms; echo "top exited $?"; exec sleep 120`);
    await tmux.waitScreen('top2', 'table', (s) => /^api\s+users/m.test(s));
    await tmux.cmd('resize-window', '-t', 'top2:', '-x', '60', '-y', '20');
    await tmux.waitScreen('top2', 'redrawn at 60 columns', (s) => s.split('\n').every((l) => l.length <= 60) && /^api\s+users/m.test(s));
    await tmux.cmd('send-keys', '-t', 'top2:', 'C-c');
    await tmux.waitScreen('top2', 'top exited', (s) => /top exited 0/.test(s));
    assert.equal(await tmux.flag('top2', 'alternate_on'), '0');
  });

  it('tap --status 5xx: one readable line per failing request, nothing else; Ctrl-C ends it cleanly', async () => {
    if (traffic !== null) clearInterval(traffic);
    traffic = null;
    await tmux.open('tap', `${q(process.execPath)} ${q(CLI)} tap --admin ${admin} --status 5xx; echo "tap exited $?"; exec sleep 120`);
    await tmux.waitScreen('tap', 'tapping banner', (s) => s.includes(`tapping ${admin} (status=5xx)`));
    for (const p of ['/api/ok', '/api/fail', '/api/ok', '/web/other']) await request(`${bw.url('main')}${p}`);
    const screen = await tmux.waitScreen('tap', 'two failing requests', (s) => s.includes('/api/fail') && s.includes('/web/other'), 20_000, true);
    const lines = screen.split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d{3} /.test(l));
    assert.equal(lines.length, 2, screen);
    assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} GET\s+503\s+[\d.]+ms\s+\/api\/fail\s+api → users 127\.0\.0\.1:\d+ tries=2 \[retried,retries_exhausted\]/);
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{3} GET\s+503\s+[\d.]+ms\s+\/web\/other\s+web → web .*\[circuit_open\] circuit_open/);
    assert.doesNotMatch(screen, /\/api\/ok/);
    await tmux.cmd('send-keys', '-t', 'tap:', 'C-c');
    await tmux.waitScreen('tap', 'tap exited', (s) => /tap exited 0/.test(s));
  });

  it('without a terminal: top prints plain blocks, tap raw NDJSON that ends when breakwater stops', async () => {
    startTraffic();
    const top = await run(process.execPath, [CLI, 'top', '--admin', admin, '--interval', '500ms', '--once']);
    assert.equal(top.code, 0, top.stderr);
    assert.doesNotMatch(top.stdout, /\x1b/, 'no escape sequences in a pipe');
    assert.match(top.stdout, /^breakwater top — .* UTC — every 0\.5s\n\nROUTE/);
    assert.match(top.stdout, /^api\s+users\s+[\d.]+\s+100%/m);
    if (traffic !== null) clearInterval(traffic);
    traffic = null;
    await sleep(200);

    const tap = spawn(process.execPath, [CLI, 'tap', '--admin', admin, '--route', 'api'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    tap.stdout.on('data', (c: Buffer) => (out += c.toString()));
    tap.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => tap.once('exit', (code) => r(code)));
    try {
      await sleep(500);
      for (const p of ['/api/a', '/web/b', '/api/c']) await request(`${bw.url('main')}${p}`);
      await waitFor('two api lines', () => out.split('\n').filter((l) => l !== '').length === 2, 10_000);
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(lines.map((l) => [l['route'], l['path'], l['msg']]), [['api', '/api/a', 'request'], ['api', '/api/c', 'request']]);
      await bw.close();
      assert.equal(await exited, 0, err);
      assert.match(err, /the server ended the stream \(shutdown\)/);
    } finally {
      if (tap.exitCode === null && tap.signalCode === null) tap.kill('SIGKILL');
    }
  });
});
