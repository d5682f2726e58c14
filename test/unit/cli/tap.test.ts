import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prettyLine } from '../../../src/cli/tap.ts';

const time = '2026-03-01T12:34:56.789Z';

describe('breakwater tap, pretty lines', () => {
  it('shows a WebSocket tunnel as WS with its path, status, bytes each way, and how it ended when not a success, in the columns of a request line', () => {
    const request = prettyLine(
      { msg: 'request', time, method: 'GET', path: '/api/x', status: 503, durationMs: 12.34, route: 'api', upstream: 'users', endpoint: '10.0.0.1:80', attempts: 2, flags: ['retried'], error: null },
      false,
    );
    assert.equal(request, '12:34:56.789 GET    503   12.3ms /api/x               api → users 10.0.0.1:80 tries=2 [retried]');
    const base = { msg: 'tunnel', protocol: 'websocket', time, route: 'chat', upstream: 'chat', endpoint: '10.0.0.2:8080', path: '/socket', flags: [] };
    assert.equal(
      prettyLine({ ...base, status: 101, outcome: 'success', durationMs: 61_234.5, bytesIn: 2048, bytesOut: 3 * 1024 * 1024 }, false),
      '12:34:56.789 WS     101  61235ms /socket              chat → chat 10.0.0.2:8080 in=2.0KiB out=3.0MiB',
    );
    assert.equal(
      prettyLine({ ...base, endpoint: null, status: 503, outcome: 'circuit_open', durationMs: 0, bytesIn: 0, bytesOut: 180 }, false),
      '12:34:56.789 WS     503    0.0ms /socket              chat → chat circuit_open in=0B out=180B',
    );
    // No answer came from the upstream: the status the tap files it under.
    assert.match(prettyLine({ ...base, status: null, outcome: 'timeout', durationMs: 5000, bytesIn: 300, bytesOut: 120, flags: [] }, false), /^12:34:56\.789 WS {5}504 .* timeout in=300B out=120B$/);
  });

  it('shows a CONNECT tunnel as CONNECT with its authority, 200 once it was open, the bytes, the outcome and the flags', () => {
    const base = { msg: 'tunnel', protocol: 'connect', time, route: 'egress', upstream: 'api', endpoint: 'api.example.com:443', authority: 'api.example.com:443' };
    assert.equal(
      prettyLine({ ...base, outcome: 'idle_timeout', durationMs: 300.2, connectMs: 1.2, attempts: 1, bytesIn: 517, bytesOut: 15_000, flags: [] }, false),
      '12:34:56.789 CONNECT 200    300ms api.example.com:443  egress → api api.example.com:443 idle_timeout in=517B out=15KiB',
    );
    assert.equal(
      prettyLine({ ...base, outcome: 'connect_failure', durationMs: 40, connectMs: null, attempts: 3, bytesIn: 0, bytesOut: 0, flags: ['retried', 'retries_exhausted', 'connect_failure'] }, false),
      '12:34:56.789 CONNECT 503   40.0ms api.example.com:443  egress → api api.example.com:443 tries=3 connect_failure in=0B out=0B [retried,retries_exhausted,connect_failure]',
    );
    const colored = prettyLine({ ...base, outcome: 'rate_limited', durationMs: 0, connectMs: null, attempts: 0, bytesIn: 0, bytesOut: 0, flags: [] }, true);
    assert.match(colored, /\x1b\[33m429\x1b\[0m/, 'a 4xx in yellow');
  });
});
