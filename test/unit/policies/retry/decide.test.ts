import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OutcomeKind, RetryConfig } from '../../../../src/config/types.ts';
import { isRetriable, isRetriableKind, methodMayRetry, retryReason } from '../../../../src/policies/retry/decide.ts';
import { config, withUpstream } from '../../config/helpers.ts';

const retryOf = (block: string): RetryConfig => config(withUpstream(block)).upstreams.get('u')!.retry;

/** Every way an attempt ends, with the status it carries (0 when there was no response). */
const OUTCOMES: readonly (readonly [OutcomeKind, number])[] = [
  ['success', 200],
  ['success', 304],
  ['4xx', 404],
  ['4xx', 429],
  ['5xx', 500],
  ['5xx', 502],
  ['5xx', 503],
  ['5xx', 504],
  ['5xx', 599],
  ['timeout', 0],
  ['connect_failure', 0],
  ['reset', 0],
];
const METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE', 'POST', 'PATCH', 'CONNECT', 'PROPFIND'];
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Every (outcome, method, idempotency key) combination. */
function* cases(): Generator<{ kind: OutcomeKind; status: number; method: string; key: boolean; name: string }> {
  for (const [kind, status] of OUTCOMES) {
    for (const method of METHODS) {
      for (const key of [false, true]) yield { kind, status, method, key, name: `${kind} ${status} ${method}${key ? ' with idempotency-key' : ''}` };
    }
  }
}

describe('the retry decision (SPEC §4.2), over every outcome × method × idempotency key', () => {
  it('with the built-in policy, retries connect-failure, reset, timeout, 502, 503 and 504 of idempotent methods, and a connect failure of any', () => {
    const policy = retryOf('');
    const listed = (kind: OutcomeKind, status: number): boolean =>
      kind === 'connect_failure' || kind === 'reset' || kind === 'timeout' || status === 502 || status === 503 || status === 504;
    let retried = 0;
    for (const c of cases()) {
      const expected = listed(c.kind, c.status) && (c.kind === 'connect_failure' || c.key || IDEMPOTENT.has(c.method));
      assert.equal(isRetriable(policy, c.kind, c.status, c.method, c.key), expected, c.name);
      if (expected) retried++;
    }
    // connect_failure: 10 methods × 2; reset, timeout, 502, 503, 504: (6 idempotent × 2) + (4 others × key only).
    assert.equal(retried, 20 + 5 * (12 + 4));
  });

  it('with `on` and `methods` configured, retries only what they list, still a connect failure of any method', () => {
    const policy = retryOf('retry: { on: [5xx, 429, connect-failure], methods: [POST] }');
    const listed = (kind: OutcomeKind, status: number): boolean => kind === 'connect_failure' || (status >= 500 && status <= 599) || status === 429;
    for (const c of cases()) {
      const expected = listed(c.kind, c.status) && (c.kind === 'connect_failure' || c.key || c.method === 'POST');
      assert.equal(isRetriable(policy, c.kind, c.status, c.method, c.key), expected, c.name);
    }
  });

  it('never retries a connect failure `on` does not list, whatever the method', () => {
    const policy = retryOf('retry: { on: [reset, timeout, 5xx] }');
    for (const method of METHODS) for (const key of [false, true]) assert.equal(isRetriable(policy, 'connect_failure', 0, method, key), false, method);
  });

  it('never retries a success, even when `on` lists its status', () => {
    const policy = retryOf('retry: { on: [200, 304] }');
    for (const c of cases()) if (c.kind === 'success') assert.equal(isRetriable(policy, c.kind, c.status, c.method, c.key), false, c.name);
  });

  it('retries exactly when both the outcome rule (isRetriableKind) and the method rule (methodMayRetry) allow it', () => {
    for (const policy of [retryOf(''), retryOf('retry: { on: [5xx, 429], methods: [POST, PATCH] }')]) {
      for (const c of cases()) {
        const kindOk = isRetriableKind(policy, c.kind, c.status);
        const methodOk = methodMayRetry(policy, c.kind, c.method, c.key);
        assert.equal(isRetriable(policy, c.kind, c.status, c.method, c.key), kindOk && methodOk, c.name);
      }
    }
  });

  it('lets the method rule pass a connect failure or an idempotency key for every method, else only the listed methods', () => {
    const policy = retryOf('retry: { methods: [GET] }');
    for (const c of cases()) {
      const expected = c.kind === 'connect_failure' || c.key || c.method === 'GET';
      assert.equal(methodMayRetry(policy, c.kind, c.method, c.key), expected, c.name);
    }
  });
});

describe('retryReason (the retries_total reason label and the log)', () => {
  it('is the status code for a response and the kind for an attempt without one', () => {
    for (const [kind, status] of OUTCOMES) {
      const expected = kind === '4xx' || kind === '5xx' ? String(status) : kind;
      assert.equal(retryReason(kind, status), expected, `${kind} ${status}`);
    }
    assert.equal(retryReason('timeout', 504), 'timeout');
  });
});
