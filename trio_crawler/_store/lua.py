"""The Lua side of :class:`~trio_crawler._store._redis.RedisStore`: every change to a crawl's
state in Redis is one of these scripts, so each is atomic (and lands in the AOF as one unit).

Keys (``P`` is ``tc:{CRAWL_ID}:``; the hash tag keeps a crawl's keys in one cluster slot)::

    P.meta          hash: crawl (identity JSON), settings (JSON), format, created, stop_reason,
                    finished_at, link_graph (all / partial: the link graph kept, for the report)
    P.cfg           hash: delay, conc, budget, dfs, lease, t0 (cluster-wide politeness)
    P.count         outstanding requests (queued + waiting for a retry + leased)
    P.queued        queued + waiting for a retry
    P.seen          hash L, S, N of the seen set's linear hashing; P.s:<i> buckets (intsets)
    P.q:<host>:<p>  list of entries "<fp hex> <request JSON>" of priority p; P.qp:<host> the
                    zset of the host's non-empty priorities (score -p)
    P.h:queued / P.h:flight / P.h:next / P.h:delay / P.h:admitted
                    hashes host -> queued count, leases held, next allowed start, delay, budget
    P.ready         zset host -> time it may start a request (only hosts with work and a slot
                    that were started before: they have an h:next)
    P.fresh         zset host -> time it became ready, for hosts with work and a slot never
                    started. A claim serves new hosts that have waited WARM_LEAD seconds, then
                    started hosts, then the other new ones (the frontier's rule: a broad crawl
                    finishes hosts while their connections are open)
    P.delayed       zset "<token>\\n<host>\\n<p>\\n<entry>" -> time (retries)
    P.leases        zset token -> expiry;  P.lease: hash token -> "<host>\\n<p>\\n<entry>"
    P.items         stream of records (field d: the record's JSON)
    P.events        stream of changes (field c: count), for blocked workers to wake up
    P.stats         hash of statistics (each worker adds its deltas)
    P.workers       hash worker id -> JSON (pid, host, started; ended and pages when it left)
    P.robots:<host> hash status, body, at
    P.scope         list of the URLs added to the scope (a seed's redirect); P.scope:set
    P.reply:<worker>:<kind>  the last reply of a claim/commit, so a retried call is not run twice
    P.g:total       hash URL -> pages that link to it (the link graph, ``link_graph`` on)
    P.g:refs        hash "<URL>\\n<n>" -> "<source>\\n<anchor>": its first referrers, n = 0..19
    P.g:oos         hash out-of-scope URL -> times met (at most OUT_OF_SCOPE_KEPT URLs)
    P.g:noindex     list "<URL>\\n<directives>" of the first pages noindex kept out
    P.g:counts      hash oos_total, noindex_total

Times are seconds since ``t0`` (the crawl's creation, Redis clock), so every worker agrees on
them whatever its own clock says. Fingerprints in the seen set are signed 64-bit integers in
decimal (Redis keeps them as intsets: 8 bytes each); the buckets are split one at a time
(linear hashing) so a bucket stays a small intset whatever the crawl's size.
"""

from __future__ import annotations

from .._graph import NOINDEX_KEPT, OUT_OF_SCOPE_KEPT, REFERRERS_KEPT

