/**
 * The dead-letter spool's storage (SPEC §11.1): one SQLite file per
 * configured `path`, through node:sqlite (built into Node ≥ 22.13; the
 * same engine undici's own SqliteCacheStore uses), so breakwater ships no
 * native addon and no new dependency.
 *
 * Durability: WAL journal with `synchronous = FULL`, so an insert that
 * returned has been fsynced to the WAL — it survives `kill -9` and a power
 * cut, and is in the file when breakwater starts again. The insert is
 * synchronous (node:sqlite has no async API, nor has better-sqlite3): it
 * blocks the event loop for one fsync, and only on the failure path of a
 * route that opted in. bench/README.md has the measured cost.
 *
 * Opened lazily, on first use (a spool write, an admin call, a replay pass),
 * never while a config is built: `breakwater validate` creates no file.
 *
 * Claims: a replay takes an entry by setting `claimed` in one UPDATE that
 * checks it was 0, so an automatic pass and a manual replay of the same
 * entry can never both send it. Claims do not outlive the process: opening
 * the file releases them (a breakwater killed mid-replay left them set).
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { createRequire } from 'node:module';

/** node:sqlite, required lazily: a process that never spools never loads it (nor prints its experimental warning on older Node). */
const require = createRequire(import.meta.url);
let sqlite: typeof import('node:sqlite') | null = null;
function loadSqlite(): typeof import('node:sqlite') {
  return (sqlite ??= require('node:sqlite') as typeof import('node:sqlite'));
}

/** One spooled request, as stored (the body apart: see `EntryWithBody`). */
export interface Entry {
  readonly id: string;
  /** Insertion order: oldest first. */
  readonly seq: number;
  readonly route: string;
  readonly upstream: string;
  readonly method: string;
  /** Path and query as the client sent them. */
  readonly path: string;
  /** Flat [name, value, ...], lower-case names, no hop-by-hop, no secrets. */
  readonly headers: readonly string[];
  /** What failed: a failure kind (circuit_open, timeout, ...) or `status_NNN`. */
  readonly reason: string;
  /** Epoch ms when spooled. */
  readonly createdAt: number;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly idempotencyKey: string;
  /** Body plus header bytes: what `maxBytes` counts. */
  readonly size: number;
  readonly bodySize: number;
  /** A replay got a 4xx that will not change: kept for an operator, skipped by automatic replay. */
  readonly parked: boolean;
}

export interface EntryWithBody extends Entry {
  readonly body: Buffer;
}

export interface NewEntry {
  readonly route: string;
  readonly upstream: string;
  readonly method: string;
  readonly path: string;
  readonly headers: readonly string[];
  readonly body: Buffer;
  readonly reason: string;
  readonly idempotencyKey: string;
}

export interface Bounds {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly maxAge: number;
}

/** Why entries were dropped (dead_letters_dropped_total reason). */
export type DropReason = 'max_entries' | 'max_bytes' | 'max_age' | 'too_large' | 'write_error';

export interface InsertResult {
  readonly id: string;
  /** Older entries of the route dropped to make room, by reason. */
  readonly dropped: ReadonlyArray<readonly [DropReason, number]>;
}

export interface Filter {
  readonly route?: string | undefined;
  readonly upstream?: string | undefined;
}

