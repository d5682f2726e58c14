import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { describe, it } from 'node:test';
import { buildBaseHeaders } from '../../../src/http/forward-headers.ts';
import { h2Head } from '../../../src/http/h2-edge.ts';
import { Exchange } from '../../../src/pipeline/exchange.ts';

/** What h2Head reads of node's Http2ServerRequest. */
const h2req = (headers: Record<string, string>, endAfterHeaders = true): Http2ServerRequest =>
  ({ method: headers[':method'] ?? 'GET', headers: { ...headers }, stream: { endAfterHeaders } }) as unknown as Http2ServerRequest;

describe('reading an HTTP/2 request head (http/h2-edge.ts)', () => {
  it('takes :authority as the Host and :path as the target', () => {
    assert.deepEqual(h2Head(h2req({ ':path': '/a?b', ':authority': 'Api.Test:8080' })), { host: 'api.test', target: '/a?b' });
    assert.deepEqual(h2Head(h2req({ ':path': '/a', host: 'api.test' })), { host: 'api.test', target: '/a' }, 'a Host header alone will do');
    assert.deepEqual(h2Head(h2req({ ':path': '/a', ':authority': 'api.test', host: 'API.test' })), { host: 'api.test', target: '/a' }, 'both, agreeing');
  });

  it('refuses a Host that contradicts :authority, an invalid or missing authority, and a path not in origin-form', () => {
    const malformed: Record<string, string>[] = [
      { ':path': '/a', ':authority': 'api.test', host: 'evil.test' },
      { ':path': '/a', ':authority': 'evil@api.test' },
      { ':path': '/a' },
      { ':path': '*', ':authority': 'api.test' },
      { ':path': 'http://api.test/a', ':authority': 'api.test' },
    ];
    for (const h of malformed) {
      assert.equal(h2Head(h2req(h)), null, JSON.stringify(h));
    }
  });

  it('marks a body that END_STREAM frames (no content-length) the way HTTP/1.1 readers of the request expect', () => {
    const withBody = h2req({ ':method': 'POST', ':path': '/a', ':authority': 'api.test' }, false);
    h2Head(withBody);
    assert.equal(withBody.headers['transfer-encoding'], 'chunked');
    const sized = h2req({ ':method': 'POST', ':path': '/a', ':authority': 'api.test', 'content-length': '3' }, false);
    h2Head(sized);
    assert.equal(sized.headers['transfer-encoding'], undefined);
    const none = h2req({ ':path': '/a', ':authority': 'api.test' }, true);
    h2Head(none);
    assert.equal(none.headers['transfer-encoding'], undefined);
  });

  it('forwards no pseudo-header, and the :authority as x-forwarded-host', () => {
    const raw = [':method', 'GET', ':scheme', 'http', ':authority', 'api.test:8080', ':path', '/a', 'x-one', '1', 'te', 'trailers'];
    const req = { rawHeaders: raw, headers: {}, url: '/a', socket: { remoteAddress: '10.0.0.1' } } as unknown as IncomingMessage;
    const ex = new Exchange(req, {} as ServerResponse, 'l', 'rid', 'GET', '/a', 'api.test');
    buildBaseHeaders(ex);
    const names = ex.baseHeaders.filter((_, i) => i % 2 === 0);
    assert.deepEqual(names, ['x-one', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'host']);
    assert.equal(ex.originalHost, 'api.test:8080');
    assert.equal(ex.baseHeaders[names.indexOf('x-forwarded-host') * 2 + 1], 'api.test:8080');
  });
});