PRELUDE = r"""
local P = KEYS[1]
local C = redis.call('HMGET', P .. 'cfg', 'delay', 'conc', 'budget', 'dfs', 'lease', 't0')
local DELAY = tonumber(C[1] or '0') or 0
local CONC = tonumber(C[2] or '1') or 1
local BUDGET = tonumber(C[3] or '0') or 0
local DFS = C[4] == '1'
local LEASE = tonumber(C[5] or '30') or 30
local T0 = tonumber(C[6] or '0') or 0
local LOAD = 160
local WARM_LEAD = 300

local function clock()
  local t = redis.call('TIME')
  return (tonumber(t[1]) - T0) + tonumber(t[2]) / 1000000
end

local function num(v, default)
  if v then return tonumber(v) or default end
  return default
end

local function hnum(key, field, default)
  return num(redis.call('HGET', P .. key, field), default)
end

local function split_lease(v)
  local a = string.find(v, '\n', 1, true)
  local b = string.find(v, '\n', a + 1, true)
  return string.sub(v, 1, a - 1), string.sub(v, a + 1, b - 1), string.sub(v, b + 1)
end

local function push(host, prio, entry, front)
  local qk = P .. 'q:' .. host .. ':' .. prio
  if front then
    if DFS then redis.call('RPUSH', qk, entry) else redis.call('LPUSH', qk, entry) end
  else
    redis.call('RPUSH', qk, entry)
  end
  redis.call('ZADD', P .. 'qp:' .. host, -tonumber(prio), prio)
  redis.call('HINCRBY', P .. 'h:queued', host, 1)
end

local function pop(host)
  local qpk = P .. 'qp:' .. host
  local levels = redis.call('ZRANGE', qpk, 0, 0)
  while levels[1] do
    local prio = levels[1]
    local qk = P .. 'q:' .. host .. ':' .. prio
    local e
    if DFS then e = redis.call('RPOP', qk) else e = redis.call('LPOP', qk) end
    if e then
      if redis.call('LLEN', qk) == 0 then redis.call('ZREM', qpk, prio) end
      if redis.call('HINCRBY', P .. 'h:queued', host, -1) <= 0 then
        redis.call('HDEL', P .. 'h:queued', host)
      end
      return prio, e
    end
    redis.call('ZREM', qpk, prio)
    levels = redis.call('ZRANGE', qpk, 0, 0)
  end
  redis.call('HDEL', P .. 'h:queued', host)
  return nil, nil
end

local function schedule(host)
  local q = hnum('h:queued', host, 0)
  local f = hnum('h:flight', host, 0)
  if q > 0 and f < CONC then
    local nx = redis.call('HGET', P .. 'h:next', host)
    if nx then
      redis.call('ZADD', P .. 'ready', tonumber(nx), host)  -- (out of fresh: see started())
    else
      redis.call('ZADD', P .. 'fresh', 'NX', clock(), host)
    end
  else
    redis.call('ZREM', P .. 'ready', host)
    redis.call('ZREM', P .. 'fresh', host)
  end
end

-- a host gets its first h:next (its first claim, or a pause): no longer a new host
local function started(host)
  redis.call('ZREM', P .. 'fresh', host)
end

local function release(host)
  if redis.call('HINCRBY', P .. 'h:flight', host, -1) <= 0 then
    redis.call('HDEL', P .. 'h:flight', host)
  end
  schedule(host)
end

local EVENT = false
local OVER = 0  -- requests refused for their host's page budget (in the reply)
local function event(count, now)
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', 200, '*', 'c', count, 't', now)
end

-- a lease ends without a commit: its request goes back to the front of its host's queue
local function requeue(token)
  local v = redis.call('HGET', P .. 'lease', token)
  redis.call('ZREM', P .. 'leases', token)
  redis.call('HDEL', P .. 'lease', token)
  if v then
    local host, prio, entry = split_lease(v)
    push(host, prio, entry, true)
    redis.call('INCRBY', P .. 'queued', 1)
    release(host)
    EVENT = true
  end
end

local function sweep(now, max)
  local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now, 'LIMIT', 0, max)
  for _, token in ipairs(expired) do
    requeue(token)
  end
  return #expired
end

local function promote(now, max)
  local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now, 'LIMIT', 0, max)
  for _, member in ipairs(due) do
    redis.call('ZREM', P .. 'delayed', member)
    local a = string.find(member, '\n', 1, true)
    local host, prio, entry = split_lease(string.sub(member, a + 1))
    push(host, prio, entry, false)
    schedule(host)
  end
  return #due
end

local function next_ready()
  local best = -1
  for _, k in ipairs({'ready', 'fresh', 'delayed', 'leases'}) do
    local r = redis.call('ZRANGE', P .. k, 0, 0, 'WITHSCORES')
    if r[2] then
      local t = tonumber(r[2])
      if best < 0 or t < best then best = t end
    end
  end
  return best
end

-- the seen set: linear hashing over intset buckets
local SEEN = redis.call('HMGET', P .. 'seen', 'L', 'S', 'N')
local SL = num(SEEN[1], 0)
local SS = num(SEEN[2], 0)
local SN = num(SEEN[3], 0)
local SEEN_DIRTY = false

local function low32(s)
  local r = 0
  local neg = string.byte(s, 1) == 45
  local i = 1
  if neg then i = 2 end
  for j = i, #s do r = (r * 10 + string.byte(s, j) - 48) % 4294967296 end
  if neg and r ~= 0 then r = 4294967296 - r end
  return r
end

local function bucket(low)
  local m = 2 ^ SL
  local b = low % m
  if b < SS then b = low % (m * 2) end
  return b
end

local function split()
  local m = 2 ^ SL
  local src = P .. 's:' .. SS
  local dst = P .. 's:' .. (SS + m)
  local members = redis.call('SMEMBERS', src)
  local move = {}
  for _, member in ipairs(members) do
    if low32(member) % (m * 2) ~= SS then move[#move + 1] = member end
  end
  for i = 1, #move, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #move) do chunk[#chunk + 1] = move[j] end
    redis.call('SREM', src, unpack(chunk))
    redis.call('SADD', dst, unpack(chunk))
  end
  SS = SS + 1
  if SS >= m then
    SL = SL + 1
    SS = 0
  end
end

local function seen_add(member, low)
  if redis.call('SADD', P .. 's:' .. bucket(low), member) == 0 then return false end
  SN = SN + 1
  SEEN_DIRTY = true
  if SN > LOAD * (2 ^ SL + SS) then split() end
  return true
end

local function seen_save()
  if SEEN_DIRTY then redis.call('HSET', P .. 'seen', 'L', SL, 'S', SS, 'N', SN) end
end

-- new requests: {member, low32, host, prio, entry, dont_filter}
local function add_links(links)
  local queued = 0
  local over = 0
  local hosts = {}
  for _, l in ipairs(links) do
    local fresh = true
    if l[6] == 0 then fresh = seen_add(l[1], l[2]) end
    if fresh and BUDGET > 0 then
      if hnum('h:admitted', l[3], 0) >= BUDGET then
        fresh = false
        over = over + 1
      else
        redis.call('HINCRBY', P .. 'h:admitted', l[3], 1)
      end
    end
    if fresh then
      push(l[3], tostring(l[4]), l[5], false)
      hosts[l[3]] = true
      queued = queued + 1
    end
  end
  for host, _ in pairs(hosts) do schedule(host) end
  if queued > 0 then
    redis.call('INCRBY', P .. 'queued', queued)
    redis.call('INCRBY', P .. 'count', queued)
    redis.call('HDEL', P .. 'meta', 'stop_reason', 'finished_at')
    EVENT = true
  end
  OVER = OVER + over
  return queued
end

-- what a completed page adds to the link graph: {s=source, l={{url, anchor}...},
-- o={{url, times}...}, x=noindex directives}
local function add_graph(g)
  local src = g.s
  for _, l in ipairs(g.l or {}) do
    local n = redis.call('HINCRBY', P .. 'g:total', l[1], 1)
    if n <= @REFERRERS_KEPT@ then
      redis.call('HSET', P .. 'g:refs', l[1] .. '\n' .. (n - 1), src .. '\n' .. l[2])
    end
  end
  local met = 0
  for _, o in ipairs(g.o or {}) do
    met = met + o[2]
    if redis.call('HEXISTS', P .. 'g:oos', o[1]) == 1
      or redis.call('HLEN', P .. 'g:oos') < @OUT_OF_SCOPE_KEPT@ then
      redis.call('HINCRBY', P .. 'g:oos', o[1], o[2])
    end
  end
  if met > 0 then redis.call('HINCRBY', P .. 'g:counts', 'oos_total', met) end
  if g.x then
    if redis.call('HINCRBY', P .. 'g:counts', 'noindex_total', 1) <= @NOINDEX_KEPT@ then
      redis.call('RPUSH', P .. 'g:noindex', src .. '\n' .. g.x)
    end
  end
end

local function cached(kind, rid)
  local prev = redis.call('GET', P .. 'reply:' .. ARGV[1] .. ':' .. kind)
  if prev then
    local sep = string.find(prev, '\n', 1, true)
    if sep and string.sub(prev, 1, sep - 1) == rid then return string.sub(prev, sep + 1) end
  end
  return nil
end

local function reply(kind, rid, out)
  local text = cjson.encode(out)
  redis.call('SET', P .. 'reply:' .. ARGV[1] .. ':' .. kind, rid .. '\n' .. text, 'EX', 600)
  return text
end

local function status(now, out)
  local count = num(redis.call('GET', P .. 'count'), 0)
  if count == 0 and redis.call('HEXISTS', P .. 'meta', 'stop_reason') == 0 then
    redis.call('HSET', P .. 'meta', 'stop_reason', 'finished', 'finished_at',
      tostring(now + T0))
    EVENT = true
  end
  if EVENT then event(count, now) end
  seen_save()
  out.now = now
  out.count = count
  out.queued = num(redis.call('GET', P .. 'queued'), 0)
  out.ready = next_ready()
  out.hosts = redis.call('ZCARD', P .. 'ready') + redis.call('ZCARD', P .. 'fresh')
  out.scope = redis.call('LLEN', P .. 'scope')
  if OVER > 0 then out.over = OVER end
  return out
end
"""

