/**
 * Shared pieces of the interop suite: the third-party peers breakwater is
 * driven with (how to find them, how to start them on loopback, how to stop
 * them), the HTTP clients (each one a thin wrapper that makes the real
 * client send one exchange and reports what it saw), and the built CLI as a
 * child process.
 *
 * A missing peer skips its tests with a message naming the Debian package,
 * except in CI (CI=true), where it fails them: a missing install step must
 * not pass quietly. `bash scripts/interop-deps.sh` installs every peer.
 *
 * Every child process is tracked and killed when its test file ends (and on
 * process exit as a last resort); every wait has a deadline.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { EnvHttpProxyAgent, ProxyAgent, fetch as undiciFetch, type Dispatcher } from 'undici';
import { freePort, sleep } from '../helpers/wait.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const IN_CI = process.env['CI'] === 'true';
/** Debian's interpreter: the peers' Python modules are installed for it, not for a python3 earlier on PATH. */
export const PYTHON = '/usr/bin/python3';

// ================================================================ peers

export interface Peer {
  /** What the tests call it. */
  readonly name: string;
  /** The Debian package that provides it. */
  readonly pkg: string;
  /** True when it is installed and runs. */
  readonly present: () => boolean;
}

const runs = (cmd: string, args: string[]): boolean => {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
  return r.status === 0;
};

/** The first of `names` found on PATH or in the sbin folders (nginx lives in /usr/sbin). */
export function which(...names: string[]): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const n of names) for (const d of dirs) if (d !== '' && existsSync(path.join(d, n))) return path.join(d, n);
  return null;
}

const once = (f: () => boolean): (() => boolean) => {
  let v: boolean | undefined;
  return () => (v ??= f());
};

export const PEERS = {
  curl: { name: 'curl', pkg: 'curl', present: once(() => runs('curl', ['--version'])) },
  requests: { name: 'python requests', pkg: 'python3-requests', present: once(() => runs(PYTHON, ['-c', 'import requests'])) },
  httpbin: {
    name: 'httpbin under gunicorn',
    pkg: 'gunicorn python3-httpbin',
    present: once(() => runs(PYTHON, ['-c', 'import gunicorn, httpbin'])),
  },
  nginx: { name: 'nginx', pkg: 'nginx-light', present: once(() => which('nginx') !== null && runs(which('nginx')!, ['-v'])) },
  promtool: { name: 'promtool', pkg: 'prometheus', present: once(() => runs('promtool', ['--version'])) },
  prometheus: { name: 'prometheus', pkg: 'prometheus', present: once(() => runs('prometheus', ['--version'])) },
  redis: { name: 'redis-server', pkg: 'redis-server', present: once(() => which('redis-server') !== null && runs(which('redis-server')!, ['--version'])) },
  openmetrics: {
    name: 'python prometheus_client (OpenMetrics parser)',
    pkg: 'python3-prometheus-client',
    present: once(() => runs(PYTHON, ['-c', 'import prometheus_client.openmetrics.parser'])),
  },
  tmux: { name: 'tmux', pkg: 'tmux', present: once(() => runs('tmux', ['-V'])) },
} as const satisfies Record<string, Peer>;

const missingMessage = (missing: Peer[]): string =>
  `${missing.map((p) => `${p.name} (Debian package ${p.pkg})`).join(', ')} not installed; run: bash scripts/interop-deps.sh`;

/**
 * The `skip` option for a describe() that needs `peers`: a reason when one is
 * missing outside CI, else false. In CI a missing peer is not skipped: call
 * requirePeers() in the describe's before() so every test in it fails.
 */
export function skipUnless(...peers: Peer[]): string | false {
  const missing = peers.filter((p) => !p.present());
  if (missing.length === 0 || IN_CI) return false;
  return missingMessage(missing);
}

