#!/usr/bin/env python3
"""Reference client of DataMiddleware's binary TCP protocol (docs/protocol.md).

Standard library only (socket, struct, zlib, json, gzip), Python 3.8 or newer.
Copy this file into a game server, or run it:

  python3 dm_client.py --host 127.0.0.1 --port 9090 --server-key KEY
      a short demo: register a player, credit its wallet, read it back
  python3 dm_client.py golden tests/data/golden-frames.hex
      decode every frame of the file and encode it again byte for byte
  python3 dm_client.py --host ... --port ... --server-key KEY repl
      one JSON request a line on stdin, one JSON result a line on stdout:
      {"call": [4099, {"action": "get", "player_id": 1}]}
      {"pipeline": [[4099, {...}], [8194, null]]}

What the client does (the same rules as the Rust client, clients/rust):
- every request carries NeedResponse and a sequence id of its own (never 0);
  replies come back in request order, so a batch is written at once and the
  replies are read back in order, each matched by its sequence id;
- an Error frame with sequence 0 speaks for the whole connection (0xE006
  "server shutting down" / "server busy", 0xE007 timeouts) just before the
  server closes it: requests not answered before it were not carried out, so
  they are sent again on a new connection, after a new handshake;
- a connection that closes without that notice may have carried out the
  request in flight: only requests safe to repeat are sent again, the others
  fail with OutcomeUnknown;
- a Heartbeat goes out in front of a batch once the interval the handshake
  announced has passed (other traffic does not keep a connection alive).
"""

import argparse
import gzip
import json
import os
import socket
import struct
import sys
import time
import zlib

HEADER = struct.Struct(">BHBIqIIHH")  # 28 bytes, big-endian
VERSION = 1
MAX_ID_LEN = 64
DEFAULT_MAX_BODY = 64 * 1024

# Message types.
HEARTBEAT = 0x0001
HANDSHAKE = 0x0002
PLAYER_LOGIN = 0x1001
PLAYER_LOGOUT = 0x1002
PLAYER_DATA = 0x1003
ITEM_OPERATION = 0x1004
ORDER_OPERATION = 0x1005
ERROR = 0x2001
PING = 0x2002
PONG = 0x2003

NAMES = {HEARTBEAT: "Heartbeat", HANDSHAKE: "Handshake", PLAYER_LOGIN: "PlayerLogin",
         PLAYER_LOGOUT: "PlayerLogout", PLAYER_DATA: "PlayerData",
         ITEM_OPERATION: "ItemOperation", ORDER_OPERATION: "OrderOperation",
         ERROR: "Error", PING: "Ping", PONG: "Pong"}

# Flags.
COMPRESSED = 0x01
ENCRYPTED = 0x02
NEED_RESPONSE = 0x04
ASYNC = 0x08

# Protocol error codes (Error frame "code").
E_UNSUPPORTED_VERSION = 0xE001
E_MALFORMED = 0xE002
E_AUTH = 0xE003
E_FORBIDDEN = 0xE004
E_NOT_FOUND = 0xE005
E_INTERNAL = 0xE006
E_TIMEOUT = 0xE007
E_TOO_LARGE = 0xE008


class Frame:
    """One frame: the header fields, both ids (str) and the body (bytes)."""

    __slots__ = ("version", "msg_type", "flags", "sequence", "timestamp",
                 "game_id", "user_id", "body")

    def __init__(self, msg_type, flags, sequence, timestamp, game_id, user_id,
                 body, version=VERSION):
        self.version = version
        self.msg_type = msg_type
        self.flags = flags
        self.sequence = sequence
        self.timestamp = timestamp
        self.game_id = game_id
        self.user_id = user_id
        self.body = body


class FrameError(Exception):
    """Bytes that are not an acceptable frame."""


def checksum(frame_bytes):
    """CRC32 (IEEE, zlib's) of a frame's bytes 0..20 and 24..end."""
    return zlib.crc32(frame_bytes[:20] + frame_bytes[24:]) & 0xFFFFFFFF


def encode(frame):
    """The bytes of `frame`, with its checksum."""
    game = frame.game_id.encode("utf-8")
    user = frame.user_id.encode("utf-8")
    if len(game) > MAX_ID_LEN or len(user) > MAX_ID_LEN:
        raise FrameError("id longer than %d bytes" % MAX_ID_LEN)
    head = HEADER.pack(frame.version, frame.msg_type, frame.flags, frame.sequence,
                       frame.timestamp, len(frame.body), 0, len(game), len(user))
    data = bytearray(head + game + user + frame.body)
    data[20:24] = struct.pack(">I", checksum(bytes(data)))
    return bytes(data)


