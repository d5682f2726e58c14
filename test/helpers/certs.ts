/**
 * Test certificates made at test time with the `openssl` CLI: private CAs,
 * server certificates with subjectAltNames, client certificates for mTLS.
 * node:crypto can make keys but not X.509 certificates, so tests that need
 * them call `opensslMissing()` first and skip (outside CI) when it says why.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** null when `openssl` can be run; otherwise why not (a skip message). */
export function opensslMissing(): string | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'the openssl CLI is not installed (apt-get install openssl): TLS tests need it to make certificates';
  }
}

/** PEM text of a key and its certificate, and the files they were written to. */
export interface Pem {
  readonly keyFile: string;
  readonly certFile: string;
  readonly key: string;
  readonly cert: string;
}

/** A directory of generated material; `close()` removes it. */
export class CertFactory {
  readonly dir: string;
  #n = 0;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'bw-certs-'));
  }

  /** A self-signed CA. */
  ca(name: string): Pem {
    const { keyFile, certFile } = this.#paths(name);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return read(keyFile, certFile);
  }

  /**
   * A leaf certificate signed by `ca`: a server certificate when `sans` is
   * given (e.g. ['IP:127.0.0.1', 'DNS:localhost']), otherwise a client one.
   */
  leaf(name: string, ca: Pem, sans?: readonly string[]): Pem {
    const { keyFile, certFile } = this.#paths(name);
    const csr = path.join(this.dir, `${this.#n}-${name}.csr`);
    const ext = path.join(this.dir, `${this.#n}-${name}.ext`);
    writeFileSync(
      ext,
      sans === undefined
        ? 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
        : `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(',')}\n`,
    );
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
    openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
    return read(keyFile, certFile);
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  #paths(name: string): { keyFile: string; certFile: string } {
    const n = ++this.#n;
    return { keyFile: path.join(this.dir, `${n}-${name}.key`), certFile: path.join(this.dir, `${n}-${name}.crt`) };
  }
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function read(keyFile: string, certFile: string): Pem {
  return { keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}
