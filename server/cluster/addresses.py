"""Open connections per client address across every node: a per-address cap that holds cluster-wide.

    counts = AddressCounts(link.redis, "node-a")
    if not await counts.opened(ip, limits.max_connections_per_ip):   # refused: the address is at the cap
        ...
    await counts.closed(ip)
    await counts.remove_node("node-c")     # a dead node's connections count no more (Presence.on_node_dead)

`pr:address:{address}` is a hash node -> that node's open connections from the address, so a node that died
is subtracted exactly; `pr:node-addresses:{node}` lists the addresses a node holds. Checking the cap and
counting the connection are one script, so two nodes admitting the same address at once cannot both pass
the last slot. The address is counted as given (the shell's client address, as on one node).
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

from pianorhythm.server.cluster import keys

# KEYS: the address's hash, this node's address set. ARGV: node, cap, address.
# The count after opening, or -(the count) when the address is at the cap (nothing changed).
_OPEN: Final = """
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(n) end
if total >= tonumber(ARGV[2]) then return -total end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[3])
return total + 1
"""

# KEYS: the address's hash, this node's address set. ARGV: node, address.
_CLOSE: Final = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
"""

# KEYS: the node's address set. ARGV: node, address key prefix. The addresses it held.
_REMOVE_NODE: Final = """
local held = redis.call('SMEMBERS', KEYS[1])
for _, address in ipairs(held) do redis.call('HDEL', ARGV[2] .. address, ARGV[1]) end
redis.call('DEL', KEYS[1])
return #held
"""


class AddressCounts:
    def __init__(self, redis: aioredis.Redis, node: str) -> None:
        self.redis = redis
        self.node = node
        self._node_key = keys.node_addresses(node)
        self._open = redis.register_script(_OPEN)
        self._close = redis.register_script(_CLOSE)
        self._remove_node = redis.register_script(_REMOVE_NODE)

    async def opened(self, address: str, cap: int) -> bool:
        """Count a connection from `address` on this node, unless the address has `cap` open already
        (across all nodes): False then, and nothing was counted."""
        total = await self._open(keys=[keys.address(address), self._node_key], args=[self.node, cap, address])
        return int(total) > 0

    async def closed(self, address: str) -> None:
        await self._close(keys=[keys.address(address), self._node_key], args=[self.node, address])

    async def count(self, address: str) -> int:
        """Open connections from `address` across all nodes."""
        counts = await self.redis.hvals(keys.address(address))
        return sum(int(n) for n in counts)

    async def remove_node(self, node: str) -> int:
        """Forget `node`'s connections (it died, or this is its previous run); how many addresses it held."""
        return int(await self._remove_node(keys=[keys.node_addresses(node)], args=[node, keys.ADDRESS]))
