import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CODES, ERRORS, errorBody } from '../../src/errors.ts';

/** SPEC §4.7, as the black-box tests read it. */
const SPEC: Record<string, number> = {
  no_route: 404,
  method_not_allowed: 405,
  rate_limited: 429,
  circuit_open: 503,
  bulkhead_full: 503,
  connect_failure: 503,
  upstream_reset: 502,
  timeout: 504,
  request_too_large: 413,
  header_too_large: 431,
  bad_request: 400,
  draining: 503,
};

describe('the generated-response catalogue', () => {
  it('holds exactly the SPEC §4.7 codes with their statuses', () => {
    assert.deepEqual([...ERROR_CODES].sort(), Object.keys(SPEC).sort());
    for (const code of ERROR_CODES) {
      assert.equal(ERRORS[code].code, code);
      assert.equal(ERRORS[code].status, SPEC[code], code);
      assert.ok(ERRORS[code].message.length > 0);
    }
  });

  it('is documented in the README with the same statuses, and the README lists no other code', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Responses breakwater generates'), readme.indexOf('## Observability'));
    const rows = [...section.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])] as const);
    assert.deepEqual(Object.fromEntries(rows), SPEC);
  });

  it('renders the SPEC body: error, message, upstream, route, requestId', () => {
    assert.deepEqual(JSON.parse(errorBody('timeout', 'payments', 'egress/0', 'rid-1')), {
      error: 'timeout',
      message: ERRORS.timeout.message,
      upstream: 'payments',
      route: 'egress/0',
      requestId: 'rid-1',
    });
  });
});
