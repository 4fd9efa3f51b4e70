"""Lua scripts: each writes state, its indexes and its event in ONE atomic Redis step (DESIGN invariant 3)."""

# FENCE: every state-writing script starts with this prelude (DESIGN invariant 2, issue 14). A write made by an
# account's worker carries its fencing token as its LAST ARGV ("fence=<token>") and the account's lease key
# (Keys.account_lease) as its LAST KEY; it is refused, writing nothing, unless the lease still holds that token
# (a paused or partitioned worker whose lease expired, or was taken over, cannot write). A call without a
# "fence=" last ARGV is unfenced (commands of an api process or a bot, tests): the scripts' own compare-and-set
# and version checks keep those safe. Scripts return -3 (or {-3, ...}) when refused.
FENCE = r"""
local function fence_refused()
  local token = ARGV[#ARGV]
  if type(token) ~= 'string' or string.sub(token, 1, 6) ~= 'fence=' then return false end
  local cur = redis.call('GET', KEYS[#KEYS])
  return not (cur and string.sub(cur, 1, #token - 5) == string.sub(token, 7) .. ':')
end
local function fenced_argc()
  local token = ARGV[#ARGV]
  if type(token) == 'string' and string.sub(token, 1, 6) == 'fence=' then return #ARGV - 1 end
  return #ARGV
end
"""

# FENCE_INLINE: FENCE's check written out for the hottest script (APPLY): the same refusal (-3), without the
# helper functions FENCE defines, which a script would make anew on every call.
FENCE_INLINE = r"""
do
  local token = ARGV[#ARGV]
  if type(token) == 'string' and string.sub(token, 1, 6) == 'fence=' then
    local cur = redis.call('GET', KEYS[#KEYS])
    if not (cur and string.sub(cur, 1, #token - 5) == string.sub(token, 7) .. ':') then return -3 end
  end
end
"""

# XADD_KEPT: every script that appends to a stream goes through this function (prepended to its source), so the
# retention (EVENT_STREAM_RETENTION, store/retention.py) applies to every XADD. `keep` is "<count>" (MAXLEN ~)
# or "age:<now ms>:<age ms>": the entry carries its time in field `t`, and up to 64 entries older than the age
# (or without `t`) are trimmed, oldest first, with XTRIM MINID. The oldest entry alone is read first: in the
# common case it is young enough and nothing more is read (reading 64 entries with their bodies on every event
# cost Redis ~95 us per write instead of ~4).
XADD_KEPT = r"""
local function entry_time(entry)
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 't' then return tonumber(fields[j + 1]) end
  end
  return nil
end
local function xadd_kept(stream, seq, payload, keep)
  if string.sub(keep, 1, 4) ~= 'age:' then
    redis.call('XADD', stream, 'MAXLEN', '~', keep, seq .. '-1', 'data', payload)
    return
  end
  local sep = string.find(keep, ':', 5, true)
  local now = tonumber(string.sub(keep, 5, sep - 1))
  local cutoff = now - tonumber(string.sub(keep, sep + 1))
  redis.call('XADD', stream, seq .. '-1', 'data', payload, 't', now)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  local t = first and entry_time(first)
  if t ~= nil and t >= cutoff then return end
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
  local last_old = nil
  for _, entry in ipairs(oldest) do
    t = entry_time(entry)
    if t ~= nil and t >= cutoff then break end
    last_old = entry[1]
  end
  if last_old then
    local old_seq = tonumber(string.sub(last_old, 1, string.find(last_old, '-', 1, true) - 1))
    redis.call('XTRIM', stream, 'MINID', (old_seq + 1) .. '-0')
  end
end
"""

