import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OutcomeKind } from '../../../src/config/types.ts';
import { compileConditions } from '../../../src/config/policies.ts';
import { AttemptTimeoutError, classifyError, classifyStatus, errorCodeFor, matches } from '../../../src/pipeline/classify.ts';

const KINDS: readonly OutcomeKind[] = ['success', '5xx', '4xx', 'timeout', 'connect_failure', 'reset'];

/** An error shaped like Node's and undici's: a message and a string `code`, maybe a `cause`. */
function coded(code: unknown, cause?: unknown): Error {
  return Object.assign(new Error(String(code)), { code }, cause === undefined ? {} : { cause });
}

describe('classifyStatus (SPEC §4.2 outcome kinds)', () => {
  it('calls every status below 400 a success, 1xx to 3xx alike', () => {
    for (const s of [100, 101, 199, 200, 204, 299, 301, 304, 399]) assert.equal(classifyStatus(s), 'success', String(s));
  });

  it('calls 400 to 499 4xx and 500 upwards 5xx', () => {
    for (const s of [400, 404, 429, 499]) assert.equal(classifyStatus(s), '4xx', String(s));
    for (const s of [500, 502, 503, 504, 599]) assert.equal(classifyStatus(s), '5xx', String(s));
  });
});

describe('classifyError', () => {
  it('calls a refused, unresolvable or unreachable connection a connect_failure', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']) {
      assert.equal(classifyError(coded(code)), 'connect_failure', code);
    }
  });

  it('calls a TLS certificate the client refuses a connect_failure: the request never left', () => {
    for (const code of ['ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN']) {
      assert.equal(classifyError(coded(code)), 'connect_failure', code);
    }
  });

  it('calls every other certificate verification failure and a failed TLS handshake a connect_failure', () => {
    for (const code of ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_NOT_YET_VALID', 'HOSTNAME_MISMATCH', 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']) {
      assert.equal(classifyError(coded(code)), 'connect_failure', code);
    }
  });

  it('finds a connect error one level down, where undici wraps the socket error', () => {
    assert.equal(classifyError(coded('UND_ERR_SOCKET', coded('ECONNREFUSED'))), 'connect_failure');
    // Only one level: a connect code two causes down is not looked for.
    assert.equal(classifyError(coded('UND_ERR_SOCKET', coded('UND_ERR_SOCKET', coded('ECONNREFUSED')))), 'reset');
    // A cause is only read when the outer error has a code of its own.
    assert.equal(classifyError(Object.assign(new Error('x'), { cause: coded('ECONNREFUSED') })), 'reset');
  });

  it('calls breakwater’s own attempt timeout and undici’s headers timeout a timeout', () => {
    assert.equal(classifyError(new AttemptTimeoutError(false)), 'timeout');
    assert.equal(classifyError(new AttemptTimeoutError(true)), 'timeout');
    assert.equal(classifyError(coded('UND_ERR_HEADERS_TIMEOUT')), 'timeout');
  });

  it('calls a connection that ended before a full response head a reset, and so anything unknown', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_ABORTED', 'SOMETHING_NEW']) {
      assert.equal(classifyError(coded(code)), 'reset', code);
    }
    for (const err of [new Error('no code'), coded(42), null, undefined, 'a string', {}]) {
      assert.equal(classifyError(err), 'reset', String(err));
    }
  });
});

describe('AttemptTimeoutError', () => {
  it('says whether the request’s total or the attempt’s perTry ran out', () => {
    const perTry = new AttemptTimeoutError(false);
    const total = new AttemptTimeoutError(true);
    assert.equal(perTry.total, false);
    assert.equal(total.total, true);
    assert.equal(perTry.code, 'BW_ATTEMPT_TIMEOUT');
    assert.match(perTry.message, /perTry/);
    assert.match(total.message, /total/);
    assert.ok(perTry instanceof Error);
  });
});

describe('matches (retry on, breaker failOn)', () => {
  it('reads the flag of its kind for an attempt that produced no response, whatever the status', () => {
    for (const [kind, condition] of [['connect_failure', 'connect-failure'], ['reset', 'reset'], ['timeout', 'timeout']] as const) {
      for (const status of [0, 502]) {
        assert.equal(matches(compileConditions([condition]), kind, status), true, `${kind} in [${condition}]`);
        // Every other flag, and every status, set: still no match without its own flag.
        const others = compileConditions(['connect-failure', 'reset', 'timeout', '5xx'].filter((c) => c !== condition));
        assert.equal(matches(others, kind, status), false, `${kind} without ${condition}`);
      }
    }
  });

  it('reads the status set for an attempt that produced a response, never the flags', () => {
    const flags = compileConditions(['connect-failure', 'reset', 'timeout']);
    for (const [kind, status] of [['5xx', 503], ['4xx', 429], ['success', 200]] as const) {
      assert.equal(matches(flags, kind, status), false, `${kind} ${status} against flags only`);
      assert.equal(matches(compileConditions([status]), kind, status), true, `${kind} ${status} listed`);
      assert.equal(matches(compileConditions([status + 1]), kind, status), false, `${kind} ${status} not listed`);
    }
  });

  it('reads 5xx as 500 to 599 and gateway-error as 502, 503 and 504 only', () => {
    const fiveXx = compileConditions(['5xx']);
    const gateway = compileConditions(['gateway-error']);
    for (let s = 500; s <= 599; s++) {
      assert.equal(matches(fiveXx, '5xx', s), true, String(s));
      assert.equal(matches(gateway, '5xx', s), s === 502 || s === 503 || s === 504, String(s));
    }
    assert.equal(matches(fiveXx, '4xx', 499), false);
  });

  it('matches nothing for an empty list, over every kind', () => {
    const none = compileConditions([]);
    for (const kind of KINDS) for (const status of [0, 200, 429, 503]) assert.equal(matches(none, kind, status), false, `${kind} ${status}`);
  });
});

describe('errorCodeFor (SPEC §4.7)', () => {
  it('names the generated answer for an attempt that produced no response', () => {
    assert.equal(errorCodeFor('connect_failure'), 'connect_failure');
    assert.equal(errorCodeFor('timeout'), 'timeout');
    assert.equal(errorCodeFor('reset'), 'upstream_reset');
  });

  it('answers upstream_reset for any other kind, so a caller always gets a SPEC code', () => {
    for (const kind of ['success', '5xx', '4xx'] as const) assert.equal(errorCodeFor(kind), 'upstream_reset', kind);
  });
});
