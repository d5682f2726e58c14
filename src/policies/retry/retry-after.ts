/**
 * The upstream's `Retry-After` header (SPEC §4.2 `respectRetryAfter`), as a
 * number of ms to wait. Only called for a retriable 429/503, never on the
 * common path.
 *
 * Date.parse is not used: it accepts far more than HTTP-dates ("1" is the
 * year 2001) and reads asctime dates as local time. The three forms RFC 9110
 * §5.6.7 says a recipient must accept are matched exactly instead.
 */

/** The longest wait honoured: an upstream asking for more is asking for 5 minutes. */
export const RETRY_AFTER_CAP_MS = 300_000;

const DELTA_SECONDS = /^\d+$/;
// Sun, 06 Nov 1994 08:49:37 GMT
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// Sunday, 06-Nov-94 08:49:37 GMT
const RFC850 =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// Sun Nov  6 08:49:37 1994
const ASCTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

/**
 * ms to wait (0 for a date in the past, at most RETRY_AFTER_CAP_MS), or null
 * when the header is absent or not a valid delta-seconds / HTTP-date. With
 * several values, the first counts. `nowMs` is wall-clock epoch ms.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return null;
  const text = raw.trim();
  if (text === '') return null;
  if (DELTA_SECONDS.test(text)) return Math.min(Number(text) * 1000, RETRY_AFTER_CAP_MS);
  const at = parseHttpDate(text, nowMs);
  if (at === null) return null;
  return Math.min(Math.max(0, at - nowMs), RETRY_AFTER_CAP_MS);
}

/** Epoch ms of an HTTP-date in any of its three forms, or null. */
function parseHttpDate(text: string, nowMs: number): number | null {
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) return utc(Number(m[3]), m[2], Number(m[1]), m[4], m[5], m[6]);
  m = RFC850.exec(text);
  if (m !== null) return utc(fullYear(Number(m[3]), nowMs), m[2], Number(m[1]), m[4], m[5], m[6]);
  m = ASCTIME.exec(text);
  if (m !== null) return utc(Number(m[6]), m[1], Number(m[2]), m[3], m[4], m[5]);
  return null;
}

/**
 * RFC 9110: a two-digit year more than 50 years in the future means the most
 * recent past year with the same last two digits.
 */
function fullYear(yy: number, nowMs: number): number {
  const thisYear = new Date(nowMs).getUTCFullYear();
  let year = thisYear - (thisYear % 100) + yy;
  if (year > thisYear + 50) year -= 100;
  return year;
}

function utc(
  year: number,
  monthName: string | undefined,
  day: number,
  hh: string | undefined,
  mm: string | undefined,
  ss: string | undefined,
): number | null {
  const month = monthName === undefined ? undefined : MONTHS[monthName];
  const h = Number(hh);
  const min = Number(mm);
  const s = Number(ss);
  // 60 seconds is a leap second, which Date.UTC rolls into the next minute.
  if (month === undefined || day < 1 || day > 31 || h > 23 || min > 59 || s > 60) return null;
  // Reject "31 Feb" rather than letting Date.UTC roll it into March.
  if (new Date(Date.UTC(year, month, day)).getUTCDate() !== day) return null;
  return Date.UTC(year, month, day, h, min, s);
}
