"""Many relay nodes on one Redis (issue 11): the pieces a node needs, each usable on its own.

- link.Link: the connection (commands + pub/sub), reconnect with backoff, per-room channels held while the
  node has local members there, fire-and-forget publishing of envelopes (envelope.py: binary header).
- chat.ChatStreams: a capped stream per room, appended before the sender is answered, paged by chat id.
- presence.Presence: this node's heartbeat, the users online on it, and the clean-up of dead nodes.
- identity.Identity: user ids, user records and resume tokens, the same on every node.
- node.ClusterNode: the four over one Redis client, started and stopped as one.

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
"""
