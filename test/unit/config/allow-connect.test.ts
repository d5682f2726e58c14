// `allowConnect` (SPEC §10.3): what `breakwater validate` accepts and refuses
// for a route that opens CONNECT byte tunnels.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { config, errorAt } from './helpers.ts';

const file = (route: string, url = 'https://api.example.com'): string =>
  `version: 1\nlisteners:\n  - { name: l, address: 127.0.0.1:0, routes: [${route}] }\nupstreams: { u: { url: "${url}" } }\n`;

describe('allowConnect', () => {
  it('is off unless set, and compiles to a flag on the route', () => {
    assert.equal(config(file('{ upstream: u, match: { host: api.example.com } }')).listeners[0]!.routes[0]!.allowConnect, false);
    assert.equal(config(file('{ upstream: u, match: { host: api.example.com }, allowConnect: true }')).listeners[0]!.routes[0]!.allowConnect, true);
    assert.equal(config(file('{ upstream: u, match: { host: "*.example.com" }, allowConnect: true }')).listeners[0]!.routes[0]!.allowConnect, true);
    assert.equal(config(file('{ upstream: u, allowConnect: true }')).listeners[0]!.routes[0]!.allowConnect, true);
  });

  it('is a boolean', () => {
    assert.match(errorAt(file('{ upstream: u, allowConnect: yes please }'), 'listeners[0].routes[0].allowConnect').message, /expected true or false/);
  });

  it('refuses path, method and header conditions: a tunnel is matched by host only', () => {
    for (const m of ['pathPrefix: /v1', 'methods: [GET]', 'headers: { x-a: b }']) {
      const key = m.slice(0, m.indexOf(':'));
      const e = errorAt(file(`{ upstream: u, match: { host: api.example.com, ${m} }, allowConnect: true }`), `listeners[0].routes[0].match.${key}`);
      assert.match(e.message, /matches CONNECT by host only/);
    }
  });

  it("refuses a route whose host matches none of its upstream's endpoints on a port other than 80", () => {
    assert.match(
      errorAt(file('{ upstream: u, match: { host: other.example.com }, allowConnect: true }'), 'listeners[0].routes[0].allowConnect').message,
      /no endpoint of upstream u is at a host this route matches/,
    );
    errorAt(file('{ upstream: u, match: { host: api.example.com }, allowConnect: true }', 'http://api.example.com'), 'listeners[0].routes[0].allowConnect');
  });
});