# APPLY: upsert one hash, maintain indexes, and emit the event (PUBLISH + XADD with the next per-user seq).
#
# KEYS[1] state hash   KEYS[2] per-user seq counter   KEYS[3] per-user event stream   KEYS[4..] index keys
# ARGV  1 version ts (ms, number; "" = always newer)  2 progress (number; compared before ts: see below)
#       3 channel ("" = no publish)   4 event body: the JSON object without its opening "{"; "" = no event
#       5 event type when the record is new (or its status is one of ARGV 7)   6 event type otherwise
#       7 comma-wrapped statuses that count as "new again" (",closed,liquidated,"; "" = none)   8 stream MAXLEN
#       (ARGV 1 "" = a record without an exchange version: neither checked nor stored, and never listed)
#       9 digest of the content (all fields but updated_at): equal to the stored one = unchanged
#       10 base digest: "" = the pairs are the whole record; else they are a delta (only what changed, plus
#       the fields outside the digest) over a record holding this digest: another stored content answers -2
#       11 the record's status after this write ("" = none)
#       12 KEYS index of the list of finished records (0 = none), 13 the record's entry in it: pushed (list
#       capped at 1000) when the status changes or the record gets its first exchange version (the hash's
#       `_listed` then says so); a later report of the same status replaces the entry listed before
#       14 that entry, as the writer last wrote it ("" = not known: the script finds it by the record's id,
#       which starts every entry)
#       15 n = number of field/value pairs, then the pairs; then the fields to delete, joined by \x1f ("" =
#       none: one argument, since a whole write names every absent field and a new record has none to delete);
#       then k = number of index ops, each "op key_index arg": sadd | srem | del | expire (of the state
#       hash; arg seconds) | persist | hset_mirror (arg = field/value pairs joined by \x1f: replaces a legacy
#       mirror hash).
# Returns one integer (a table and a string cost the call more than decoding this costs the client): 1 applied
# without an event; 2 + 2 * seq + (1 when the event type is ARGV 5, else 0) applied with event `seq`; 0 unchanged
# (nothing written), -1 stale (behind what is stored), -2 a delta over another content (nothing written), -3
# refused by the fence (FENCE above).
#
# Cost (issue 15: <= 20 us of Redis time per event): every redis.call and argument counts, and a small hash
# is a listpack that each field lookup scans (a value over 64 bytes makes it a hash table: `_listed` is a
# mark, not the entry). The script reads what it compares in ONE HMGET (`_listed` only in the rare
# replacement), writes the fields, `_listed` included, with ONE HSET straight from ARGV
# (unpack: no Lua loop over the pairs), is told the new status instead of reading it back, and decodes no JSON.
# A record exists when it holds a digest or a status (every APPLY write stores `_digest`; every order and
# position has a `status`). A delta write sends a few fields instead of all of them. Every argument is a Lua
# string made (and later collected) per call, ~0.1-0.15 us each: the fields to delete travel as one, and the
# ops on the state hash itself (expire, persist) name it as KEYS[1] instead of a second copy of its key.
# Helper functions are made only on the rare paths that call them (a Lua function is made anew per call).
APPLY = (
    FENCE_INLINE
    + r"""
local key = KEYS[1]
local ts = ARGV[1]
local digest = ARGV[9]
local cur = redis.call('HMGET', key, '_ts', '_progress', '_digest', 'status')
local exists = cur[3] ~= false or cur[4] ~= false
if exists then
  if ts ~= '' and cur[1] then
    -- progress first (an order only moves forward: status rank, then filled fraction), then time: a
    -- forward step is never refused for carrying an older clock, and a finished order never comes back
    local progress = tonumber(ARGV[2]) or 0
    local cprog = tonumber(cur[2]) or 0
    if progress < cprog then return -1 end
    if progress == cprog and tonumber(ts) < tonumber(cur[1]) then return -1 end
  end
  -- unchanged content (ARGV 9: a digest of every field but updated_at) writes and emits nothing
  if cur[3] == digest then return 0 end
end
if ARGV[10] ~= '' and cur[3] ~= ARGV[10] then return -2 end
local prev_status = exists and cur[4]
local list = tonumber(ARGV[12])
local push = false
local relist = false
if list > 0 and ts ~= '' then
  -- a record without an exchange version (a provisional one, from a command reply) is not listed yet:
  -- it is, once the exchange's own report gives it one (or it changes status then)
  local new_status = ARGV[11]
  if new_status == '' then new_status = false end
  if prev_status ~= new_status or not (exists and cur[1]) then push = true else relist = true end
end
local i = 16 + 2 * tonumber(ARGV[15])
if ts == '' then
  redis.call('HSET', key, '_digest', digest, unpack(ARGV, 16, i - 1))
elseif push then
  redis.call('HSET', key, '_digest', digest, '_ts', ts, '_progress', ARGV[2], '_listed', '1',
    unpack(ARGV, 16, i - 1))
else
  redis.call('HSET', key, '_digest', digest, '_ts', ts, '_progress', ARGV[2], unpack(ARGV, 16, i - 1))
end
if push then
  local target = KEYS[list]
  if redis.call('LPUSH', target, ARGV[13]) > 1000 then redis.call('LTRIM', target, 0, 999) end
elseif relist then
  -- the same finished order, corrected by a later report (fees, a close-all's size): its entry follows
  local mark = redis.call('HGET', key, '_listed')
  if mark then
    local old = ARGV[14]
    if old == '' and #mark > 1 then old = mark end  -- an entry kept whole (before `_listed` was a mark)
    local at = nil
    if old ~= '' and old ~= ARGV[13] then at = redis.call('LPOS', KEYS[list], old) end
    if not at and old ~= ARGV[13] then
      -- not known, or not what is listed (a report that changed only updated_at wrote nothing)
      -- where the entry of record `id` is in `list` (newest first, so scanned from the head), and the entry
      local function listed_at(list, id)
        local prefix = '{"id":"' .. id .. '"'
        local start = 0
        while true do
          local chunk = redis.call('LRANGE', list, start, start + 99)
          if #chunk == 0 then return nil, nil end
          for j, e in ipairs(chunk) do
            if string.sub(e, 1, #prefix) == prefix then return start + j - 1, e end
          end
          start = start + 100
        end
      end
      local found
      at, found = listed_at(KEYS[list], redis.call('HGET', key, 'id') or '')
      if found == ARGV[13] then at = nil end
    end
    if at then redis.call('LSET', KEYS[list], at, ARGV[13]) end
    if #mark > 1 then redis.call('HSET', key, '_listed', '1') end
  end
end
local gone = ARGV[i]; i = i + 1
if gone ~= '' and exists then
  local names = {}
  for name in string.gmatch(gone, '[^\31]+') do names[#names + 1] = name end
  redis.call('HDEL', key, unpack(names))
end
local k = tonumber(ARGV[i]); i = i + 1
for j = 1, k do
  local op = ARGV[i]; local target = KEYS[tonumber(ARGV[i + 1])]; local arg = ARGV[i + 2]; i = i + 3
  if op == 'sadd' then redis.call('SADD', target, arg)
  elseif op == 'srem' then redis.call('SREM', target, arg)
  elseif op == 'del' then redis.call('DEL', target)
  elseif op == 'expire' then redis.call('EXPIRE', key, arg)
  elseif op == 'persist' then
    if exists then redis.call('PERSIST', key) end  -- a new hash has no time to live
  elseif op == 'hset_mirror' then
    -- arg: field \31 value \31 field \31 value ...; replaces the mirror hash (legacy keys)
    redis.call('DEL', target)
    local parts = {}
    for piece in string.gmatch(arg .. '\31', '([^\31]*)\31') do parts[#parts + 1] = piece end
    if #parts > 1 then redis.call('HSET', target, unpack(parts)) end
  end
end
local body = ARGV[4]
if body == '' then return 1 end
local etype = ARGV[6]
local again = 0
if (not exists) or (prev_status and ARGV[7] ~= '' and string.find(ARGV[7], ',' .. prev_status .. ',', 1, true)) then
  etype = ARGV[5]
  again = 1
end
local seq = redis.call('INCR', KEYS[2])
local spelled = tostring(seq)  -- once: a number is formatted (printf) each time it meets a string
local payload = '{"seq":' .. spelled .. ',"event_type":"' .. etype .. '",' .. body
local keep = ARGV[8]
if string.sub(keep, 1, 4) ~= 'age:' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', keep, spelled .. '-1', 'data', payload)
else
"""
    + XADD_KEPT
    + r"""
  xadd_kept(KEYS[3], spelled, payload, keep)
end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], payload) end
return 2 + 2 * seq + again
"""
)

