/**
 * Real HTTP clients × real upstream servers × both listener kinds, as a
 * generated table: every client (curl, python requests, Node's fetch, undici's
 * fetch with its proxy agents, node:http) sends every case to httpbin (under
 * gunicorn) and to nginx, once through a one-port listener (`upstream: NAME`,
 * the client talks to the listener as if it were the server) and once through
 * an egress listener used as HTTP proxy (`http://NAME.test/...`, routed by
 * host). Each row asserts what the client saw (status, headers, body bytes)
 * and, where a redirect is involved, that the follow-up went through
 * breakwater (its access log).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  CLIENTS,
  PEERS,
  bytes,
  content,
  header,
  requirePeers,
  skipUnless,
  startHttpbin,
  startNginx,
  type Answer,
  type Client,
  type HttpPeer,
  type NginxPeer,
  type Peer,
} from './lib.ts';

interface Ctx {
  readonly client: Client;
  readonly a: Answer;
  /** scheme://authority the client addressed: the listener's (direct) or the routed host (proxy). */
  readonly origin: string;
  readonly px: TestProxy;
  /** Unique per row, carried in the query so the access log can be searched for it. */
  readonly id: string;
}

interface Case {
  readonly name: string;
  readonly method?: string;
  readonly path: (id: string) => string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  readonly follow?: boolean;
  /** Only for clients this returns true for (default: every client). */
  readonly only?: (c: Client) => boolean;
  readonly check: (ctx: Ctx) => void | Promise<void>;
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const parse = (ctx: Ctx): any => {
  const text = content(ctx.a, ctx.client).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON from the upstream, got status ${ctx.a.status}: ${text.slice(0, 300)}`);
  }
};
const status = (ctx: Ctx, want: number): void => {
  if (ctx.a.status !== want) {
    const err = header(ctx.a, 'x-breakwater-error');
    assert.fail(`expected ${want}, got ${ctx.a.status}${err === undefined ? '' : ` (breakwater error ${err})`}: ${ctx.a.body.toString('utf8').slice(0, 300)}`);
  }
};
const noBody = (ctx: Ctx): void => assert.equal(ctx.a.body.length, 0, `expected no body, got ${ctx.a.body.length} bytes`);
/** Raw clients see the compressed bytes themselves: breakwater must not have decoded them. */
const stillGzip = (ctx: Ctx): void => {
  assert.equal(header(ctx.a, 'content-encoding'), 'gzip');
  if (!ctx.client.decodes) assert.deepEqual([...ctx.a.body.subarray(0, 2)], [0x1f, 0x8b], 'the body is gzip as the upstream sent it');
};
/** The access log shows a request for exactly this path (query included: log.includeQuery). */
async function passedThrough(ctx: Ctx, pathWithQuery: string): Promise<void> {
  await waitFor(
    `an access-log line for ${pathWithQuery} (the follow-up request did not pass through breakwater)`,
    () => ctx.px.requests().some((l) => l['path'] === pathWithQuery),
    3000,
  );
}

// A text upload, so httpbin echoes it as a string in `data` (binary would come back base64'd).
const MIB_TEXT = Buffer.from(bytes(512 * 1024, 7).toString('hex'));
const UPLOAD_200K = Buffer.from(bytes(100 * 1024, 9).toString('hex'));
const JSON_DOC = Buffer.from(JSON.stringify({ name: 'breakwater', n: 42, nested: { list: [1, 'two', null, true] }, unicode: 'Grüße ✓' }));

const HTTPBIN_CASES: readonly Case[] = [
  {
    name: 'a GET with a query string reaches httpbin with every argument intact',
    path: (id) => `/get?x=1&y=two%20words&id=${id}`,
    check: (ctx) => {
      status(ctx, 200);
      assert.deepEqual(parse(ctx).args, { x: '1', y: 'two words', id: ctx.id });
    },
  },
  {
    name: 'a HEAD succeeds with the headers of a GET and no body',
    method: 'HEAD',
    path: (id) => `/get?id=${id}`,
    check: (ctx) => {
      status(ctx, 200);
      assert.equal(header(ctx.a, 'content-type'), 'application/json');
      noBody(ctx);
    },
  },
  {
    name: 'a POSTed JSON document is echoed byte for byte by /anything',
    method: 'POST',
    path: (id) => `/anything?id=${id}`,
    headers: { 'content-type': 'application/json' },
    body: JSON_DOC,
    check: (ctx) => {
      status(ctx, 200);
      const j = parse(ctx);
      assert.equal(j.method, 'POST');
      assert.equal(j.data, JSON_DOC.toString('utf8'));
      assert.deepEqual(j.json, JSON.parse(JSON_DOC.toString('utf8')));
    },
  },
  {
    name: 'a 1 MiB PUT arrives byte-exact',
    method: 'PUT',
    path: (id) => `/put?id=${id}`,
    headers: { 'content-type': 'text/plain' },
    body: MIB_TEXT,
    check: (ctx) => {
      status(ctx, 200);
      const data = String(parse(ctx).data);
      assert.equal(data.length, MIB_TEXT.length, 'echoed length');
      assert.equal(sha(data), sha(MIB_TEXT), 'echoed bytes');
    },
  },
  {
    name: 'a gzip response from /gzip passes through still compressed',
    path: (id) => `/gzip?id=${id}`,
    headers: { 'accept-encoding': 'gzip' },
    check: (ctx) => {
      status(ctx, 200);
      stillGzip(ctx);
      assert.equal(parse(ctx).gzipped, true);
    },
  },
  {
    name: 'a relative redirect from /redirect-to is followed back through breakwater',
    path: (id) => `/redirect-to?url=${encodeURIComponent(`/get?id=${id}`)}`,
    follow: true,
    check: async (ctx) => {
      status(ctx, 200);
      assert.equal(parse(ctx).args.id, ctx.id);
      await passedThrough(ctx, `/get?id=${ctx.id}`);
    },
  },
  {
    name: 'every Set-Cookie from /cookies/set reaches the client as its own header',
    path: () => '/cookies/set?alpha=1&beta=2',
    check: (ctx) => {
      status(ctx, 302);
      const cookies = ctx.a.headers.get('set-cookie') ?? [];
      assert.ok(cookies.some((c) => c.startsWith('alpha=1')), `alpha cookie in ${JSON.stringify(cookies)}`);
      assert.ok(cookies.some((c) => c.startsWith('beta=2')), `beta cookie in ${JSON.stringify(cookies)}`);
      assert.ok(cookies.length >= 2, `two Set-Cookie headers, got ${JSON.stringify(cookies)}`);
    },
  },
  {
    name: '/status/204 comes back as a 204 with no body and no Content-Length',
    path: (id) => `/status/204?id=${id}`,
    check: (ctx) => {
      status(ctx, 204);
      noBody(ctx);
      assert.equal(header(ctx.a, 'content-length'), undefined, 'a 204 carries no Content-Length (RFC 9110 §8.6)');
    },
  },
  {
    name: '/status/304 comes back as a 304 with no body',
    path: (id) => `/status/304?id=${id}`,
    check: (ctx) => {
      status(ctx, 304);
      noBody(ctx);
    },
  },
  {
    name: '/stream/20 arrives whole as 20 JSON lines, streamed without a Content-Length',
    path: (id) => `/stream/20?id=${id}`,
    check: (ctx) => {
      status(ctx, 200);
      const lines = content(ctx.a, ctx.client).toString('utf8').split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 20);
      assert.deepEqual(lines.map((l) => (JSON.parse(l) as { id: number }).id), Array.from({ length: 20 }, (_, i) => i));
      assert.equal(header(ctx.a, 'content-length'), undefined);
    },
  },
  {
    name: '/drip trickles its bytes through intact',
    path: (id) => `/drip?numbytes=5&duration=0.5&delay=0&id=${id}`,
    check: (ctx) => {
      status(ctx, 200);
      assert.equal(ctx.a.body.toString('latin1'), '*****');
    },
  },
  {
    name: 'an upload sent with Expect: 100-continue is answered and echoed whole',
    only: (c) => c.name.startsWith('curl'),
    method: 'POST',
    path: (id) => `/anything?id=${id}`,
    headers: { 'content-type': 'text/plain', expect: '100-continue' },
    body: UPLOAD_200K,
    check: (ctx) => {
      status(ctx, 200);
      // Whether Expect itself travels on is breakwater's choice (RFC 9110 §10.1.1 lets a
      // proxy answer the expectation itself); the client must get its 100 and the body must arrive.
      assert.deepEqual(ctx.a.interim, [100], 'curl received 100 Continue');
      assert.equal(sha(String(parse(ctx).data)), sha(UPLOAD_200K));
    },
  },
];

function nginxCases(files: () => ReadonlyMap<string, Buffer>): readonly Case[] {
  const file = (p: string): Buffer => files().get(p)!;
  const getFile = (p: string, label: string): Case => ({
    name: `a GET of a ${label} file comes back byte-exact with its Content-Length`,
    path: (id) => `${p}?id=${id}`,
    check: (ctx) => {
      status(ctx, 200);
      assert.equal(ctx.a.body.length, file(p).length, 'body length');
      assert.equal(sha(ctx.a.body), sha(file(p)), 'body bytes');
      assert.equal(header(ctx.a, 'content-length'), String(file(p).length));
    },
  });
  return [
    getFile('/files/1k.bin', '1 KiB'),
    getFile('/files/64k.bin', '64 KiB'),
    getFile('/files/1m.bin', '1 MiB'),
    {
      name: "a HEAD of a file answers the file's Content-Length and no body",
      method: 'HEAD',
      path: (id) => `/files/64k.bin?id=${id}`,
      check: (ctx) => {
        status(ctx, 200);
        assert.equal(header(ctx.a, 'content-length'), String(64 * 1024));
        noBody(ctx);
      },
    },
    {
      name: "nginx's on-the-fly gzip passes through compressed and chunked",
      path: (id) => `/text/lines.txt?id=${id}`,
      headers: { 'accept-encoding': 'gzip' },
      check: (ctx) => {
        status(ctx, 200);
        stillGzip(ctx);
        assert.equal(sha(content(ctx.a, ctx.client)), sha(file('/text/lines.txt')));
        assert.equal(header(ctx.a, 'content-length'), undefined, 'nginx streams gzip output without a length');
      },
    },
    {
      name: 'a 204 location comes back as a 204 with no body and no Content-Length',
      path: (id) => `/204?id=${id}`,
      check: (ctx) => {
        status(ctx, 204);
        noBody(ctx);
        assert.equal(header(ctx.a, 'content-length'), undefined);
      },
    },
    {
      name: "an absolute redirect to nginx's own host:port comes back pointing at the authority the client used",
      path: (id) => `/self-redirect?id=${id}`,
      check: (ctx) => {
        status(ctx, 302);
        assert.equal(header(ctx.a, 'location'), `${ctx.origin}/files/1k.bin?id=${ctx.id}`);
      },
    },
    {
      name: "following nginx's absolute self-redirect goes back through breakwater",
      path: (id) => `/self-redirect?id=${id}`,
      follow: true,
      check: async (ctx) => {
        status(ctx, 200);
        assert.equal(sha(ctx.a.body), sha(file('/files/1k.bin')));
        await passedThrough(ctx, `/files/1k.bin?id=${ctx.id}`);
      },
    },
  ];
}

const config = (name: string, origin: string): string => `
version: 1
admin: { address: 127.0.0.1:0 }
log: { includeQuery: true }
defaults:
  timeout: { total: 30s }
listeners:
  - name: direct
    address: 127.0.0.1:0
    upstream: ${name}
  - name: egress
    address: 127.0.0.1:0
    routes:
      - match: { host: ${name}.test }
        upstream: ${name}
upstreams:
  ${name}: { url: "${origin}" }
`;

let rows = 0;

/** One describe per listener kind, one per client, one test per case: the whole table, every row run. */
function table(upstreamName: string, px: () => TestProxy, cases: readonly Case[]): void {
  const kinds = [
    { mode: 'direct' as const, title: `one-port listener (upstream: ${upstreamName})` },
    { mode: 'proxy' as const, title: `egress listener as HTTP proxy (http://${upstreamName}.test/...)` },
  ];
  for (const kind of kinds) {
    describe(kind.title, () => {
      for (const client of CLIENTS.filter((c) => c.mode === kind.mode)) {
        const peers: Peer[] = client.peer === null ? [] : [client.peer];
        describe(client.name, { skip: skipUnless(...peers) }, () => {
          before(() => requirePeers(...peers));
          for (const c of cases) {
            if (c.only !== undefined && !c.only(client)) continue;
            it(`${client.name}: ${c.name}`, async () => {
              const id = `r${++rows}p${process.pid}`;
              const origin = kind.mode === 'direct' ? px().url('direct') : `http://${upstreamName}.test`;
              const a = await client.send(
                { method: c.method ?? 'GET', url: origin + c.path(id), headers: c.headers, body: c.body, follow: c.follow },
                px().url('egress'),
              );
              await c.check({ client, a, origin, px: px(), id });
            });
          }
        });
      }
    });
  }
}

// The checks read nginx's files once it has written them (in before()).
let nginxFiles: ReadonlyMap<string, Buffer> = new Map();
const NGINX_CASES = nginxCases(() => nginxFiles);

describe('real clients and upstreams through breakwater', () => {
  describe('httpbin under gunicorn', { skip: skipUnless(PEERS.httpbin) }, () => {
    let httpbin: HttpPeer | undefined;
    let px: TestProxy | undefined;
    before(async () => {
      requirePeers(PEERS.httpbin);
      httpbin = await startHttpbin();
      px = await startProxy(config('httpbin', httpbin.origin));
    });
    after(async () => {
      await px?.close();
      await httpbin?.close();
    });
    table('httpbin', () => px!, HTTPBIN_CASES);
  });

  describe('nginx', { skip: skipUnless(PEERS.nginx) }, () => {
    let nginx: NginxPeer | undefined;
    let px: TestProxy | undefined;
    before(async () => {
      requirePeers(PEERS.nginx);
      nginx = await startNginx();
      nginxFiles = nginx.files;
      px = await startProxy(config('nginx', nginx.origin));
    });
    after(async () => {
      await px?.close();
      await nginx?.close();
    });
    table('nginx', () => px!, NGINX_CASES);
  });
});
