/**
 * Headers breakwater never writes to a log, whatever `log.headers` says: they
 * carry credentials. The access log drops them and the config validator
 * refuses them in `log.headers`, from this one list, so the two cannot drift.
 *
 * SPEC §2 names authorization, cookie and proxy-authorization. set-cookie is
 * here too: it is a response header, so naming it in a list of request
 * headers to log is pointless, but a client can still send one, and its value
 * is a session credential like cookie's. Refusing it costs nothing and keeps
 * the rule "never log credentials" rather than "never log three names".
 * Names are lower case, as the config loader lower-cases header names.
 */
export const NEVER_LOGGED: ReadonlySet<string> = new Set(['authorization', 'cookie', 'proxy-authorization', 'set-cookie']);
