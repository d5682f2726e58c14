/**
 * The global bucket, as one Lua script run atomically by Redis (SPEC §12).
 *
 * A token bucket in a hash (`t` tokens, `ts` last refill in ms), refilled
 * from Redis's own clock (TIME): the processes' clocks never matter. One
 * call does, in order:
 *   1. refill for the time elapsed since the last call, capped at the burst;
 *   2. take back `give` tokens a process leased and never used (capped);
 *   3. charge `owe` tokens a process admitted on credit — whatever the bucket
 *      holds: it may go negative, and then the next tokens pay that debt, so
 *      every admission is counted exactly once;
 *   4. grant up to `want` whole tokens (a lease), never below zero.
 * It also notes the caller in a sorted set of peers seen in the last 10 s:
 * the count tells each process its share of the rate when Redis is gone.
 *
 * KEYS[1] bucket hash, KEYS[2] peers zset (one hash tag: one Cluster slot).
 * ARGV: perMs, burst, want, owe, give, peerId.
 * Answer: { granted, ms until a whole token (string: Lua numbers are
 * truncated to integers on the way out), peers }.
 */
export const TAKE_SCRIPT = `
local perMs = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local owe = tonumber(ARGV[4])
local give = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then tokens = tokens + (now - ts) * perMs end
tokens = tokens + give
if tokens > burst then tokens = burst end
tokens = tokens - owe
local granted = 0
if tokens >= 1 then
  granted = math.floor(tokens)
  if granted > want then granted = want end
  tokens = tokens - granted
end
local nextMs = 0
if tokens < 1 then nextMs = (1 - tokens) / perMs end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
-- Once full again the hash says nothing a missing one would not.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / perMs) + 1000)
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 10000)
redis.call('PEXPIRE', KEYS[2], 10000)
local peers = redis.call('ZCARD', KEYS[2])
return { granted, tostring(nextMs), peers }
`;
