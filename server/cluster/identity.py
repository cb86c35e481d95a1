"""Identity in Redis: user ids, user records and resume tokens, valid from every node.

    identity = Identity(link.redis, secret)
    user_id = await identity.new_user_id()
    await identity.save_user(UserRecord(user_id, "ann", "#ff0000"), token_hash=hash_token(token))
    record = await identity.user_by_token(hash_token(token))    # on any node

The same calls as pianorhythm.server.storage.Storage (`user_by_token`, SaveUser's user + token_hash), so the
core cannot tell them apart. Ids come from one counter (`pr:ids`, INCR): unique across nodes and restarts,
never MAX(id); `reserve_ids` leases a block for a node that hands ids out without a round trip.

Tokens are stored, not signed. A signed token (HMAC over the user id) would be valid on every node without
Redis, but could not be revoked or replaced, and would stay valid after its user was forgotten. Stored as
`pr:token:{key}` -> user id, a token is revoked by deleting it, replaced when the user gets a new one, and
forgotten with its user (both expire `expiry_s` after the user was last saved, as SQLite prunes users).
The key is HMAC-SHA256(secret, token hash), not the bare hash: someone who can write to Redis but does not
have the nodes' `--secret` cannot plant a token of their choosing for another user's id, and a copy of the
database matches no token from another deployment.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

import redis.asyncio as aioredis

from pianorhythm.server.cluster import keys
from pianorhythm.server.core.records import UserRecord

EXPIRY_S: Final = 30 * 86_400  # as Limits.user_expiry_s: a user not seen for this long is forgotten

# KEYS: the user's hash. ARGV: id, name, colour, last room, last seen (µs), expiry (ms), the new token's
# digest or '', token key prefix. A new token replaces the user's old one; both keys expire with the user.
_SAVE: Final = """
local token = redis.call('HGET', KEYS[1], 'token')
if ARGV[7] ~= '' then
  if token and token ~= ARGV[7] then redis.call('DEL', ARGV[8] .. token) end
  token = ARGV[7]
  redis.call('SET', ARGV[8] .. token, ARGV[1], 'PX', ARGV[6])
elseif token then
  redis.call('PEXPIRE', ARGV[8] .. token, ARGV[6])
end
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'color', ARGV[3], 'last_room', ARGV[4], 'last_seen_us', ARGV[5])
if token then redis.call('HSET', KEYS[1], 'token', token) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
"""

# KEYS: the token key. ARGV: user key prefix. {id, name, colour, last room, last seen} or nil.
_BY_TOKEN: Final = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local f = redis.call('HMGET', ARGV[1] .. id, 'name', 'color', 'last_room', 'last_seen_us')
if not f[1] then return false end
return {id, f[1], f[2], f[3], f[4]}
"""


class Identity:
    def __init__(self, redis: aioredis.Redis, secret: str, *, expiry_s: float = EXPIRY_S) -> None:
        if not secret:
            raise ValueError("Resume tokens in Redis need a secret shared by every node (--secret).")
        self.redis = redis
        self.expiry_s = expiry_s
        self._secret = secret.encode()
        self._save = redis.register_script(_SAVE)
        self._by_token = redis.register_script(_BY_TOKEN)

    def token_key(self, token_hash: str) -> str:
        return keys.token(self._digest(token_hash))

    def _digest(self, token_hash: str) -> str:
        return hmac.new(self._secret, token_hash.encode(), hashlib.sha256).hexdigest()

    async def new_user_id(self) -> int:
        return int(await self.redis.incr(keys.IDS))

    async def reserve_ids(self, count: int) -> range:
        """`count` ids no other node gets, in one round trip."""
        last = int(await self.redis.incrby(keys.IDS, count))
        return range(last - count + 1, last + 1)

    async def save_user(self, user: UserRecord, token_hash: str | None = None) -> None:
        """Store (or update) a user; with `token_hash`, that token resumes them from now on (their old one
        no longer does). Returns once Redis has it."""
        await self._save(
            keys=[keys.user(user.id)],
            args=[
                user.id, user.name, user.color, user.last_room, user.last_seen_us,
                int(self.expiry_s * 1000), self._digest(token_hash) if token_hash else "", keys.TOKEN,
            ],
        )  # fmt: skip

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        reply = await self._by_token(keys=[self.token_key(token_hash)], args=[keys.USER])
        if reply is None:
            return None
        user_id, name, color, last_room, last_seen_us = reply
        return UserRecord(int(user_id), name.decode(), color.decode(), last_room.decode(), int(last_seen_us))

    async def forget_token(self, token_hash: str) -> None:
        """Revoke a token (its user stays)."""
        await self.redis.delete(self.token_key(token_hash))
