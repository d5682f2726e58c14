/**
 * The admin API's bearer token (SPEC §11.3, `admin.token`).
 *
 * Every endpoint needs `Authorization: Bearer <token>` once a token is
 * configured, except the three a kubelet or a Prometheus reads without one:
 * `GET /healthz`, `GET /readyz` (probes cannot carry a secret without writing
 * it into the pod spec) and `GET /metrics` (annotation-based scraping sends
 * no credentials; metrics carry names and numbers, no config values). The
 * token is read from the running config at each call, so a reload rotates it.
 *
 * The comparison is constant-time over sha256 digests (equal lengths whatever
 * was sent); the presented value is never stored, logged or echoed: a
 * refusal is described only as missing, malformed or invalid.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Paths answered without the token (GET and HEAD only). */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

export type AuthResult = { readonly ok: true } | { readonly ok: false; readonly reason: 'missing' | 'malformed' | 'invalid' };

const OK: AuthResult = { ok: true };

export class TokenCheck {
  #token: string | null = null;
  #digest: Buffer | null = null;

  /** Whether a call needs the token at all. */
  static needed(token: string | null, method: string, path: string): boolean {
    return token !== null && !((method === 'GET' || method === 'HEAD') && OPEN_PATHS.has(path));
  }

  /** `authorization`: the request's header, if any; `token`: the configured one. */
  check(token: string, authorization: string | undefined): AuthResult {
    if (authorization === undefined || authorization === '') return { ok: false, reason: 'missing' };
    const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) return { ok: false, reason: 'malformed' };
    const presented = createHash('sha256').update(m[1]!, 'utf8').digest();
    return timingSafeEqual(presented, this.#digestOf(token)) ? OK : { ok: false, reason: 'invalid' };
  }

  #digestOf(token: string): Buffer {
    if (this.#token !== token || this.#digest === null) {
      this.#token = token;
      this.#digest = createHash('sha256').update(token, 'utf8').digest();
    }
    return this.#digest;
  }
}
