/**
 * A client connection as the listener edge tracks it (http/server.ts): the
 * answer being produced on it, what waits behind that answer, whether an
 * answer closes it, and the host of the CONNECT tunnel it carries.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Exchange } from '../pipeline/exchange.ts';

export const kActive = Symbol('breakwater.active');
export const kWaiting = Symbol('breakwater.waiting');
export const kClosing = Symbol('breakwater.closing');
export const kAuthority = Symbol('breakwater.tunnelAuthority');
export const kEx = Symbol('breakwater.exchange');
/** A response the edge produces, with the exchange it answers. */
export type TrackedResponse = ServerResponse & { [kEx]?: Exchange; _last?: boolean };
/** Work that waits for the answer before it on the same connection: a pipelined request, or a CONNECT/Upgrade. */
export type Waiting = [IncomingMessage, ServerResponse] | (() => void);
/** A client connection as the edge tracks it. */
export interface EdgeSocket extends Socket {
  /** The response being produced on this connection, if any. */
  [kActive]?: ServerResponse | null;
  [kWaiting]?: Waiting[] | null;
  /** An answer on this connection closes it: nothing after it is processed. */
  [kClosing]?: boolean;
  /** Set inside a `CONNECT host:80` tunnel: every request in it is for this host. */
  [kAuthority]?: string;
}

