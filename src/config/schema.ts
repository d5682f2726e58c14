/**
 * The config format (SPEC §2, policies §4), declared once. The validator
 * walks the YAML with it, merge.ts takes the built-in defaults from it, and
 * `jsonSchema()` publishes it as config/breakwater.schema.json
 * (`node scripts/gen-schema.ts`; a test keeps the file in step).
 *
 * Every built-in default is the `default` of its key, written the way a user
 * would write it. A block's keys are all optional here: a block holds what one
 * place of the file says, and is merged key by key (built-in < defaults <
 * upstream < route) before the built-ins fill what nobody said.
 */
import {
  boolean,
  custom,
  forbidden,
  integer,
  list,
  literal,
  map,
  nullable,
  number,
  object,
  oneOf,
  string,
  union,
  withMeta,
  type Meta,
  type Schema,
  type TypeOf,
} from './dsl.ts';
import { adminToken } from './admin-token.ts';
import { toJsonSchema } from './json-schema.ts';
import { GRPC_CODE_NAMES } from '../pipeline/grpc.ts';
import { ADDRESS_EXPECTED, HOST_MATCH_EXPECTED, URL_EXPECTED, parseAddress, parseEndpoint, parseHostMatch } from './net.ts';
import type { Endpoint, HostMatch, ListenerAddress, Rate } from './types.ts';
import { DURATION_EXPECTED, RATE_EXPECTED, SIZE_EXPECTED, formatDuration, parseDuration, parseRate, parseSize } from './units.ts';

// ---- value types -------------------------------------------------------------

/** A `${VAR}` reference is accepted by editors wherever a typed scalar is: its value is checked at load time. */
const ENV_REF = { type: 'string', pattern: '\\$\\{', description: 'A ${VAR} or ${VAR:-default} reference, checked once interpolated.' };

function duration(opts: { min?: number } = {}, meta: Meta = {}): Schema<number> {
  const min = opts.min ?? 0;
  return custom<number>(
    {
      expected: min > 0 ? `${DURATION_EXPECTED}, of at least ${formatDuration(min)}` : DURATION_EXPECTED,
      parse: (v, env) => {
        const r = parseDuration(v, env);
        if (r.ok && r.value < min) return { ok: false, expected: `a duration of at least ${formatDuration(min)}` };
        return r;
      },
      json: { anyOf: [{ type: 'integer', minimum: min }, { type: 'string', pattern: '^\\d+(\\.\\d+)?(ms|s|m|h)$' }, ENV_REF] },
    },
    meta,
  );
}

function size(opts: { min?: number } = {}, meta: Meta = {}): Schema<number> {
  const min = opts.min ?? 0;
  return custom<number>(
    {
      expected: SIZE_EXPECTED,
      parse: (v, env) => {
        const r = parseSize(v, env);
        if (r.ok && r.value < min) return { ok: false, expected: `a size of at least ${min} bytes` };
        return r;
      },
      json: {
        anyOf: [
          { type: 'integer', minimum: min },
          { type: 'string', pattern: '^\\d+(\\.\\d+)? ?([Bb]|[KkMmGgTt][Bb]|[KkMmGgTt][Ii][Bb]?)$' },
          ENV_REF,
        ],
      },
    },
    meta,
  );
}

const rate = (meta: Meta = {}): Schema<Rate> =>
  custom<Rate>(
    { expected: RATE_EXPECTED, parse: (v) => parseRate(v), json: { anyOf: [{ type: 'string', pattern: '^\\d+(\\.\\d+)?/(\\d+(\\.\\d+)?)?(ms|s|m|h)$' }, ENV_REF] } },
    meta,
  );

