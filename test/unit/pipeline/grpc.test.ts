import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConditions } from '../../../src/config/policies.ts';
import { loadConfigText } from '../../../src/config/load.ts';
import type { RetryConfig } from '../../../src/config/types.ts';
import { grpcStatusFor } from '../../../src/http/respond.ts';
import { ERROR_CODES } from '../../../src/errors.ts';
import { PENDING_GRPC, classifyGrpc, grpcStatusAtHead, matches } from '../../../src/pipeline/classify.ts';
import {
  GRPC_CODE_NAMES,
  NO_GRPC_STATUS,
  encodeGrpcMessage,
  grpcCodeName,
  grpcCodeOf,
  grpcStatusFromHttp,
  isGrpcContentType,
  parseGrpcStatus,
  parseGrpcTimeout,
  parsePushback,
} from '../../../src/pipeline/grpc.ts';
import { isRetriable, retryReason } from '../../../src/policies/retry/decide.ts';

describe('gRPC code names (SPEC §10.2)', () => {
  it('names all 17 codes in kebab-case, in code order, and reads any other code as unknown', () => {
    assert.equal(GRPC_CODE_NAMES.length, 17);
    assert.equal(grpcCodeName(0), 'ok');
    assert.equal(grpcCodeName(4), 'deadline-exceeded');
    assert.equal(grpcCodeName(8), 'resource-exhausted');
    assert.equal(grpcCodeName(14), 'unavailable');
    assert.equal(grpcCodeName(16), 'unauthenticated');
    assert.equal(grpcCodeName(17), 'unknown');
    assert.equal(grpcCodeName(-3), 'unknown');
    for (let c = 0; c < 17; c++) assert.equal(grpcCodeOf(grpcCodeName(c)), c);
    assert.equal(grpcCodeOf('UNAVAILABLE'), -1, 'the config writes names in lower case');
  });

  it('maps every generated answer to its gRPC status: rate_limited 8, timeout 4, no_route 12, bad_request 13, the rest 14', () => {
    const expected: Record<string, number> = { rate_limited: 8, timeout: 4, no_route: 12, bad_request: 13 };
    for (const code of ERROR_CODES) assert.equal(grpcStatusFor(code), expected[code] ?? 14, code);
  });
});

describe('gRPC headers', () => {
  it('tells gRPC requests by a content-type starting with application/grpc, any suffix, any case; gRPC-Web is plain HTTP', () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'Application/GRPC', 'application/grpc; charset=x']) assert.ok(isGrpcContentType(ct), ct);
    for (const ct of [undefined, '', 'application/json', 'application/gr', 'text/application/grpc', ['application/grpc'], 'application/grpc-web', 'application/grpc-web-text+proto']) {
      assert.ok(!isGrpcContentType(ct), String(ct));
    }
  });

  it('parses grpc-timeout in all six units and ignores what does not follow the format', () => {
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('3S'), 3000);
    assert.equal(parseGrpcTimeout('250m'), 250);
    assert.equal(parseGrpcTimeout('1500u'), 1.5);
    assert.equal(parseGrpcTimeout('2000000n'), 2);
    assert.equal(parseGrpcTimeout('99999999S'), 99_999_999_000);
    for (const bad of [undefined, '', '1', 'S', '1s', '1.5S', '-1S', '123456789S', ' 1S', '1S ', '1X']) assert.equal(parseGrpcTimeout(bad), null, String(bad));
  });

  it('reads grpc-status as a number, a missing one as none and a malformed one as unknown', () => {
    assert.equal(parseGrpcStatus('0'), 0);
    assert.equal(parseGrpcStatus('14'), 14);
    assert.equal(parseGrpcStatus(['13', '0']), 13);
    assert.equal(parseGrpcStatus(undefined), NO_GRPC_STATUS);
    assert.equal(parseGrpcStatus('UNAVAILABLE'), 2);
    assert.equal(parseGrpcStatus('-1'), 2);
  });

  it('honours a grpc-retry-pushback-ms of whole milliseconds and refuses a negative or malformed one', () => {
    assert.equal(parsePushback(undefined), null);
    assert.equal(parsePushback('0'), 0);
    assert.equal(parsePushback('150'), 150);
    for (const bad of ['-1', '1.5', 'soon', '', ' 10']) assert.equal(parsePushback(bad), 'refuse', bad);
  });

  it('derives the status a gRPC client sees from an HTTP status without grpc-status', () => {
    assert.equal(grpcStatusFromHttp(400), 13);
    assert.equal(grpcStatusFromHttp(401), 16);
    assert.equal(grpcStatusFromHttp(403), 7);
    assert.equal(grpcStatusFromHttp(404), 12);
    for (const s of [429, 502, 503, 504]) assert.equal(grpcStatusFromHttp(s), 14, String(s));
    for (const s of [200, 500, 418]) assert.equal(grpcStatusFromHttp(s), 2, String(s));
  });

  it('percent-encodes grpc-message outside printable ASCII, and % itself', () => {
    assert.equal(encodeGrpcMessage('plain text: ok'), 'plain text: ok');
    assert.equal(encodeGrpcMessage('100%'), '100%25');
    assert.equal(encodeGrpcMessage('é\n'), '%C3%A9%0A');
  });
});

