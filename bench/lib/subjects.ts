/**
 * What the bench measures: the target itself ("direct"), breakwater in three
 * configurations, two small Node proxies as baselines, and nginx / haproxy as
 * reference proxies when installed. Each subject starts a fresh process per
 * measurement, pinned to core 1, and is stopped after it.
 */
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { allPoliciesConfig, cacheConfig, plainConfig, type Ports } from './breakwater-config.ts';
import { findExecutable, spawnChild, stopChild, waitUntilServing, type Child, type Probe } from './procs.ts';
import { progress } from './report.ts';
import type { Settings } from './settings.ts';

/** The body size bench/target.ts (and the nginx target) answers with. */
export const BODY_BYTES = 128;

export interface Running {
  readonly url: string;
  /** The process whose CPU and memory are measured; null for "direct". */
  readonly pid: number | null;
  stop(): Promise<void>;
}

export interface Subject {
  readonly id: string;
  readonly label: string;
  start(): Promise<Running>;
}

/** A subject that did not come up; `message` is the whole note to print. */
export class SkipError extends Error {}

export interface BenchContext {
  readonly settings: Settings;
  readonly tmp: string;
  readonly targetUrl: string;
}

export function ports(ctx: BenchContext): Ports {
  const s = ctx.settings;
  return { proxyPort: s.proxyPort, adminPort: s.adminPort, targetUrl: ctx.targetUrl, connections: s.connections };
}

interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
  readonly stdoutFile?: string;
  readonly guardStdin?: boolean;
  readonly core: 0 | 1;
  readonly probe: Probe;
  readonly readyTimeoutMs?: number;
  /** Printed (with the child's stderr) when it does not serve. */
  readonly skipNote: string;
}

/** Start a process and wait until it answers the probe; SkipError if it does not. */
export async function startServing(spec: ProcessSpec): Promise<Child> {
  const fd = spec.stdoutFile === undefined ? undefined : openSync(spec.stdoutFile, 'w');
  let child: Child;
  try {
    child = spawnChild(spec.name, spec.command, spec.args, {
      core: spec.core,
      stdout: fd ?? 'ignore',
      ...(spec.env && { env: spec.env }),
      ...(spec.guardStdin === true && { guardStdin: true }),
    });
  } finally {
    if (fd !== undefined) closeSync(fd); // the child holds its own copy
  }
  if (await waitUntilServing(spec.probe, child, spec.readyTimeoutMs)) return child;
  await stopChild(child);
  const excerpt = errorExcerpt(child.stderrTail());
  throw new SkipError(excerpt.length === 0 ? spec.skipNote : `${spec.skipNote}\n    ${excerpt.join('\n    ')}`);
}

/** A few lines of stderr, starting at the first that looks like the error. */
function errorExcerpt(stderr: string): string[] {
  if (stderr === '') return [];
  const lines = stderr.split('\n');
  const first = lines.findIndex((l) => /error|alert|emerg/i.test(l));
  return first === -1 ? lines.slice(-6) : lines.slice(first, first + 6);
}

function running(url: string, child: Child): Running {
  return { url, pid: child.pid, stop: () => stopChild(child) };
}

function proxyUrl(s: Settings): string {
  return `http://127.0.0.1:${s.proxyPort}/`;
}

function node(ctx: BenchContext, id: string, label: string, script: string, env: Record<string, string> = {}): Subject {
  const s = ctx.settings;
  return {
    id,
    label,
    async start() {
      const child = await startServing({
        name: id,
        command: process.execPath,
        args: [join(s.benchDir, script)],
        env: {
          BENCH_CHILD: '1',
          LISTEN_PORT: String(s.proxyPort),
          UPSTREAM: ctx.targetUrl,
          CONNECTIONS: String(s.connections),
          ...env,
        },
        guardStdin: true,
        core: 1,
        probe: { url: proxyUrl(s), bodyBytes: BODY_BYTES },
        skipNote: `${label}: did not start — skipped`,
      });
      return running(proxyUrl(s), child);
    },
  };
}

export const UNDICI_LABEL = 'node:http + undici Pool.stream (baseline)';

/** The minimal undici proxy (baselines/undici-proxy.ts); `env` reaches only it (e.g. NODE_OPTIONS for a profile). */
export function undiciBaseline(ctx: BenchContext, env: Record<string, string> = {}): Subject {
  return node(ctx, 'undici', UNDICI_LABEL, 'baselines/undici-proxy.ts', env);
}

export const BREAKWATER_SKIP = 'breakwater: dist/cli.js not built or not proxying — skipped';

/**
 * The memory settings the container image runs breakwater with: NODE_OPTIONS,
 * the allocator (LD_PRELOAD) and its MALLOC_* settings from the Dockerfile's
 * ENV instructions, so the bench measures what ships rather than a copy of
 * it. Empty if there is no Dockerfile.
 */