#: ARGV: worker, rid, payload JSON {s={stat=delta}, o={op...}, w=want, x=extra, q=first token
#: number, ng=1 when this worker keeps no link graph but the crawl has one}. Applies the ops in
#: order, then leases up to ``w`` requests of ready hosts, and up to ``x`` more of ready hosts
#: without a delay (to keep the worker's buffer filled). Ops:
#: {k="c", t=token, f=fp hex, i={record JSON}, n={new request}, g=graph facts}: complete
#: (lease checked; the page's link graph facts, when given, in the same step);
#: {k="r", t=token, f=fp hex, e=entry, w=seconds}: retry later (lease checked);
#: {k="p", h=host, w=seconds}: pause a host; {k="d", h=host, d=delay}: a host's delay.
#: The reply's r holds per op: new requests queued, or -1 for a stale lease (result discarded).
SYNC = r"""
local prev = cached('m', ARGV[2])
if prev then return prev end
local now = clock()
local payload = cjson.decode(ARGV[3])
local results = {}
local done = 0
local function take(op)
  local v = redis.call('HGET', P .. 'lease', op.t)
  if not v then return nil end
  local host, prio, entry = split_lease(v)
  if string.sub(entry, 1, 16) ~= op.f then return nil end
  redis.call('ZREM', P .. 'leases', op.t)
  redis.call('HDEL', P .. 'lease', op.t)
  return host, prio
end
for i, op in ipairs(payload.o) do
  local r = 0
  if op.k == 'c' then
    local host = take(op)
    if host then
      for _, record in ipairs(op.i) do
        redis.call('XADD', P .. 'items', '*', 'd', record)
      end
      r = add_links(op.n)
      if op.g then add_graph(op.g) end
      release(host)
      done = done + 1
    else
      r = -1
    end
  elseif op.k == 'r' then
    local host, prio = take(op)
    if host then
      redis.call('ZADD', P .. 'delayed', now + op.w,
        op.t .. '\n' .. host .. '\n' .. prio .. '\n' .. op.e)
      release(host)
      EVENT = true
    else
      r = -1
    end
  elseif op.k == 'p' then
    local nx = hnum('h:next', op.h, 0)
    if now + op.w > nx then
      redis.call('HSET', P .. 'h:next', op.h, now + op.w)
      if nx == 0 then started(op.h) end
      schedule(op.h)
    end
  elseif op.k == 'd' then
    redis.call('HSET', P .. 'h:delay', op.h, op.d)
  end
  results[i] = r
end
if done > 0 then
  redis.call('INCRBY', P .. 'count', -done)
  redis.call('HINCRBY', P .. 'stats', 'pages_done', done)
  if payload.ng then redis.call('HSET', P .. 'meta', 'link_graph', 'partial') end
  EVENT = true
end
for field, delta in pairs(payload.s) do
  redis.call('HINCRBY', P .. 'stats', field, delta)
end
local claims = {}
local limit = payload.w
local extra = payload.x or 0
if limit + extra > 0 then
  sweep(now, 100)
  promote(now, 100)
  local seq = payload.q
  -- new hosts that waited WARM_LEAD seconds, then started hosts, then the other new ones
  local want = limit + extra
  local hosts = redis.call('ZRANGEBYSCORE', P .. 'fresh', '-inf', now - WARM_LEAD, 'LIMIT', 0, want)
  local function more(key, low)
    if #hosts < want then
      local found = redis.call('ZRANGEBYSCORE', P .. key, low, now, 'LIMIT', 0, want - #hosts)
      for _, host in ipairs(found) do hosts[#hosts + 1] = host end
    end
  end
  more('ready', '-inf')
  more('fresh', '(' .. (now - WARM_LEAD))
  for _, host in ipairs(hosts) do
    local d = hnum('h:delay', host, DELAY)
    local f = hnum('h:flight', host, 0)
    local was = redis.call('HGET', P .. 'h:next', host)
    local nx = num(was, 0)
    local took = 0
    -- beyond the fetchers free now, only hosts without a delay (a request that starts a
    -- little late cannot come closer to the next one than the delay)
    local cap = limit
    if d <= 0 then cap = limit + extra end
    while #claims < cap and f < CONC and nx <= now do
      local prio, entry = pop(host)
      if not prio then break end
      f = f + 1
      took = took + 1
      local token = ARGV[1] .. ':' .. (seq + #claims)
      redis.call('ZADD', P .. 'leases', now + LEASE, token)
      redis.call('HSET', P .. 'lease', token, host .. '\n' .. prio .. '\n' .. entry)
      claims[#claims + 1] = {token, host, entry}
      if nx < now then nx = now end
      nx = nx + d
    end
    if took > 0 then
      redis.call('HSET', P .. 'h:flight', host, f)
      redis.call('HSET', P .. 'h:next', host, nx)
      if not was then started(host) end
    end
    schedule(host)
  end
  if #claims > 0 then redis.call('INCRBY', P .. 'queued', -#claims) end
end
local out = status(now, {r = results, claims = claims})
return reply('m', ARGV[2], out)
"""