const address = (meta: Meta = {}): Schema<ListenerAddress> =>
  custom<ListenerAddress>(
    { expected: ADDRESS_EXPECTED, parse: (v) => parseAddress(v), json: { anyOf: [{ type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]]+):\\d{1,5}$' }, ENV_REF] } },
    meta,
  );

const endpointUrl = (meta: Meta = {}): Schema<Endpoint> =>
  custom<Endpoint>({ expected: URL_EXPECTED, parse: (v) => parseEndpoint(v), json: { type: 'string', pattern: '^(https?://|\\$\\{)' } }, meta);

const hostMatch = (meta: Meta = {}): Schema<HostMatch> =>
  custom<HostMatch>({ expected: HOST_MATCH_EXPECTED, parse: (v) => parseHostMatch(v), json: { type: 'string', minLength: 1 } }, meta);

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerName = (meta: Meta = {}): Schema<string> => string({ pattern: HEADER_NAME, expected: 'an HTTP header name', lowerCase: true }, meta);
const headerValue = (meta: Meta = {}): Schema<string> => string({ expected: 'a header value (a string)', singleLine: true }, meta);

export const UPSTREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const upstreamRef = (meta: Meta = {}): Schema<string> => string({ minLength: 1, expected: 'the name of an upstream' }, meta);
const name = (meta: Meta = {}): Schema<string> => string({ minLength: 1, singleLine: true, expected: 'a non-empty name' }, meta);

export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH', 'CONNECT'] as const;
const method = oneOf(METHODS, { caseInsensitive: true, description: 'An HTTP method (any case; stored upper-case).' });
const mode = oneOf(['enforce', 'observe'] as const, {
  default: 'enforce',
  description: 'enforce, or observe: a dry run that counts and logs what it would have rejected and rejects nothing.',
});
const statusCode = integer({ min: 100, max: 599 }, { description: 'An HTTP status code.' });

// ---- policy blocks (SPEC §4) -------------------------------------------------

export const timeoutSchema = object(
  {
    connect: duration({ min: 1 }, { default: '1s', description: 'TCP+TLS connect of one attempt; its expiry is an attempt failure of kind connect-failure.' }),
    perTry: duration(
      { min: 1 },
      {
        description:
          'From the start of one attempt to its response headers; its expiry is an attempt failure of kind timeout. Built-in: the effective total, so a slow answer is not retried unless perTry is set. An effective perTry above the effective total is capped at total.',
      },
    ),
    total: duration({ min: 1 }, { default: '15s', description: 'From the request’s arrival to the response headers sent to the client: queueing, every attempt and every backoff included. Expiry answers 504 timeout.' }),
    idle: duration({ min: 1 }, { default: '60s', description: 'Longest gap between body chunks, either direction, after headers; expiry aborts the connection.' }),
  },
  { ref: 'timeout', description: 'Timeouts. Always in force, with these built-ins.' },
);

const RETRY_ON = ['connect-failure', 'reset', 'timeout', '5xx', 'gateway-error'] as const;
/** gRPC status names (SPEC §10.2), accepted in retry `on` and breaker `failOn`; `ok` is never a failure. */
const GRPC_CONDITIONS = GRPC_CODE_NAMES.filter((n) => n !== 'ok');
const retryCondition = union(
  [oneOf([...RETRY_ON, ...GRPC_CONDITIONS]), statusCode],
  `one of ${RETRY_ON.join(', ')}, a gRPC status name (unavailable, resource-exhausted, ...), or a status code from 100 to 599`,
  {
    description:
      'connect-failure (never reached the upstream), reset, timeout (perTry), 5xx (500–599), gateway-error (502, 503, 504), a status code, or a gRPC status name (unavailable, resource-exhausted, deadline-exceeded, internal, unknown, aborted...: a gRPC call answered with that grpc-status; such a call is retried whatever its method).',
  },
);

export const backoffSchema = object(
  {
    strategy: oneOf(['immediate', 'constant', 'linear', 'exponential', 'fibonacci'] as const, {
      default: 'exponential',
      description: 'Delay before retry n: immediate 0, constant base, linear base·n, exponential base·2^(n−1), fibonacci base·fib(n); capped at max.',
    }),
    base: duration({}, { default: '25ms', description: 'The unit of the backoff delays.' }),
    max: duration({}, { default: '250ms', description: 'Cap on one backoff delay (raise both for slow third-party APIs).' }),
    jitter: oneOf(['none', 'full', 'equal'] as const, { default: 'full', description: 'none; full: uniform 0..d; equal: d/2 + uniform 0..d/2.' }),
  },
  { ref: 'backoff', description: 'Delay between retries.' },
);

export const budgetSchema = object(
  {
    ratio: number({ min: 0 }, { default: 0.2, description: 'Share of the requests in the window that may be retries.' }),
    minPerSecond: number({ min: 0 }, { default: 10, description: 'Retries per second always allowed (may be fractional).' }),
    window: duration({ min: 1 }, { default: '10s', description: 'The window requests and retries are counted over.' }),
  },
  { ref: 'retryBudget', description: 'Retries are allowed while the retries of the last window stay below max(minPerSecond × window, ratio × requests in the window).' },
);

export const retrySchema = object(
  {
    maxRetries: integer({ min: 0, max: 10 }, { default: 2, description: 'Retries after the first attempt; 0 disables retries.' }),
    on: list(retryCondition, { default: ['connect-failure', 'reset', 'timeout', 502, 503, 504], description: 'Attempt outcomes that are retried.' }),
    methods: list(method, {
      default: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
      description: 'Methods that are retried; connect-failure is retried for every method, and so is a request carrying idempotencyKeyHeader.',
    }),
    idempotencyKeyHeader: headerName({ default: 'idempotency-key', description: 'A request carrying this header is retriable whatever its method.' }),
    backoff: backoffSchema,
    budget: nullable(budgetSchema, { description: 'Retry budget; null: no budget (retries are unbounded, validate warns). Built-in: ratio 0.2, minPerSecond 10, window 10s.' }),
    respectRetryAfter: boolean({ default: true, description: 'A retriable 429/503 with Retry-After waits that long (capped at 300s) instead of the backoff, if it fits in what is left of total.' }),
    bufferLimit: size({}, { default: '64KiB', description: 'Request bodies up to this size are kept to replay; larger ones stream through and are not retried.' }),
  },
  { ref: 'retry', description: 'Retries. Always in force, with these built-ins.' },
);

const FAIL_ON = ['5xx', 'gateway-error', 'timeout', 'connect-failure', 'reset'] as const;
export const circuitBreakerSchema = object(
  {
    consecutiveFailures: nullable(integer({ min: 1 }), { default: null, description: 'Failed attempts in a row that open the breaker; null: this trigger is off.' }),
    failureRate: nullable(number({ min: 0, exclusiveMin: true, max: 100 }), {
      default: 50,
      description: 'Percent of failed attempts within window that opens the breaker, once minimumRequests were seen; null: this trigger is off.',
    }),
    minimumRequests: integer({ min: 1 }, { default: 20, description: 'Attempts that must be seen in window before failureRate applies.' }),
    window: duration({ min: 1 }, { default: '10s', description: 'The rolling window of the failure-rate trigger.' }),
    openDuration: duration({ min: 1 }, { default: '30s', description: 'How long the breaker stays open before letting probes through.' }),
    halfOpenRequests: integer({ min: 1 }, { default: 1, description: 'Probe requests let through concurrently while half-open.' }),
    successThreshold: integer({ min: 1 }, { default: 1, description: 'Consecutive probe successes that close the breaker.' }),
    failOn: list(union([oneOf([...FAIL_ON, ...GRPC_CONDITIONS]), statusCode], `one of ${FAIL_ON.join(', ')}, a gRPC status name (unavailable, internal, ...), or a status code from 100 to 599`), {
      default: ['5xx', 'timeout', 'connect-failure', 'reset'],
      description: 'Attempt outcomes counted as failures; 4xx are not failures unless listed, nor are gRPC statuses unless their names (unavailable, internal, ...) are.',
    }),
    mode,
  },
  { ref: 'circuitBreaker', offUnlessPresent: true, description: 'Circuit breaker of an upstream, shared by every route to it. Off unless present; {} turns it on with the built-ins.' },
);

export const bulkheadSchema = object(
  {
    maxConcurrent: integer({ min: 1 }, { default: 100, description: 'Requests in flight to the upstream.' }),
    maxQueue: integer({ min: 0 }, { default: 0, description: 'Requests that may wait (FIFO) for a slot; beyond that: 503 bulkhead_full.' }),
    queueTimeout: duration({}, { default: '1s', description: 'Longest wait in the queue.' }),
    mode,
  },
  { ref: 'bulkhead', offUnlessPresent: true, description: 'Concurrency limit of an upstream. Off unless present; {} turns it on with the built-ins.' },
);

export const rateLimitSchema = object(
  {
    rate: rate({ required: true, description: 'Tokens per period: 100/s, 6000/m, 50/100ms.' }),
    burst: integer({ min: 1 }, { description: 'Bucket size. Built-in: one second’s worth of rate (rounded up, at least 1).' }),
    maxWait: duration({}, { default: '0s', description: 'How long a request may wait for a token before 429 rate_limited.' }),
    mode,
    scope: oneOf(['local', 'global'] as const, {
      default: 'local',
      description: 'local: this process’s own bucket; global: one bucket shared through the top-level redis block by every breakwater with the same key (SPEC §12).',
    }),
    key: string({ pattern: /^[A-Za-z0-9._:-]{1,100}$/, expected: 'a key of letters, digits, ".", "_", ":" or "-"' }, {
      description: 'scope global: the shared bucket’s name in Redis. Built-in: upstream:<name> or route:<name>.',
    }),
    onRedisError: oneOf(['allow', 'deny'] as const, {
      description: 'scope global: this limit’s answer while Redis is slow or down — allow (its local share of the rate) or deny (429). Built-in: redis.onRedisError.',
    }),
  },
  { ref: 'rateLimit', offUnlessPresent: true, description: 'Token bucket; each request (not each retry) takes one token. Off unless present.' },
);

export const FALLBACK_TRIGGERS = ['circuit-open', 'connect-failure', 'timeout', 'retries-exhausted', 'bulkhead-full', 'rate-limited', '5xx'] as const;
export const BUILTIN_FALLBACK_ON = ['circuit-open', 'connect-failure', 'timeout', 'retries-exhausted', 'bulkhead-full'] as const;

export const staticResponseSchema = object(
  {
    status: withMeta(statusCode, { default: 503, description: 'Status of the static answer.' }),
    headers: map(headerValue(), { keyPattern: HEADER_NAME, keyExpected: 'an HTTP header name', lowerCaseKeys: true }, { default: {}, description: 'Headers of the static answer.' }),
    body: string({}, { default: '', description: 'Body of the static answer.' }),
  },
  { ref: 'staticResponse', offUnlessPresent: true, description: 'A static degraded answer, the last resort.' },
);

export const fallbackSchema = object(
  {
    upstream: nullable(upstreamRef(), { description: 'Another upstream, tried with its own policies and its own fallback (chains are allowed, cycles are errors); null cancels an inherited one.' }),
    response: nullable(staticResponseSchema, { description: 'A static answer; null cancels an inherited one.' }),
    on: list(oneOf(FALLBACK_TRIGGERS), { default: [...BUILTIN_FALLBACK_ON], description: 'What makes the fallback serve. [] never fires.' }),
  },
  { ref: 'fallback', offUnlessPresent: true, description: 'Fallback: another upstream and/or a static response. Off unless present; needs upstream or response once merged.' },
);

export const DEAD_LETTER_TRIGGERS = ['retries-exhausted', 'circuit-open', 'bulkhead-full', 'rate-limited', 'timeout', 'connect-failure', 'reset', '5xx'] as const;
export const BUILTIN_DEAD_LETTER_ON = ['retries-exhausted', 'circuit-open', 'bulkhead-full', 'rate-limited', 'timeout', 'connect-failure'] as const;

export const deadLetterSchema = object(
  {
    path: string({ minLength: 1, singleLine: true, expected: 'a file path' }, { default: 'breakwater-dead-letters.db', description: 'The spool file (SQLite); relative paths are under the working directory. Routes naming one path share one spool.' }),
    maxEntries: integer({ min: 1 }, { default: 10000, description: 'Entries kept for this route; beyond it the oldest are dropped (counted, logged).' }),
    maxBytes: size({ min: 1 }, { default: '64MiB', description: 'Bytes (bodies and headers) kept for this route; beyond it the oldest are dropped.' }),
    maxAge: duration({ min: 1 }, { default: '24h', description: 'Entries older than this are dropped.' }),
    maxBodySize: size({}, { default: '1MiB', description: 'Largest body spooled: a request with a larger body is not spooled (dropped, reason too_large), never stored truncated.' }),
    respond: oneOf(['error', 'accepted'] as const, { default: 'error', description: 'error: the failure as usual, plus x-breakwater-dead-letter; accepted: 202 with that header and {"deadLetter": ID}.' }),
    on: list(union([oneOf(DEAD_LETTER_TRIGGERS), statusCode], `one of ${DEAD_LETTER_TRIGGERS.join(', ')}, or a status code from 100 to 599`), {
      default: [...BUILTIN_DEAD_LETTER_ON],
      description: 'Failures that are spooled: failure kinds, or upstream status codes (an upstream answer with that status).',
    }),
    replay: object(
      {
        auto: boolean({ default: false, description: 'Replay automatically when the upstream’s breaker closes (and once at start-up and reload).' }),
        rate: rate({ default: '10/s', description: 'Replays per period, oldest first.' }),
      },
      { description: 'Replay of spooled requests to the route’s upstream.' },
    ),
  },
  { ref: 'deadLetter', offUnlessPresent: true, description: 'Dead-letter spool (SPEC §11.1): failed requests with a body-bearing method are stored durably before the client is answered, and replayed later. Off unless present; {} turns it on with the built-ins.' },
);

/** SPEC §11.2: a route's stale-if-error cache (policies/cache/). */
export const cacheSchema = object(
  {
    maxEntries: integer({ min: 1, max: 100_000 }, { default: 1000, description: 'URLs kept (each with up to 8 Vary variants); beyond it the least recently used URL is evicted. Its index (about 24 bytes per entry) is allocated up front.' }),
    maxBytes: size({ min: 1 }, { default: '16MiB', description: 'Bytes kept (bodies and headers of every stored response); beyond it the least recently used are evicted.' }),
    maxEntrySize: size({ min: 1 }, { default: '1MiB', description: 'Largest stored response (body and headers); larger ones pass through unstored. Capped at maxBytes.' }),
    staleIfError: duration({}, {
      default: '5m',
      description: 'How long after a stored response becomes stale it may still be served when the upstream fails; a response’s own Cache-Control stale-if-error (RFC 5861) takes precedence.',
    }),
    serveFresh: boolean({ default: false, description: 'Serve a fresh stored response without asking the upstream (an ordinary shared cache); false: the cache answers only when the upstream fails.' }),
  },
  {
    ref: 'cache',
    offUnlessPresent: true,
    description: 'Stale-if-error cache of GET/HEAD responses (RFC 9111 storage rules), served when the upstream fails as the fallback on list says, before fallback.upstream and fallback.response. Off unless present; {} turns it on with the built-ins.',
  },
);

// ---- structure (SPEC §2) -----------------------------------------------------

const ROUTE_BREAKER_MESSAGE =
  'circuitBreaker is not allowed on a route: it protects an upstream and its state is shared by every route to it; move it to upstreams.<name>.circuitBreaker';
const UPSTREAM_CACHE_MESSAGE =
  'cache is not allowed on an upstream: it keeps one route’s responses; move it to the routes that should have one (listeners[].routes[].cache)';
const ROUTE_BULKHEAD_MESSAGE =
  'bulkhead is not allowed on a route: it protects an upstream and its slots are shared by every route to it; move it to upstreams.<name>.bulkhead';

export const routeSchema = object(
  {
    name: name({ description: 'Unique across the file (a metric label and the key of per-route state). Built-in: "<listener>/<index>".' }),
    match: object(
      {
        host: hostMatch({ description: 'Exact host, or *.suffix (one or more labels before the suffix); case-insensitive, port ignored.' }),
        pathPrefix: string({ pattern: /^\//, expected: 'a path starting with /' }, { description: 'Path prefix the request path must start with.' }),
        methods: list(method, { minItems: 1, description: 'Methods this route takes.' }),
        headers: map(headerValue(), { keyPattern: HEADER_NAME, keyExpected: 'an HTTP header name', lowerCaseKeys: true }, { description: 'Request headers that must have exactly these values.' }),
      },
      { ref: 'match', description: 'What a request must look like to take this route; absent: everything. First matching route wins.' },
    ),
    upstream: upstreamRef({ required: true, description: 'The upstream this route forwards to.' }),
    stripPrefix: boolean({ default: false, description: 'Remove match.pathPrefix from the path sent upstream (/inventory/items -> /items).' }),
    allowConnect: boolean({
      default: false,
      description:
        'Allow CONNECT byte tunnels (HTTPS_PROXY) to this route’s hosts, for ports other than 80: only to an authority (host:port) that is one of the upstream’s endpoints. The tunnel is opaque, so such a route matches by host only.',
    }),
    timeout: timeoutSchema,
    retry: retrySchema,
    fallback: fallbackSchema,
    rateLimit: rateLimitSchema,
    deadLetter: deadLetterSchema,
    cache: cacheSchema,
    circuitBreaker: forbidden(ROUTE_BREAKER_MESSAGE),
    bulkhead: forbidden(ROUTE_BULKHEAD_MESSAGE),
  },
  { ref: 'route', description: 'A route; its timeout, retry and fallback are merged over its upstream’s key by key; its rateLimit is a bucket of its own.' },
);

export const limitsSchema = object(
  {
    headerSize: size({ min: 1 }, { default: '16KiB', description: 'Largest request head; beyond it 431 header_too_large.' }),
    bodySize: nullable(size(), { default: null, description: 'Largest request body; beyond it 413 request_too_large; null: unlimited.' }),
    headerTimeout: duration({ min: 1 }, { default: '10s', description: 'A request head must arrive whole within this from its first byte; beyond it 408 and the connection closes.' }),
    requestTimeout: duration({}, { default: '5m', description: 'A whole request, head and body, must arrive within this; beyond it 408 (or a close, once the answer started). 0: no bound (a route still bounds what it reads by timeout.total and idle).' }),
    maxConcurrentStreams: integer({ min: 1, max: 10000 }, { default: 100, description: 'HTTP/2 (h2c): streams one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with RST_STREAM.' }),
  },
  { description: 'Request size and arrival-time limits.' },
);

export const listenerSchema = object(
  {
    name: name({ required: true, description: 'Unique listener name (a metric label).' }),
    address: address({ required: true, description: 'host:port or [ipv6]:port to listen on; port 0 picks a free port.' }),
    routes: list(routeSchema, { description: 'Routes, first match wins.' }),
    upstream: upstreamRef({ description: 'Shorthand for one catch-all route, named like the listener.' }),
    limits: limitsSchema,
    underscoreHeaders: oneOf(['drop', 'allow', 'reject'] as const, {
      default: 'drop',
      description: 'Request header names with "_": drop them (built-in, as nginx does: some servers read Content_Length as Content-Length), pass them on, or answer 400.',
    }),
  },
  { ref: 'listener', exactlyOne: [['routes', 'upstream']], description: 'A port the service sends its outbound HTTP to.' },
);

export const poolSchema = object(
  {
    connections: integer({ min: 1 }, { default: 64, description: 'Connections per endpoint.' }),
    keepAlive: duration({}, { default: '4s', description: 'How long an idle connection is kept.' }),
  },
  { description: 'Connection pool per endpoint.' },
);

export const requestHeadersSchema = object(
  {
    set: map(headerValue({ sensitive: true }), { keyPattern: HEADER_NAME, keyExpected: 'an HTTP header name', lowerCaseKeys: true }, {
      default: {},
      description: 'Headers set on every request upstream (credential injection); their values are redacted in GET /config.',
    }),
    remove: list(headerName(), { default: [], description: 'Headers removed from every request upstream.' }),
  },
  { description: 'Request headers rewritten on the way upstream.' },
);

const filePath = (meta: Meta = {}): Schema<string> => string({ minLength: 1, singleLine: true, expected: 'a file path' }, meta);
const SERVERNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export const tlsSchema = object(
  {
    ca: filePath({ description: 'PEM file of the CA certificate(s) that sign the upstream’s certificate; relative paths are read from the config file’s directory. Watched: a changed file is used by new connections.' }),
    caMode: oneOf(['replace', 'add'] as const, {
      default: 'replace',
      description: 'replace: trust only the certificates of ca (as curl --cacert); add: trust them and the system roots.',
    }),
    cert: filePath({ description: 'Client certificate (PEM, leaf first, then intermediates) for mTLS; needs key. Watched.' }),
    key: filePath({ description: 'Unencrypted PEM private key of cert; needs cert. Watched.' }),
    servername: string({ pattern: SERVERNAME, expected: 'a host name' }, { description: 'SNI, and the name the upstream’s certificate is verified against. Built-in: the endpoint’s host.' }),
    minVersion: oneOf(['TLSv1.2', 'TLSv1.3'] as const, { default: 'TLSv1.2', description: 'Oldest TLS version offered.' }),
  },
  { ref: 'tls', description: 'TLS to the upstream’s https:// endpoints. Certificates are always verified.' },
);

export const upstreamSchema = object(
  {
    url: endpointUrl({ description: 'The one endpoint: http(s)://host[:port], no path.' }),
    endpoints: list(endpointUrl(), { minItems: 1, description: 'Several endpoints, balanced.' }),
    tls: tlsSchema,
    protocol: oneOf(['http1', 'h2c', 'h2', 'auto'] as const, {
      default: 'http1',
      description:
        'How breakwater talks to the endpoints: http1 (HTTP/1.1 only, h2 never offered); h2c (HTTP/2 with prior knowledge, http:// endpoints); h2 (HTTP/2 over TLS, required by ALPN, https:// endpoints); auto (ALPN on https://, h2 preferred; HTTP/1.1 on http://).',
    }),
    balance: oneOf(['round-robin', 'least-request', 'random'] as const, { default: 'round-robin', description: 'How an endpoint is picked.' }),
    pool: poolSchema,
    preserveHost: boolean({ default: false, description: 'Send the client’s Host; by default Host is rewritten to the endpoint’s authority.' }),
    requestHeaders: requestHeadersSchema,
    timeout: timeoutSchema,
    retry: retrySchema,
    circuitBreaker: circuitBreakerSchema,
    bulkhead: bulkheadSchema,
    rateLimit: rateLimitSchema,
    fallback: fallbackSchema,
    cache: forbidden(UPSTREAM_CACHE_MESSAGE),
  },
  { ref: 'upstream', exactlyOne: [['url', 'endpoints']], description: 'A service breakwater forwards to, with its policies.' },
);

export const defaultsSchema = object(
  {
    timeout: timeoutSchema,
    retry: retrySchema,
    circuitBreaker: circuitBreakerSchema,
    bulkhead: bulkheadSchema,
    rateLimit: rateLimitSchema,
    fallback: fallbackSchema,
  },
  { description: 'Policy blocks merged into every upstream, key by key (the upstream’s keys win).' },
);

const REDIS_URL = /^rediss?:\/\/[^\s]+$/;
const redisUrl = (meta: Meta = {}): Schema<string> => string({ pattern: REDIS_URL, expected: 'a redis:// or rediss:// URL' }, { sensitive: true, ...meta });
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

export const redisSchema = object(
  {
    url: redisUrl({ description: 'Standalone Redis: redis://[user:password@]host:port[/db], rediss:// for TLS. Kept out of logs and GET /config.' }),
    sentinel: object(
      {
        name: string({ minLength: 1, singleLine: true }, { required: true, description: 'The monitored master’s name.' }),
        sentinels: list(string({ pattern: HOST_PORT, expected: 'host:port' }), { required: true, minItems: 1, description: 'Sentinels, host:port.' }),
        password: string({}, { sensitive: true, description: 'Password of the Sentinels themselves, if they need one; use ${VAR}.' }),
      },
      { description: 'Redis behind Sentinel: the master is asked of the Sentinels and followed through failovers.' },
    ),
    cluster: object(
      { nodes: list(redisUrl(), { required: true, minItems: 1, description: 'Seed nodes (redis:// URLs); the rest is discovered.' }) },
      { description: 'Redis Cluster. Each limit’s keys share one hash slot.' },
    ),
    username: string({}, { description: 'ACL user name; use ${VAR}.' }),
    password: string({}, { sensitive: true, description: 'Password; use ${VAR}: never logged, redacted in GET /config.' }),
    tls: object(
      {
        ca: string({ minLength: 1, singleLine: true, expected: 'a file path' }, { description: 'PEM CA file that signs the server’s certificate; relative to the config file. Built-in: the system roots.' }),
        servername: string({ minLength: 1, singleLine: true }, { description: 'Name the certificate is checked against. Built-in: the host.' }),
      },
      { description: 'TLS to Redis (also on with a rediss:// URL). Certificates are always verified.' },
    ),
    timeout: duration({ min: 1 }, { default: '20ms', description: 'Longest a request ever waits on Redis; a slower answer counts as an error (SPEC §12).' }),
    onRedisError: oneOf(['allow', 'deny'] as const, {
      default: 'allow',
      description: 'Redis slow or down: allow (each process falls back to its local share of the rate) or deny (refuse with 429 until Redis answers).',
    }),
    keyPrefix: string({ pattern: /^[A-Za-z0-9._:-]{1,100}$/, expected: 'letters, digits, ".", "_", ":" or "-"' }, { default: 'breakwater', description: 'Prefix of every key breakwater writes.' }),
  },
  { ref: 'redis', exactlyOne: [['url', 'sentinel', 'cluster']], description: 'The Redis that rateLimit.scope global shares its buckets through (SPEC §12). Connected once, shared by every global limit.' },
);

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/** An OTLP/HTTP traces URL: http(s), with its path (e.g. http://collector:4318/v1/traces). */
const otlpUrl = (meta: Meta = {}): Schema<string> =>
  custom<string>(
    {
      expected: 'an http:// or https:// URL of an OTLP/HTTP traces endpoint',
      parse: (v) => {
        if (typeof v !== 'string') return { ok: false, expected: 'an http:// or https:// URL of an OTLP/HTTP traces endpoint' };
        try {
          const u = new URL(v);
          if ((u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '') return { ok: true, value: u.href };
        } catch {
          // not a URL: reported below
        }
        return { ok: false, expected: 'an http:// or https:// URL (no credentials) of an OTLP/HTTP traces endpoint' };
      },
      json: { type: 'string', pattern: '^(https?://|\\$\\{)' },
    },
    meta,
  );

export const tracingSchema = object(
  {
    endpoint: otlpUrl({ required: true, description: 'OTLP/HTTP (protobuf) traces URL, e.g. http://otel-collector:4318/v1/traces.' }),
    sampleRatio: number({ min: 0, max: 1 }, { default: 1, description: 'Share of new traces sampled (0..1); a request with a traceparent follows its parent’s sampled flag.' }),
    serviceName: string({ minLength: 1, singleLine: true, expected: 'a non-empty name' }, { description: 'service.name of the spans. Built-in: $OTEL_SERVICE_NAME, else "breakwater".' }),
    queueSize: integer({ min: 1, max: 1_000_000 }, { default: 2048, description: 'Finished spans waiting for export; when full, new spans are dropped and counted (trace_spans_dropped_total), never waited for.' }),
  },
  { ref: 'tracing', offUnlessPresent: true, description: 'OpenTelemetry traces, exported over OTLP/HTTP. Off unless present.' },
);

export const configSchema = object(
  {
    version: literal(1, { required: true, description: 'Format version: 1.' }),
    admin: object(
      {
        address: address({ default: '127.0.0.1:9901', description: 'Where the admin API listens; a non-loopback address is warned about and needs `token`.' }),
        token: adminToken({
          description: 'Bearer token the admin API requires (except /healthz, /readyz, /metrics), from the environment: ${BREAKWATER_ADMIN_TOKEN}. Required when `address` is not loopback.',
        }),
      },
      { description: 'The admin API (metrics, health, config, reload).' },
    ),
    log: object(
      {
        level: oneOf(LOG_LEVELS, { default: 'info', description: 'Log level.' }),
        access: boolean({ default: true, description: 'One JSON access-log line per request.' }),
        includeQuery: boolean({ default: false, description: 'Log query strings.' }),
        headers: list(headerName(), { default: [], description: 'Request headers to log; authorization, cookie and proxy-authorization are never logged.' }),
      },
      { description: 'Logging.' },
    ),
    drain: object(
      {
        delay: duration({}, { default: '0s', description: 'Keep serving this long after SIGTERM, readiness already failing.' }),
        timeout: duration({}, { default: '30s', description: 'Then wait at most this long for in-flight requests.' }),
      },
      { description: 'Graceful shutdown.' },
    ),
    audit: object(
      {
        file: nullable(string({ minLength: 1, singleLine: true, expected: 'a file path' }), {
          default: null,
          description: 'Write audit lines (config changes, admin actions) to this file, appended, instead of stdout; relative to the config file. Reopened on every reload request (SIGHUP after a rotation). null: stdout, with the other log lines.',
        }),
      },
      { description: 'The audit log (config changes and admin actions).' },
    ),
    defaults: defaultsSchema,
    redis: redisSchema,
    tracing: tracingSchema,
    listeners: list(listenerSchema, { required: true, description: 'Listeners; names and addresses are unique (port 0 excepted).' }),
    upstreams: map(upstreamSchema, { keyPattern: UPSTREAM_NAME, keyExpected: `an upstream name matching ${UPSTREAM_NAME.source}` }, {
      required: true,
      description: 'Upstreams by name, in file order.',
    }),
  },
  { extensions: true },
);

export type RawConfig = TypeOf<typeof configSchema>;
export type RawListener = TypeOf<typeof listenerSchema>;
export type RawRoute = TypeOf<typeof routeSchema>;
export type RawUpstream = TypeOf<typeof upstreamSchema>;
export type RawTimeout = TypeOf<typeof timeoutSchema>;
export type RawRetry = TypeOf<typeof retrySchema>;
export type RawCircuitBreaker = TypeOf<typeof circuitBreakerSchema>;
export type RawBulkhead = TypeOf<typeof bulkheadSchema>;
export type RawRateLimit = TypeOf<typeof rateLimitSchema>;
export type RawRedis = TypeOf<typeof redisSchema>;
export type RawFallback = TypeOf<typeof fallbackSchema>;
export type RawCache = TypeOf<typeof cacheSchema>;
export type RawTls = TypeOf<typeof tlsSchema>;
export type RawDefaults = TypeOf<typeof defaultsSchema>;
export type RawDeadLetter = TypeOf<typeof deadLetterSchema>;

/** The published JSON Schema of the format, generated from the declarations above. */
export function jsonSchema(): object {
  return toJsonSchema(configSchema, {
    title: 'breakwater config',
    description: 'Config of breakwater, a sidecar resilience proxy. Strings may hold ${VAR} or ${VAR:-default}, replaced from the environment at load time.',
  });
}