export function shippedEnv(dockerfile: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(dockerfile, 'utf8');
  } catch {
    return {};
  }
  const env: Record<string, string> = {};
  // Instructions with their line continuations joined; comment lines dropped.
  const instructions = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ').split('\n');
  for (const line of instructions) {
    const m = /^\s*ENV\s+(.*)$/i.exec(line);
    if (m === null) continue;
    for (const kv of m[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) {
      const key = kv[1]!;
      if (key === 'NODE_OPTIONS' || key === 'LD_PRELOAD' || key.startsWith('MALLOC_')) env[key] = kv[3] ?? kv[2]!;
    }
  }
  return env;
}

/**
 * The image's LD_PRELOAD names a library by its path in the image; on this
 * machine the same library is looked for there, then in Debian's directory
 * for this architecture. Without it the row runs on glibc's malloc, and
 * `note` says so (apt-get install libjemalloc2, or BENCH_INSTALL=1).
 */
export function onThisMachine(env: Record<string, string>, exists: (path: string) => boolean = existsSync): { env: Record<string, string>; note: string | null } {
  const preload = env['LD_PRELOAD'];
  if (preload === undefined || exists(preload)) return { env, note: null };
  const multiarch = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const local = `/usr/lib/${multiarch}/${basename(preload)}`;
  if (exists(local)) return { env: { ...env, LD_PRELOAD: local }, note: null };
  const { LD_PRELOAD: _, ...rest } = env;
  return { env: rest, note: `as shipped: ${basename(preload)} is not installed here (apt-get install libjemalloc2, or BENCH_INSTALL=1 as root): that row runs on glibc's malloc` };
}

/** breakwater as a child process with the given config text (written to the temp dir). */
export function breakwater(
  ctx: BenchContext,
  id: string,
  label: string,
  config: string,
  opts: { accessLogFile?: string; probeHeaders?: Record<string, string>; readyTimeoutMs?: number; env?: Record<string, string> } = {},
): Subject {
  const s = ctx.settings;
  return {
    id,
    label,
    async start() {
      const file = join(ctx.tmp, `${id}.yaml`);
      writeFileSync(file, config);
      const child = await startServing({
        name: id,
        command: process.execPath,
        args: [s.breakwaterCli, '--config', file],
        ...(opts.env && { env: opts.env }),
        ...(opts.accessLogFile !== undefined && { stdoutFile: opts.accessLogFile }),
        core: 1,
        probe: { url: proxyUrl(s), bodyBytes: BODY_BYTES, ...(opts.probeHeaders && { headers: opts.probeHeaders }) },
        readyTimeoutMs: opts.readyTimeoutMs ?? 10_000,
        skipNote: `${BREAKWATER_SKIP} (${label})`,
      });
      return running(proxyUrl(s), child);
    },
  };
}

// --- the upstream -----------------------------------------------------------

const NGINX_TUNING = 'keepalive_requests 1000000; keepalive_timeout 65s;';

function nginxConf(dir: string, server: string): string {
  return `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  ${NGINX_TUNING}
${server}
}
`;
}

function nginxArgs(dir: string, conf: string): string[] {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
}

/** Start the upstream (pinned to core 0, beside the load generator). */
export async function startTarget(s: Settings, tmp: string, nginxBin: string | null): Promise<Running & { label: string }> {
  const url = `http://127.0.0.1:${s.targetPort}/`;
  const probe = { url, bodyBytes: BODY_BYTES };
  if (s.target === 'nginx') {
    if (nginxBin === null) throw new Error('TARGET=nginx but nginx is not installed (apt-get install -y nginx-light)');
    const dir = join(tmp, 'nginx-target');
    const server = `  server {
    listen 127.0.0.1:${s.targetPort};
    location / { default_type text/plain; return 200 "${'x'.repeat(BODY_BYTES)}"; }
  }`;
    const child = await startServing({
      name: 'target',
      command: nginxBin,
      args: nginxArgs(dir, nginxConf(dir, server)),
      core: 0,
      probe,
      skipNote: 'target (nginx) did not start',
    });
    return { ...running(url, child), label: `nginx ${versionOf(nginxBin)}` };
  }
  const child = await startServing({
    name: 'target',
    command: process.execPath,
    args: [join(s.benchDir, 'target.ts')],
    env: { BENCH_CHILD: '1', TARGET_PORT: String(s.targetPort) },
    guardStdin: true,
    core: 0,
    probe,
    skipNote: 'target (bench/target.ts) did not start',
  });
  return { ...running(url, child), label: 'node:http (bench/target.ts)' };
}

// --- reference proxies ------------------------------------------------------

export interface References {
  readonly nginx: string | null;
  readonly haproxy: string | null;
  /** Why a reference proxy is missing, to print. */
  readonly notes: readonly string[];
}

