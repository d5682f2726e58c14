/**
 * Reading a request head as the listener edge does (SPEC §3, RFC 9110 /
 * RFC 9112): where it is addressed, whether its Host is valid, whether it
 * carries a body, its size, its request id. Pure functions of the parsed
 * head, tested on their own.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** RFC 9110 §7.8: Upgrade is ignored in an HTTP/1.0 request. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return u !== undefined && req.httpVersionMinor === 1 && /(?:^|,)\s*websocket\s*(?:,|$)/i.test(u);
}

/** Does the request carry a body? (RFC 9112 §6.3) */
export function hasRequestBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && Number(cl) > 0;
}

export function hasUnderscoreHeader(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.includes('_')) return true;
  return false;
}

/**
 * The host of a `CONNECT host:80` target, lower-case; null for any other
 * port or a malformed authority (RFC 9110 §9.3.6: authority-form, port required).
 */
export function connectHost80(target: string): string | null {
  const colon = target.lastIndexOf(':');
  if (colon <= 0 || target.slice(colon + 1) !== '80') return null;
  const host = target.slice(0, colon);
  return validHost(host) ? hostOf(host) : null;
}

const ABSOLUTE = /^https?:\/\/([^/?#]*)(.*)$/i;

/**
 * What node's parser lets through but RFC 9112 does not: a request line
 * without HTTP/1.x (node reads "GET /x" + CRLF as HTTP/0.9, headers and all,
 * and accepts "HTTP/2.0"), and an HTTP/1.1 request without exactly one Host
 * (§3.2: MUST be answered 400).
 */
export function malformedHead(req: IncomingMessage): boolean {
  if (req.httpVersionMajor !== 1) return true;
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') {
      hosts++;
      // RFC 9110 §7.2 / RFC 9112 §3.2: an invalid Host value is answered 400,
      // never routed (`evil.example@api.test`, `a,b`, `a/x`, `a:junk`).
      if (!validHostHeader(raw[i + 1]!)) return true;
    }
  }
  return hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1);
}

/**
 * `uri-host [ ":" port ]` as breakwater accepts it: a DNS-style name
 * (letters, digits, `-`, `.`, `_`, `~`, `%`-escapes) or an IPv4 address, or an
 * IPv6 literal in brackets; an optional port of 1–5 digits up to 65535. No
 * userinfo, no sub-delims (`,` `;` `!` …), no path, no whitespace, no
 * obs-text. The empty value (HTTP/1.0 without authority) is allowed.
 */
const HOST_NAME = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)$/;
export function validHost(host: string): boolean {
  return host.length > 0 && host.length <= 255 && HOST_NAME.test(host);
}

export function validHostHeader(value: string): boolean {
  if (value === '') return true;
  let host = value;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    if (close < 0) return false;
    host = value.slice(0, close + 1);
    const rest = value.slice(close + 1);
    return validHost(host) && (rest === '' || validPort(rest.slice(1), rest));
  }
  const colon = value.indexOf(':');
  if (colon >= 0) {
    if (!validPort(value.slice(colon + 1), value.slice(colon))) return false;
    host = value.slice(0, colon);
  }
  return validHost(host);
}

function validPort(port: string, withColon: string): boolean {
  if (withColon.charCodeAt(0) !== 58 /* : */) return false;
  if (port.length === 0 || port.length > 5) return false;
  for (let i = 0; i < port.length; i++) {
    const c = port.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return Number(port) <= 65535;
}

/**
 * Where a request is addressed: origin-form (`GET /x`, routed by Host) or
 * absolute-form (`GET http://payments.internal/x`, sent by clients using
 * HTTP_PROXY; its authority wins). null for anything else (400).
 */
export function parseTarget(req: IncomingMessage): { host: string; target: string } | null {
  const url = req.url ?? '/';
  if (url.charCodeAt(0) === 47 /* / */) return { host: hostOf(req.headers.host), target: url };
  const m = ABSOLUTE.exec(url);
  if (m === null) return null;
  // An http(s) URI with an empty host is invalid (RFC 9110 §4.2.1), and
  // userinfo is refused (§4.2.4): "http://svc.internal:80@evil/" must never
  // be routed as svc.internal.
  const authority = m[1] ?? '';
  if (authority === '' || authority.charCodeAt(0) === 58 /* : */ || !validHostHeader(authority)) return null;
  const rest = m[2] ?? '';
  return { host: hostOf(m[1]), target: rest === '' ? '/' : rest.charCodeAt(0) === 63 /* ? */ ? '/' + rest : rest };
}

/** Host without port, lower-case; IPv6 literals keep their brackets. */
export function hostOf(value: string | undefined): string {
  if (value === undefined || value === '') return '';
  let end = value.length;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    end = close < 0 ? end : close + 1;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon >= 0) end = colon;
  }
  // Strip userinfo in an absolute-form authority ("user@host").
  const at = value.lastIndexOf('@', end);
  const h = value.slice(at + 1, end);
  return h.toLowerCase();
}

/** The client's `x-request-id` if it is sane, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const v = req.headers['x-request-id'];
  if (typeof v === 'string' && v.length > 0 && v.length <= 200 && SAFE_ID.test(v)) return v;
  return randomUUID();
}
const SAFE_ID = /^[\x21-\x7e]+$/;

/** Bytes of the request head as received (request line + header lines). */
export function headSize(req: IncomingMessage): number {
  const raw = req.rawHeaders;
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n;
}
