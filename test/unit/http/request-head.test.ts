import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { connectHost80, parseTarget, validHostHeader } from '../../../src/http/request-head.ts';

const req = (url: string, host?: string): IncomingMessage => ({ url, headers: host === undefined ? {} : { host } }) as IncomingMessage;

describe('reading a request head (http/request-head.ts)', () => {
  it('accepts the Host values real clients send', () => {
    for (const v of ['api.test', 'API.Test', 'api.test:8080', '127.0.0.1', '127.0.0.1:80', '[::1]', '[::1]:15001', 'svc_name.ns', 'a-b.c', '']) {
      assert.equal(validHostHeader(v), true, v);
    }
  });

  it('refuses userinfo, lists, paths, bad ports, spaces and non-ASCII (RFC 9110 §7.2)', () => {
    for (const v of ['evil.example@api.test', 'a.test,b.test', 'a.test/x', 'a.test:junk', 'a.test:99999', 'a.test:', 'a .test', 'a.test\x80', '[::1', '[::1]x', 'a.test:80:80', 'a;b', '\ta.test']) {
      assert.equal(validHostHeader(v), false, JSON.stringify(v));
    }
  });

  it('routes origin-form by Host and absolute-form by its own authority', () => {
    assert.deepEqual(parseTarget(req('/x?y=1', 'Api.Test:8080')), { host: 'api.test', target: '/x?y=1' });
    assert.deepEqual(parseTarget(req('http://Pay.Internal:80/a/b?c', 'other')), { host: 'pay.internal', target: '/a/b?c' });
    assert.deepEqual(parseTarget(req('http://pay.internal')), { host: 'pay.internal', target: '/' });
    assert.deepEqual(parseTarget(req('http://pay.internal?q')), { host: 'pay.internal', target: '/?q' });
  });

  it('refuses absolute-form with userinfo, an empty or invalid authority, or another scheme', () => {
    for (const u of ['http://u@api.test/x', 'http://api.test:80@evil/x', 'http:///x', 'http://:80/x', 'http://a,b/x', 'ftp://api.test/x', '*']) {
      assert.equal(parseTarget(req(u, 'api.test')), null, u);
    }
  });

  it('opens a CONNECT tunnel only for port 80 of a valid host (SPEC §10.3)', () => {
    assert.equal(connectHost80('API.test:80'), 'api.test');
    for (const t of ['api.test:443', 'api.test', 'api.test:8080', 'u@api.test:80', ':80', 'a,b:80']) assert.equal(connectHost80(t), null, t);
  });
});
