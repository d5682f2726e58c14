// CONNECT byte tunnels (SPEC §10.3): `HTTPS_PROXY=http://127.0.0.1:PORT`
// with real clients (curl, Node's fetch, python requests) to a local TLS
// server whose certificate is made by the `openssl` CLI at test time, and the
// TCP-level resilience around the tunnel, driven with raw CONNECT requests.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { assertNoLeaks, snapshotHandles } from '../helpers/leaks.ts';
import { startProxy, type LogLine, type TestProxy } from '../helpers/proxy.ts';
import { refusedPort } from '../helpers/upstream.ts';
import { waitFor } from '../helpers/wait.ts';

const run = promisify(execFile);
const IN_CI = process.env['CI'] === 'true';

function works(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
// Checked before anything is started, so a synchronous probe blocks nothing.
const HAVE_OPENSSL = works('openssl', ['version']);
const HAVE_CURL = works('curl', ['--version']);
const HAVE_REQUESTS = works('/usr/bin/python3', ['-c', 'import requests']);
/** Outside CI a missing tool skips its tests; in CI it fails them (a missing install step must not pass unnoticed). */
const skipWithout = (have: boolean, what: string): string | false => (have || IN_CI ? false : `${what} is not installed`);

/** Clients must go through the proxy, whatever NO_PROXY the environment has. */
const CLIENT_ENV = { ...process.env, NO_PROXY: '', no_proxy: '', HTTP_PROXY: '', http_proxy: '', HTTPS_PROXY: '', https_proxy: '' };

interface ConnectReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  socket: net.Socket;
}

/**
 * Sends `CONNECT authority` on a fresh connection and reads the answer's
 * head; for anything but 200 also the body (the proxy closes after it). On
 * 200 the socket is the open tunnel.
 */
async function connect(port: number, authority: string): Promise<ConnectReply> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  for (;;) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
    if (buf.includes('\r\n\r\n')) break;
  }
  const end = buf.indexOf('\r\n\r\n');
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  let rest = buf.subarray(end + 4);
  if (status !== 200) {
    socket.on('data', (c: Buffer) => (rest = Buffer.concat([rest, c])));
    await once(socket, 'close');
  }
  return { status, headers, body: rest.toString('utf8'), socket };
}