# EMIT: append an event that comes with no state change of its own (e.g. a command's failure).
# KEYS[1] seq counter  KEYS[2] stream   ARGV 1 channel  2 event type  3 body (JSON without "{")  4 retention
EMIT = (
    FENCE
    + XADD_KEPT
    + r"""
if fence_refused() then return -3 end
local seq = redis.call('INCR', KEYS[1])
local payload = '{"seq":' .. seq .. ',"event_type":"' .. ARGV[2] .. '",' .. ARGV[3]
xadd_kept(KEYS[2], seq, payload, ARGV[4])
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], payload) end
return seq
"""
)

# CREATE: write a hash only if the key does not exist yet (intent records, idempotency keys).
# KEYS[1] hash   ARGV 1 ttl seconds, then field/value pairs. Returns 1 created, 0 existed.
CREATE = (
    FENCE
    + r"""
if fence_refused() then return -3 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2, fenced_argc()))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""
)

# EMIT_ONCE: like EMIT, guarded by a member of a sorted set scored by when it was seen, so the guard forgets
# members older than its ttl (bounded memory) (fills are deduplicated by "symbol:trade id").
# KEYS[1] seq  KEYS[2] stream  KEYS[3] guard   ARGV 1 channel 2 type 3 body 4 retention 5 member 6 ttl s 7 now ms
EMIT_ONCE = (
    FENCE
    + XADD_KEPT
    + r"""
if fence_refused() then return -3 end
local kind = redis.call('TYPE', KEYS[3])
if type(kind) == 'table' then kind = kind.ok end
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[3]) end  -- the set of older versions
if redis.call('ZADD', KEYS[3], 'NX', ARGV[7], ARGV[5]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[7]) - tonumber(ARGV[6]) * 1000)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))
local seq = redis.call('INCR', KEYS[1])
local payload = '{"seq":' .. seq .. ',"event_type":"' .. ARGV[2] .. '",' .. ARGV[3]
xadd_kept(KEYS[2], seq, payload, ARGV[4])
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], payload) end
return seq
"""
)

# FILL_MARK: advance an account's fill read mark (issue 14) to the exchange's time (ms) of a fill applied; it
# only moves forward. A new owner of the account reads the fills back over REST from a little before it.
# KEYS[1] mark   ARGV 1 the fill's exchange time (ms).  Returns 1 advanced, 0 not.
FILL_MARK = (
    FENCE
    + r"""