#: ARGV: worker, payload JSON [new request...]. Queues the new ones (the seeds).
ADD = r"""
local now = clock()
local n = add_links(cjson.decode(ARGV[2]))
return cjson.encode(status(now, {n = n}))
"""

#: ARGV: worker, payload JSON [[member, low32]...]. Marks seen; 1 for each one that was new.
MARK_SEEN = r"""
local now = clock()
local out = {}
for i, f in ipairs(cjson.decode(ARGV[2])) do
  if seen_add(f[1], f[2]) then out[i] = 1 else out[i] = 0 end
end
seen_save()
return cjson.encode({now = now, r = out})
"""

#: ARGV: worker. Returns expired leases to the frontier; repairs counts when nothing is leased.
PEEK = r"""
local now = clock()
sweep(now, 1000)
promote(now, 1000)
if redis.call('ZCARD', P .. 'leases') == 0 then
  -- nothing is leased: no host has a request in flight
  if redis.call('EXISTS', P .. 'h:flight') == 1 then
    redis.call('DEL', P .. 'h:flight')
    local queued = redis.call('HKEYS', P .. 'h:queued')
    for _, host in ipairs(queued) do schedule(host) end
  end
  if redis.call('ZCARD', P .. 'ready') == 0 and redis.call('ZCARD', P .. 'fresh') == 0
    and redis.call('ZCARD', P .. 'delayed') == 0
    and redis.call('EXISTS', P .. 'h:queued') == 0
    and num(redis.call('GET', P .. 'count'), 0) ~= 0 then
    redis.call('SET', P .. 'count', 0)
    redis.call('SET', P .. 'queued', 0)
    EVENT = true
  end
end
local out = status(now, {})
local last = redis.call('XREVRANGE', P .. 'events', '+', '-', 'COUNT', 1)
if last[1] then out.event = last[1][1] else out.event = '0-0' end
return cjson.encode(out)
"""