/** Find nginx and haproxy; with BENCH_INSTALL=1 (as root) install them from Debian first. */
export function findReferences(s: Settings): References {
  let nginx = findExecutable('nginx');
  let haproxy = findExecutable('haproxy');
  const notes: string[] = [];
  if ((nginx === null || haproxy === null) && s.install) {
    if (process.getuid?.() !== 0) {
      notes.push('BENCH_INSTALL=1 needs root to apt-get install nginx-light haproxy');
    } else {
      const r = spawnSync('apt-get', ['install', '-y', '-qq', 'nginx-light', 'haproxy', 'libjemalloc2'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      if (r.status !== 0) notes.push('apt-get install nginx-light haproxy libjemalloc2 failed');
      nginx = findExecutable('nginx');
      haproxy = findExecutable('haproxy');
    }
  }
  if (nginx === null) notes.push('nginx: not installed (apt-get install -y nginx-light, or BENCH_INSTALL=1 as root) — skipped');
  if (haproxy === null) notes.push('haproxy: not installed (apt-get install -y haproxy, or BENCH_INSTALL=1 as root) — skipped');
  return { nginx, haproxy, notes };
}

function versionOf(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return /(?:nginx\/|version )(\d+\.\d+\.\d+)/i.exec(text)?.[1] ?? '';
}

function nginxProxy(ctx: BenchContext, bin: string): Subject {
  const s = ctx.settings;
  const label = `nginx ${versionOf(bin)} (proxy_pass, upstream keepalive)`;
  const target = new URL(ctx.targetUrl);
  const dir = join(ctx.tmp, 'nginx-proxy');
  const server = `  upstream target {
    server ${target.host};
    keepalive ${s.connections};
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${s.proxyPort};
    location / {
      proxy_pass http://target;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }
  }`;
  return {
    id: 'nginx',
    label,
    async start() {
      // master_process off: one process, so its /proc counters are the whole proxy.
      const child = await startServing({
        name: 'nginx',
        command: bin,
        args: nginxArgs(dir, nginxConf(dir, server)),
        core: 1,
        probe: { url: proxyUrl(s), bodyBytes: BODY_BYTES },
        skipNote: `${label}: did not start — skipped`,
      });
      return running(proxyUrl(s), child);
    },
  };
}

function haproxyProxy(ctx: BenchContext, bin: string): Subject {
  const s = ctx.settings;
  const label = `haproxy ${versionOf(bin)} (http mode, http-reuse always)`;
  const target = new URL(ctx.targetUrl);
  const file = join(ctx.tmp, 'haproxy.cfg');
  const cfg = `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  http-reuse always
frontend bench
  bind 127.0.0.1:${s.proxyPort}
  default_backend target
backend target
  server t1 ${target.host}
`;
  return {
    id: 'haproxy',
    label,
    async start() {
      writeFileSync(file, cfg);
      // -db: foreground, one process (one thread: nbthread 1).
      const child = await startServing({
        name: 'haproxy',
        command: bin,
        args: ['-db', '-f', file],
        core: 1,
        probe: { url: proxyUrl(s), bodyBytes: BODY_BYTES },
        skipNote: `${label}: did not start — skipped`,
      });
      return running(proxyUrl(s), child);
    },
  };
}

/** The load generator talking to the target itself: the ceiling, and the latency every other row is compared with. */
export function directSubject(ctx: BenchContext): Subject {
  return {
    id: 'direct',
    label: 'direct to the target',
    start: () => Promise.resolve({ url: ctx.targetUrl, pid: null, stop: () => Promise.resolve() }),
  };
}

/** The passthrough scenario's subjects, in table order (direct first). */
export function passthroughSubjects(ctx: BenchContext, refs: References, withBreakwater: boolean): Subject[] {
  const p = ports(ctx);
  const list: Subject[] = [directSubject(ctx)];
  if (withBreakwater) {
    const shipped = onThisMachine(shippedEnv(join(ctx.settings.benchDir, '..', 'Dockerfile')));
    if (shipped.note !== null && (ctx.settings.only === null || ctx.settings.only.has('breakwater-shipped'))) progress(shipped.note);
    list.push(
      breakwater(ctx, 'breakwater', 'breakwater, plain forwarding', plainConfig(p)),
      breakwater(ctx, 'breakwater-cache', 'breakwater, plain + stale-if-error cache (never triggered)', cacheConfig(p)),
      breakwater(ctx, 'breakwater-policies', 'breakwater, all policies on', allPoliciesConfig(p, false)),
      breakwater(ctx, 'breakwater-policies-log', 'breakwater, all policies + access log', allPoliciesConfig(p, true), {
        accessLogFile: join(ctx.tmp, 'access.log'),
      }),
      breakwater(ctx, 'breakwater-shipped', 'breakwater, all policies + access log, as shipped', allPoliciesConfig(p, true), {
        accessLogFile: join(ctx.tmp, 'access-shipped.log'),
        env: shipped.env,
      }),
    );
  }
  list.push(
    undiciBaseline(ctx),
    node(ctx, 'http-proxy', 'http-proxy 1.18 + keep-alive agent (baseline)', 'baselines/http-proxy.ts'),
  );
  if (refs.nginx !== null) list.push(nginxProxy(ctx, refs.nginx));
  if (refs.haproxy !== null) list.push(haproxyProxy(ctx, refs.haproxy));
  const only = ctx.settings.only;
  return only === null ? list : list.filter((x) => x.id === 'direct' || only.has(x.id));
}
