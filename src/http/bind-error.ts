/** A listener that cannot bind its address, said in words an operator acts on. */
export class BindError extends Error {
  readonly address: string;
  readonly reason: string;
  constructor(name: string, address: string, err: NodeJS.ErrnoException) {
    const why =
      err.code === 'EADDRINUSE'
        ? 'the address is already in use'
        : err.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : err.code === 'EADDRNOTAVAIL'
            ? 'the address is not available on this host'
            : err.message;
    super(`cannot bind listener "${name}" on ${address}: ${why}`);
    this.address = address;
    this.reason = err.code ?? err.message;
  }
}
