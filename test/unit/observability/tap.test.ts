import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MATCH_ALL, parseTapFilter, tapMatches, TapHub, tunnelStatus, type TapFilter, type TapSubscriber } from '../../../src/observability/tap.ts';
import type { Exchange } from '../../../src/pipeline/exchange.ts';

const parse = (q: string): TapFilter => {
  const f = parseTapFilter(new URLSearchParams(q));
  if ('error' in f) throw new Error(f.error);
  return f;
};
const ex = (route: string | null, upstream: string | null, flags: string[] | null = null) => ({ route, upstream, flags });

describe('tap filters (SPEC §13)', () => {
  it('parses route, upstream, status class or code, and flag', () => {
    assert.deepEqual(parse(''), MATCH_ALL);
    assert.deepEqual(parse('route=api&upstream=users&status=5xx&flag=retried'), { route: 'api', upstream: 'users', statusMin: 500, statusMax: 599, flag: 'retried' });
    assert.deepEqual(parse('status=503'), { ...MATCH_ALL, statusMin: 503, statusMax: 503 });
    assert.deepEqual(parse('status=4XX'), { ...MATCH_ALL, statusMin: 400, statusMax: 499 });
    assert.deepEqual(parse('route='), MATCH_ALL, 'an empty value filters nothing');
  });

  it('refuses unknown keys, repeated keys and malformed statuses with a message', () => {
    for (const [q, msg] of [
      ['rout=api', /unknown filter "rout"/],
      ['status=5xx&status=4xx', /more than once/],
      ['status=6xx', /neither a class/],
      ['status=50', /neither a class/],
      ['status=abc', /neither a class/],
    ] as const) {
      const f = parseTapFilter(new URLSearchParams(q));
      assert.ok('error' in f, q);
      assert.match(f.error, msg);
    }
  });

  it('matches every field it names, and only those', () => {
    const f = parse('route=api&status=5xx&flag=retried');
    assert.equal(tapMatches(f, ex('api', 'users', ['retried']), 503), true);
    assert.equal(tapMatches(f, ex('api', 'users', ['retried']), 200), false);
    assert.equal(tapMatches(f, ex('web', 'users', ['retried']), 503), false);
    assert.equal(tapMatches(f, ex('api', 'users', null), 503), false);
    assert.equal(tapMatches(f, ex('api', 'users', ['circuit_open']), 503), false);
    assert.equal(tapMatches(parse('upstream=users'), ex(null, 'users'), 499), true);
    assert.equal(tapMatches(parse('upstream=users'), ex('api', null), 200), false);
    assert.equal(tapMatches(MATCH_ALL, ex(null, null), 404), true);
  });
});

function sub(filter: TapFilter = MATCH_ALL): TapSubscriber & { lines: string[]; ended: string | null; beats: number } {
  const s = {
    filter,
    lines: [] as string[],
    ended: null as string | null,
    beats: 0,
    send(l: string) {
      s.lines.push(l);
    },
    end(r: string) {
      s.ended = r;
    },
    heartbeat() {
      s.beats++;
    },
  };
  return s;
}

describe('TapHub', () => {
  it('is active only while someone listens, and stops its heartbeat when the last one leaves', async () => {
    const hub = new TapHub(2, 20);
    assert.equal(hub.active, false);
    const a = sub();
    assert.equal(hub.add(a), true);
    assert.equal(hub.active, true);
    await new Promise((r) => setTimeout(r, 90));
    assert.ok(a.beats >= 1, 'heartbeats while connected');
    hub.remove(a);
    assert.equal(hub.active, false);
    const beats = a.beats;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(a.beats, beats, 'no heartbeat once nobody listens');
  });

  it('holds at most maxSubscribers, offers each line to the matching ones, and ends them all on close', () => {
    const hub = new TapHub(2);
    const all = sub();
    const errors = sub(parse('status=5xx'));
    assert.equal(hub.add(all), true);
    assert.equal(hub.add(errors), true);
    assert.equal(hub.add(sub()), false, 'the third is refused');
    hub.publish('a\n', ex('r', 'u') as unknown as Exchange, 200);
    hub.publish('b\n', ex('r', 'u') as unknown as Exchange, 502);
    assert.deepEqual(all.lines, ['a\n', 'b\n']);
    assert.deepEqual(errors.lines, ['b\n']);
    assert.equal(hub.offered, 2);
    hub.close('shutdown');
    assert.equal(all.ended, 'shutdown');
    assert.equal(errors.ended, 'shutdown');
    assert.equal(hub.active, false);
    assert.equal(hub.add(sub()), false, 'a closed hub takes nobody');
  });

  it('a subscriber removed while a line is offered (dropped as slow) does not disturb the others', () => {
    const hub = new TapHub(3);
    const b = sub();
    const a: TapSubscriber = { filter: MATCH_ALL, send: () => hub.remove(a), end() {}, heartbeat() {} };
    hub.add(a);
    hub.add(b);
    hub.publish('x\n', ex(null, null) as unknown as Exchange, 200);
    assert.deepEqual(b.lines, ['x\n']);
    assert.equal(hub.subscribers, 1);
  });
});

describe('TapHub and a subscriber that throws', () => {
  it('removes it and never lets the error reach the request', () => {
    const hub = new TapHub(3);
    const ok = sub();
    const bad: TapSubscriber = { filter: MATCH_ALL, send: () => { throw new Error('boom'); }, end() {}, heartbeat() {} };
    hub.add(bad);
    hub.add(ok);
    assert.doesNotThrow(() => hub.publish('x\n', ex(null, null) as unknown as Exchange, 200));
    assert.deepEqual(ok.lines, ['x\n']);
    assert.equal(hub.subscribers, 1);
  });
});

describe('a tunnel line\'s status on the tap', () => {
  it("is a WebSocket line's own status; without one, the status breakwater answered, or 499 for a client gone first", () => {
    const ws = (status: number | null, outcome: string) => tunnelStatus({ protocol: 'websocket', status, outcome });
    assert.equal(ws(101, 'success'), 101);
    assert.equal(ws(502, '5xx'), 502, "the upstream's refusal of the handshake");
    assert.equal(ws(503, 'circuit_open'), 503);
    assert.equal(ws(null, 'circuit_open'), 503, 'refused, and the client was gone before the answer');
    assert.equal(ws(null, 'connect_failure'), 503);
    assert.equal(ws(null, 'timeout'), 504);
    assert.equal(ws(null, 'reset'), 502);
    assert.equal(ws(null, 'client_abort'), 499);
  });

  it('is 200 for a CONNECT tunnel that was open however it ended; else the refusal or failure breakwater answered, or 499', () => {
    const cn = (outcome: string, connectMs: number | null) => tunnelStatus({ protocol: 'connect', outcome, connectMs });
    for (const outcome of ['success', 'idle_timeout', 'reset', 'client_abort']) assert.equal(cn(outcome, 1.5), 200, outcome);
    assert.equal(cn('rate_limited', null), 429);
    assert.equal(cn('circuit_open', null), 503);
    assert.equal(cn('bulkhead_full', null), 503);
    assert.equal(cn('connect_failure', null), 503);
    assert.equal(cn('timeout', null), 504);
    assert.equal(cn('client_abort', null), 499);
  });
});
