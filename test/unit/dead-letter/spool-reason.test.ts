import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { failure } from '../../../src/errors.ts';
import type { DeadLetterConfig, DeadLetterTrigger } from '../../../src/config/types.ts';
import type { Reply } from '../../../src/pipeline/handler.ts';
import type { UpstreamResponse } from '../../../src/pipeline/upstream-response.ts';
import type { OutcomeKind } from '../../../src/config/types.ts';
import { spoolReason } from '../../../src/dead-letter/spool-step.ts';

const BUILTIN: DeadLetterTrigger[] = ['retries-exhausted', 'circuit-open', 'bulkhead-full', 'rate-limited', 'timeout', 'connect-failure'];

function cfg(on: DeadLetterTrigger[] = BUILTIN, statuses: number[] = []): DeadLetterConfig {
  return { path: 'x', maxEntries: 1, maxBytes: 1, maxAge: 1, maxBodySize: 1, respond: 'error', on: new Set(on), statuses: new Set(statuses), replay: { auto: false, rate: { tokens: 1, periodMs: 1000, perMs: 0.001, source: '1/s' } } };
}

function upstream(status: number, kind: OutcomeKind, exhausted = false): Reply {
  const r: UpstreamResponse = { type: 'upstream', status, kind, grpcStatus: -1, headers: null, error: null, totalExpired: false, exhausted, discard() {}, commitTo() {}, tap() {} };
  return r;
}

describe('which failures are spooled (spoolReason)', () => {
  it('takes the built-in failure kinds, each under its own reason', () => {
    const c = cfg();
    assert.equal(spoolReason(c, failure('circuit_open')), 'circuit_open');
    assert.equal(spoolReason(c, failure('bulkhead_full')), 'bulkhead_full');
    assert.equal(spoolReason(c, failure('rate_limited')), 'rate_limited');
    assert.equal(spoolReason(c, failure('timeout')), 'timeout');
    assert.equal(spoolReason(c, upstream(0, 'connect_failure')), 'connect_failure');
    assert.equal(spoolReason(c, upstream(0, 'timeout')), 'timeout');
    assert.equal(spoolReason(c, upstream(503, '5xx', true)), 'retries_exhausted');
    assert.equal(spoolReason(c, upstream(0, 'reset', true)), 'retries_exhausted');
  });

  it('leaves out resets, plain upstream answers, the client’s own faults and static answers unless listed', () => {
    const c = cfg();
    assert.equal(spoolReason(c, upstream(0, 'reset')), null);
    assert.equal(spoolReason(c, failure('upstream_reset')), null);
    assert.equal(spoolReason(c, upstream(503, '5xx')), null);
    assert.equal(spoolReason(c, upstream(200, 'success')), null);
    assert.equal(spoolReason(c, failure('request_too_large')), null);
    assert.equal(spoolReason(c, failure('bad_request')), null);
    assert.equal(spoolReason(c, { type: 'static', status: 503, headers: {}, body: '' }), null);
  });

  it('takes resets, 5xx and listed statuses when `on` says so, and nothing it does not list', () => {
    assert.equal(spoolReason(cfg(['reset']), upstream(0, 'reset')), 'reset');
    assert.equal(spoolReason(cfg(['reset']), failure('upstream_reset')), 'reset');
    assert.equal(spoolReason(cfg(['5xx']), upstream(502, '5xx')), 'status');
    assert.equal(spoolReason(cfg([], [409]), upstream(409, '4xx')), 'status');
    assert.equal(spoolReason(cfg([], [409]), upstream(503, '5xx')), null);
    assert.equal(spoolReason(cfg([]), failure('circuit_open')), null);
    assert.equal(spoolReason(cfg(['timeout']), upstream(0, 'connect_failure')), null);
  });
});
