/**
 * What a listener serves from one config load, as the edge (http/server.ts)
 * and the Upgrade/CONNECT handlers (http/takeover.ts) see it.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ListenerConfig } from '../config/types.ts';
import type { AccessFields } from '../observability/access-log.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { ConnectTunnels } from './connect-tunnel.ts';
import type { Router } from './router.ts';

/** A route's entry point, as the edge sees it. */
export interface RouteEntry {
  handle(ex: Exchange): void;
  /** WebSocket/Upgrade requests (http/upgrade.ts). */
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer, requestId: string): void;
  /** `CONNECT host:PORT` byte tunnels (http/connect-tunnel.ts); null unless the route has allowConnect. */
  readonly connect: ConnectTunnels | null;
}

/** What the edge calls when an exchange is over: metrics and the access log. */
export interface ExchangeObserver {
  started(ex: Exchange): void;
  finished(ex: Exchange): void;
  /** The request matched no route. */
  unrouted(ex: Exchange): void;
  /** A request answered on the raw socket, never an Exchange (http/refused.ts): counted and logged under the empty route. */
  refused(r: AccessFields, status: number): void;
}

/** Everything a listener needs from one config load. Swapped whole on reload. */
export interface ListenerRoutes {
  readonly config: ListenerConfig;
  readonly router: Router<RouteEntry>;
  readonly observer: ExchangeObserver;
}
