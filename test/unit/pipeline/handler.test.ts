import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Exchange } from '../../../src/pipeline/exchange.ts';
import { compose, type Handler, type Layer, type Reply } from '../../../src/pipeline/handler.ts';

const ex = {} as Exchange;
const answer: Reply = { type: 'static', status: 200, headers: {}, body: 'ok' };

function tracing(name: string, seen: string[]): Layer {
  return (next) => async (e) => {
    seen.push(`${name}>`);
    const r = await next(e);
    seen.push(`<${name}`);
    return r;
  };
}

describe('compose (pipeline/handler.ts)', () => {
  it('runs layers outermost first around the inner handler, and unwinds in reverse', async () => {
    const seen: string[] = [];
    const inner: Handler = async () => {
      seen.push('inner');
      return answer;
    };
    const h = compose([tracing('a', seen), tracing('b', seen), tracing('c', seen)], inner);
    assert.equal(await h(ex), answer);
    assert.deepEqual(seen, ['a>', 'b>', 'c>', 'inner', '<c', '<b', '<a']);
  });

  it('leaves out null entries (policies that are off) without a trace at run time', async () => {
    const seen: string[] = [];
    const h = compose([null, tracing('a', seen), null], async () => answer);
    await h(ex);
    assert.deepEqual(seen, ['a>', '<a']);
  });

  it('returns the inner handler itself when no layer applies', () => {
    const inner: Handler = async () => answer;
    assert.equal(compose([null, null], inner), inner);
  });

  it('rejects a malformed link at build time, naming its position', () => {
    assert.throws(() => compose(['nope' as unknown as Layer], async () => answer), /layer 0 is not a function/);
    assert.throws(() => compose([null, (() => 1) as unknown as Layer], async () => answer), /layer 1 did not return a handler/);
  });
});