#: ARGV: worker, token... Extends the leases still held; returns how many were lost.
RENEW = r"""
local now = clock()
local lost = 0
for i = 2, #ARGV do
  if redis.call('ZADD', P .. 'leases', 'XX', 'CH', now + LEASE, ARGV[i]) == 0 then
    if not redis.call('ZSCORE', P .. 'leases', ARGV[i]) then lost = lost + 1 end
  end
end
return lost
"""

#: ARGV: worker, token... Gives leases back (a clean stop): the requests are queued again.
RELEASE = r"""
local now = clock()
for i = 2, #ARGV do
  requeue(ARGV[i])
end
return cjson.encode(status(now, {}))
"""

#: ARGV: worker, crawl JSON, settings JSON, format, delay, conc, budget, dfs, lease, worker
#: JSON, link graph ("1": this worker keeps it). Creates the crawl when it does not exist;
#: registers the worker; marks the link graph (``meta.link_graph``: ``all``, or ``partial``
#: when pages were done without it); returns what is stored.
OPEN = r"""
local t = redis.call('TIME')
redis.call('HSET', P .. 'workers', ARGV[1], ARGV[10])
if redis.call('EXISTS', P .. 'meta') == 0 then
  redis.call('HSET', P .. 'meta', 'crawl', ARGV[2], 'settings', ARGV[3], 'format', ARGV[4],
    'created', string.format('%d.%06d', tonumber(t[1]), tonumber(t[2])))
  redis.call('HSET', P .. 'cfg', 'delay', ARGV[5], 'conc', ARGV[6], 'budget', ARGV[7],
    'dfs', ARGV[8], 'lease', ARGV[9], 't0', t[1])
  redis.call('SET', P .. 'count', 0)
  redis.call('SET', P .. 'queued', 0)
  if ARGV[11] == '1' then redis.call('HSET', P .. 'meta', 'link_graph', 'all') end
  return cjson.encode({new = true})
end
local m = redis.call('HMGET', P .. 'meta', 'crawl', 'format', 'stop_reason', 'link_graph')
local c = redis.call('HMGET', P .. 'cfg', 'delay', 'conc', 'budget', 'dfs', 'lease')
local g = m[4]
if ARGV[11] == '1' and not g then
  g = 'all'
  if num(redis.call('HGET', P .. 'stats', 'pages_done'), 0) > 0 then g = 'partial' end
  redis.call('HSET', P .. 'meta', 'link_graph', g)
end
return cjson.encode({new = false, crawl = m[1], format = m[2], stop_reason = m[3] or '',
  cfg = c, graph = g or ''})
"""

#: ARGV: worker, URL. Adds the URL to the crawl's scope additions (once).
ADD_SCOPE = r"""
local now = clock()
if redis.call('SADD', P .. 'scope:set', ARGV[2]) == 1 then
  redis.call('RPUSH', P .. 'scope', ARGV[2])
end
return cjson.encode(status(now, {}))
"""

#: ARGV: worker, host, status, body, fetched_at (wall clock).
SAVE_ROBOTS = r"""
redis.call('HSET', P .. 'robots:' .. ARGV[2], 'status', ARGV[3], 'body', ARGV[4], 'at', ARGV[5])
return 1
"""


def _bounds(script: str) -> str:
    """The link graph's bounds (:mod:`trio_crawler._graph`) written into a script."""
    return (
        script.replace("@REFERRERS_KEPT@", str(REFERRERS_KEPT))
        .replace("@OUT_OF_SCOPE_KEPT@", str(OUT_OF_SCOPE_KEPT))
        .replace("@NOINDEX_KEPT@", str(NOINDEX_KEPT))
    )


PRELUDE = _bounds(PRELUDE)