def decode(buf, max_body):
    """(frame, length) for the frame at the start of `buf`, or None while it
    is incomplete; FrameError when it is not acceptable."""
    if len(buf) < HEADER.size:
        return None
    (version, msg_type, flags, sequence, timestamp, body_len, crc, game_len,
     user_len) = HEADER.unpack_from(buf, 0)
    if body_len > max_body or game_len > MAX_ID_LEN or user_len > MAX_ID_LEN:
        raise FrameError("frame too large")
    length = HEADER.size + game_len + user_len + body_len
    if len(buf) < length:
        return None
    data = bytes(buf[:length])
    if checksum(data) != crc:
        raise FrameError("checksum mismatch")
    if version != VERSION:
        raise FrameError("unsupported protocol version %d" % version)
    at = HEADER.size
    try:
        game = data[at:at + game_len].decode("utf-8")
        user = data[at + game_len:at + game_len + user_len].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("id is not UTF-8")
    body = data[at + game_len + user_len:]
    return Frame(msg_type, flags, sequence, timestamp, game, user, body, version), length


class ServerError(Exception):
    """The server refused a request with an Error frame."""

    def __init__(self, code, message, retry_after_s=None):
        Exception.__init__(self, "%d (0x%X): %s" % (code, code, message))
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    @staticmethod
    def from_body(body):
        try:
            v = json.loads(body.decode("utf-8"))
        except ValueError:
            v = {}
        if not isinstance(v, dict):
            v = {}
        code = v.get("code")
        return ServerError(code if isinstance(code, int) else E_INTERNAL,
                           str(v.get("message", "unreadable error body")),
                           v.get("retry_after_s"))

    def to_json(self):
        out = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            out["retry_after_s"] = self.retry_after_s
        return out


class HandshakeRefused(ServerError):
    """The handshake was refused: the same credentials will not do better."""


class Unreachable(Exception):
    """No connection could be opened and authenticated in time."""


class OutcomeUnknown(Exception):
    """Sent, then the connection closed before the reply, and not safe to
    send again: it may or may not have been carried out."""


class ProtocolError(Exception):
    """The server sent something this client does not understand."""


def safe_to_resend(msg_type, body):
    """Whether a request may be sent again after its connection closed with
    it in flight (doing it twice does what doing it once does)."""
    action = body.get("action", "") if isinstance(body, dict) else ""
    if msg_type in (HEARTBEAT, PING, HANDSHAKE, PLAYER_LOGOUT):
        return True
    if msg_type == PLAYER_DATA:
        return action in ("get", "ledger")
    if msg_type == ITEM_OPERATION:
        return action == "list"
    if msg_type == ORDER_OPERATION:
        if action in ("get", "list", "pay", "cancel"):
            return True
        return action == "create" and body.get("idempotency_key") is not None
    return False


class _NotCarriedOut(Exception):
    pass


class _Lost(Exception):
    pass