interface Row {
  id: string;
  seq: number;
  route: string;
  upstream: string;
  method: string;
  path: string;
  headers: string;
  reason: string;
  created_at: number;
  attempts: number;
  last_error: string | null;
  idem_key: string;
  size: number;
  body_size: number;
  parked: number;
  body?: Uint8Array;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dead_letters (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  route TEXT NOT NULL,
  upstream TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  reason TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  idem_key TEXT NOT NULL,
  size INTEGER NOT NULL,
  body_size INTEGER NOT NULL,
  claimed INTEGER NOT NULL DEFAULT 0,
  parked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_route ON dead_letters (route, seq);
CREATE INDEX IF NOT EXISTS dead_letters_age ON dead_letters (route, created_at);
CREATE TABLE IF NOT EXISTS route_usage (
  route TEXT PRIMARY KEY,
  n INTEGER NOT NULL,
  bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS dead_letters_added AFTER INSERT ON dead_letters BEGIN
  INSERT INTO route_usage (route, n, bytes) VALUES (NEW.route, 1, NEW.size)
    ON CONFLICT (route) DO UPDATE SET n = n + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER IF NOT EXISTS dead_letters_removed AFTER DELETE ON dead_letters BEGIN
  UPDATE route_usage SET n = n - 1, bytes = bytes - OLD.size WHERE route = OLD.route;
END;
`;

/**
 * Count and bytes per route, kept by the triggers above so that bounding a
 * route is O(1) per write, not a scan of the route's entries (at 10,000
 * entries a scan cost ~3 ms per spooled request). Rebuilt once per open, so
 * a file written by an older breakwater starts right.
 */
const REBUILD_USAGE = `
DELETE FROM route_usage;
INSERT INTO route_usage (route, n, bytes) SELECT route, COUNT(*), SUM(size) FROM dead_letters GROUP BY route;
`;

const COLUMNS = 'id, seq, route, upstream, method, path, headers, reason, created_at, attempts, last_error, idem_key, size, body_size, parked';

export class SpoolError extends Error {
  readonly code = 'BW_SPOOL';
}

interface Statements {
  insert: StatementSync;
  routeUsage: StatementSync;
  oldestOfRoute: StatementSync;
  deleteId: StatementSync;
  deleteSeq: StatementSync;
  expire: StatementSync;
  get: StatementSync;
  claim: StatementSync;
  release: StatementSync;
  unclaim: StatementSync;
  nextForReplay: StatementSync;
  counts: StatementSync;
}

export class SpoolStore {
  /** Absolute path of the file. */
  readonly file: string;
  #db: DatabaseSync | null = null;
  #st: Statements | null = null;
  #closed = false;

  constructor(file: string) {
    this.file = path.resolve(file);
  }

  get isOpen(): boolean {
    return this.#db !== null;
  }

  /** Opens the file (creating its directory and table) if not open yet. Throws SpoolError with the reason. */
  open(): Statements {
    if (this.#st !== null) return this.#st;
    if (this.#closed) throw new SpoolError(`dead-letter spool ${this.file} is closed`);
    let db: DatabaseSync | null = null;
    try {
      // Request bodies (payments, personal data) are in this file: the
      // process's user only. A directory it creates is 0700; the file is
      // made 0600 before SQLite opens it, and SQLite gives its -wal and
      // -shm files the database file's mode.
      mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      closeSync(openSync(this.file, 'a', 0o600));
      db = new (loadSqlite().DatabaseSync)(this.file);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = FULL');
      db.exec('PRAGMA busy_timeout = 1000');
      db.exec(SCHEMA);
      db.exec(REBUILD_USAGE);
      // Claims belong to a process: whatever a killed one held is free again.
      db.exec('UPDATE dead_letters SET claimed = 0 WHERE claimed <> 0');
      const st: Statements = {
        insert: db.prepare(
          'INSERT INTO dead_letters (id, route, upstream, method, path, headers, body, reason, created_at, idem_key, size, body_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        ),
        routeUsage: db.prepare('SELECT n, bytes FROM route_usage WHERE route = ?'),
        oldestOfRoute: db.prepare('SELECT seq, size FROM dead_letters WHERE route = ? AND claimed = 0 ORDER BY seq LIMIT ?'),
        deleteId: db.prepare('DELETE FROM dead_letters WHERE id = ?'),
        deleteSeq: db.prepare('DELETE FROM dead_letters WHERE seq = ?'),
        expire: db.prepare('DELETE FROM dead_letters WHERE route = ? AND created_at < ? AND claimed = 0'),
        get: db.prepare(`SELECT ${COLUMNS}, body FROM dead_letters WHERE id = ?`),
        claim: db.prepare('UPDATE dead_letters SET claimed = 1 WHERE id = ? AND claimed = 0'),
        release: db.prepare('UPDATE dead_letters SET claimed = 0, attempts = attempts + 1, last_error = ?, parked = ? WHERE id = ?'),
        unclaim: db.prepare('UPDATE dead_letters SET claimed = 0 WHERE id = ?'),
        nextForReplay: db.prepare(`SELECT ${COLUMNS}, body FROM dead_letters WHERE route = ? AND claimed = 0 AND parked = 0 AND seq > ? ORDER BY seq LIMIT 1`),
        counts: db.prepare('SELECT route, n FROM route_usage WHERE n > 0'),
      };
      this.#db = db;
      this.#st = st;
      return st;
    } catch (err) {
      try {
        db?.close();
      } catch {
        // already failing: the first error is the one to report
      }
      throw new SpoolError(`dead-letter spool ${this.file}: cannot open: ${(err as Error).message}`);
    }
  }

  /**
   * Stores one entry, durably, and applies the route's bounds: expired
   * entries first, then the oldest until count and bytes fit. One
   * transaction: either the entry and its evictions are in the file, or
   * nothing is. Throws SpoolError (disk full, unwritable file...).
   */
  insert(e: NewEntry, bounds: Bounds, now = Date.now()): InsertResult {
    return this.insertBatch([{ entry: e, bounds }], now)[0]!;
  }

  /**
   * Stores several entries in one transaction, so one fsync covers them
   * all (a group commit: the spool step queues the failures of one
   * event-loop turn). All or none: a failure throws SpoolError for all.
   */
  insertBatch(items: readonly { readonly entry: NewEntry; readonly bounds: Bounds }[], now = Date.now()): InsertResult[] {
    const st = this.open();
    const db = this.#db!;
    const out: InsertResult[] = [];
    try {
      db.exec('BEGIN IMMEDIATE');
      try {
        for (const { entry, bounds } of items) out.push(this.#insertOne(st, entry, bounds, now));
        db.exec('COMMIT');
      } catch (err) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // SQLite may have rolled back by itself (SQLITE_FULL): nothing left to undo
        }
        throw err;
      }
    } catch (err) {
      throw new SpoolError(`dead-letter spool ${this.file}: write failed: ${(err as Error).message}`);
    }
    return out;
  }

  #insertOne(st: Statements, e: NewEntry, bounds: Bounds, now: number): InsertResult {
    const headers = JSON.stringify(e.headers);
    const size = e.body.length + Buffer.byteLength(headers);
    const id = randomUUID();
    const dropped: [DropReason, number][] = [];
    const expired = Number(st.expire.run(e.route, now - bounds.maxAge).changes);
    if (expired > 0) dropped.push(['max_age', expired]);
    const u = st.routeUsage.get(e.route) as { n: number; bytes: number } | undefined;
    let n = u === undefined ? 0 : Number(u.n);
    let bytes = u === undefined ? 0 : Number(u.bytes);
    let byCount = 0;
    let byBytes = 0;
    // Oldest first, until the new entry fits; a claimed entry (being replayed right now) is left alone.
    while (n + 1 > bounds.maxEntries || bytes + size > bounds.maxBytes) {
      const victims = st.oldestOfRoute.all(e.route, Math.max(1, n + 1 - bounds.maxEntries) + 64) as { seq: number; size: number }[];
      if (victims.length === 0) break;
      for (const v of victims) {
        if (n + 1 <= bounds.maxEntries && bytes + size <= bounds.maxBytes) break;
        if (n + 1 > bounds.maxEntries) byCount++;
        else byBytes++;
        st.deleteSeq.run(v.seq);
        n--;
        bytes -= Number(v.size);
      }
    }
    if (byCount > 0) dropped.push(['max_entries', byCount]);
    if (byBytes > 0) dropped.push(['max_bytes', byBytes]);
    st.insert.run(id, e.route, e.upstream, e.method, e.path, headers, e.body, e.reason, now, e.idempotencyKey, size, e.body.length);
    return { id, dropped };
  }

  /** Entries, oldest first, without bodies. */
  list(f: Filter = {}, limit = 1000): Entry[] {
    const st = this.open();
    void st;
    const where: string[] = [];
    const args: string[] = [];
    if (f.route !== undefined) {
      where.push('route = ?');
      args.push(f.route);
    }
    if (f.upstream !== undefined) {
      where.push('upstream = ?');
      args.push(f.upstream);
    }
    const sql = `SELECT ${COLUMNS} FROM dead_letters${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ${Math.max(1, Math.floor(limit))}`;
    return (this.#db!.prepare(sql).all(...args) as unknown as Row[]).map(toEntry);
  }

  get(id: string): EntryWithBody | null {
    const row = this.open().get.get(id) as Row | undefined;
    return row === undefined ? null : withBody(row);
  }

  /** The oldest entry of a route after `afterSeq` that is neither claimed nor parked. */
  nextForReplay(route: string, afterSeq: number): EntryWithBody | null {
    const row = this.open().nextForReplay.get(route, afterSeq) as Row | undefined;
    return row === undefined ? null : withBody(row);
  }

  /** Takes an entry for one replay: false when someone else holds it (or it is gone). */
  claim(id: string): boolean {
    return Number(this.open().claim.run(id).changes) === 1;
  }

  /** A replay failed: the entry stays, one attempt more, with why; `park` keeps automatic replay off it. */
  release(id: string, error: string, park = false): void {
    this.open().release.run(error, park ? 1 : 0, id);
  }

  /** Gives a claim back without counting an attempt (a delete or a release that failed). */
  unclaim(id: string): void {
    this.open().unclaim.run(id);
  }

  /** Removes an entry (delivered, or deleted by an operator): false if it was not there. */
  delete(id: string): boolean {
    return Number(this.open().deleteId.run(id).changes) === 1;
  }

  /** Drops a route's entries older than `maxAge`: how many. */
  expire(route: string, maxAge: number, now = Date.now()): number {
    return Number(this.open().expire.run(route, now - maxAge).changes);
  }

  /** Entries per route (the dead_letters gauge). */
  counts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.open().counts.all() as { route: string; n: number }[]) out.set(r.route, Number(r.n));
    return out;
  }

  close(): void {
    this.#closed = true;
    const db = this.#db;
    this.#db = null;
    this.#st = null;
    try {
      db?.close();
    } catch {
      // closing is best effort: the WAL is already durable
    }
  }
}

function toEntry(r: Row): Entry {
  return {
    id: r.id,
    seq: Number(r.seq),
    route: r.route,
    upstream: r.upstream,
    method: r.method,
    path: r.path,
    headers: JSON.parse(r.headers) as string[],
    reason: r.reason,
    createdAt: Number(r.created_at),
    attempts: Number(r.attempts),
    lastError: r.last_error,
    idempotencyKey: r.idem_key,
    size: Number(r.size),
    bodySize: Number(r.body_size),
    parked: Number(r.parked) !== 0,
  };
}

function withBody(r: Row): EntryWithBody {
  const b = r.body!;
  return { ...toEntry(r), body: Buffer.from(b.buffer, b.byteOffset, b.byteLength) };
}
