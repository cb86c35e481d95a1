"""Every Redis key and channel name the nodes share (the layout is in server/cluster/__init__.py).

Room names and node ids go into names as UTF-8; Redis names are binary-safe, so any room name works.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "pr:"
ROOM_CHANNEL: Final = PREFIX + "room:"
NODE_CHANNEL: Final = PREFIX + "to-node:"
IDS: Final = PREFIX + "ids"
CHAT_IDS: Final = PREFIX + "chat-ids"
NODES: Final = PREFIX + "nodes"
NODE: Final = PREFIX + "node:"
NODE_USERS: Final = PREFIX + "node-users:"
ONLINE: Final = PREFIX + "online:"
USER: Final = PREFIX + "user:"
TOKEN: Final = PREFIX + "token:"
# Rooms (server/cluster/rooms.py): the scripts build these names from the prefixes themselves.
ROOM_INFO: Final = PREFIX + "room-info:"
ROOM_MEMBERS: Final = PREFIX + "room-members:"
ROOM_BANS: Final = PREFIX + "room-bans:"
ROOM_MUTES: Final = PREFIX + "room-mutes:"
MEMBER: Final = PREFIX + "member:"
MEMBER_SCOPES: Final = (
    PREFIX + "member-scopes"
)  # user -> the ban scope of their address (never sent to clients)
NODE_MEMBERS: Final = PREFIX + "node-members:"
ROOM_NODES: Final = PREFIX + "room-nodes"
LISTED: Final = PREFIX + "listed"
LISTED_SEQ: Final = PREFIX + "listed-seq"
ROOM_LIST_CHANNEL: Final = PREFIX + "rooms"
# Connections per address (server/cluster/addresses.py).
ADDRESS: Final = PREFIX + "address:"
NODE_ADDRESSES: Final = PREFIX + "node-addresses:"


def room_channel(room: str) -> str:
    return ROOM_CHANNEL + room


def node_channel(node: str) -> str:
    return NODE_CHANNEL + node


def chat(room: str) -> str:
    return f"{PREFIX}chat:{room}"


def node(node_id: str) -> str:
    return NODE + node_id


def node_users(node_id: str) -> str:
    return NODE_USERS + node_id


def online(user_id: int) -> str:
    return f"{ONLINE}{user_id}"


def user(user_id: int) -> str:
    return f"{USER}{user_id}"


def token(digest: str) -> str:
    return TOKEN + digest


def address(scope: str) -> str:
    return ADDRESS + scope


def node_addresses(node_id: str) -> str:
    return NODE_ADDRESSES + node_id
