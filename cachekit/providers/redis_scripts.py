"""Lua scripts of the Redis provider: the writes that must update a value and its tags atomically.

Key layout (``P`` is the cache's prefix, ``M`` its meta namespace: ``P`` with its last character
replaced, so that no data key ``P + key`` can ever equal a meta key - see ``docs/redis.md``)::

    P + key          the value (bare ASCII decimal for ints, so INCRBY works)
    M + "k:" + key   SET of the key's tags        (only for tagged keys; same TTL as the value)
    M + "t:" + tag   SET of the keys with the tag (TTL >= the longest-lived member's)
    M + "s:" + key   stampede lock of get_or_set  (a random token, short TTL)
    M + "l:" + name  cache.lock(name)

Every write of a value also drops the key from the tag sets of its previous tags and deletes
its side key, so an overwrite replaces the tags (an untagged overwrite removes them). Scripts run
atomically and see a frozen clock, so a value and its side key, set with the same ``PX``, expire
together. Tag sets are cleaned up as their members expire by their own TTL; members that expired
earlier are skipped (their side key is gone) and dropped when the tag is invalidated.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import redis.exceptions

from cachekit.errors import InvalidArgument

__all__ = [
    "DELETE",
    "INCR",
    "INVALIDATE",
    "INVALIDATE_BATCH",
    "INVALIDATE_SLOT",
    "RELEASE",
    "SCAN_BATCH",
    "ONLY_ABSENT",
    "ONLY_PRESENT",
    "PLAIN",
    "STORE",
    "TAG_SET",
    "TOUCH",
    "TOUCH_SLOT",
    "Script",
    "escape_glob",
    "meta_prefix",
    "px",
]

#: Keys per SCAN page and per UNLINK/DELETE batch in clear() and delete_pattern().
SCAN_BATCH: Final = 1000
#: Tags per INVALIDATE script (a few ms for tags of one member each): scripts block the server.
INVALIDATE_BATCH: Final = 1000
_GLOB_SPECIALS: Final = str.maketrans({c: "\\" + c for c in "*?[]\\"})


#: The longest TTL in milliseconds (~285,000 years): the largest a Lua script holds exactly
#: (its numbers are doubles). Redis refuses an expiry whose absolute time overflows a signed
#: 64-bit millisecond count, and a script hands the numbers it computed with to Redis as
#: "%.17g", so 10**17 ms arrived as "1e+17" and the script's write failed halfway.
MAX_PX = 2**53


def px(seconds: float) -> int:
    """Seconds as Redis milliseconds; a positive TTL never rounds down to 0 (= no expiry).

    A TTL over :data:`MAX_PX` (~285,000 years) is refused here, before any command:
    halfway through a write it could leave the write half done.
    """
    if seconds * 1000 > MAX_PX:  # checked first: round(1e308 * 1000) is an OverflowError
        raise InvalidArgument(
            f"ttl of {seconds:g} s is beyond what Redis accepts; use None for no expiry"
        )
    ms = max(1, round(seconds * 1000))
    if ms > MAX_PX:
        raise InvalidArgument(
            f"ttl of {seconds:g} s is beyond what Redis accepts; use None for no expiry"
        )
    return ms


def escape_glob(text: str) -> str:
    """``text`` with the glob characters of ``SCAN MATCH`` escaped (it matches only itself)."""
    return text.translate(_GLOB_SPECIALS)


def meta_prefix(prefix: str) -> str:
    """A ``#`` (``%`` if the prefix ends in ``#``) before the prefix's last character: no
    ``prefix + key`` can start with the result, and two prefixes never share one. (Replacing
    the last character, as before, gave ``app1``/``app2`` or ``shop_``/``shop:`` one tag index,
    so one cache's ``invalidate_tags`` consumed the other's.)"""
    return prefix[:-1] + ("#" if prefix[-1] != "#" else "%") + prefix[-1]


class Script:
    """A Lua script run by SHA (``EVALSHA``), loaded on the first ``NOSCRIPT`` reply."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # Redis's script id

    def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    async def acall(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


#: KEYS: data1, side1, data2, side2...  ARGV: px (0 = no expiry), nx ('1'/'0'), tag-set prefix,
#: prefix length, number of tags, the tags..., then one value per key. Returns how many stored.
#: An empty tag-set prefix (Redis Cluster, where tag sets live in other slots) leaves the tag
#: sets alone: only the value and its side key (the key's tags) are written.
#: STORE's write modes (ARGV[2]): always, only if absent (``add``), only if present (``replace``).
PLAIN: Final = "0"
ONLY_ABSENT: Final = "1"
ONLY_PRESENT: Final = "2"

STORE: Final = Script("""
local px = tonumber(ARGV[1])
local nx = ARGV[2] == '1'
local xx = ARGV[2] == '2'
local tprefix = ARGV[3]
local plen = tonumber(ARGV[4])
local ntags = tonumber(ARGV[5])
local stored = 0
for i = 1, #KEYS, 2 do
  local data, side = KEYS[i], KEYS[i + 1]
  local value = ARGV[5 + ntags + (i + 1) / 2]
  local ok
  if nx then
    if px > 0 then ok = redis.call('SET', data, value, 'NX', 'PX', px)
    else ok = redis.call('SET', data, value, 'NX') end
  elseif xx then
    if px > 0 then ok = redis.call('SET', data, value, 'XX', 'PX', px)
    else ok = redis.call('SET', data, value, 'XX') end
  elseif px > 0 then ok = redis.call('SET', data, value, 'PX', px)
  else ok = redis.call('SET', data, value) end
  if ok then
    stored = stored + 1
    local member = string.sub(data, plen + 1)
    local old = redis.call('SMEMBERS', side)
    if #old > 0 then
      if tprefix ~= '' then
        for _, tag in ipairs(old) do redis.call('SREM', tprefix .. tag, member) end
      end
      redis.call('DEL', side)
    end
    if ntags > 0 and tprefix == '' then
      redis.call('SADD', side, unpack(ARGV, 6, 5 + ntags))
      if px > 0 then redis.call('PEXPIRE', side, px) end
    elseif ntags > 0 then
      for t = 6, 5 + ntags do
        local tkey = tprefix .. ARGV[t]
        local fresh = redis.call('EXISTS', tkey) == 0
        redis.call('SADD', tkey, member)
        if px <= 0 then redis.call('PERSIST', tkey)
        elseif fresh then redis.call('PEXPIRE', tkey, px)
        else redis.call('PEXPIRE', tkey, px, 'GT') end
      end
      redis.call('SADD', side, unpack(ARGV, 6, 5 + ntags))
      if px > 0 then redis.call('PEXPIRE', side, px) end
    end
  end
end
return stored
""")

#: KEYS: data1, side1, ...  ARGV: tag-set prefix, prefix length. Returns how many values existed.
#: An empty tag-set prefix (Redis Cluster) leaves the tag sets alone.
DELETE: Final = Script("""
local plen = tonumber(ARGV[2])
local n = 0
for i = 1, #KEYS, 2 do
  n = n + redis.call('UNLINK', KEYS[i])
  local tags = redis.call('SMEMBERS', KEYS[i + 1])
  if #tags > 0 and ARGV[1] == '' then
    redis.call('DEL', KEYS[i + 1])
  elseif #tags > 0 then
    local member = string.sub(KEYS[i], plen + 1)
    for _, tag in ipairs(tags) do redis.call('SREM', ARGV[1] .. tag, member) end
    redis.call('DEL', KEYS[i + 1])
  end
end
return n
""")

#: ARGV: tag-set prefix, side-key prefix, data prefix, the tags... Returns how many live values
#: it removed. A member counts only if its side key still lists the tag (it was not overwritten
#: without it and has not expired).
INVALIDATE: Final = Script("""
local n = 0
for t = 4, #ARGV do
  local tag = ARGV[t]
  local tkey = ARGV[1] .. tag
  for _, member in ipairs(redis.call('SMEMBERS', tkey)) do
    local side = ARGV[2] .. member
    if redis.call('SISMEMBER', side, tag) == 1 then
      n = n + redis.call('UNLINK', ARGV[3] .. member)
      for _, other in ipairs(redis.call('SMEMBERS', side)) do
        if other ~= tag then redis.call('SREM', ARGV[1] .. other, member) end
      end
      redis.call('DEL', side)
    end
  end
  redis.call('UNLINK', tkey)
end
return n
""")

#: KEYS: data, side.  ARGV: px (0 = persist), tag-set prefix. Returns 1 if the key existed.
TOUCH: Final = Script("""
local px = tonumber(ARGV[1])
local ok
if px > 0 then ok = redis.call('PEXPIRE', KEYS[1], px)
else ok = redis.call('EXISTS', KEYS[1]); if ok == 1 then redis.call('PERSIST', KEYS[1]) end end
if ok == 0 then return 0 end
local tags = redis.call('SMEMBERS', KEYS[2])
if #tags > 0 then
  if px > 0 then redis.call('PEXPIRE', KEYS[2], px) else redis.call('PERSIST', KEYS[2]) end
  for _, tag in ipairs(tags) do
    if px > 0 then redis.call('PEXPIRE', ARGV[2] .. tag, px, 'GT')
    else redis.call('PERSIST', ARGV[2] .. tag) end
  end
end
return 1
""")

#: KEYS: data.  ARGV: delta, px for a new key (0 = none). INCRBY keeps an existing key's TTL;
#: a key it creates gets the default TTL in the same atomic step. The new value is returned as
#: GET reads it, not as INCRBY's reply: that becomes a Lua number, a double, which rounds past
#: 2**53 (and turned 2**63-1 into -2**63).
INCR: Final = Script("""
local existed = redis.call('EXISTS', KEYS[1])
redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])
""")

#: KEYS: lock.  ARGV: token. Deletes the lock only if we still own it.
RELEASE: Final = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

# -- Redis Cluster: every script touches the keys of one slot only (see redis_cluster.py) ------

#: KEYS: data, side (one slot).  ARGV: px (0 = persist). Like TOUCH without the tag sets, which
#: live in other slots: returns the key's tags (the caller extends their sets), or 0 if absent.
TOUCH_SLOT: Final = Script("""
local px = tonumber(ARGV[1])
local ok
if px > 0 then ok = redis.call('PEXPIRE', KEYS[1], px)
else ok = redis.call('EXISTS', KEYS[1]); if ok == 1 then redis.call('PERSIST', KEYS[1]) end end
if ok == 0 then return 0 end
local tags = redis.call('SMEMBERS', KEYS[2])
if #tags > 0 then
  if px > 0 then redis.call('PEXPIRE', KEYS[2], px) else redis.call('PERSIST', KEYS[2]) end
end
return tags
""")

#: KEYS: one tag set.  ARGV: px of the members (0 = none), then members to add (maybe none).
#: Adds the members and keeps the set alive at least as long as them: a new set gets ``px``, an
#: existing one is only extended (``GT``), a member without TTL makes it persistent. With no
#: members (touch), an absent set stays absent. Returns 1.
TAG_SET: Final = Script("""
local px = tonumber(ARGV[1])
local fresh = redis.call('EXISTS', KEYS[1]) == 0
if #ARGV > 1 then redis.call('SADD', KEYS[1], unpack(ARGV, 2))
elseif fresh then return 1 end
if px <= 0 then redis.call('PERSIST', KEYS[1])
elseif fresh then redis.call('PEXPIRE', KEYS[1], px)
else redis.call('PEXPIRE', KEYS[1], px, 'GT') end
return 1
""")

#: KEYS: data1, side1, ... (one slot).  ARGV: the tag. Removes each entry whose side key still
#: lists the tag (not expired, not overwritten without it). Returns how many values it removed.
INVALIDATE_SLOT: Final = Script("""
local n = 0
for i = 1, #KEYS, 2 do
  if redis.call('SISMEMBER', KEYS[i + 1], ARGV[1]) == 1 then
    n = n + redis.call('UNLINK', KEYS[i])
    redis.call('DEL', KEYS[i + 1])
  end
end
return n
""")