/** Throws (failing the tests) when a peer is missing: the CI half of skipUnless(). */
export function requirePeers(...peers: Peer[]): void {
  const missing = peers.filter((p) => !p.present());
  if (missing.length > 0) throw new Error(`interop peer missing: ${missingMessage(missing)}`);
}

// ================================================================ child processes

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Spawns a long-running peer; its output is kept (last 64 KiB) for error messages. */
export function spawnPeer(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Peerproc {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const keep = (c: Buffer) => {
    out = (out + c.toString('utf8')).slice(-65_536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => children.delete(child));
  return {
    child,
    output: () => out,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      if (!(await within(exited, 5000))) {
        child.kill('SIGKILL');
        await within(exited, 2000);
      }
    },
  };
}

/** Resolves true when `p` settles within `ms`, false otherwise; leaves no timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Peerproc {
  readonly child: ChildProcess;
  output(): string;
  exited(): boolean;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The environment without any proxy variables, so a client goes where it is told. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(https?|all|no)_proxy$/i.test(k) && k !== 'NODE_USE_ENV_PROXY') env[k] = v;
  return { ...env, ...extra };
}

/** Runs a short-lived command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { env: opts.env ?? cleanEnv(), timeout: opts.timeoutMs ?? 40_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        children.delete(child);
        if (err !== null && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err);
        resolve({ code: child.exitCode, stdout, stderr });
      },
    );
    children.add(child);
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Polls until a GET on `url` answers `status` (any status when omitted). */
export async function waitHttp(url: string, what: string, proc?: Peerproc, ms = 20_000, status?: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc?.exited()) throw new Error(`${what} exited while starting:\n${proc.output()}`);
    const got = await new Promise<number>((resolve) => {
      const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (got !== 0 && (status === undefined || got === status)) return;
    if (Date.now() > end) throw new Error(`${what} did not answer ${url} within ${ms}ms:\n${proc?.output() ?? ''}`);
    await sleep(100);
  }
}

// ================================================================ upstream peers

export interface HttpPeer {
  readonly port: number;
  readonly origin: string;
  readonly dir: string;
  close(): Promise<void>;
}

/** httpbin (Debian's python3-httpbin) served by gunicorn on a free loopback port. */
export async function startHttpbin(): Promise<HttpPeer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-interop-httpbin-'));
  // Port 0: gunicorn binds a free port and prints it ("Listening at: http://127.0.0.1:PORT").
  // gthread: a few requests at a time, as the drip and stream endpoints hold a worker.
  const proc = spawnPeer(PYTHON, ['-m', 'gunicorn', '-b', '127.0.0.1:0', '-k', 'gthread', '--threads', '8', '-w', '1', 'httpbin:app'], { cwd: dir });
  const end = Date.now() + 20_000;
  let port = 0;
  while (port === 0) {
    const m = /Listening at: http:\/\/127\.0\.0\.1:(\d+)/.exec(proc.output());
    if (m !== null) port = Number(m[1]);
    else if (proc.exited() || Date.now() > end) throw new Error(`gunicorn did not start httpbin:\n${proc.output()}`);
    else await sleep(50);
  }
  const origin = `http://127.0.0.1:${port}`;
  await waitHttp(`${origin}/get`, 'httpbin', proc, 20_000, 200);
  return {
    port,
    origin,
    dir,
    async close() {
      await proc.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NginxPeer extends HttpPeer {
  /** Static files by URL path, with their bytes. */
  readonly files: ReadonlyMap<string, Buffer>;
}

/** Deterministic bytes (a xorshift stream), so a failing comparison is reproducible. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * nginx as a plain web server with its own prefix and config in a temp dir:
 * static files of several sizes under /files/, a compressible text file under
 * /text/ (gzip on, so it comes back chunked), a 204 at /204, and /self-redirect,
 * a 302 whose absolute Location names nginx's own host:port.
 */
export async function startNginx(): Promise<NginxPeer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-interop-nginx-'));
  const www = path.join(dir, 'www');
  for (const d of ['www/files', 'www/text', 'tmp', 'logs']) mkdirSync(path.join(dir, d), { recursive: true });
  const files = new Map<string, Buffer>([
    ['/files/1k.bin', bytes(1024, 1)],
    ['/files/64k.bin', bytes(64 * 1024, 2)],
    ['/files/1m.bin', bytes(1024 * 1024, 3)],
    ['/text/lines.txt', Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog\n`).join(''))],
  ]);
  for (const [p, b] of files) writeFileSync(path.join(www, p), b);
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const tmp = (n: string) => `${n}_temp_path ${path.join(dir, 'tmp', n)};`;
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    `${root ? `user ${userInfo().username};` : ''}
worker_processes 1;
daemon off;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'logs', 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  ${tmp('client_body')} ${tmp('proxy')} ${tmp('fastcgi')} ${tmp('uwsgi')} ${tmp('scgi')}
  types { text/plain txt; application/octet-stream bin; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    server_name _;
    root ${www};
    gzip on;
    gzip_types text/plain;
    gzip_min_length 0;
    gzip_proxied any;
    location = /204 { return 204; }
    location = /self-redirect { return 302 http://$host:$server_port/files/1k.bin?$args; }
  }
}
`,
  );
  const nginx = which('nginx');
  if (nginx === null) throw new Error('nginx not found');
  const proc = spawnPeer(nginx, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'logs', 'error.log')]);
  const origin = `http://127.0.0.1:${port}`;
  await waitHttp(`${origin}/files/1k.bin`, 'nginx', proc, 20_000, 200);
  return {
    port,
    origin,
    dir,
    files,
    async close() {
      // SIGQUIT: graceful shutdown of the master and its worker.
      await proc.stop('SIGQUIT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ================================================================ clients

/** One request as a test describes it; every client turns it into its own API calls. */
export interface Exchange {
  readonly method: string;
  /** The URL the client is asked for: the listener's own (direct) or a routed host (through the proxy). */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  /** Follow redirects the way the client does (default false: the 3xx itself is the answer). */
  readonly follow?: boolean;
}

export interface Answer {
  readonly status: number;
  /** Lower-case names; every header line kept (set-cookie stays a list). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** As received when the client hands over raw bytes; decoded when `client.decodes`. */
  readonly body: Buffer;
  /** Where the client ended up (after redirects, when followed). */
  readonly url: string;
  /** Interim (1xx) statuses the client reports having received, where it can tell (curl). */
  readonly interim?: readonly number[];
}

export interface Client {
  /** Names the real client and how it is wired, e.g. "curl -x". */
  readonly name: string;
  /** direct: to the one-port listener; proxy: the egress listener as HTTP proxy. */
  readonly mode: 'direct' | 'proxy';
  readonly peer: Peer | null;
  /** The client undoes content-encoding itself (fetch does). */
  readonly decodes: boolean;
  send(x: Exchange, proxyUrl: string): Promise<Answer>;
}

export const header = (a: Answer, name: string): string | undefined => a.headers.get(name)?.join(', ');

function headerMap(pairs: Iterable<readonly [string, string]>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [k, v] of pairs) {
    const key = k.toLowerCase();
    m.set(key, [...(m.get(key) ?? []), v]);
  }
  return m;
}

/** The body the server meant, whoever decoded it: gunzips when the client handed over raw gzip. */
export function content(a: Answer, client: Client): Buffer {
  const enc = header(a, 'content-encoding');
  if (enc === 'gzip' && !client.decodes) return gunzipSync(a.body);
  return a.body;
}

// ---------------------------------------------------------------- curl

async function curlSend(x: Exchange, proxy: string | null): Promise<Answer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-interop-curl-'));
  try {
    const bodyFile = path.join(dir, 'body');
    const headFile = path.join(dir, 'head');
    const args = ['-sS', '--max-time', '30', '-o', bodyFile, '-D', headFile, '-w', '%{json}'];
    if (x.method === 'HEAD') args.push('--head');
    else if (x.method !== 'GET' && x.method !== 'POST') args.push('-X', x.method);
    const headers = { ...x.headers };
    // curl adds `Expect: 100-continue` to larger uploads by itself; only the case about it keeps it.
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'expect')) headers['Expect'] = '';
    for (const [k, v] of Object.entries(headers)) args.push('-H', v === '' ? `${k}:` : `${k}: ${v}`);
    if (x.body !== undefined) {
      writeFileSync(path.join(dir, 'upload'), x.body);
      args.push('--data-binary', `@${path.join(dir, 'upload')}`);
    }
    if (proxy !== null) args.push('-x', proxy);
    if (x.follow === true) args.push('-L', '--max-redirs', '5');
    args.push(x.url);
    const r = await run('curl', args);
    if (r.code !== 0) throw new Error(`curl exited ${r.code}: ${r.stderr.trim()}`);
    const info = JSON.parse(r.stdout) as { response_code: number; url_effective: string };
    // -D keeps every response head (1xx and redirects too): the last final one is the answer.
    const all = readFileSync(headFile, 'latin1').split(/\r\n\r\n/).filter((b) => /^HTTP\//.test(b));
    const interim = all.filter((b) => /^HTTP\/\S+ 1\d\d/.test(b)).map((b) => Number(b.split(' ')[1]));
    const last = all.filter((b) => !/^HTTP\/\S+ 1\d\d/.test(b)).at(-1) ?? '';
    const lines = last.split('\r\n').slice(1).filter((l) => l.includes(':'));
    return {
      status: info.response_code,
      headers: headerMap(lines.map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()] as const)),
      // With --head curl writes the head into the output file and never reads a body: there is none to report.
      body: x.method !== 'HEAD' && existsSync(bodyFile) ? readFileSync(bodyFile) : Buffer.alloc(0),
      url: info.url_effective,
      interim,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- python requests

const PY_REQUESTS = `
import base64, json, sys
import requests
spec = json.loads(sys.stdin.read())
s = requests.Session()
s.trust_env = False
proxies = {'http': spec['proxy']} if spec['proxy'] else None
data = base64.b64decode(spec['body']) if spec['body'] is not None else None
r = s.request(spec['method'], spec['url'], headers=spec['headers'], data=data,
              allow_redirects=spec['follow'], proxies=proxies, stream=True, timeout=30)
body = r.raw.read(decode_content=False)
print(json.dumps({'status': r.status_code, 'headers': list(r.raw.headers.items()),
                  'body': base64.b64encode(body).decode(), 'url': r.url}))
`;

interface ChildAnswer {
  status: number;
  headers: [string, string][];
  body: string;
  url: string;
}

const fromChild = (j: ChildAnswer): Answer => ({ status: j.status, headers: headerMap(j.headers), body: Buffer.from(j.body, 'base64'), url: j.url });

async function pythonSend(x: Exchange, proxy: string | null): Promise<Answer> {
  const spec = { method: x.method, url: x.url, headers: x.headers ?? {}, body: x.body?.toString('base64') ?? null, follow: x.follow === true, proxy };
  const r = await run(PYTHON, ['-c', PY_REQUESTS], { input: JSON.stringify(spec) });
  if (r.code !== 0) throw new Error(`python requests failed: ${r.stderr.trim().split('\n').at(-1)}`);
  return fromChild(JSON.parse(r.stdout) as ChildAnswer);
}

// ---------------------------------------------------------------- fetch (Node's built-in, undici's)

type FetchLike = (url: string, init: Record<string, unknown>) => Promise<{
  status: number;
  url: string;
  headers: Iterable<[string, string]>;
  arrayBuffer(): Promise<ArrayBuffer>;
}>;

async function fetchSend(f: FetchLike, x: Exchange, extra: Record<string, unknown> = {}): Promise<Answer> {
  const res = await f(x.url, {
    method: x.method,
    headers: x.headers ?? {},
    body: x.body,
    redirect: x.follow === true ? 'follow' : 'manual',
    signal: AbortSignal.timeout(30_000),
    ...extra,
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: headerMap(res.headers), body, url: res.url === '' ? x.url : res.url };
}

/** Node's fetch in a child process that finds the proxy the way applications do: NODE_USE_ENV_PROXY=1 + HTTP_PROXY. */
const NODE_ENV_PROXY_FETCH = `
let input = '';
for await (const c of process.stdin) input += c;
const spec = JSON.parse(input);
let res;
try {
  res = await fetch(spec.url, {
    method: spec.method, headers: spec.headers,
    body: spec.body === null ? undefined : Buffer.from(spec.body, 'base64'),
    redirect: spec.follow ? 'follow' : 'manual', signal: AbortSignal.timeout(30000),
  });
} catch (e) {
  process.stderr.write(String(e.message) + (e.cause ? ': ' + (e.cause.code ?? '') + ' ' + e.cause.message : '') + '\\n');
  process.exit(1);
}
const body = Buffer.from(await res.arrayBuffer());
process.stdout.write(JSON.stringify({ status: res.status, headers: [...res.headers], body: body.toString('base64'), url: res.url || spec.url }));
`;

async function nodeEnvProxySend(x: Exchange, proxy: string): Promise<Answer> {
  const spec = { method: x.method, url: x.url, headers: x.headers ?? {}, body: x.body?.toString('base64') ?? null, follow: x.follow === true };
  const env = cleanEnv({ NODE_USE_ENV_PROXY: '1', HTTP_PROXY: proxy, http_proxy: proxy });
  const r = await run(process.execPath, ['--input-type=module', '-e', NODE_ENV_PROXY_FETCH], { input: JSON.stringify(spec), env });
  if (r.code !== 0) throw new Error(`node fetch (NODE_USE_ENV_PROXY=1) failed: ${r.stderr.trim().slice(0, 1200)}`);
  return fromChild(JSON.parse(r.stdout) as ChildAnswer);
}

async function withDispatcher(d: Dispatcher, x: Exchange): Promise<Answer> {
  try {
    return await fetchSend(undiciFetch as unknown as FetchLike, x, { dispatcher: d });
  } finally {
    await d.close();
  }
}

// ---------------------------------------------------------------- node:http

function httpOnce(x: Exchange, proxy: string | null): Promise<Answer> {
  const target = new URL(x.url);
  const headers: Record<string, string> = { ...x.headers };
  if (x.body !== undefined) headers['content-length'] = String(x.body.length);
  const p = proxy === null ? null : new URL(proxy);
  const opts: http.RequestOptions =
    p === null
      ? { host: target.hostname, port: target.port, path: target.pathname + target.search, method: x.method, headers, agent: false }
      : // Through a proxy, node:http sends the absolute URL as the request target (absolute-form).
        { host: p.hostname, port: p.port, path: target.href, method: x.method, headers: { host: target.host, ...headers }, agent: false };
  return new Promise((resolve, reject) => {
    const req = http.request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        if (!res.complete) return reject(new Error(`http.request: response to ${x.method} ${x.url} ended incomplete`));
        const pairs: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
        resolve({ status: res.statusCode ?? 0, headers: headerMap(pairs), body: Buffer.concat(chunks), url: x.url });
      });
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`http.request ${x.method} ${x.url} timed out`)));
    req.on('error', reject);
    req.end(x.body);
  });
}

async function httpSend(x: Exchange, proxy: string | null): Promise<Answer> {
  let a = await httpOnce(x, proxy);
  // node:http does not follow redirects; follow GET redirects the way a careful caller would.
  for (let hops = 0; x.follow === true && hops < 5 && a.status >= 300 && a.status < 400 && header(a, 'location') !== undefined; hops++) {
    const next = new URL(header(a, 'location')!, a.url).href;
    a = await httpOnce({ method: 'GET', url: next, headers: x.headers }, proxy);
  }
  return a;
}

// ---------------------------------------------------------------- the table

export const CLIENTS: readonly Client[] = [
  { name: 'curl', mode: 'direct', peer: PEERS.curl, decodes: false, send: (x) => curlSend(x, null) },
  { name: 'python requests', mode: 'direct', peer: PEERS.requests, decodes: false, send: (x) => pythonSend(x, null) },
  { name: "Node's fetch", mode: 'direct', peer: null, decodes: true, send: (x) => fetchSend(globalThis.fetch as unknown as FetchLike, x) },
  { name: 'http.get', mode: 'direct', peer: null, decodes: false, send: (x) => httpSend(x, null) },
  { name: 'curl -x', mode: 'proxy', peer: PEERS.curl, decodes: false, send: (x, p) => curlSend(x, p) },
  { name: 'python requests proxies=', mode: 'proxy', peer: PEERS.requests, decodes: false, send: (x, p) => pythonSend(x, p) },
  { name: "Node's fetch with NODE_USE_ENV_PROXY=1", mode: 'proxy', peer: null, decodes: true, send: (x, p) => nodeEnvProxySend(x, p) },
  // undici 8 sends http:// URLs through a ProxyAgent in absolute-form unless told to tunnel.
  { name: "undici's fetch with ProxyAgent", mode: 'proxy', peer: null, decodes: true, send: (x, p) => withDispatcher(new ProxyAgent(p), x) },
  {
    name: "undici's fetch with ProxyAgent (proxyTunnel: true, CONNECT host:80)",
    mode: 'proxy',
    peer: null,
    decodes: true,
    send: (x, p) => withDispatcher(new ProxyAgent({ uri: p, proxyTunnel: true }), x),
  },
  {
    name: "undici's fetch with EnvHttpProxyAgent",
    mode: 'proxy',
    peer: null,
    decodes: true,
    send: (x, p) => withDispatcher(new EnvHttpProxyAgent({ httpProxy: p, noProxy: '' }), x),
  },
  { name: 'http.get (absolute-form)', mode: 'proxy', peer: null, decodes: false, send: (x, p) => httpSend(x, p) },
];

// ================================================================ the CLI

export interface Cli {
  readonly proc: Peerproc;
  readonly file: string;
  readonly adminUrl: string;
  url(listener: string): string;
  /** Every stdout line seen so far, parsed. */
  lines(): Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * The built CLI (`node dist/cli.js --config FILE`) as a child process: unlike
 * the in-process helper it exports prom-client's default process metrics.
 * Ports come from the "start" line.
 */
export async function startCli(yaml: string): Promise<Cli> {
  const cli = path.join(ROOT, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first');
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-interop-cli-'));
  const file = path.join(dir, 'breakwater.yaml');
  writeFileSync(file, yaml);
  const proc = spawnPeer(process.execPath, [cli, '--config', file], { cwd: dir });
  const parsed: Record<string, unknown>[] = [];
  let buf = '';
  proc.child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
  });
  const end = Date.now() + 20_000;
  let start: { listeners: { name: string; address: string }[]; admin: string } | undefined;
  while (start === undefined) {
    start = parsed.find((l) => l['msg'] === 'start') as typeof start;
    if (start !== undefined) break;
    if (proc.exited() || Date.now() > end) throw new Error(`breakwater did not start:\n${proc.output()}`);
    await sleep(50);
  }
  const ports = new Map(start.listeners.map((l) => [l.name, l.address]));
  return {
    proc,
    file,
    adminUrl: `http://${start.admin}`,
    url(l) {
      const a = ports.get(l);
      if (a === undefined) throw new Error(`no listener ${l}`);
      return `http://${a}`;
    },
    lines: () => parsed,
    async close() {
      await proc.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