/** A TLS request through an open tunnel; the tunnel is closed after the answer. */
async function getThrough(socket: net.Socket, ca: string, pathname: string): Promise<string> {
  const t = tls.connect({ socket, servername: 'localhost', ca });
  await once(t, 'secureConnect');
  t.write(`GET ${pathname} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  let text = '';
  t.on('data', (c: Buffer) => (text += c.toString('utf8')));
  await once(t, 'end');
  t.destroy();
  return text;
}

describe('CONNECT byte tunnels (SPEC §10.3)', { skip: skipWithout(HAVE_OPENSSL, 'openssl (Debian package openssl)') }, () => {
  const baseline = snapshotHandles();
  let dir: string;
  let caFile: string;
  let ca: string;
  let server: https.Server;
  let tlsPort: number;
  /** TCP connections the TLS server accepted: the "nothing dialled" witness. */
  let accepted = 0;
  let px: TestProxy;
  let dead: number;
  let flaky: number;
  const tunnels = (): LogLine[] => px.logs.filter((l) => l.msg === 'tunnel' && l.protocol === 'connect');

  before(async () => {
    if (!HAVE_OPENSSL) throw new Error('openssl is required in CI to make the test certificates');
    dir = mkdtempSync(path.join(tmpdir(), 'bw-connect-'));
    const f = (n: string): string => path.join(dir, n);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=breakwater test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await run('openssl', ['req', ...ec, '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=localhost']);
    writeFileSync(f('leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
    await run('openssl', ['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('leaf.pem'), '-days', '2', '-extfile', f('leaf.ext')]);
    caFile = f('ca.pem');
    ca = readFileSync(caFile, 'utf8');
    server = https.createServer({ key: readFileSync(f('leaf.key')), cert: readFileSync(f('leaf.pem')) }, (req, res) => {
      res.end(`tls:${req.method} ${req.url}`);
    });
    server.on('connection', () => accepted++);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    tlsPort = (server.address() as net.AddressInfo).port;
    dead = await refusedPort();
    flaky = await refusedPort();
    px = await startProxy(`
version: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { host: localhost }, upstream: api, allowConnect: true }
  - name: closed
    address: 127.0.0.1:0
    routes:
      - { name: closed, match: { host: localhost }, upstream: api }
  - name: dead
    address: 127.0.0.1:0
    routes:
      - { name: dead, match: { host: localhost }, upstream: dead, allowConnect: true }
      - { name: flaky, match: { host: 127.0.0.1 }, upstream: flaky, allowConnect: true }
  - name: narrow
    address: 127.0.0.1:0
    routes:
      - { name: narrow, match: { host: localhost }, upstream: narrow, allowConnect: true, timeout: { idle: 300ms } }
  - name: limited
    address: 127.0.0.1:0
    routes:
      - { name: limited, match: { host: localhost }, upstream: api, allowConnect: true, rateLimit: { rate: 1/m, burst: 1 } }
upstreams:
  api: { url: "https://localhost:${tlsPort}" }
  narrow:
    url: "https://localhost:${tlsPort}"
    bulkhead: { maxConcurrent: 1 }
  dead:
    url: "https://localhost:${dead}"
    circuitBreaker: { consecutiveFailures: 1, openDuration: 1m }
  flaky:
    url: "https://127.0.0.1:${flaky}"
    retry: { maxRetries: 2, backoff: { strategy: constant, base: 10ms } }
`);
  });

  after(async () => {
    await px?.close();
    server?.closeAllConnections();
    server?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    await assertNoLeaks(baseline);
  });

  it('tunnels curl -x to an allowed https endpoint, TLS end to end', { skip: skipWithout(HAVE_CURL, 'curl') }, async () => {
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-x', px.url('egress'), '--cacert', caFile, `https://localhost:${tlsPort}/x?q=1`], { env: CLIENT_ENV });
    assert.equal(stdout, 'tls:GET /x?q=1');
  });

  it("tunnels Node's fetch with NODE_USE_ENV_PROXY=1 and HTTPS_PROXY", async () => {
    const script = `fetch(process.argv[1]).then(async (r) => console.log(r.status, await r.text()), (e) => { console.error(e); process.exit(1); })`;
    const { stdout } = await run(process.execPath, ['-e', script, `https://localhost:${tlsPort}/from-node`], {
      env: { ...CLIENT_ENV, NODE_USE_ENV_PROXY: '1', HTTPS_PROXY: px.url('egress'), NODE_EXTRA_CA_CERTS: caFile },
      timeout: 20_000,
    });
    assert.equal(stdout.trim(), '200 tls:GET /from-node');
  });

  it('tunnels python requests with HTTPS_PROXY', { skip: skipWithout(HAVE_REQUESTS, 'python requests (Debian package python3-requests)') }, async () => {
    const script = 'import requests, sys\nr = requests.get(sys.argv[1], verify=sys.argv[2], timeout=10)\nprint(r.status_code, r.text)';
    const { stdout } = await run('/usr/bin/python3', ['-c', script, `https://localhost:${tlsPort}/from-python`, caFile], {
      env: { ...CLIENT_ENV, HTTPS_PROXY: px.url('egress'), https_proxy: px.url('egress') },
      timeout: 20_000,
    });
    assert.equal(stdout.trim(), '200 tls:GET /from-python');
  });

  it('writes one tunnel line per tunnel: protocol, names, authority, outcome, timings, attempts and bytes each way', async () => {
    const before = tunnels().length;
    const r = await connect(px.port('egress'), `localhost:${tlsPort}`);
    assert.equal(r.status, 200);
    assert.match(await getThrough(r.socket, ca, '/logged'), /tls:GET \/logged$/);
    await waitFor('the tunnel line', () => tunnels().length > before);
    const line = tunnels().at(-1)!;
    assert.deepEqual(
      { ...line, time: undefined, requestId: undefined, durationMs: undefined, connectMs: undefined, bytesIn: undefined, bytesOut: undefined, level: undefined, pid: undefined, hostname: undefined },
      {
        msg: 'tunnel',
        protocol: 'connect',
        listener: 'egress',
        route: 'api',
        upstream: 'api',
        endpoint: `localhost:${tlsPort}`,
        authority: `localhost:${tlsPort}`,
        outcome: 'success',
        attempts: 1,
        flags: [],
        time: undefined, requestId: undefined, durationMs: undefined, connectMs: undefined, bytesIn: undefined, bytesOut: undefined, level: undefined, pid: undefined, hostname: undefined,
      },
    );
    assert.equal(typeof line.requestId, 'string');
    assert.ok((line.bytesIn as number) > 100 && (line.bytesOut as number) > 100, 'a TLS handshake each way');
    assert.ok((line.connectMs as number) >= 0 && (line.connectMs as number) <= (line.durationMs as number));
    const metrics = (await request(`${px.adminUrl}/metrics`)).body;
    assert.match(metrics, /breakwater_connect_tunnels_total\{listener="egress",route="api",upstream="api",result="success"\} [1-9]/);
    assert.match(metrics, /breakwater_connect_tunnel_bytes_total\{route="api",upstream="api",direction="in"\} [1-9]/);
    assert.match(metrics, /breakwater_connect_tunnel_bytes_total\{route="api",upstream="api",direction="out"\} [1-9]/);
    assert.match(metrics, /breakwater_connect_tunnels_active\{upstream="api"\} 0/);
    assert.match(metrics, /breakwater_upstream_attempts_total\{upstream="api",result="success"\} [1-9]/);
  });

  it('answers 405 and dials nothing for a route without allowConnect', async () => {
    const before = accepted;
    const r = await connect(px.port('closed'), `localhost:${tlsPort}`);
    assert.equal(r.status, 405);
    assert.equal(r.headers['x-breakwater-error'], 'method_not_allowed');
    assert.equal(JSON.parse(r.body).error, 'method_not_allowed');
    assert.equal(accepted, before, 'the TLS server was never contacted');
  });

  it("answers 405 and dials nothing for an authority that is not one of the upstream's endpoints", async () => {
    const before = accepted;
    for (const authority of [`localhost:${tlsPort + 1 === 65536 ? 1 : tlsPort + 1}`, `127.0.0.1:${tlsPort}`, `example.com:443`]) {
      const r = await connect(px.port('egress'), authority);
      assert.equal(r.status, 405, authority);
      assert.equal(r.headers['x-breakwater-error'], 'method_not_allowed', authority);
    }
    assert.equal(accepted, before, 'the TLS server was never contacted');
  });

  it('answers 503 connect_failure when the endpoint refuses, records it in the breaker, and then answers circuit_open', async () => {
    const before = tunnels().length;
    const r = await connect(px.port('dead'), `localhost:${dead}`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-breakwater-error'], 'connect_failure');
    assert.deepEqual({ ...JSON.parse(r.body), requestId: undefined, message: undefined }, { error: 'connect_failure', upstream: 'dead', route: 'dead', requestId: undefined, message: undefined });
    await waitFor('the tunnel line', () => tunnels().length > before);
    const failed = tunnels().at(-1)!;
    assert.equal(failed.outcome, 'connect_failure');
    assert.equal(failed.attempts, 1, 'the breaker opened on the first failure: no retry into an open circuit');
    assert.ok((failed.flags as string[]).includes('retry_circuit_open'));
    const state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    assert.equal(state.dead.circuitBreaker.state, 'open');
    const again = await connect(px.port('dead'), `localhost:${dead}`);
    assert.equal(again.status, 503);
    assert.equal(again.headers['x-breakwater-error'], 'circuit_open');
    assert.ok(Number(again.headers['retry-after']) >= 1);
    await waitFor('the refusal line', () => tunnels().at(-1)!.outcome === 'circuit_open');
    assert.equal(tunnels().at(-1)!.attempts, 0);
    assert.deepEqual(tunnels().at(-1)!.flags, ['circuit_open'], 'the refusal flagged as a refused request is');
  });

  it('retries a refused connect up to maxRetries before answering connect_failure', async () => {
    const before = tunnels().length;
    const r = await connect(px.port('dead'), `127.0.0.1:${flaky}`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-breakwater-error'], 'connect_failure');
    await waitFor('the tunnel line', () => tunnels().length > before);
    const line = tunnels().at(-1)!;
    assert.equal(line.route, 'flaky');
    assert.equal(line.attempts, 3);
    assert.equal(line.connectMs, null);
    assert.deepEqual(line.flags, ['retried', 'retries_exhausted', 'connect_failure']);
  });

  it('holds one bulkhead slot per open tunnel: a second gets 503 bulkhead_full, and the slot is free once the first closes', async () => {
    const first = await connect(px.port('narrow'), `localhost:${tlsPort}`);
    assert.equal(first.status, 200);
    let state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
    assert.equal(state.narrow.bulkhead.active, 1);
    const second = await connect(px.port('narrow'), `localhost:${tlsPort}`);
    assert.equal(second.status, 503);
    assert.equal(second.headers['x-breakwater-error'], 'bulkhead_full');
    assert.match(await getThrough(first.socket, ca, '/first'), /tls:GET \/first$/);
    await waitFor('the slot to be released', async () => {
      state = JSON.parse((await request(`${px.adminUrl}/upstreams`)).body);
      return state.narrow.bulkhead.active === 0;
    });
    const third = await connect(px.port('narrow'), `localhost:${tlsPort}`);
    assert.equal(third.status, 200);
    assert.match(await getThrough(third.socket, ca, '/third'), /tls:GET \/third$/);
    const metrics = (await request(`${px.adminUrl}/metrics`)).body;
    assert.match(metrics, /breakwater_rejected_total\{route="narrow",upstream="narrow",reason="bulkhead_full"\} 1/);
  });

  it("takes one token of the route's rate limit per tunnel, and answers 429 rate_limited with Retry-After when none is left", async () => {
    const first = await connect(px.port('limited'), `localhost:${tlsPort}`);
    assert.equal(first.status, 200);
    assert.match(await getThrough(first.socket, ca, '/limited'), /tls:GET \/limited$/);
    const before = accepted;
    const second = await connect(px.port('limited'), `localhost:${tlsPort}`);
    assert.equal(second.status, 429);
    assert.equal(second.headers['x-breakwater-error'], 'rate_limited');
    assert.ok(Number(second.headers['retry-after']) >= 1);
    assert.equal(accepted, before, 'a refused tunnel dials nothing');
    await waitFor('the refusal line', () => tunnels().at(-1)?.outcome === 'rate_limited');
    assert.equal(tunnels().at(-1)!.route, 'limited');
    assert.deepEqual(tunnels().at(-1)!.flags, ['rate_limited']);
  });

  it('closes a tunnel in which nothing moves for timeout.idle, and gives its slot back', async () => {
    const before = tunnels().length;
    const r = await connect(px.port('narrow'), `localhost:${tlsPort}`);
    assert.equal(r.status, 200);
    const started = Date.now();
    await once(r.socket, 'close');
    assert.ok(Date.now() - started >= 250, 'not before the idle timeout');
    await waitFor('the tunnel line', () => tunnels().length > before);
    const line = tunnels().at(-1)!;
    assert.equal(line.route, 'narrow');
    assert.equal(line.outcome, 'idle_timeout');
    await waitFor('the slot to be released', async () => JSON.parse((await request(`${px.adminUrl}/upstreams`)).body).narrow.bulkhead.active === 0);
  });

});
