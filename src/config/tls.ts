/**
 * An upstream's `tls` block (SPEC §10.4): its paths, and the check of the
 * files they name. The check runs when a config loads, so an unreadable
 * file or a key that does not belong to its certificate is a config error
 * with file:line:column and `upstreams.NAME.tls.cert`; the same check runs
 * again on every rotation the upstream's watcher sees (src/upstream/tls.ts),
 * where a failure keeps the files in use. File contents never enter the
 * config object: only their paths do.
 */
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RawConfig, RawTls } from './schema.ts';
import type { TlsConfig } from './types.ts';
import { childPath } from './yaml-nodes.ts';

/** The PEM bytes of an upstream's TLS files, checked: every certificate parses, the key is the certificate's. */
export interface TlsMaterial {
  readonly ca: Buffer | null;
  readonly cert: Buffer | null;
  readonly key: Buffer | null;
}

export interface TlsProblem {
  readonly field: 'ca' | 'cert' | 'key';
  readonly message: string;
}

/** `digest`: of the bytes read (whatever could be), so a rotation can tell new files from the ones it has seen. */
export type TlsRead =
  | { readonly ok: true; readonly material: TlsMaterial; readonly digest: string }
  | { readonly ok: false; readonly problems: readonly TlsProblem[]; readonly digest: string };

type TlsFiles = Pick<TlsConfig, 'ca' | 'cert' | 'key'>;

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads and checks the files a `tls` block names (synchronously: at load, or on a rotation, never per request). */
export function readTlsMaterial(files: TlsFiles): TlsRead {
  const problems: TlsProblem[] = [];
  const read = (field: TlsProblem['field'], file: string | null): Buffer | null => {
    if (file === null) return null;
    try {
      return readFileSync(file);
    } catch (err) {
      problems.push({ field, message: `cannot read ${file}: ${readError(err)}` });
      return null;
    }
  };
  const ca = read('ca', files.ca);
  const cert = read('cert', files.cert);
  const key = read('key', files.key);
  if (ca !== null) certificates('ca', files.ca!, ca, problems);
  const leaf = cert === null ? null : (certificates('cert', files.cert!, cert, problems)[0] ?? null);
  let privateKey: KeyObject | null = null;
  if (key !== null) {
    try {
      privateKey = createPrivateKey(key);
    } catch (err) {
      const encrypted = (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE';
      problems.push({ field: 'key', message: encrypted ? `${files.key} is an encrypted key: breakwater needs it unencrypted` : `${files.key} holds no PEM private key` });
    }
  }
  if (leaf !== null && privateKey !== null && !leaf.checkPrivateKey(privateKey)) {
    problems.push({ field: 'key', message: `the key in ${files.key} does not belong to the certificate in ${files.cert}` });
  }
  const h = createHash('sha256');
  for (const b of [ca, cert, key]) h.update(b === null ? '-' : `${b.length}:`).update(b ?? '');
  const digest = h.digest('hex');
  return problems.length > 0 ? { ok: false, problems, digest } : { ok: true, material: { ca, cert, key }, digest };
}

function certificates(field: TlsProblem['field'], file: string, pem: Buffer, problems: TlsProblem[]): X509Certificate[] {
  const blocks = pem.toString('latin1').match(CERT_BLOCK);
  if (blocks === null) {
    problems.push({ field, message: `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` });
    return [];
  }
  const out: X509Certificate[] = [];
  for (const b of blocks) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      problems.push({ field, message: `${file} holds a certificate that cannot be parsed` });
      return [];
    }
  }
  return out;
}

function readError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return String((err as Error).message);
}

/** A `tls` block's paths, absolute: relative ones are read from the config file's directory. */
export function compileTls(t: RawTls | undefined, baseDir: string): TlsConfig | null {
  if (t === undefined) return null;
  const abs = (p: string | undefined): string | null => (p === undefined ? null : path.resolve(baseDir, p));
  return {
    ca: abs(t.ca),
    caMode: t.caMode ?? 'replace',
    cert: abs(t.cert),
    key: abs(t.key),
    servername: t.servername ?? null,
    minVersion: t.minVersion ?? 'TLSv1.2',
  };
}

/**
 * The `tls` rules of every upstream: cert and key come together, the block
 * has an https:// endpoint to apply to, and the files are readable and
 * consistent (the only check of the config library that reads other files).
 */
export function validateTls(raw: RawConfig, baseDir: string, report: (path: string, message: string) => void): void {
  for (const [name, u] of raw.upstreams ?? []) {
    const t = u?.tls;
    if (u === undefined || t === undefined) continue;
    const p = `${childPath('upstreams', name)}.tls`;
    const endpoints = u.url !== undefined ? [u.url] : (u.endpoints ?? []);
    if (endpoints.length > 0 && endpoints.every((e) => e === undefined || e.protocol !== 'https:')) {
      report(p, 'tls applies to https:// endpoints, and this upstream has none: use https:// endpoints or remove tls');
    }
    if ((t.cert === undefined) !== (t.key === undefined)) {
      report(t.cert === undefined ? `${p}.key` : `${p}.cert`, t.cert === undefined ? 'key needs cert (the client certificate it belongs to)' : 'cert needs key (its private key)');
    }
    const c = compileTls(t, baseDir)!;
    const r = readTlsMaterial(c);
    if (!r.ok) for (const problem of r.problems) report(`${p}.${problem.field}`, problem.message);
  }
}
