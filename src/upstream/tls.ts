/**
 * TLS to an upstream's https:// endpoints (SPEC §10.4): one TlsSource per
 * upstream `tls` block, shared by the pools of its endpoints.
 *
 * The source holds the *current* tls.SecureContext, built once from the
 * checked files (config/tls.ts), never per connection. Its connector reads
 * that context at each connect, so a rotation changes what new connections
 * present and trust while connections already open — and the requests on
 * them — carry on untouched: no pool is recreated, nothing in flight is
 * dropped. Each context version gets a fresh undici connector, hence a
 * fresh TLS session cache: a connection after a rotation never resumes a
 * session made with the old client certificate.
 *
 * The files are watched like the config file (config/watch.ts: the
 * directory, so a Kubernetes Secret volume's `..data` symlink swap and a
 * rename over the file are both seen; debounced; a slow stat poll besides).
 * A rotation whose files do not check out (unreadable, not PEM, a key that
 * is not the certificate's — e.g. the certificate written, the key not yet)
 * is refused: the files in use stay in use, and the failure is reported
 * once per distinct content, so a later write that completes the pair is
 * picked up as the next change.
 *
 * Watching starts with the first connection, not when a config is built:
 * a build (or `breakwater validate`) that is discarded leaves nothing
 * behind. Pools hold the source (`retain`/`release`); the last one to
 * close stops the watch.
 *
 * Verification is never turned off: there is no option for it.
 */
import { isIP } from 'node:net';
import tls, { type SecureContext } from 'node:tls';
import { buildConnector } from 'undici';
import { readTlsMaterial, type TlsMaterial } from '../config/tls.ts';
import type { TlsConfig } from '../config/types.ts';
import { watchConfig, type ConfigWatcher, type WatchOptions } from '../config/watch.ts';

export type TlsReloadResult = 'success' | 'failure';

/** Where a source reports rotations (the proxy logs and counts them). */
export type TlsReloadListener = (upstream: string, result: TlsReloadResult, errors: readonly string[]) => void;

/** The part of a pool key that says "these TLS settings": a reload changing any of them gets new pools. */
export function tlsKey(upstream: string, t: TlsConfig): string {
  return `tls:${upstream}|${t.ca ?? ''}|${t.caMode}|${t.cert ?? ''}|${t.key ?? ''}|${t.servername ?? ''}|${t.minVersion}`;
}

export class TlsSource {
  readonly upstream: string;
  readonly config: TlsConfig;
  /** See tlsKey. */
  readonly key: string;
  readonly #onReload: TlsReloadListener;
  readonly #watchOptions: WatchOptions;
  #context: SecureContext;
  #digest: string;
  /** Digest of the last refused content: the same broken files are reported once. */
  #refused: string | null = null;
  /** Bumped on every applied rotation; connectors rebuild when it moves. */
  #version = 0;
  #refs = 0;
  #watchers: ConfigWatcher[] | null = null;

  /** Reads and checks the files now; throws (naming the config path) if they do not check out. */
  constructor(upstream: string, config: TlsConfig, onReload: TlsReloadListener, watch: WatchOptions = {}) {
    this.upstream = upstream;
    this.config = config;
    this.key = tlsKey(upstream, config);
    this.#onReload = onReload;
    this.#watchOptions = watch;
    const r = readTlsMaterial(config);
    if (!r.ok) throw new Error(r.problems.map((p) => `upstreams.${upstream}.tls.${p.field}: ${p.message}`).join('; '));
    this.#context = secureContext(config, r.material);
    this.#digest = r.digest;
  }

  /**
   * An undici connector for one pool: `base` holds the pool's own options
   * (connect timeout...); the secure context is the current one at each
   * connect. The server is verified against `servername`, else the
   * endpoint's host — never against a Host header the client sent
   * (`preserveHost`), which names breakwater's listener, not the upstream.
   */
  connector(base: buildConnector.BuildOptions): buildConnector.connector {
    let version = -1;
    let connect: buildConnector.connector | null = null;
    const servername = this.config.servername;
    return (opts, callback) => {
      if (this.#watchers === null) this.#watch();
      if (version !== this.#version || connect === null) {
        connect = buildConnector({ ...base, secureContext: this.#context });
        version = this.#version;
      }
      const sni = servername ?? (isIP(opts.hostname) === 0 ? opts.hostname : undefined);
      connect(opts.servername === sni ? opts : { ...opts, servername: sni }, callback);
    };
  }

  /**
   * Reads the files again. New, consistent content becomes current (from
   * the next connection on); content that does not check out is refused and
   * the current files stay. Called by the watch; callable directly.
   */
  reload(): 'unchanged' | TlsReloadResult {
    const r = readTlsMaterial(this.config);
    if (r.digest === this.#digest) {
      this.#refused = null;
      return 'unchanged';
    }
    if (r.digest === this.#refused) return 'unchanged';
    let errors: string[];
    if (r.ok) {
      try {
        this.#context = secureContext(this.config, r.material);
        this.#digest = r.digest;
        this.#refused = null;
        this.#version++;
        this.#onReload(this.upstream, 'success', []);
        return 'success';
      } catch (err) {
        errors = [(err as Error).message];
      }
    } else {
      errors = r.problems.map((p) => `tls.${p.field}: ${p.message}`);
    }
    this.#refused = r.digest;
    this.#onReload(this.upstream, 'failure', errors);
    return 'failure';
  }

  /** A pool uses this source. */
  retain(): void {
    this.#refs++;
  }

  /** A pool closed; the last one stops the watch. */
  release(): void {
    if (this.#refs === 0 || --this.#refs > 0) return;
    for (const w of this.#watchers ?? []) w.close();
    this.#watchers = null;
  }

  #watch(): void {
    if (this.#refs === 0) return;
    const files = new Set([this.config.ca, this.config.cert, this.config.key].filter((f) => f !== null));
    // One Secret update touches ca, cert and key at once: their watchers share one reload.
    let queued = false;
    const kick = (): void => {
      if (queued) return;
      queued = true;
      setImmediate(() => {
        queued = false;
        if (this.#watchers !== null) this.reload(); // not after the last pool closed
      });
    };
    this.#watchers = [...files].map((f) => watchConfig(f, kick, this.#watchOptions));
    // The files may have changed between the build and this first connection.
    this.reload();
  }
}

function secureContext(config: TlsConfig, m: TlsMaterial): SecureContext {
  let ca: string | Buffer | (string | Buffer)[] | undefined;
  if (m.ca !== null) ca = config.caMode === 'add' ? [...systemRoots(), m.ca] : m.ca;
  return tls.createSecureContext({ ca, cert: m.cert ?? undefined, key: m.key ?? undefined, minVersion: config.minVersion });
}

/** node's default trust store (bundled roots, NODE_EXTRA_CA_CERTS, and the system's with --use-system-ca). */
function systemRoots(): readonly string[] {
  return typeof tls.getCACertificates === 'function' ? tls.getCACertificates('default') : tls.rootCertificates;
}
