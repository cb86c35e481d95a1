"""The thin asyncio shell around the relay core: reads frames, feeds the core, carries out its
actions (queue bytes, close connections, storage), runs its timers and answers /healthz."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import os
import struct
import threading
import weakref
from collections import Counter
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from pianorhythm.server.addresses import Headers, TrustedProxies, client_address
from pianorhythm.server.clock import ServerClock
from pianorhythm.server.core import (
    CLOSE_POLICY,
    CLOSE_REPLACED,
    CLOSE_SLOW,
    Action,
    Broadcast,
    Close,
    FetchHistory,
    Persist,
    RelayCore,
    Reply,
    RoomEntered,
    RoomLeft,
    SendTo,
    UserOffline,
    UserOnline,
    events,
    paging,
)
from pianorhythm.server.core.actions import (
    Ask,
    AskBan,
    AskClose,
    AskCrown,
    AskCrownDue,
    AskJoin,
    AskLeave,
    AskMute,
    AskPasswordHashed,
    AskSettings,
    AskUnban,
    AskUpdateMember,
    HashPassword,
    MemoryReport,
    ReadRoomList,
    SaveChat,
    VerifyPassword,
)
from pianorhythm.server.core.crypto import check_password, hash_password, hash_token
from pianorhythm.server.core.models import LOBBY, Session, chat_pb
from pianorhythm.server.core.records import RoomRecord, UserRecord
from pianorhythm.server.directory import Directory
from pianorhythm.server.outbox import Mailer
from pianorhythm.server.ws import WebSocket
from pianorhythm.wire import codec
from pianorhythm.wire import pianorhythm_pb2 as pb

# A node on its own never loads the cluster package (nor redis): the many-nodes methods below import it
# where they run, which is only once a ClusterNode was given.
if TYPE_CHECKING:
    from pianorhythm.server.cluster.envelope import Envelope
    from pianorhythm.server.cluster.node import ClusterNode

log = logging.getLogger("server")

WS_PATH = "/api/websocket"
MAX_QUEUE_BYTES = 1024 * 1024
CATCH_UP_S = 10.0  # many nodes: how long a room's subscription and snapshot may take


class RelayShell:
    def __init__(
        self,
        core: RelayCore,
        directory: Directory,
        clock: ServerClock,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        trusted_proxies: TrustedProxies = (),
        cluster: ClusterNode | None = None,
    ) -> None:
        self.core = core
        # Many nodes: rooms are shared through Redis. Build the node with on_envelope=shell.on_envelope and
        # on_node_dead=shell.on_node_dead, and the core with CoreOptions(node=<the same node id>).
        self.cluster = cluster
        self._held: set[str] = set()  # rooms whose channel this node holds (members here, or joins asked)
        self._asking: Counter[str] = Counter()  # AskJoins not answered yet, by room
        self._catching_up: dict[str, list[tuple[events.RoomEvent, int]]] = {}  # events held till the snapshot
        self._asks: asyncio.Queue[Ask] = asyncio.Queue()  # carried out one by one, in the core's order
        self._cluster_tasks: list[asyncio.Task[None]] = []
        self.directory = directory
        self.clock = clock
        self.trusted_proxies = trusted_proxies
        # Each WebSocket connection's client address, derived once in process_request (where the per-address
        # cap is checked) and taken by the handler, so the cap, the session and the logs agree on it.
        self._addresses: weakref.WeakKeyDictionary[WebSocket, str] = weakref.WeakKeyDictionary()
        self.mailer = Mailer(max_queue_bytes, self._on_slow, core.limits.max_frame_bytes)
        self.connections: dict[int, WebSocket] = {}
        # Where the core's users and rooms are on this node, kept by its Route actions (in their order):
        # user id -> session id, and room -> {user id: session id} in join order.
        self._users: dict[int, int] = {}
        self._members: dict[str, dict[int, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._deadline: int | None = None
        self.codec_config = codec.CodecConfig(max_payload=core.limits.max_frame_bytes)
        # Password hashing is slow on purpose: one worker thread does it (hashlib releases the GIL), so a
        # flood of guesses queues there (bounded by the core) instead of stalling the event loop; and at the
        # lowest CPU priority, so that on a busy machine the loop, which relays everyone's notes, comes first.
        self._passwords = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="passwords", initializer=_lowest_priority
        )

    def start(self) -> None:
        self._perform_nowait(self.core.start(self.clock.now_us()))
        loop = asyncio.get_running_loop()
        self._ticker = loop.create_task(self._tick_loop())
        if self.cluster is not None:
            self._cluster_tasks += [loop.create_task(self._ask_loop()), loop.create_task(self._reap_loop())]

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        cluster_tasks = list(self._cluster_tasks)
        for task in cluster_tasks:
            task.cancel()
        await asyncio.gather(*cluster_tasks, return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._passwords.shutdown(wait=True)

    # -- HTTP ----------------------------------------------------------------------------------------

    def process_request(self, conn: WebSocket, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            response = conn.respond(HTTPStatus.OK, json.dumps(self.health()) + "\n")
            del response.headers["Content-Type"]  # respond() set text/plain; Headers may hold a name twice
            response.headers["Content-Type"] = "application/json"
            return response
        if path != WS_PATH:
            return conn.respond(HTTPStatus.NOT_FOUND, f"Not found: the WebSocket endpoint is {WS_PATH}\n")
        ip = self._client_address(conn, request.headers)
        if self.directory.connections_from(ip) >= self.core.limits.max_connections_per_ip:
            return conn.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too many connections from your address.\n")
        self._addresses[conn] = ip
        return None

    def _client_address(self, conn: WebSocket, headers: Headers) -> str:
        remote = conn.remote_address
        peer = str(remote[0]) if remote else "?"
        found = client_address(peer, headers, self.trusted_proxies)
        if found.problem:
            log.warning("%s; using the proxy's address", found.problem)
        return found.address

    def health(self) -> dict[str, object]:
        """/healthz: uptime and the size of every map that holds sessions, rooms, queues or tasks."""
        now = self.clock.now_us()
        return {
            "status": "ok",
            "event_loop": loop_name(asyncio.get_running_loop()),
            "uptime_s": round((now - self.core.options.started_us) / 1e6, 1),
            "connections": len(self.core.state.sessions),
            **self.core.census(),
            **self.directory.census(),
            "password_jobs": self.core.state.password_jobs,
            "sockets": len(self.connections),
            "routed_users": len(self._users),
            "routed_rooms": len(self._members),
            "outboxes": len(self.mailer.boxes),
            "closing": len(self._closing),
            "tasks": len(self._tasks),
            **self._cluster_health(),
        }

    def _cluster_health(self) -> dict[str, object]:
        if self.cluster is None:
            return {}
        return {"node_id": self.cluster.link.node, "redis": "up" if self.cluster.link.up else "down"}

    # -- connections ---------------------------------------------------------------------------------

    async def handler(self, conn: WebSocket) -> None:
        ip = self._addresses.pop(conn)
        # On many nodes the cap counts every node's connections: checked (and taken) here, where waiting
        # for Redis is fine, after this node's own count let the upgrade through.
        if not await self.directory.admit(ip, self.core.limits.max_connections_per_ip):
            log.info("refused a connection from %s: at the cap on connections per address", ip)
            await conn.close(CLOSE_POLICY, "Too many connections from your address.")
            return
        now = self.clock.now_us()
        session = self.core.open_session(ip, now)
        self.directory.connection_opened(ip)
        sid = session.id
        self.connections[sid] = conn
        self.mailer.add(sid, conn)
        conn.on_message = functools.partial(self._received, sid, session)
        log.info("connect session=%d ip=%s", sid, ip)
        loop = asyncio.get_running_loop()
        hello_deadline = loop.time() + self.core.limits.hello_timeout_s
        reason: pb.LeaveReason.ValueType = pb.LEAVE_REASON_DISCONNECTED
        try:
            while not session.closed:
                if session.user_id:
                    data = await conn.recv()
                else:
                    try:
                        async with asyncio.timeout_at(hello_deadline):
                            data = await conn.recv()
                    except TimeoutError:
                        self._close(sid, 1008, "no hello in time: send Hello first")
                        break
                await self._receive(sid, data, self.clock.now_us())
        except ConnectionClosed:
            pass
        finally:
            closing = self._closing.get(sid)
            if closing is not None:
                await asyncio.shield(closing)
            self.mailer.remove(sid)
            self.connections.pop(sid, None)
            # Only now: a close asked for while the one above was awaited must find it still there.
            self._closing.pop(sid, None)
            self._perform_nowait(self.core.disconnect(sid, reason, self.clock.now_us()))
            self.directory.connection_closed(ip)
            self._spawn(self.directory.release(ip))
            if self.cluster is not None and session.user_id and session.user_id not in self._users:
                self._spawn(self.cluster.release_user(session.user_id))
            self._wake.set()
            log.info("disconnect session=%d user=%d code=%s", sid, session.user_id, conn.close_code)

    async def _receive(self, sid: int, data: str | bytes, now: int) -> None:
        core = self.core
        if isinstance(data, str):
            self._perform_nowait(
                core.bad_frame(sid, pb.ERROR_CODE_EMPTY_FRAME, "text messages are not accepted", now)
            )
            return
        try:
            messages = codec.decode_client(data, self.codec_config)
        except codec.ProtocolError as exc:
            self._perform_nowait(core.bad_frame(sid, exc.code, exc.detail, now))
            return
        for msg in messages:
            which = msg.WhichOneof("action")
            if which == "note_batch" or which == "ping":
                actions = core.handle(sid, msg, now)
            else:
                resumed, new_user_id = None, 0
                if which == "hello" and self._greeting(sid):
                    if msg.hello.resume_token:
                        resumed = await self._resumed(msg.hello.resume_token)
                    if resumed is None:
                        try:
                            new_user_id = await self.directory.new_user_id()
                        except Exception:
                            log.exception("no user id for session %d", sid)
                            self.mailer.send((sid,), _internal_error(msg.ref))
                            continue
                    now = self.clock.now_us()
                elif which == "join_room":
                    await self._preload(msg.join_room.name.strip())
                    now = self.clock.now_us()
                greeting = which == "hello" and self._greeting(sid)
                actions = core.handle(sid, msg, now, resumed, new_user_id)
                if greeting and self.cluster is not None:
                    self._claim_user(sid)
                self._maybe_wake()
            if actions:
                await self._perform(actions)

    def _received(self, sid: int, session: Session, data: bytes) -> bool:
        """A binary message taken in the connection's data_received while the handler waits for one
        (WebSocket.on_message): notes and clock pings, which never wait, are handled here as `_receive`
        would, without waking the handler; anything else, and everything before Hello or after the session
        closed, goes to the handler (decoded again there: rare messages)."""
        if session.closed or not session.user_id:
            return False
        try:
            messages = codec.decode_client(data, self.codec_config)
        except codec.ProtocolError:
            return False
        for msg in messages:
            which = msg.WhichOneof("action")
            if which != "note_batch" and which != "ping":
                return False
        now = self.clock.now_us()
        core = self.core
        for msg in messages:
            actions = core.handle(sid, msg, now)
            if actions:
                self._perform_nowait(actions)
        return True

    def _greeting(self, sid: int) -> bool:
        """Whether a Hello on `sid` would be its first (the core refuses any other, needing no user)."""
        session = self.core.state.sessions.get(sid)
        return session is not None and not session.user_id

    async def _resumed(self, token: str) -> UserRecord | None:
        record = await self.directory.user_by_token(hash_token(token))
        if record is not None:
            room = self.core.resume_room(record, self.clock.now_us())
            if room:
                await self._preload(room)
        return record

    async def _preload(self, name: str) -> None:
        if name and self.core.needs_chat(name):
            records = await self.directory.recent_chat(name, self.core.limits.chat_history)
            self.core.preload_chat(name, records)

    def _on_slow(self, sid: int) -> None:
        self._perform_nowait(self.core.disconnect(sid, pb.LEAVE_REASON_SLOW, self.clock.now_us()))
        self._close(sid, CLOSE_SLOW, "too slow: not reading what the server sends")

    # -- other nodes ---------------------------------------------------------------------------------

    def _claim_user(self, sid: int) -> None:
        session = self.core.state.sessions.get(sid)
        if session is not None and session.user_id and self.cluster is not None:
            self._spawn(self.cluster.claim_user(session.user_id))

    def on_node_message(self, envelope: Envelope) -> None:
        """A message from another node to this one: a user it now has, whose connection here goes."""
        user_id = self.cluster.replaced_user(envelope) if self.cluster is not None else None
        sid = None if user_id is None else self._users.get(user_id)
        if sid is None:
            return
        log.info("user %d connected to node %r: closing their connection here", user_id, envelope.origin)
        self._perform_nowait(self.core.disconnect(sid, pb.LEAVE_REASON_REPLACED, self.clock.now_us()))
        self._close(sid, CLOSE_REPLACED, "replaced by a newer connection of the same user")

    def on_link_lost(self) -> None:
        log.warning("lost the link to Redis: rooms go on here; players on other nodes are out of reach")

    def on_link_back(self, seconds: float) -> None:
        """The rooms followed here missed their events while the link was down: each is read again and
        caught up, and so is the room list (its deltas of that time are lost). Chat sent on other nodes
        meanwhile never reached this node's players: say so."""
        task = asyncio.get_running_loop().create_task(self._catch_up_after_blip())
        self._cluster_tasks.append(task)  # cancelled at stop, like a snapshot
        task.add_done_callback(self._cluster_tasks.remove)
        self._perform_nowait(self.core.reread_room_list(), publish=False)
        notice = pb.ChatMessage(
            content=f"This server lost touch with the other servers for {seconds:.0f} s: chat from players "
            "on them during that time may be missing here.",
            server_time_us=self.clock.now_us(),
            system=True,
        )
        self.mailer.send(
            list(self._users.values()), pb.ServerMessage(chat_message=notice).SerializeToString()
        )

    async def _catch_up_after_blip(self) -> None:
        """Each room this node follows, as Redis has it now: what changed while the link was down becomes
        the events its members here would have heard (who left, who joined, settings, bans, the crown)."""
        from pianorhythm.server.cluster.core_events import missed_events

        assert self.cluster is not None
        here = self.cluster.link.node
        try:
            async with asyncio.timeout(CATCH_UP_S):
                await self.cluster.link.settled()
        except TimeoutError:
            log.warning("the rooms here could not be read again after the Redis link came back")
            return
        caught = 0
        for name in sorted(self._held):
            # Events published since the link came back are applied as they arrive, so the copy may be at
            # a seq past the changes it missed: the catch-up compares states, against a snapshot at least as
            # new as the copy (read again when an event overtook the read).
            for _ in range(3):
                try:
                    snapshot = await self.cluster.rooms.snapshot(name)
                except Exception:
                    log.exception("room %r: could not read it again after the Redis link came back", name)
                    snapshot = None
                    break
                room = self.core.state.rooms.get(name)
                if snapshot is None or room is None or snapshot.seq >= room.seq:
                    break
            if snapshot is None or room is None or snapshot.seq < room.seq:
                continue  # not followed (yet: its own snapshot comes), gone, or never read
            now = self.clock.now_us()
            missed = missed_events(room, snapshot, here, now)
            self._perform_nowait(self.core.caught_up(name, missed, snapshot.seq, now), publish=False)
            caught += len(missed) > 0
            log.info("room %r read again after the Redis link was back: %d change(s)", name, len(missed))
        self._maybe_wake()
        log.warning("read the rooms here again after the Redis link came back: %d had changed", caught)

    def on_reaped(self) -> None:
        """This node was taken for dead and cleaned up: its users are online here again."""
        if self.cluster is not None:
            for user_id in list(self._users):
                self._spawn(self.cluster.claim_user(user_id))

    # -- actions -------------------------------------------------------------------------------------

    async def _perform(self, actions: Sequence[Action], publish: bool = True) -> None:
        """`publish`: broadcasts go to the room's other nodes too (many nodes); not for what the core
        answers a room event with, which every node hears and answers for its own members."""
        for action in actions:
            if self._carry_out(action, publish):
                continue
            if isinstance(action, Persist):
                try:
                    await self.directory.apply(action.store)
                except Exception:
                    log.exception("storage failed")
                    self._to_user(action.user_id, _internal_error(action.ref))
                else:
                    await self._perform(action.then, publish)
            elif isinstance(action, SaveChat):
                await self._save_chat(action)
            elif isinstance(action, FetchHistory):
                await self._history(action)

    async def _save_chat(self, save: SaveChat) -> None:
        """Store chat lines (numbered as they are stored), then send them. On many nodes storing them put
        them on their rooms' channels, and they are sent as they come back there (on_envelope), in the
        channel's order, which is the stream's: a line said here at the same instant as one on another
        node cannot overtake it."""
        try:
            records = await self.directory.save_chat(save)
        except Exception:
            log.exception("chat not stored")
            self._to_user(save.user_id, _internal_error(save.ref))
            return
        if self.cluster is None:
            await self._perform(self.core.chat_stored(records, save.sender, save.ref))

    def _perform_nowait(self, actions: Sequence[Action], publish: bool = True) -> None:
        for index, action in enumerate(actions):
            if not self._carry_out(action, publish):
                self._spawn(self._perform(actions[index:], publish))
                return

    def _carry_out(self, action: Action, publish: bool = True) -> bool:
        """Do `action` now if it needs no waiting; False for one that does (a storage step others wait
        on, a history page)."""
        if isinstance(action, Broadcast):
            members = self._members.get(action.room)
            if members:
                skip = action.except_user
                self.mailer.send([sid for uid, sid in members.items() if uid != skip], action.payload)
            if publish and self.cluster is not None:  # after the local delivery: no wait on the note path
                self.cluster.link.publish(action.room, action.except_user, action.payload, action.chat)
        elif isinstance(action, SendTo):
            users = self._users
            self.mailer.send([users[u] for u in action.users if u in users], action.payload)
        elif isinstance(action, Reply):
            self.mailer.send((action.session_id,), action.payload)
        elif isinstance(action, UserOnline | UserOffline | RoomEntered | RoomLeft):
            self._route(action)
        elif isinstance(action, Ask):
            self._ask(action)
        elif isinstance(action, Close):
            self._close(action.session_id, action.code, action.reason)
        elif isinstance(action, Persist):
            if action.then:
                return False
            self._submit(action)
        elif isinstance(action, SaveChat | FetchHistory):
            return False
        elif isinstance(action, VerifyPassword | HashPassword):
            self._spawn(self._password_job(action))
        elif isinstance(action, MemoryReport):
            self._memory_report(action)
        elif isinstance(action, ReadRoomList):
            self._cluster_task(self._read_room_list())
        else:  # a bare store
            self._submit(Persist(action))
        return True

    def _route(self, action: UserOnline | UserOffline | RoomEntered | RoomLeft) -> None:
        """Keep the maps that turn the core's users and rooms into this node's connections. A route for a
        session that is already gone (it closed while a storage step was awaited) is ignored."""
        if isinstance(action, UserOnline):
            self._users[action.user_id] = action.session_id
        elif isinstance(action, UserOffline):
            if self._users.get(action.user_id) == action.session_id:
                del self._users[action.user_id]
        elif isinstance(action, RoomEntered):
            if self._users.get(action.user_id) == action.session_id:
                self._members.setdefault(action.room, {})[action.user_id] = action.session_id
        else:
            members = self._members.get(action.room)
            if members is not None:
                members.pop(action.user_id, None)
                if not members:
                    del self._members[action.room]
            self._sync_hold(action.room)
            self._sync_hold(LOBBY)  # where the directory moves those it bans, kicks or closes a room on

    # -- many nodes: rooms shared through Redis ------------------------------------------------------

    def on_envelope(self, room: str, envelope: Envelope) -> None:
        """A message on a room's channel (the link's callback): fan-out from another node goes to this
        node's members of the room; a room event goes to the core, in the channel's order."""
        from pianorhythm.server.cluster import rooms as cluster_rooms
        from pianorhythm.server.cluster.core_events import core_event
        from pianorhythm.server.cluster.envelope import CHAT, EVENT, LINE

        if envelope.kind == LINE:
            self._line_heard(room, envelope)
            return
        if envelope.kind == CHAT:
            self._chat_heard(room, envelope)
            return
        if envelope.kind != EVENT:
            self._forward(room, envelope)
            return
        try:
            decoded = cluster_rooms.decode_event(envelope.payload)
        except (cluster_rooms.BadEvent, struct.error, UnicodeDecodeError) as exc:
            origin = envelope.origin
            log.warning("room %r: dropped an unreadable room event from node %s (%s)", room, origin, exc)
            return
        event = core_event(room, decoded)
        buffered = self._catching_up.get(room)
        if buffered is not None:
            buffered.append((event, decoded.seq))
        elif self.core.follows(room):
            self._perform_nowait(self.core.room_event(event, decoded.seq, self.clock.now_us()), publish=False)
            self._maybe_wake()  # an event may start a timer (a departed owner's crown grace)
        elif room in self._held:  # followed again (a join asked after its last member here left)
            self._catch_up(room, [(event, decoded.seq)])

    def _line_heard(self, room: str, envelope: Envelope) -> None:
        """A chat line stored in the room's stream (by this node or another), in the stream's order: the
        core adds it to the room's recent chat and sends it to the members here; its sender, if they said
        it here, has it as their answer."""
        from pianorhythm.server.cluster.chat import BadLine, decode_line

        try:
            record, ref = decode_line(room, envelope.payload)
        except BadLine as exc:
            origin = envelope.origin
            log.warning("room %r: dropped an unreadable chat line from node %s (%s)", room, origin, exc)
            return
        said_here = self.cluster is not None and envelope.origin == self.cluster.link.node
        sender = envelope.except_user if said_here else 0
        self._perform_nowait(self.core.chat_stored((record,), sender, ref), publish=False)

    def _forward(self, room: str, envelope: Envelope) -> None:
        members = self._members.get(room)
        if members:
            skip = envelope.except_user
            self.mailer.send([sid for uid, sid in members.items() if uid != skip], envelope.payload)

    def _chat_heard(self, room: str, envelope: Envelope) -> None:
        """Another node cleared the room's chat (an admin's clear_chat): the core's copy clears and its
        members here are sent the room's state as this node has it (the other node may have no copy)."""
        try:
            message = pb.ServerMessage.FromString(envelope.payload)
        except DecodeError as exc:
            origin = envelope.origin
            log.warning("room %r: dropped an unreadable chat change from node %s (%s)", room, origin, exc)
            return
        if message.HasField("room_state"):
            self._perform_nowait(self.core.chat_cleared(room, self.clock.now_us()), publish=False)
        else:
            origin = envelope.origin
            log.warning("room %r: dropped a chat change from node %s: not a room state", room, origin)

    def on_room_list(self, envelope: Envelope) -> None:
        """A room list delta on `pr:rooms` (the link's callback): the core's list, and its subscribers here,
        follow it in its order."""
        from pianorhythm.server.cluster import rooms as cluster_rooms

        try:
            delta = cluster_rooms.decode_list_delta(envelope.payload)
        except cluster_rooms.BadEvent as exc:
            log.warning("dropped an unreadable room list delta from node %s (%s)", envelope.origin, exc)
            return
        now = self.clock.now_us()
        actions = self.core.room_list_delta(delta.seq, delta.upserted, delta.removed, now)
        self._perform_nowait(actions, publish=False)

    async def _read_room_list(self) -> None:
        """The directory's whole room list, read once the subscription to its deltas is in place (so none
        falls between); retried while Redis cannot answer."""
        from pianorhythm.server.cluster.link import stop_if_cancelled

        assert self.cluster is not None
        wait_s, failed = 0.5, 0
        while True:
            try:
                async with asyncio.timeout(CATCH_UP_S):
                    await self.cluster.link.settled()
                    seq, rooms = await self.cluster.rooms.room_list()
            except Exception as exc:
                stop_if_cancelled()
                if not failed:  # once: the link says when Redis is back, and so does the line below
                    log.warning("could not read the room list (%s); trying again until it can be", exc)
                failed += 1
                await asyncio.sleep(wait_s)
                wait_s = min(wait_s * 2, CATCH_UP_S)
                continue
            if failed:
                log.warning("room list read after %d failed attempt(s)", failed)
            self._perform_nowait(self.core.room_list(seq, rooms, self.clock.now_us()), publish=False)
            return

    def on_node_dead(self, node: str, users: frozenset[int]) -> None:
        """Presence saw `node` die: its members leave their rooms (the Left events reach every node)."""
        log.warning("node %s is gone: its %d user(s) leave their rooms", node, len(users))
        self._spawn(self._remove_node(node))
        if self.cluster is not None:  # and its connections count against no address
            self._spawn(self.cluster.forget_node(node))

    async def _remove_node(self, node: str) -> None:
        assert self.cluster is not None
        try:
            await self.cluster.rooms.remove_node(node, self.clock.now_us())
        except Exception:
            log.exception("could not remove dead node %s's members; the next beat retries", node)

    async def _reap_loop(self) -> None:
        """Each beat: members of nodes that died with no survivor to reap them leave (cheap when none)."""
        from pianorhythm.server.cluster.link import stop_if_cancelled

        assert self.cluster is not None
        while True:
            await asyncio.sleep(self.cluster.presence.refresh_s)
            try:
                await self.cluster.rooms.remove_dead_nodes(self.clock.now_us())
            except Exception as exc:
                log.warning("could not check for dead nodes' members (%s); retrying next beat", exc)
            stop_if_cancelled()

    def _ask(self, ask: Ask) -> None:
        if isinstance(ask, AskJoin):
            self._asking[ask.room] += 1
        self._asks.put_nowait(ask)
        self._sync_hold(ask.room)

    async def _ask_loop(self) -> None:
        """The core's room changes, asked of Redis one at a time in its order (a leave, then a join)."""
        from pianorhythm.server.cluster.link import LINK_ERRORS, stop_if_cancelled

        while True:
            ask = await self._asks.get()
            try:
                try:
                    await self._asked(ask)
                except LINK_ERRORS as exc:
                    # After a Redis restart a pooled connection fails its first command, which never ran:
                    # once more, on a fresh connection; not at stop, where the pool is being closed.
                    stop_if_cancelled()
                    log.warning("room %r: asking the directory again (%s)", ask.room, exc)
                    await self._asked(ask)
            except Exception:
                log.exception("room %r: asking the directory for %s failed", ask.room, type(ask).__name__)
                self._refused(ask, "error")
            finally:
                if isinstance(ask, AskJoin):
                    self._asking[ask.room] -= 1
                    if not self._asking[ask.room]:
                        del self._asking[ask.room]
                self._sync_hold(ask.room)
            stop_if_cancelled()

    async def _asked(self, ask: Ask) -> None:
        from pianorhythm.server.cluster import rooms as cluster_rooms

        assert self.cluster is not None
        rooms = self.cluster.rooms
        now = self.clock.now_us()
        if isinstance(ask, AskJoin):
            s = ask.settings
            settings = None
            if s is not None:
                settings = cluster_rooms.SettingsChange(
                    s.visible, s.password_hash, s.user_limit, s.chat_enabled, s.owner_only_play
                )
            outcome = await rooms.join(
                ask.room, ask.user_id, name=ask.name, address=ask.address, now_us=now, profile=ask.profile,
                resuming=ask.resuming, verified_hash=ask.verified, settings=settings,
            )  # fmt: skip
            if isinstance(outcome, cluster_rooms.Refused) and outcome.reason == cluster_rooms.LOCKED:
                verified = await self._verified(ask)
                if verified:
                    outcome = await rooms.join(
                        ask.room, ask.user_id, name=ask.name, address=ask.address, now_us=self.clock.now_us(),
                        profile=ask.profile, resuming=ask.resuming, verified_hash=verified,
                    )  # fmt: skip
            if isinstance(outcome, cluster_rooms.Refused):
                self._refused(ask, outcome.reason)
        elif isinstance(ask, AskLeave):
            await rooms.leave(ask.room, ask.user_id, ask.reason, now)
        elif isinstance(ask, AskCrownDue):
            await rooms.crown_due(ask.room, now)
        elif isinstance(ask, AskPasswordHashed):
            await rooms.password_hashed(ask.room, ask.pending, ask.password_hash, now)
        elif isinstance(ask, AskUpdateMember):
            await rooms.update_member(ask.room, ask.user_id, ask.name, ask.profile, now)
        elif isinstance(ask, AskClose):
            closed = await rooms.close_room(ask.room, now, ask.by_user)
            count = None
            if isinstance(closed, cluster_rooms.Changed):
                count = sum(
                    1 for room, e in closed.events if room == ask.room and isinstance(e, cluster_rooms.Left)
                )
            self._perform_nowait(self.core.room_closed(ask.by_user, ask.ref, ask.room, count, now), False)
        else:
            if isinstance(ask, AskCrown) and ask.to_user:
                outcome = await rooms.give_crown(ask.room, ask.by_user, ask.to_user, now)
            elif isinstance(ask, AskCrown):
                outcome = await rooms.claim_crown(ask.room, ask.by_user, now)
            elif isinstance(ask, AskBan):
                outcome = await rooms.ban(ask.room, ask.by_user, ask.ban, now)
            elif isinstance(ask, AskSettings):
                change = cluster_rooms.SettingsChange(
                    ask.visible, ask.password_hash, ask.user_limit, ask.chat_enabled, ask.owner_only_play
                )
                outcome = await rooms.change_settings(ask.room, ask.by_user, ask.version, change, now)
            elif isinstance(ask, AskMute):
                outcome = await rooms.mute(ask.room, ask.by_user, ask.user_id, ask.until_us, now)
            else:
                outcome = await rooms.unban(ask.room, ask.by_user, ask.user_ids, now)
            if isinstance(outcome, cluster_rooms.Refused):
                self._refused(ask, outcome.reason)

    async def _verified(self, ask: AskJoin) -> str:
        """The locked room's stored hash if the join's password matches it (checked off the loop), else ""."""
        assert self.cluster is not None
        if not ask.password:
            return ""
        snapshot = await self.cluster.rooms.snapshot(ask.room)
        stored = snapshot.record.password_hash if snapshot is not None else ""
        if not stored:
            return ""
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._passwords, check_password, ask.password, stored)
        return stored if ok else ""

    def _refused(self, ask: Ask, reason: str) -> None:
        now = self.clock.now_us()
        if isinstance(ask, AskJoin):
            actions = self.core.join_refused(ask.user_id, ask.room, reason, now)
        elif isinstance(ask, AskCrown | AskBan | AskUnban | AskSettings | AskMute | AskClose):
            actions = self.core.refused(ask.by_user, ask.ref, reason, now)
        elif isinstance(ask, AskUpdateMember):
            actions = self.core.member_unshared(ask.user_id, ask.room, now)
        else:
            return
        self._perform_nowait(actions, publish=False)

    def _sync_hold(self, room: str) -> None:
        """Hold the room's channel while this node has members there or asked to join it."""
        if self.cluster is None:
            return
        wanted = room in self._asking or self.core.needs(room)
        if wanted and room not in self._held:
            self._held.add(room)
            self.cluster.link.join(room)
            self._catch_up(room, [])
        elif not wanted and room in self._held:
            self._held.discard(room)
            self._catching_up.pop(room, None)
            self.cluster.link.leave(room)
            self._perform_nowait(self.core.drop_room(room), publish=False)

    def _catch_up(self, room: str, buffered: list[tuple[events.RoomEvent, int]]) -> None:
        self._catching_up[room] = buffered
        self._cluster_task(self._snapshot(room, buffered))

    def _cluster_task(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._cluster_tasks.append(task)  # cancelled at stop: a link that is down never settles
        task.add_done_callback(self._cluster_tasks.remove)

    async def _snapshot(self, room: str, buffered: list[tuple[events.RoomEvent, int]]) -> None:
        """Subscribed first, then the room as Redis has it, then the events numbered after it."""
        from pianorhythm.server.cluster.core_events import core_crown

        assert self.cluster is not None
        try:
            # Bounded: given up, the room is read again when its next event finds no copy here.
            async with asyncio.timeout(CATCH_UP_S):
                await self.cluster.link.settled()
                snapshot = await self.cluster.rooms.snapshot(room)
                # After the snapshot: a line stored later is fanned out after it, and taken once (by id).
                history = await self.cluster.chat.recent(room, self.core.limits.chat_history)
        except Exception:
            log.exception("room %r: could not read it from the directory", room)
            if self._catching_up.get(room) is buffered:
                del self._catching_up[room]
            return
        if self._catching_up.get(room) is not buffered:  # let go meanwhile
            return
        del self._catching_up[room]
        now = self.clock.now_us()
        members: tuple[events.Member, ...] = ()
        mutes: tuple[tuple[int, int], ...] = ()
        if snapshot is None:
            record, seq, crown, version = RoomRecord(room), 0, (0, 0, 0), 0
        else:
            record, seq, crown = snapshot.record, snapshot.seq, core_crown(snapshot.crown)
            version, mutes = snapshot.version, snapshot.mutes
            members = tuple(
                events.Member(m.user_id, m.node, m.joined_us, m.name, m.profile) for m in snapshot.members
            )
        actions = self.core.install_room(record, seq, crown, members, now, version, mutes, history)
        self._perform_nowait(actions, publish=False)
        for event, number in buffered:
            self._perform_nowait(self.core.room_event(event, number, now), publish=False)
        self._maybe_wake()

    async def _password_job(self, job: VerifyPassword | HashPassword) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(job, VerifyPassword):
            ok = await loop.run_in_executor(self._passwords, check_password, job.password, job.stored)
            self._perform_nowait(self.core.password_checked(job, ok, self.clock.now_us()))
            return
        hashed: str | None = None
        try:
            hashed = await loop.run_in_executor(self._passwords, hash_password, job.password, job.salt)
        except (ValueError, MemoryError):
            log.exception("hashing the new password of room %r failed; the room stays locked", job.room)
        self._perform_nowait(self.core.password_hashed(job, hashed, self.clock.now_us()))

    def _submit(self, action: Persist) -> None:
        self._spawn(self._store(action))

    async def _store(self, action: Persist) -> None:
        try:
            await self.directory.apply(action.store)
        except Exception:
            log.exception("storage failed")

    async def _history(self, action: FetchHistory) -> None:
        try:
            records, more = await self.directory.history(
                action.room, action.before_id, action.after_id, action.limit
            )
        except Exception:
            log.exception("history query failed")
            self._to_user(action.user_id, _internal_error(action.ref))
            return
        lines = [chat_pb(r) for r in records]
        page = paging.history_page(
            lines, more, bool(action.after_id), action.ref, self.core.limits.page_bytes
        )
        self._to_user(action.user_id, page.SerializeToString())

    def _memory_report(self, action: MemoryReport) -> None:
        collected = gc.collect()
        report = json.dumps({"rss_kib": _rss_kib(), "collected": collected}, sort_keys=True)
        result = pb.ServerMessage(ref=action.ref, command_result=pb.CommandResult(ok=True, output=report))
        self._to_user(action.user_id, result.SerializeToString())

    def _to_user(self, user_id: int, payload: bytes) -> None:
        """An answer to a user's request, if they are still connected here."""
        sid = self._users.get(user_id)
        if sid is not None:
            self.mailer.send((sid,), payload)

    def _close(self, sid: int, code: int, reason: str) -> None:
        session = self.core.state.sessions.get(sid)
        if session is not None:
            session.closed = True
        conn = self.connections.get(sid)
        if conn is not None and sid not in self._closing:
            task = asyncio.get_running_loop().create_task(self._close_conn(conn, code, reason))
            self._closing[sid] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _close_conn(self, conn: WebSocket, code: int, reason: str) -> None:
        await asyncio.sleep(0)  # let this turn's queued messages go out first
        await conn.close(code, reason)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- timers --------------------------------------------------------------------------------------

    def _maybe_wake(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is not None and (self._deadline is None or deadline < self._deadline):
            self._wake.set()

    async def _tick_loop(self) -> None:
        while True:
            deadline = self._deadline = self.core.next_deadline()
            timeout = None if deadline is None else max(0.0, (deadline - self.clock.now_us()) / 1e6)
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._perform_nowait(self.core.tick(self.clock.now_us()))


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """The package whose event loop this is, "uvloop" or "asyncio" (logged at start, and in /healthz)."""
    return type(loop).__module__.split(".", 1)[0]


def _internal_error(ref: int) -> bytes:
    error = pb.Error(code=pb.ERROR_CODE_INTERNAL, message="The server could not save that; try again.")
    return pb.ServerMessage(ref=ref, error=error).SerializeToString()


def _lowest_priority() -> None:
    """Give the calling thread the lowest scheduling priority (Linux: nice is per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError as exc:
        log.warning("cannot lower the password thread's priority (%s); hashing competes with the relay", exc)


def _rss_kib() -> int | None:
    """Resident memory of this process from /proc (Linux); None where there is no /proc."""
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except OSError:
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024