class Client:
    """A blocking client of one server: one connection at a time, opened and
    authenticated again whenever it is lost.

    Exactly one of server_key, token, dev_user says who the connection is:
    the game's server key (role game_server), a player's access token (that
    player only), or, on a server in auth.mode = "dev" only, a trusted header
    user id."""

    def __init__(self, host, port, game_id, server_key=None, token=None,
                 dev_user=None, user_id="game-server", connect_timeout=5.0,
                 reply_timeout=30.0, reconnect_for=30.0, compress_above=8192,
                 max_body=DEFAULT_MAX_BODY, max_reply=16 * 1024 * 1024):
        if sum(x is not None for x in (server_key, token, dev_user)) != 1:
            raise ValueError("give exactly one of server_key, token, dev_user")
        self.host, self.port, self.game_id = host, port, game_id
        self.server_key, self.token, self.dev_user = server_key, token, dev_user
        self.user_id = user_id
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.reconnect_for = reconnect_for
        self.compress_above = compress_above
        self.max_body = max_body
        self.max_reply = max_reply
        self.sock = None
        self.buf = bytearray()
        self.next_sequence = 1
        self.handshake_info = None
        self.last_keepalive = time.monotonic()
        self.connections = 0
        self.last_notice = None

    # -- public calls ------------------------------------------------------

    @property
    def reconnects(self):
        """Connections opened after the first."""
        return max(0, self.connections - 1)

    def connect(self):
        """Connects and handshakes; returns the handshake's data."""
        self._ensure_connected(time.monotonic() + self.reconnect_for)
        return self.handshake_info

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = bytearray()

    def call(self, msg_type, body=None):
        """One request; returns the reply's data (None for Heartbeat and
        Ping) or raises ServerError, OutcomeUnknown, Unreachable, ..."""
        result = self.pipeline([(msg_type, body)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def pipeline(self, requests):
        """Sends every (msg_type, body) in one write and reads the replies
        in order; returns one result a request: the data, or the exception
        that says why there is none."""
        results = [None] * len(requests)
        done = [False] * len(requests)
        bodies = []
        for i, (_, body) in enumerate(requests):
            try:
                bodies.append(self._body(body))
            except Exception as e:  # noqa: BLE001 - reported per request
                bodies.append((b"", 0))
                results[i], done[i] = e, True
        deadline = time.monotonic() + self.reconnect_for
        rounds = 0
        while True:
            pending = [i for i in range(len(requests)) if not done[i]]
            if not pending:
                return results
            if rounds and time.monotonic() >= deadline:
                for i in pending:
                    results[i], done[i] = Unreachable("the connection kept closing"), True
                return results
            rounds += 1
            try:
                self._ensure_connected(deadline)
            except (Unreachable, HandshakeRefused) as e:
                for i in pending:
                    results[i], done[i] = e, True
                return results
            try:
                self._round(requests, bodies, pending, results, done)
            except _NotCarriedOut:
                self.close()
            except _Lost:
                self.close()
                for i in pending:
                    if not done[i] and not safe_to_resend(*requests[i]):
                        results[i], done[i] = OutcomeUnknown(), True
            except (ProtocolError, socket.timeout) as e:
                self.close()
                if isinstance(e, socket.timeout):
                    e = ProtocolError("no reply in time; outcome unknown")
                for i in pending:
                    if not done[i]:
                        results[i], done[i] = e, True

    def ping(self):
        """Round-trip time of a Ping, in seconds."""
        started = time.monotonic()
        self.call(PING)
        return time.monotonic() - started

    def heartbeat(self):
        """Call every heartbeat_interval_s on a connection that may sit idle."""
        self.call(HEARTBEAT)

    def login(self, username, password):
        return self.call(PLAYER_LOGIN, {"username": username, "password": password})

    def create_player(self, username, password):
        return self.call(PLAYER_DATA, {"action": "create", "username": username,
                                       "password": password})["player"]

    def get_player(self, player_id):
        return self.call(PLAYER_DATA, {"action": "get", "player_id": player_id})["player"]

    def change_wallet(self, player_id, currency, delta, reason):
        return self.call(PLAYER_DATA, {"action": "wallet", "player_id": player_id,
                                       "currency": currency, "delta": delta,
                                       "reason": reason})

    # -- internals ---------------------------------------------------------

    def _sequence(self):
        s = self.next_sequence
        self.next_sequence = s + 1 if s < 0xFFFFFFFF else 1  # 0 is the server's
        return s

    def _frame(self, msg_type, flags, user_id, body):
        return Frame(msg_type, flags, self._sequence(), int(time.time()),
                     self.game_id, user_id, body)

    def _body(self, body):
        if body is None:
            return b"", NEED_RESPONSE
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if len(data) > self.max_body:
            raise ValueError("body of %d bytes exceeds %d" % (len(data), self.max_body))
        if self.compress_above is not None and len(data) > self.compress_above:
            return gzip.compress(data), NEED_RESPONSE | COMPRESSED
        return data, NEED_RESPONSE

    def _round(self, requests, bodies, pending, results, done):
        out = bytearray()
        expected = []  # (sequence, request index or None for our Heartbeat)
        interval = max(1, (self.handshake_info or {}).get("heartbeat_interval_s", 30))
        if time.monotonic() - self.last_keepalive >= interval:
            f = self._frame(HEARTBEAT, NEED_RESPONSE, "", b"")
            out += encode(f)
            expected.append((f.sequence, None))
        for i in pending:
            body, flags = bodies[i]
            f = self._frame(requests[i][0], flags, "", body)
            try:
                out += encode(f)
            except FrameError as e:
                results[i], done[i] = e, True
                continue
            expected.append((f.sequence, i))
        try:
            self.sock.sendall(bytes(out))
        except OSError:
            raise _Lost()
        for sequence, index in expected:
            reply = self._read_frame()
            if reply.sequence == 0 and reply.msg_type == ERROR:
                self.last_notice = ServerError.from_body(reply.body)
                raise _NotCarriedOut()
            if reply.sequence != sequence:
                raise ProtocolError("reply with sequence %d where %d was due"
                                    % (reply.sequence, sequence))
            if reply.msg_type in (HEARTBEAT, PONG):
                self.last_keepalive = time.monotonic()
            if index is not None:
                try:
                    results[index] = _outcome(requests[index][0], reply, self.max_reply)
                except (ServerError, ProtocolError) as e:
                    results[index] = e
                done[index] = True

    def _read_frame(self):
        """One whole frame; _Lost when the connection closes first."""
        while True:
            try:
                got = decode(self.buf, self.max_reply)
            except FrameError as e:
                raise ProtocolError("bad frame from the server: %s" % e)
            if got is not None:
                frame, length = got
                del self.buf[:length]
                return frame
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise
            except OSError:
                raise _Lost()
            if not chunk:
                raise _Lost()
            self.buf += chunk

    def _still_open(self):
        """True when the server has not closed the idle connection. It sends
        nothing unasked except a notice before closing, so any waiting byte
        means the connection is ending (the notice is kept)."""
        open_ = True
        try:
            self.sock.setblocking(False)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    open_ = False
                    break
                self.buf += chunk
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            open_ = False
        finally:
            try:
                self.sock.settimeout(self.reply_timeout)
            except OSError:
                open_ = False
        if open_ and not self.buf:
            return True
        try:
            got = decode(self.buf, DEFAULT_MAX_BODY)
        except FrameError:
            got = None
        if got is not None and got[0].msg_type == ERROR:
            self.last_notice = ServerError.from_body(got[0].body)
        return False

    def _ensure_connected(self, deadline):
        if self.sock is not None:
            if self._still_open():
                return
            self.close()
        backoff = 0.05
        while True:
            try:
                self._open()
                return
            except HandshakeRefused:
                self.close()
                raise
            except (OSError, _Lost, ProtocolError) as e:
                self.close()
                why = str(e) or type(e).__name__
                if time.monotonic() + backoff > deadline:
                    raise Unreachable("%s:%d: %s" % (self.host, self.port, why))
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _open(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.reply_timeout)
        self.sock, self.buf = sock, bytearray()
        if self.server_key is not None:
            body, user = {"server_key": self.server_key}, self.user_id
        elif self.token is not None:
            body, user = {"token": self.token}, ""
        else:
            body, user = None, self.dev_user
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        hello = self._frame(HANDSHAKE, NEED_RESPONSE, user, data)
        sock.sendall(encode(hello))
        reply = self._read_frame()
        if reply.msg_type == ERROR:
            e = ServerError.from_body(reply.body)
            if reply.sequence == 0:  # server busy / shutting down: try again
                self.last_notice = e
                raise ProtocolError("%s (0x%X)" % (e.message, e.code))
            raise HandshakeRefused(e.code, e.message, e.retry_after_s)
        self.handshake_info = _outcome(HANDSHAKE, reply, self.max_reply)
        self.last_keepalive = time.monotonic()
        self.connections += 1


def _outcome(msg_type, reply, max_reply):
    """The data of a reply to a request of msg_type, or the ServerError."""
    body = reply.body
    if reply.flags & COMPRESSED:
        body = gzip.decompress(body)[:max_reply]
    if reply.msg_type == ERROR:
        raise ServerError.from_body(body)
    due = PONG if msg_type == PING else msg_type
    if reply.msg_type != due:
        raise ProtocolError("reply of type 0x%04x to a request of type 0x%04x"
                            % (reply.msg_type, msg_type))
    if not body:
        return None
    try:
        envelope = json.loads(body.decode("utf-8"))
    except ValueError as e:
        raise ProtocolError("reply body is not JSON: %s" % e)
    if not isinstance(envelope, dict):
        raise ProtocolError("reply body is not an envelope")
    return envelope.get("data")


# -- command line ------------------------------------------------------------

def read_hex_frames(path):
    """The frames of a golden file: hex, one frame a line, '#' comments."""
    frames = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                frames.append(bytes.fromhex(line))
    return frames


def golden(path):
    """Decodes every frame of `path` and encodes it again; exit 1 on any
    difference."""
    frames = read_hex_frames(path)
    ok = 0
    for n, data in enumerate(frames, 1):
        frame, length = decode(data, DEFAULT_MAX_BODY)
        again = encode(frame)
        same = length == len(data) and again == data
        ok += same
        print("frame %d: %s 0x%04x flags=0x%02x seq=%d ts=%d game=%s user=%s "
              "body=%s crc=%08x %s" % (
                  n, NAMES.get(frame.msg_type, "?"), frame.msg_type, frame.flags,
                  frame.sequence, frame.timestamp, frame.game_id, frame.user_id,
                  frame.body.decode("utf-8"), checksum(data),
                  "re-encoded byte for byte" if same else "DIFFERS"))
    print("golden: %d of %d frames re-encoded byte for byte" % (ok, len(frames)))
    return 0 if frames and ok == len(frames) else 1


def demo(client, username):
    hs = client.connect()
    print("handshake: role=%s game=%s user=%s heartbeat_interval_s=%d" % (
        hs["role"], hs["game_id"], hs["user_id"], hs["heartbeat_interval_s"]))
    player = client.create_player(username, "demo-password-1")
    print("created: id=%d username=%s gold=%d diamonds=%d" % (
        player["id"], player["username"], player["gold"], player["diamonds"]))
    wallet = client.change_wallet(player["id"], "gold", 250, "demo credit")
    print("wallet: gold=%d diamonds=%d" % (wallet["gold"], wallet["diamonds"]))
    again = client.get_player(player["id"])
    print("read back: id=%d gold=%d version=%d" % (again["id"], again["gold"], again["version"]))
    results = client.pipeline([(PLAYER_DATA, {"action": "get", "player_id": player["id"]})
                               for _ in range(10)] + [(PING, None)])
    gets = [r for r in results[:10] if isinstance(r, dict)]
    in_order = all(r["player"]["id"] == player["id"] for r in gets)
    print("pipelined: %d gets and a ping, %d answered%s" % (
        len(results) - 1, len(gets) + (results[10] is None), ", in order" if in_order else ""))
    try:
        client.change_wallet(player["id"], "diamonds", -1000000, "too much")
    except ServerError as e:
        print("refused: code=%d message=%s" % (e.code, e.message))
    return 0


def result_json(r):
    if isinstance(r, ServerError):
        return {"error": r.to_json()}
    if isinstance(r, Exception):
        return {"failure": type(r).__name__, "detail": str(r)}
    return {"ok": r}


def repl(client):
    """One JSON request a line in, one JSON result a line out."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if "call" in req:
            msg_type, body = req["call"]
            out = result_json(client.pipeline([(msg_type, body)])[0])
        elif "pipeline" in req:
            out = {"results": [result_json(r) for r in
                               client.pipeline([tuple(x) for x in req["pipeline"]])]}
        else:
            out = {"failure": "ValueError", "detail": "give call or pipeline"}
        out["reconnects"] = client.reconnects
        if client.last_notice is not None:
            out["last_notice"] = client.last_notice.to_json()
        print(json.dumps(out), flush=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--game", default="game1", help="game id (default game1)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--server-key", help="the game's server key (role game_server)")
    who.add_argument("--token", help="a player's access token")
    who.add_argument("--dev-user", help='header user id, auth.mode = "dev" servers only')
    p.add_argument("--username", help="demo: the player to register (default: a new name)")
    p.add_argument("--reconnect-for", type=float, default=30.0,
                   help="seconds to keep trying to reconnect (default 30)")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("demo", help="register, credit and read back a player (default)")
    g = sub.add_parser("golden", help="decode and re-encode a golden-frames hex file")
    g.add_argument("file")
    sub.add_parser("repl", help="JSON requests on stdin, JSON results on stdout")
    args = p.parse_args(argv)
    if args.command == "golden":
        return golden(args.file)
    if not (args.server_key or args.token or args.dev_user):
        p.error("give --server-key, --token or --dev-user")
    client = Client(args.host, args.port, args.game, server_key=args.server_key,
                    token=args.token, dev_user=args.dev_user,
                    reconnect_for=args.reconnect_for)
    try:
        if args.command == "repl":
            return repl(client)
        username = args.username or "demo_%s" % os.urandom(4).hex()
        return demo(client, username)
    except (ServerError, Unreachable, OutcomeUnknown, ProtocolError) as e:
        print("error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
