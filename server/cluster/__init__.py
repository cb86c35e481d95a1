"""Many relay nodes on one Redis (issue 11): the pieces a node needs, each usable on its own.

- link.Link: the connection (commands + pub/sub), reconnect with backoff, per-room channels held while the
  node has local members there, fire-and-forget publishing of envelopes (envelope.py: binary header).
- chat.ChatStreams: a capped stream per room, appended before the sender is answered, paged by chat id.
- presence.Presence: this node's heartbeat, the users online on it, and the clean-up of dead nodes.
- identity.Identity: user ids, user records and resume tokens, the same on every node.
- rooms.Rooms: membership, settings, the crown, bans and the room list, each change a Lua script that
  publishes the room event in the room's one order; a dead node's members leave in one call.
- addresses.AddressCounts: connections per client address across nodes (the per-address cap).
- node.ClusterNode: link, presence, chat and identity over one Redis client, started and stopped as one.

Redis layout (keys.py builds the names):
    pr:room:{room}         channel: envelopes for a room's members on other nodes
    pr:to-node:{node}      channel: envelopes for one node
    pr:chat:{room}         stream, the room's last 1,000 chat lines; entry id 0-{chat id}
    pr:chat-ids            counter: chat ids, increasing across all rooms and nodes
    pr:nodes               set: the nodes that registered and were not cleaned up yet
    pr:node:{node}         string with TTL: the node is alive (holds its start token)
    pr:node-users:{node}   set: the users online on that node
    pr:online:{user}       string: the node a user is connected to
    pr:ids                 counter: user ids
    pr:user:{id}           hash: name, color, last_room, last_seen_us, token (its key)
    pr:token:{key}         string: user id; key = HMAC(secret, the resume token's hash)
    pr:room-info:{room}    hash: settings, version, seq (events so far), owner, crown, away, claim, used
    pr:room-members:{room} hash: user -> member (node, joined at, join seq, name, profile)
    pr:room-bans:{room}    hash: user -> ban (until, kick, name, address scope)
    pr:member:{user}       string: the room the user is in
    pr:member-scopes       hash: user -> their address's ban scope while in a room (for bans from other nodes)
    pr:node-members:{node} hash: user -> room, for the users that node holds in rooms
    pr:room-nodes          set: the nodes holding room members (a dead one's are removed by any sweep)
    pr:listed, pr:listed-seq  hash room -> summary, and the room list's delta counter
    pr:rooms               channel: room list deltas
    pr:address:{address}   hash: node -> open connections from the address
    pr:node-addresses:{node}  set: the addresses a node counts connections for
"""