describe('gRPC classification (the one classifier)', () => {
  it('classifies a response head: trailers-only status now, a 200 with a gRPC body later, others from the HTTP status', () => {
    assert.equal(grpcStatusAtHead(200, { 'content-type': 'application/grpc', 'grpc-status': '14' }), 14);
    assert.equal(grpcStatusAtHead(200, { 'content-type': 'application/grpc' }), PENDING_GRPC);
    assert.equal(grpcStatusAtHead(200, { 'content-type': 'text/html' }), 2);
    assert.equal(grpcStatusAtHead(503, { 'content-type': 'text/plain' }), 14);
    assert.equal(grpcStatusAtHead(503, { 'grpc-status': '8' }), 8);
  });

  it('calls a non-zero status on a non-error HTTP status grpc_error, and lets the HTTP status decide otherwise', () => {
    assert.equal(classifyGrpc(200, 0), 'success');
    assert.equal(classifyGrpc(200, 14), 'grpc_error');
    assert.equal(classifyGrpc(200, 99), 'grpc_error');
    assert.equal(classifyGrpc(503, 14), '5xx');
    assert.equal(classifyGrpc(404, 12), '4xx');
  });

  it('matches gRPC names in a condition set by code, an out-of-range code as unknown, never ok', () => {
    const set = compileConditions(['unavailable', 'unknown', 503]);
    assert.equal(set.grpc, (1 << 14) | (1 << 2));
    assert.ok(matches(set, 'grpc_error', 200, 14));
    assert.ok(matches(set, 'grpc_error', 200, 2));
    assert.ok(matches(set, 'grpc_error', 200, 42), 'a code outside 0–16 is unknown');
    assert.ok(!matches(set, 'grpc_error', 200, 13));
    assert.ok(!matches(set, 'success', 200, 0));
    assert.ok(matches(set, '5xx', 503, NO_GRPC_STATUS), 'HTTP conditions still match plain HTTP');
    assert.ok(matches(set, '5xx', 502, 14), 'a gRPC call’s 502 is UNAVAILABLE to its client');
    assert.ok(!matches(compileConditions(['5xx']), 'grpc_error', 200, 14), 'a gRPC status is a failure only where its name is listed');
  });

  it('retries a gRPC status `on` names whatever the method; other conditions still follow `methods`', () => {
    const loaded = loadConfigText(
      'version: 1\nlisteners: [{ name: l, address: "127.0.0.1:0", upstream: u }]\nupstreams:\n  u: { url: "http://127.0.0.1:1", retry: { on: [unavailable, reset, 503] } }\n',
      '/tmp/x.yaml',
      {},
    );
    assert.ok(loaded.ok);
    const retry: RetryConfig = loaded.config.upstreams.get('u')!.retry;
    assert.ok(isRetriable(retry, 'grpc_error', 200, 'POST', false, 14));
    assert.ok(!isRetriable(retry, 'grpc_error', 200, 'POST', false, 13));
    assert.ok(!isRetriable(retry, 'reset', 0, 'POST', false, NO_GRPC_STATUS), 'POST is not in methods');
    assert.ok(isRetriable(retry, '5xx', 503, 'POST', false, 14), 'a gRPC call’s 503 is UNAVAILABLE, which `on` names');
    assert.ok(!isRetriable(retry, '5xx', 503, 'POST', false, NO_GRPC_STATUS));
    assert.equal(retryReason('grpc_error', 200, 14), 'unavailable');
    assert.equal(retryReason('5xx', 503, 14), '503');
  });

  it('refuses gRPC names the format does not know, and protocol h2c/h2 on the wrong scheme', () => {
    const bad = loadConfigText(
      'version: 1\nlisteners: [{ name: l, address: "127.0.0.1:0", upstream: u }]\nupstreams:\n  u: { url: "http://127.0.0.1:1", retry: { on: [unavailible] }, protocol: h2 }\n  v: { url: "https://127.0.0.1:1", protocol: h2c }\n',
      '/tmp/x.yaml',
      {},
    );
    assert.ok(!bad.ok);
    const text = bad.errors.map(String).join('\n');
    assert.match(text, /upstreams\.u\.retry\.on\[0\]/);
    assert.match(text, /upstreams\.u\.protocol.*h2 is HTTP\/2 over TLS/);
    assert.match(text, /upstreams\.v\.protocol.*h2c is HTTP\/2 over cleartext/);
  });
});