if fence_refused() then return -3 end
local cur = tonumber(redis.call('GET', KEYS[1]))
if cur and cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
)

# MARK: value an open position at a new mark price (current_price, unrealized_pnl) and emit position.updated
# with metadata {"cause": "mark"}. It writes nothing else: not the size, entry, status, version (_ts) or the
# content digest, so a mark can never make an exchange update look older, newer, changed or unchanged.
# KEYS[1] hash  KEYS[2] seq  KEYS[3] stream   ARGV 1 current_price 2 unrealized_pnl 3 size it was computed for
#      4 channel 5 body 6 retention.  Returns the seq, or 0 when the position is not open at that size any more.
MARK = (
    FENCE
    + XADD_KEPT
    + r"""
if fence_refused() then return -3 end
local cur = redis.call('HMGET', KEYS[1], 'status', 'size')
if cur[1] ~= 'open' or cur[2] ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'current_price', ARGV[1], 'unrealized_pnl', ARGV[2])
local seq = redis.call('INCR', KEYS[2])
local payload = '{"seq":' .. seq .. ',"event_type":"position.updated",' .. ARGV[5]
xadd_kept(KEYS[3], seq, payload, ARGV[6])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], payload) end
return seq
"""
)

# TRANSITION: compare-and-set of a state machine hash (trailing stops, rules) plus its event, atomically.
# KEYS[1] hash  KEYS[2] seq  KEYS[3] stream  KEYS[4..] index keys
# ARGV 1 expected version ("" = the hash must not exist)  2 channel  3 event type  4 body ("" = none)
#      5 retention  6 n pairs, pairs  then m fields to delete, fields  then k ops "op key_index arg"
#      (sadd | srem | expire (of the hash; arg seconds) | persist)
# Returns {1, seq} on success, {0, current version or -1} when the expectation failed.
TRANSITION = (
    FENCE
    + XADD_KEPT
    + r"""
if fence_refused() then return {-3, 0} end
local key = KEYS[1]
local cur = redis.call('HGET', key, 'version')
if ARGV[1] == '' then
  if cur then return {0, tonumber(cur)} end
elseif cur ~= ARGV[1] then
  return {0, tonumber(cur) or -1}
end
local i = 6
local n = tonumber(ARGV[i]); i = i + 1
local sets = {}
for j = 1, n do sets[#sets + 1] = ARGV[i]; sets[#sets + 1] = ARGV[i + 1]; i = i + 2 end
if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
local m = tonumber(ARGV[i]); i = i + 1
for j = 1, m do redis.call('HDEL', key, ARGV[i]); i = i + 1 end
local k = tonumber(ARGV[i]); i = i + 1
for j = 1, k do
  local op = ARGV[i]; local target = KEYS[tonumber(ARGV[i + 1])]; local arg = ARGV[i + 2]; i = i + 3
  if op == 'sadd' then redis.call('SADD', target, arg)
  elseif op == 'srem' then redis.call('SREM', target, arg)
  elseif op == 'expire' then redis.call('EXPIRE', key, tonumber(arg))
  elseif op == 'persist' then redis.call('PERSIST', key)
  end
end
if ARGV[4] == '' then return {1, 0} end
local seq = redis.call('INCR', KEYS[2])
local payload = '{"seq":' .. seq .. ',"event_type":"' .. ARGV[3] .. '",' .. ARGV[4]
xadd_kept(KEYS[3], seq, payload, ARGV[5])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], payload) end
return {1, seq}
"""
)

