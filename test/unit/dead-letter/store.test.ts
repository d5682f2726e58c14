import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SpoolError, SpoolStore, type NewEntry } from '../../../src/dead-letter/store.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bw-spool-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function fresh(): SpoolStore {
  return new SpoolStore(path.join(dir, `s${n++}`, 'spool.db'));
}

function entry(route: string, body: string, extra: Partial<NewEntry> = {}): NewEntry {
  return { route, upstream: 'u', method: 'POST', path: '/p?q=1', headers: ['content-type', 'text/plain', 'host', 'a'], body: Buffer.from(body), reason: 'timeout', idempotencyKey: `k-${body}`, ...extra };
}

const LOOSE = { maxEntries: 1000, maxBytes: 1 << 30, maxAge: 3_600_000 };

describe('dead-letter store', () => {
  it('keeps request bodies to the process’s user: directory 0700, file, WAL and SHM 0600', () => {
    const s = fresh();
    s.insert(entry('r', 'secret body'), LOOSE);
    assert.equal(statSync(path.dirname(s.file)).mode & 0o777, 0o700);
    for (const f of [s.file, `${s.file}-wal`, `${s.file}-shm`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    s.close();
  });

  it('bounds a route from its kept count and bytes, right after a reopen and after deletes', () => {
    const file = fresh().file;
    const bounds = { maxEntries: 5, maxBytes: 1 << 30, maxAge: 3_600_000 };
    let s = new SpoolStore(file);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(s.insert(entry('r', `e${i}`), bounds).id);
    s.insert(entry('other', 'x'), bounds);
    assert.equal(s.delete(ids[4]!), true);
    s.close();
    s = new SpoolStore(file);
    // 4 of r left: one more fits, the next evicts the oldest.
    assert.deepEqual(s.insert(entry('r', 'e5'), bounds).dropped, []);
    assert.deepEqual(s.insert(entry('r', 'e6'), bounds).dropped, [['max_entries', 1]]);
    assert.equal(s.get(ids[0]!), null, 'the oldest went');
    assert.deepEqual(Object.fromEntries(s.counts()), { r: 5, other: 1 });
    s.close();
  });

  it('creates nothing until first use, then keeps entries oldest first with their headers and body', () => {
    const s = fresh();
    assert.equal(s.isOpen, false);
    const a = s.insert(entry('r', 'one'), LOOSE).id;
    const b = s.insert(entry('r', 'two'), LOOSE).id;
    assert.deepEqual(s.list().map((e) => e.id), [a, b]);
    const got = s.get(a)!;
    assert.equal(got.body.toString(), 'one');
    assert.deepEqual(got.headers, ['content-type', 'text/plain', 'host', 'a']);
    assert.equal(got.path, '/p?q=1');
    assert.equal(got.idempotencyKey, 'k-one');
    assert.equal(s.get('nope'), null);
    s.close();
  });

  it('an entry written is in the file for the next process to open it', () => {
    const s = fresh();
    const id = s.insert(entry('r', 'durable'), LOOSE).id;
    const file = s.file;
    s.close();
    const again = new SpoolStore(file);
    assert.equal(again.get(id)?.body.toString(), 'durable');
    again.close();
  });

  it('maxEntries drops the oldest entries of the same route only, and says how many', () => {
    const s = fresh();
    const bounds = { ...LOOSE, maxEntries: 2 };
    const other = s.insert(entry('other', 'x'), bounds).id;
    const ids = [0, 1, 2, 3].map((i) => s.insert(entry('r', `m${i}`), bounds));
    assert.deepEqual(ids[2]!.dropped, [['max_entries', 1]]);
    assert.deepEqual(s.list({ route: "r" }).map((e) => e.id), [ids[2]!.id, ids[3]!.id]);
    assert.ok(s.get(other) !== null);
    s.close();
  });

  it('maxBytes drops the oldest until the new entry fits; maxAge drops what is too old', () => {
    const s = fresh();
    const size = 100 + Buffer.byteLength(JSON.stringify(entry('r', '').headers));
    const bounds = { ...LOOSE, maxBytes: size * 2 };
    s.insert(entry('r', 'a'.repeat(100)), bounds);
    s.insert(entry('r', 'b'.repeat(100)), bounds);
    const third = s.insert(entry('r', 'c'.repeat(100)), bounds);
    assert.deepEqual(third.dropped, [['max_bytes', 1]]);
    assert.equal(s.list().length, 2);
    const t0 = Date.now();
    const aged = s.insert(entry('r', 'late'), { ...LOOSE, maxAge: 1000 }, t0 + 10_000);
    assert.deepEqual(aged.dropped, [['max_age', 2]]);
    assert.deepEqual(s.list().map((e) => e.id), [aged.id]);
    s.close();
  });

  it('a claimed entry cannot be claimed twice; a release counts the attempt and keeps it; claims end with the process', () => {
    const s = fresh();
    const id = s.insert(entry('r', 'once'), LOOSE).id;
    assert.equal(s.claim(id), true);
    assert.equal(s.claim(id), false);
    assert.equal(s.nextForReplay('r', 0), null, 'a claimed entry is not offered');
    s.release(id, 'connect_failure');
    const e = s.get(id)!;
    assert.equal(e.attempts, 1);
    assert.equal(e.lastError, 'connect_failure');
    assert.equal(s.nextForReplay('r', 0)?.id, id);
    assert.equal(s.claim(id), true);
    const file = s.file;
    s.close(); // a crash mid-replay: the claim is in the file
    const again = new SpoolStore(file);
    assert.equal(again.claim(id), true, 'opening releases claims of a dead process');
    again.release(id, 'upstream refused it: 400', true);
    assert.equal(again.nextForReplay('r', 0), null, 'a parked entry is skipped by automatic replay');
    assert.equal(again.get(id)?.parked, true);
    assert.equal(again.delete(id), true);
    assert.equal(again.delete(id), false);
    again.close();
  });

  it('an unwritable path is a SpoolError naming the file', () => {
    const s = new SpoolStore('/dev/null/x/spool.db');
    assert.throws(() => s.insert(entry('r', 'x'), LOOSE), (e: unknown) => e instanceof SpoolError && /\/dev\/null\/x\/spool\.db: cannot open/.test(e.message));
  });
  it('a batch is stored in one transaction: all of it, bounds applied entry by entry, or none of it', () => {
    const s = fresh();
    const rs = s.insertBatch([0, 1, 2].map((i) => ({ entry: entry('r', `b${i}`), bounds: { ...LOOSE, maxEntries: 2 } })));
    assert.equal(rs.length, 3);
    assert.deepEqual(rs[2]!.dropped, [['max_entries', 1]]);
    assert.deepEqual(s.list().map((e) => e.id), [rs[1]!.id, rs[2]!.id]);
    // A failing item (a NOT NULL column missing) rolls the whole batch back.
    const bad = { ...entry('r', 'bad'), method: null as unknown as string };
    assert.throws(() => s.insertBatch([{ entry: entry('r', 'ok'), bounds: LOOSE }, { entry: bad, bounds: LOOSE }]), SpoolError);
    assert.equal(s.list().length, 2);
    s.close();
  });
});
