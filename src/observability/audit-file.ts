/**
 * `audit.file`: the audit log in a file of its own (SPEC §11.3), for an
 * operator whose audit trail has another retention or another reader than
 * stdout.
 *
 * Appended with synchronous writes: audit lines are rare (config loads and
 * admin calls), and a line that is acknowledged (the admin call answered)
 * is then in the kernel, not in a buffer that a crash would lose. Opened
 * with mode 0600 when it is created. The file is opened by the proxy at start
 * and on reloads (runtime/proxy.ts), never by a build, so `validate` opens
 * nothing; it is reopened on every reload request, so `SIGHUP` after a
 * logrotate-style rename moves writing to the new file.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

/** The audit file cannot be opened: exit 2 at start, a failed reload later. */
export class AuditFileError extends Error {
  override readonly name = 'AuditFileError';
}

export class AuditFile {
  readonly path: string;
  #fd: number | null;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  static open(path: string): AuditFile {
    try {
      return new AuditFile(path, openSync(path, 'a', 0o600));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'its directory does not exist' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
      throw new AuditFileError(`cannot open the audit file ${path} (audit.file): ${why}`);
    }
  }

  /** Appends one line; false if it could not (the caller writes it elsewhere rather than lose it). */
  write(line: string): boolean {
    if (this.#fd === null) return false;
    const bytes = Buffer.from(line, 'utf8');
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.#fd, bytes, off, bytes.length - off);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    try {
      closeSync(fd);
    } catch {
      // Already gone (EBADF): nothing to release.
    }
  }
}