# RAISE_EXTREME: move an active trailing stop's extreme in the trader's favour only (never a version bump,
# so it never conflicts with a state transition), and emit trailing_stop.updated.
# KEYS[1] hash  KEYS[2] seq  KEYS[3] stream   ARGV 1 side 2 extreme 3 updated_at 4 channel 5 body 6 retention
RAISE_EXTREME = (
    FENCE
    + XADD_KEPT
    + r"""
if fence_refused() then return -3 end
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[1], 'extreme_price'))
local new = tonumber(ARGV[2])
if cur and ((ARGV[1] == 'long' and new <= cur) or (ARGV[1] == 'short' and new >= cur)) then return 0 end
redis.call('HSET', KEYS[1], 'extreme_price', ARGV[2], 'updated_at', ARGV[3])
local seq = redis.call('INCR', KEYS[2])
local payload = '{"seq":' .. seq .. ',"event_type":"trailing_stop.updated",' .. ARGV[5]
xadd_kept(KEYS[3], seq, payload, ARGV[6])
redis.call('PUBLISH', ARGV[4], payload)
return seq
"""
)

# PRICE: store the last price of a symbol and publish its price.updated payload, atomically.
# KEYS[1] last price hash   ARGV 1 channel  2 payload  3.. field/value pairs
PRICE = r"""
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

# LIST_INDEXED: the hashes an index set points to, in one round trip (the read API's hot path).
# KEYS[1] index set   ARGV 1 key prefix of the hashes (prefix .. member)   2 member prefix filter ("" = all)
# Returns {member, {field, value, ...}, member, {...}, ...} sorted by member; members whose hash is gone skipped.
LIST_INDEXED = r"""
local members = redis.call('SMEMBERS', KEYS[1])
table.sort(members)
local out = {}
local filter = ARGV[2]
for _, m in ipairs(members) do
  if filter == '' or string.sub(m, 1, #filter) == filter then
    local h = redis.call('HGETALL', ARGV[1] .. m)
    if #h > 0 then out[#out + 1] = m; out[#out + 1] = h end
  end
end
return out
"""

# TRIGGER: the compare-and-set of a trailing stop to `triggered` AND the intent record of its close order, in one
# atomic step and one round trip (issue 15 4d): the intent exists exactly when the trigger does.
# KEYS[1] stop hash  KEYS[2] seq  KEYS[3] stream  KEYS[4] intent hash  KEYS[5] user's index
# ARGV 1 expected version  2 channel  3 event type  4 body ("" = none)  5 retention  6 intent ttl s
#      7 intent field/value pairs joined by \x1f ("" = none)  8 the stop's changed field/value pairs, joined by \x1f
#      9 member of the user's index
# (The cross-user live stop index is not touched: a triggered stop was live, so it is there already, and a script
# touching it would cross Redis Cluster slots; see machines.GlobalIndex.)
# (Few, packed arguments: a pipelined tick of 100 triggers costs the client little to pack. A prelude may check
# KEYS/ARGV appended after these.)
# Returns {1, seq, intent created (1) or already there (0)} on success, {0, current version or -1} when the
# expectation failed (then nothing is written, the intent neither), {-3, 0} when refused by the fence.
TRIGGER = (
    FENCE
    + XADD_KEPT
    + r"""
if fence_refused() then return {-3, 0} end
local function pairs_of(packed)
  local out = {}
  local start = 1
  while true do
    local sep = string.find(packed, '\31', start, true)
    if not sep then out[#out + 1] = string.sub(packed, start); return out end
    out[#out + 1] = string.sub(packed, start, sep - 1)
    start = sep + 1
  end
end
local key = KEYS[1]
local cur = redis.call('HGET', key, 'version')
if cur ~= ARGV[1] then return {0, tonumber(cur) or -1} end
local created = 0
if ARGV[7] ~= '' and redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('HSET', KEYS[4], unpack(pairs_of(ARGV[7])))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[6]))
  created = 1
end
redis.call('HSET', key, unpack(pairs_of(ARGV[8])))
redis.call('PERSIST', key)
redis.call('SADD', KEYS[5], ARGV[9])
if ARGV[4] == '' then return {1, 0, created} end
local seq = redis.call('INCR', KEYS[2])
local payload = '{"seq":' .. seq .. ',"event_type":"' .. ARGV[3] .. '",' .. ARGV[4]
xadd_kept(KEYS[3], seq, payload, ARGV[5])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], payload) end
return {1, seq, created}
"""
)

# -- account leases (issue 14; Redis' single-instance lock pattern plus a fencing token) ---------------------
# The lease of an account is a string "<token>:<worker id>" with a PX expiry; the token comes from INCR of the
# account's fence counter, so every new holder writes with a larger token than any before it.

# LEASE_ACQUIRE: KEYS[1] lease  KEYS[2] fence counter   ARGV 1 worker id  2 ttl ms
# Returns the token (the holder's own, renewed, when it holds it already), or 0 when another worker holds it.
LEASE_ACQUIRE = r"""
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if sep and string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, 1, sep - 1))
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return token
"""

# LEASE_RENEW: KEYS[1] lease   ARGV 1 value ("<token>:<worker id>")  2 ttl ms.  Returns 1 renewed, 0 lost.
LEASE_RENEW = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# LEASE_RELEASE: KEYS[1] lease   ARGV 1 value.  Returns 1 released, 0 not ours (any more).
LEASE_RELEASE = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# WORKER_HEARTBEAT: the live-worker registry, a sorted set scored by expiry in Redis' own clock (one global
# key, never in a script with a user's key).  KEYS[1] registry  ARGV 1 worker id  2 ttl ms (0 = leave now)
# Returns the ids of the live workers.
WORKER_HEARTBEAT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
