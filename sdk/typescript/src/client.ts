// The WebSocket session of docs/protocol.md, mirroring the Go reference client
// (client/): identify, heartbeats, reconnect with backoff, resubscribe with since,
// send retry with the same nonce, duplicate and gap handling, plus unread counts and
// token refresh.
//
// Everything runs on the event loop: frames are handled one at a time, in order, and
// events are emitted synchronously while a frame is handled. That is what keeps each
// room's messages in seq order, and what lets a subscribe's answer set the room's
// baseline before the next frame (the server queues the answer before any message of
// the subscription).

import { backoffDelay } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { CloseCode, LaneError } from "./errors.js";
import {
  batchEnd,
  batchMessages,
  decodeAck,
  decodeBatch,
  decodeError,
  decodeMember,
  decodePresenceChange,
  decodePresencePage,
  decodeReady,
  decodeRefreshed,
  decodeRoomChange,
  decodeRoomSeq,
  decodeTicks,
  decodeRoomsPage,
  decodeTyping,
  encodeFrame,
  parseFrame,
  validId,
  validNonce,
  type Batch,
  type MemberChange,
  type Message,
  type PresenceChange,
  type PresencePage,
  type ReadMark,
  type Ready,
  type ReadyRoom,
  type RoomChange,
  type RoomsPage,
  type ServerFrame,
  type Tick,
  type Typing,
} from "./frames.js";
import { wsUrl, type Page, type PageOptions } from "./http.js";
import { newNonce } from "./nonce.js";
import { acceptBatch } from "./seqtrack.js";
import { UnreadTracker, type RoomUnread } from "./unread.js";

/** What the client needs of a WebSocket; the global WebSocket of browsers and Node fits. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "error", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
}

/** A WebSocket constructor, such as globalThis.WebSocket. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** ws(s)://host:port/v1/ws, or the http(s)://host:port base it is derived from. */
  url: string;
  /** The token to identify with. One of token and tokenProvider is required. */
  token?: string | undefined;
  /**
   * Called for a token before every connect, reconnects included, and before the
   * token expires (the session is then refreshed with the refresh op).
   */
  tokenProvider?: (() => string | Promise<string>) | undefined;
  /** Defaults to globalThis.WebSocket (Node 20: run with --experimental-websocket). */
  WebSocket?: WebSocketConstructor;
  /**
   * Reconnect after the connection drops, resubscribe with since, retry sends
   * (default true). Even so the client stops for good when kicked (4003) and when a
   * static token is refused or expires.
   */
  reconnect?: boolean;
  /** How long one send attempt waits for its ack before it is sent again with the same nonce (default 10000). */
  sendTimeoutMs?: number;
  /** How long other requests wait for their answer (default 15000). */
  requestTimeoutMs?: number;
  /** Bound on connect + identify + ready (default 10000). */
  handshakeTimeoutMs?: number;
  /** Bounds of the wait between reconnect attempts (defaults 250 and 15000 ms). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** With a tokenProvider, refresh this long before the token expires (default 60000; at the latest halfway). */
  refreshMarginMs?: number;
  /**
   * Mark a room read up to the user's own message once it is acked, locally and with
   * a read op, as chat apps do when the user writes in a room (default true).
   */
  readOnSend?: boolean;
}

/** How a connection ended. */
export interface CloseInfo {
  /** The server's close code, 1006 when the connection broke without one, 1000 after close(). */
  code: number;
  reason: string;
  /** false when the client stopped for good. */
  willReconnect: boolean;
}

/** A connection after the first one was established and the rooms resubscribed. */
export interface ReconnectInfo {
  ready: Ready;
  /** Attempts it took since the connection dropped. */
  attempts: number;
}

/** Events of a Client, by name. */
export interface ClientEvents {
  /** Every connection's ready, the first one included. */
  ready: Ready;
  /** A new message of a subscribed room: in seq order, each exactly once. */
  message: Message;
  /**
   * The latest seq of a room the connection is passive in: one event per room of each
   * ticks frame (the server coalesces them to about one frame a second).
   */
  tick: Tick;
  /** Someone joined or left a room of the user. */
  member: MemberChange;
  /** A room of the user was renamed, given away, got or lost a moderator, or was deleted. */
  room: RoomChange;
  /** Another session of the user marked a room read. */
  read: ReadMark;
  /** Who came online or went offline in a room subscribed with presence (at most about one a second per room). */
  presence: PresenceChange;
  /** Who is typing in a subscribed room; typingUsers(room) keeps the list, expiring each after 5 s. */
  typing: Typing;
  /** A room's unread count changed. */
  unread: RoomUnread;
  /**
   * The user's whole room list is known after a connect: at once, or once the client
   * has paged the rest after a ready with more. Each with its unread count.
   */
  rooms: RoomUnread[];
  /** A connection ended. */
  close: CloseInfo;
  /** The client reconnected. */
  reconnect: ReconnectInfo;
  /** The session's token was replaced (refresh or auto-refresh); expiresAt undefined: no expiry. */
  refresh: { expiresAt: number | undefined };
  /** Something failed that no call is waiting for: a server error event, a gap, a bad frame, a failed resubscribe or auto-refresh. */
  error: LaneError;
}

/** Counters of what the client hid or repaired. */
export interface ClientStats {
  reconnects: number;
  /** Batch entries dropped because their seq was already delivered. */
  duplicates: number;
  /** Gaps detected (each one repaired by resubscribing). */
  gaps: number;
  /** Frames that were not protocol JSON. */
  badFrames: number;
}

export interface SendOptions {
  /** 1 to 64 printable ASCII characters; a fresh random one by default. */
  nonce?: string | undefined;
  /** Stops retrying; the call then fails with the signal's reason. */
  signal?: AbortSignal | undefined;
}

export interface SendResult {
  seq: number;
  ts: number;
  nonce: string;
}

type Timer = ReturnType<typeof setTimeout>;

interface Pending {
  expect: string;
  timer: Timer | undefined;
  resolve(f: ServerFrame): void;
  reject(err: LaneError): void;
  /** Runs synchronously with the outcome, before the promise settles. */
  settle?: (f: ServerFrame | undefined, err: LaneError | undefined) => void;
}

/** One WebSocket connection, from dial until it ends. */
class Conn {
  readonly pending = new Map<number, Pending>();
  ready: Ready | undefined;
  openedAt = 0;
  heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Set on every frame, cleared at every heartbeat tick. */
  received = false;
  /** Heartbeat intervals in a row without a frame. */
  silent = 0;
  /** Ended: its events are ignored from now on. */
  dead = false;
  /** While dialing: fails the dial at once. */
  abortDial: ((err: LaneError) => void) | undefined;
  constructor(readonly ws: WebSocketLike) {}
}

/** A room the application subscribed to: the intent reconnects restore and the delivery position. */
interface RoomSub {
  /** The last seq delivered; undefined until a subscribe without since is answered. */
  last: number | undefined;
  /** Whether presence events were asked for, again by each resubscribe. */
  presence: boolean;
  /** The latest subscribe sent for the room. */
  attempt: SubAttempt | undefined;
}

interface SubAttempt {
  conn: Conn;
  settled: boolean;
  /** Resolves with subscribed.seq. */
  promise: Promise<number>;
}

const heartbeatFrame = encodeFrame("heartbeat", undefined, {});
/** How long a typing user is shown after the last typing event naming it (docs/protocol.md). */
const typingShowMs = 5000;
/** setTimeout's largest delay. */
const maxTimer = 2 ** 31 - 1;

/**
 * A laneIM session over WebSocket. Create it, add listeners, then connect():
 *
 *     const client = new Client({ url: "http://127.0.0.1:8080", token });
 *     client.on("message", (m) => console.log(m.room, m.seq, m.user, m.body));
 *     await client.connect();
 *     await client.subscribe("general");
 *     await client.send("general", { text: "hello" });
 */
export class Client extends Emitter<ClientEvents> {
  readonly #url: string;
  readonly #WebSocket: WebSocketConstructor;
  readonly #provider: (() => string | Promise<string>) | undefined;
  #token: string | undefined;
  readonly #reconnect: boolean;
  readonly #sendTimeout: number;
  readonly #requestTimeout: number;
  readonly #handshakeTimeout: number;
  readonly #backoffMin: number;
  readonly #backoffMax: number;
  readonly #refreshMargin: number;
  readonly #readOnSend: boolean;

  #started = false;
  #closed = false;
  /** Why the client stopped for good. */
  #final: LaneError | undefined;
  /** The connection requests go to; undefined while down. */
  #conn: Conn | undefined;
  /** A connection being dialed. */
  #dialing: Conn | undefined;
  #ready: Ready | undefined;
  #expiresAt: number | undefined;
  #waiters: { resolve(c: Conn): void; reject(e: LaneError): void }[] = [];
  #rid = 0;
  #attempt = 0;
  #attemptsSinceDrop = 0;
  #reconnectTimer: Timer | undefined;
  #refreshTimer: Timer | undefined;
  readonly #rooms = new Map<string, RoomSub>();
  /** The rooms of the last watch(), sent again on every new connection. */
  #watched: string[] = [];
  /** Typing users by room, each with the time it stops being shown (Unix ms). */
  readonly #typing = new Map<string, Map<string, number>>();
  readonly #unread = new UnreadTracker();
  readonly #stats: ClientStats = { reconnects: 0, duplicates: 0, gaps: 0, badFrames: 0 };

  constructor(options: ClientOptions) {
    super();
    this.#url = wsUrl(options.url);
    if (options.token === undefined && options.tokenProvider === undefined) {
      throw new LaneError("bad_request", "a token or a tokenProvider is required");
    }
    this.#token = options.token;
    this.#provider = options.tokenProvider;
    const ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ws === undefined) {
      throw new LaneError("bad_request", "no WebSocket: pass options.WebSocket, or run Node 20 with --experimental-websocket");
    }
    this.#WebSocket = ws;
    this.#reconnect = options.reconnect ?? true;
    this.#sendTimeout = options.sendTimeoutMs ?? 10000;
    this.#requestTimeout = options.requestTimeoutMs ?? 15000;
    this.#handshakeTimeout = options.handshakeTimeoutMs ?? 10000;
    this.#backoffMin = options.backoffMinMs ?? 250;
    this.#backoffMax = Math.max(options.backoffMaxMs ?? 15000, this.#backoffMin);
    this.#refreshMargin = options.refreshMarginMs ?? 60000;
    this.#readOnSend = options.readOnSend ?? true;
  }

  /** The ready of the latest connection. */
  get ready(): Ready | undefined {
    return this.#ready;
  }

  /** The user id, once connected. */
  get user(): string | undefined {
    return this.#ready?.user;
  }

  /** When the session's token expires (Unix ms), undefined for none or before connecting. */
  get expiresAt(): number | undefined {
    return this.#expiresAt;
  }

  /** Whether a connection is up. */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Counters of what the client hid or repaired. */
  get stats(): Readonly<ClientStats> {
    return { ...this.#stats };
  }

  /** The unread count of room (0 for a room the client does not know). */
  unread(room: string): number {
    return this.#unread.unread(room);
  }

  /** Every room of the user known to the client with its seq, read mark and unread count. */
  rooms(): RoomUnread[] {
    return this.#unread.all();
  }

  /** The rooms subscribed through this client. */
  subscriptions(): string[] {
    return [...this.#rooms.keys()].sort();
  }

  /**
   * Connects, identifies and waits for ready, then heartbeats at the interval ready
   * names. A failed first connection rejects (a refused token with code
   * unauthorized), and the client is then closed; later drops reconnect.
   */
  async connect(): Promise<Ready> {
    if (this.#closed) throw this.#final ?? new LaneError("closed", "client closed");
    if (this.#started) {
      if (this.#ready !== undefined && this.#conn !== undefined) return this.#ready;
      await this.#waitConn();
      return this.#ready as Ready;
    }
    this.#started = true;
    try {
      const conn = await this.#open();
      this.#publish(conn, false);
      return conn.ready as Ready;
    } catch (err) {
      const e = err instanceof LaneError ? err : new LaneError("connection_lost", String(err));
      this.#stop(e);
      throw e;
    }
  }

  /** Closes the connection (1000) and stops for good; pending calls fail with code closed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#refreshTimer);
    const conn = this.#conn ?? this.#dialing;
    const wasFinal = this.#final !== undefined;
    this.#stop(new LaneError("closed", "client closed", { closeCode: CloseCode.Normal }));
    if (conn !== undefined) this.#kill(conn, CloseCode.Normal, "client closed", "closed");
    if (this.#started && !wasFinal) this.emit("close", { code: CloseCode.Normal, reason: "client closed", willReconnect: false });
  }

  /**
   * Makes the connection receive messages of room: from now on, or every message
   * with seq > since first. The client keeps the room's position from then on:
   * after a reconnect it resubscribes with since = the last seq delivered, and it
   * drops duplicates and repairs gaps. Resolves with the room's last seq when the
   * subscribe was checked. Subscribing to a room already subscribed without since
   * keeps its position.
   */
  async subscribe(room: string, options: { since?: number | undefined; presence?: boolean | undefined } = {}): Promise<{ room: string; seq: number }> {
    checkRoom(room);
    const { since } = options;
    const presence = options.presence === true;
    if (since !== undefined && (!Number.isSafeInteger(since) || since < 0)) {
      throw new LaneError("bad_request", `since ${since} is not an integer >= 0`, { room });
    }
    let st = this.#rooms.get(room);
    if (st === undefined || since !== undefined) {
      st = { last: since, presence, attempt: undefined };
      this.#rooms.set(room, st);
    }
    st.presence = presence;
    let prev: SubAttempt | undefined; // the attempt a lost connection interrupted
    for (;;) {
      let conn: Conn;
      try {
        conn = await this.#waitConn();
      } catch (err) {
        this.#forget(room, st, undefined);
        throw err;
      }
      if (this.#rooms.get(room) !== st) throw new LaneError("closed", `room ${room} was unsubscribed meanwhile`, { room });
      let a = st.attempt;
      // The reconnect resubscribed the room on this connection, from the position the
      // client keeps: that attempt answers this call too.
      const resubscribed = prev !== undefined && a !== undefined && a !== prev && a.conn === conn;
      if (!resubscribed || a === undefined) a = this.#startSubscribe(conn, room, st, false);
      try {
        return { room, seq: await a.promise };
      } catch (err) {
        if (err instanceof LaneError && err.code === "connection_lost" && this.#reconnect && !this.#closed) {
          prev = a;
          continue;
        }
        this.#forget(room, st, a);
        throw err;
      }
    }
  }

  /** Makes the connection passive in room again and forgets the room's position. */
  async unsubscribe(room: string): Promise<void> {
    checkRoom(room);
    this.#rooms.delete(room);
    const conn = await this.#waitConn();
    try {
      await this.#request(conn, "unsubscribe", { room }, "unsubscribed", this.#requestTimeout);
    } catch (err) {
      // The next connection starts passive in every room.
      if (err instanceof LaneError && err.code === "connection_lost" && this.#reconnect) return;
      throw err;
    }
  }

  /**
   * Sends body (any JSON value) to room and resolves with its seq and ts once it is
   * durable. When no ack comes within sendTimeoutMs, the server answers unavailable,
   * or the connection drops, it is sent again with the same nonce, which the server
   * stores once; it fails only when the server refuses it, the signal aborts, or the
   * client stops.
   */
  async send(room: string, body: unknown, options: SendOptions = {}): Promise<SendResult> {
    checkRoom(room);
    const nonce = options.nonce ?? newNonce();
    if (!validNonce(nonce)) throw new LaneError("bad_request", "nonce must be 1 to 64 printable ASCII characters", { room });
    return this.#submit("send", { room, nonce, body: body ?? null }, nonce, options.signal);
  }

  /**
   * Replaces the body of the user's message seq of room (the edit op), retried as send
   * is; resolves with the seq of the edit's own entry in the room's log. Subscribers
   * get it as a message with `edit: seq`. Refused (a LaneError): another user's
   * message (forbidden), no such message or a deleted one (not_found), an edit or a
   * delete (bad_request).
   */
  async edit(room: string, seq: number, body: unknown, options: SendOptions = {}): Promise<SendResult> {
    checkRoom(room);
    checkSeq(room, seq);
    const nonce = options.nonce ?? newNonce();
    if (!validNonce(nonce)) throw new LaneError("bad_request", "nonce must be 1 to 64 printable ASCII characters", { room });
    return this.#submit("edit", { room, nonce, seq, body: body ?? null }, nonce, options.signal);
  }

  /**
   * Deletes message seq of room (the delete op): the user's own, or any as the room's
   * owner or a moderator. Retried as send is; resolves with the seq of the delete's own
   * entry. Subscribers get it as a message with `delete: seq` and a null body.
   */
  async delete(room: string, seq: number, options: SendOptions = {}): Promise<SendResult> {
    checkRoom(room);
    checkSeq(room, seq);
    const nonce = options.nonce ?? newNonce();
    if (!validNonce(nonce)) throw new LaneError("bad_request", "nonce must be 1 to 64 printable ASCII characters", { room });
    return this.#submit("delete", { room, nonce, seq }, nonce, options.signal);
  }

  /** Sends a send, edit or delete until it is acked or refused. */
  async #submit(op: string, d: Record<string, unknown>, nonce: string, signal: AbortSignal | undefined): Promise<SendResult> {
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      const conn = await this.#waitConn(signal);
      try {
        const f = await this.#request(conn, op, d, "ack", this.#sendTimeout, signal);
        const ack = decodeAck(f.d);
        this.#onAck(ack.room, ack.seq);
        return { seq: ack.seq, ts: ack.ts, nonce };
      } catch (err) {
        if (!(err instanceof LaneError)) throw err;
        if (err.code === "timeout") continue;
        if (err.code === "connection_lost" && this.#reconnect) continue;
        if (err.code === "unavailable") {
          await sleep(this.#backoffMin, signal);
          continue;
        }
        throw err;
      }
    }
  }

  /** A page of room's history, in ascending seq order (see docs/protocol.md, "History"). */
  async history(room: string, options: PageOptions = {}): Promise<Page> {
    checkRoom(room);
    const conn = await this.#waitConn();
    const f = await this.#request(conn, "history", { room, ...options }, "history", this.#requestTimeout);
    const b = decodeBatch(f.d);
    if (b.msgs.length > 0) this.#noteSeq(b.room, batchEnd(b));
    return { room: b.room, messages: batchMessages(b), more: b.more ?? false };
  }

  /**
   * A page of room's online members (to a member): how many are online in all, and up
   * to limit (default 100, at most 1000) of them after the user id after, by id.
   */
  async presence(room: string, options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<PresencePage> {
    checkRoom(room);
    const conn = await this.#waitConn();
    const d: { room: string; after?: string; limit?: number } = { room };
    if (options.after !== undefined) d.after = options.after;
    if (options.limit !== undefined) d.limit = options.limit;
    const f = await this.#request(conn, "presence", d, "presence", this.#requestTimeout);
    return decodePresencePage(f.d);
  }

  /**
   * Tells the room's other subscribers the user is typing; the room must be
   * subscribed. Call it on keystrokes: the server relays it at most every 3 s per
   * connection and room and answers the rest without relaying them.
   */
  async typing(room: string): Promise<void> {
    checkRoom(room);
    const conn = await this.#waitConn();
    await this.#request(conn, "typing", { room }, "ok", this.#requestTimeout);
  }

  /**
   * Who is typing in room as the typing events said, each for 5 s after the last
   * event naming it (or until a message from it arrives).
   */
  typingUsers(room: string): string[] {
    const now = Date.now();
    const users = this.#typing.get(room);
    if (users === undefined) return [];
    const out: string[] = [];
    for (const [user, until] of users) {
      if (until > now) out.push(user);
      else users.delete(user);
    }
    return out.sort();
  }

  /**
   * Marks room read up to seq (default: the latest seq the client knows). The server
   * caps the mark at the room's last seq and never lowers it.
   */
  /**
   * Names up to 16 passive rooms whose ticks (unread counts) the server sends at once
   * rather than with the connection's next ticks frame (about once a second). Replaces
   * the previous set ([] clears it); restored after a reconnect.
   */
  async watch(rooms: string[]): Promise<void> {
    if (rooms.length > 16) throw new LaneError("bad_request", `${rooms.length} rooms to watch, at most 16`);
    for (const r of rooms) checkRoom(r);
    this.#watched = [...rooms];
    const conn = await this.#waitConn();
    await this.#request(conn, "watch", { rooms: this.#watched }, "ok", this.#requestTimeout);
  }

  async read(room: string, seq?: number): Promise<void> {
    checkRoom(room);
    const upTo = seq ?? this.#unread.get(room)?.seq ?? 0;
    const conn = await this.#waitConn();
    await this.#request(conn, "read", { room, seq: upTo }, "ok", this.#requestTimeout);
    this.#emitUnread(this.#unread.read(room, upTo, false));
  }

  /**
   * A page of the user's rooms after the room id after (the rooms op; limit 1 to 500,
   * default 500). The client pages ready's rest itself for unread counts and the
   * rooms event; this is for an application that wants the names too.
   */
  async listRooms(options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<RoomsPage> {
    const conn = await this.#waitConn();
    const f = await this.#request(conn, "rooms", { ...options }, "rooms", this.#requestTimeout);
    return decodeRoomsPage(f.d);
  }

  /**
   * Replaces the session's token with a newer one of the same user, so that the
   * server does not close the session (4001) when the old one expires. Without a
   * tokenProvider, later reconnects identify with this token.
   */
  async refresh(token: string): Promise<{ expiresAt: number | undefined }> {
    const conn = await this.#waitConn();
    const f = await this.#request(conn, "refresh", { token }, "ok", this.#requestTimeout);
    const expiresAt = decodeRefreshed(f.d);
    if (this.#provider === undefined) this.#token = token;
    this.#expiresAt = expiresAt;
    this.#scheduleRefresh();
    this.emit("refresh", { expiresAt });
    return { expiresAt };
  }

  // ---- connections ------------------------------------------------------------

  /** Gets a token and dials. */
  async #open(): Promise<Conn> {
    let token = this.#token;
    if (this.#provider !== undefined) {
      try {
        token = await this.#provider();
      } catch (err) {
        throw new LaneError("token", `token provider: ${String(err)}`);
      }
    }
    if (this.#closed) throw this.#final ?? new LaneError("closed", "client closed");
    return this.#dial(token ?? "");
  }

  /** Opens a WebSocket, identifies and waits for ready. */
  #dial(token: string): Promise<Conn> {
    return new Promise<Conn>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = new this.#WebSocket(this.#url);
      } catch (err) {
        reject(new LaneError("connection_lost", `dial ${this.#url}: ${String(err)}`));
        return;
      }
      const conn = new Conn(ws);
      this.#dialing = conn;
      let refused: LaneError | undefined; // an error frame before ready
      let handshaking = true;
      const fail = (err: LaneError): void => {
        if (!handshaking) return;
        handshaking = false;
        conn.dead = true;
        conn.abortDial = undefined;
        clearTimeout(timer);
        if (this.#dialing === conn) this.#dialing = undefined;
        try {
          ws.close(CloseCode.Normal);
        } catch {
          // already closing
        }
        reject(err);
      };
      const timer = setTimeout(() => fail(new LaneError("timeout", "no ready in time")), this.#handshakeTimeout);
      conn.abortDial = fail;
      ws.addEventListener("open", () => {
        if (!conn.dead) this.#write(conn, encodeFrame("identify", undefined, { token }));
      });
      ws.addEventListener("message", (ev) => {
        if (conn.dead) return;
        if (!handshaking) {
          this.#onFrame(conn, ev.data);
          return;
        }
        let f: ServerFrame;
        try {
          f = parseFrame(ev.data);
        } catch {
          return; // the server sends nothing but ready or error first
        }
        if (f.op === "error") {
          refused = decodeError(f.d);
        } else if (f.op === "ready") {
          try {
            conn.ready = decodeReady(f.d);
          } catch (err) {
            fail(err as LaneError);
            return;
          }
          handshaking = false;
          conn.abortDial = undefined;
          clearTimeout(timer);
          if (this.#dialing === conn) this.#dialing = undefined;
          resolve(conn);
        }
      });
      ws.addEventListener("close", (ev) => {
        const code = ev.code || CloseCode.Abnormal;
        const reason = ev.reason || "";
        if (handshaking) {
          // An error before the close: identify refused for a reason other than the
          // token (4030 too many connections, 1001 unavailable).
          if (refused !== undefined) fail(new LaneError(refused.code, refused.message, { closeCode: code }));
          else if (code === CloseCode.NotIdentified) fail(new LaneError("unauthorized", reason || "identify refused", { closeCode: code }));
          else fail(new LaneError("connection_lost", `connection closed with ${code}${reason ? `: ${reason}` : ""}`, { closeCode: code }));
          return;
        }
        if (!conn.dead) this.#lost(conn, code, reason);
      });
      ws.addEventListener("error", () => {
        // Browsers follow an error with a close event (1006), but Node's WebSocket
        // fires none after a failed dial: an error ends the connection either way.
        const reason = "connection failed";
        if (handshaking) fail(new LaneError("connection_lost", reason, { closeCode: CloseCode.Abnormal }));
        else if (!conn.dead) this.#lost(conn, CloseCode.Abnormal, reason);
      });
    });
  }

  /** Makes conn the connection requests go to. */
  #publish(conn: Conn, isReconnect: boolean): void {
    const ready = conn.ready as Ready;
    if (this.#closed) {
      this.#kill(conn, CloseCode.Normal, "client closed", "closed");
      return;
    }
    this.#conn = conn;
    this.#ready = ready;
    this.#expiresAt = ready.expiresAt;
    conn.openedAt = Date.now();
    const interval = ready.heartbeatMs > 0 ? ready.heartbeatMs : 30000;
    conn.heartbeat = setInterval(() => this.#beat(conn), interval);
    const knownBefore = this.#unread.all().map((r) => r.room);
    // Without more, ready lists every room: the server's word replaces the client's.
    // With more, the first page is taken now and the rest paged below.
    const changed = ready.more ? this.#unread.merge(ready.rooms) : this.#unread.reset(ready.rooms);
    for (const u of changed) this.emit("unread", u);
    if (isReconnect) {
      // Before any waiting call resumes, so that none interleaves a subscribe of its own.
      for (const [room, st] of this.#rooms) this.#startSubscribe(conn, room, st, true);
      // Best effort: should it fail, the rooms still tick at the usual pace.
      if (this.#watched.length > 0) void this.#request(conn, "watch", { rooms: this.#watched }, "ok", this.#requestTimeout).catch(() => {});
    }
    this.#scheduleRefresh();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve(conn);
    this.emit("ready", ready);
    if (isReconnect) {
      this.#stats.reconnects++;
      this.emit("reconnect", { ready, attempts: this.#attemptsSinceDrop });
    }
    if (ready.more) void this.#pageRooms(conn, ready.rooms, knownBefore);
    else if (this.#conn === conn) this.emit("rooms", this.#unread.all());
  }

  /**
   * Pages the user's rooms after ready's first page, feeding unread counts, then
   * forgets rooms known before the connect that the list no longer has (left
   * meanwhile), and emits rooms.
   */
  async #pageRooms(conn: Conn, first: readonly ReadyRoom[], knownBefore: readonly string[]): Promise<void> {
    const listed = new Set(first.map((r) => r.room));
    let after = first.at(-1)?.room;
    try {
      for (;;) {
        if (this.#conn !== conn) return;
        const f = await this.#request(conn, "rooms", after === undefined ? {} : { after }, "rooms", this.#requestTimeout);
        const page = decodeRoomsPage(f.d);
        for (const r of page.rooms) listed.add(r.room);
        for (const u of this.#unread.merge(page.rooms)) this.emit("unread", u);
        const last = page.rooms.at(-1);
        if (!page.more || last === undefined) break;
        after = last.room;
      }
    } catch (err) {
      if (this.#conn !== conn || this.#closed) return; // the next connection pages again
      const e = err instanceof LaneError ? err : new LaneError("internal", String(err));
      this.emit("error", new LaneError(e.code, `room list: ${e.message}`));
      return;
    }
    if (this.#conn !== conn) return;
    for (const room of knownBefore) {
      if (!listed.has(room)) this.#emitUnread(this.#unread.leave(room));
    }
    this.emit("rooms", this.#unread.all());
  }

  /** A heartbeat tick: send one, or give up on a server silent for two intervals. */
  #beat(conn: Conn): void {
    if (conn.dead) return;
    if (conn.received) conn.silent = 0;
    else conn.silent++;
    conn.received = false;
    if (conn.silent >= 2) {
      this.#kill(conn, CloseCode.Abnormal, "nothing from the server for two heartbeat intervals", "connection_lost");
      return;
    }
    this.#write(conn, heartbeatFrame);
  }

  #write(conn: Conn, frame: string): void {
    try {
      conn.ws.send(frame);
    } catch (err) {
      this.#kill(conn, CloseCode.Abnormal, `write: ${String(err)}`, "connection_lost");
    }
  }

  /** Ends conn from this side: closes the socket and handles the loss at once. */
  #kill(conn: Conn, code: number, reason: string, as: "closed" | "connection_lost"): void {
    if (conn.abortDial !== undefined) {
      conn.abortDial(new LaneError(as, reason, { closeCode: code }));
      return;
    }
    if (conn.dead) return;
    try {
      conn.ws.close(CloseCode.Normal);
    } catch {
      // already closing
    }
    if (as === "closed") {
      conn.dead = true;
      clearInterval(conn.heartbeat);
      if (this.#conn === conn) this.#conn = undefined;
      this.#failPending(conn, new LaneError("closed", reason, { closeCode: code }));
      return;
    }
    this.#lost(conn, code, reason);
  }

  /** conn ended with code: fail its requests, then reconnect or stop. */
  #lost(conn: Conn, code: number, reason: string): void {
    if (conn.dead) return;
    conn.dead = true;
    clearInterval(conn.heartbeat);
    if (this.#conn === conn) this.#conn = undefined;
    clearTimeout(this.#refreshTimer);
    this.#failPending(
      conn,
      new LaneError("connection_lost", `connection closed with ${code}${reason ? `: ${reason}` : ""}`, { closeCode: code }),
    );
    if (this.#closed) return;
    // A kick is final; so is a static token's expiry: it would be refused next time.
    const final =
      !this.#reconnect || code === CloseCode.Kicked || (code === CloseCode.NotIdentified && this.#provider === undefined);
    this.emit("close", { code, reason, willReconnect: !final });
    if (final) {
      this.#stop(new LaneError("closed", `connection closed with ${code}${reason ? `: ${reason}` : ""}`, { closeCode: code }));
      return;
    }
    if (Date.now() - conn.openedAt >= this.#backoffMax) this.#attempt = 0;
    this.#attemptsSinceDrop = 0;
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const delay = backoffDelay(this.#attempt, this.#backoffMin, this.#backoffMax);
    this.#attempt++;
    this.#reconnectTimer = setTimeout(() => void this.#reconnectNow(), delay);
  }

  async #reconnectNow(): Promise<void> {
    if (this.#closed) return;
    this.#attemptsSinceDrop++;
    let conn: Conn;
    try {
      conn = await this.#open();
    } catch (err) {
      if (this.#closed) return;
      const e = err instanceof LaneError ? err : new LaneError("connection_lost", String(err));
      if (e.code === "unauthorized" && this.#provider === undefined) {
        // A static token that was refused will be refused again.
        this.emit("close", { code: e.closeCode ?? CloseCode.NotIdentified, reason: e.message, willReconnect: false });
        this.#stop(e);
        return;
      }
      if (e.code === "token") this.emit("error", e);
      this.#scheduleReconnect();
      return;
    }
    this.#publish(conn, true);
  }

  /** Records that the client will not connect again and fails whoever waits for a connection. */
  #stop(err: LaneError): void {
    this.#final ??= err;
    clearTimeout(this.#refreshTimer);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(this.#final);
  }

  /** The current connection, waiting through a reconnect. */
  #waitConn(signal?: AbortSignal): Promise<Conn> {
    if (this.#closed || this.#final !== undefined) {
      return Promise.reject(this.#final ?? new LaneError("closed", "client closed"));
    }
    if (!this.#started) return Promise.reject(new LaneError("closed", "not connected: call connect() first"));
    if (this.#conn !== undefined) return Promise.resolve(this.#conn);
    return new Promise<Conn>((resolve, reject) => {
      const w = {
        resolve: (c: Conn) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(c);
        },
        reject: (e: LaneError) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      const onAbort = (): void => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        reject(abortReason(signal as AbortSignal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(w);
    });
  }

  // ---- requests ---------------------------------------------------------------

  /**
   * Sends op with a fresh rid on conn and resolves with the reply frame of op expect;
   * an error reply rejects with its code, a lost connection with connection_lost, no
   * answer within timeoutMs with timeout.
   */
  #request(
    conn: Conn,
    op: string,
    d: unknown,
    expect: string,
    timeoutMs: number,
    signal?: AbortSignal,
    settle?: Pending["settle"],
  ): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      if (conn.dead) {
        const err = new LaneError("connection_lost", "connection closed");
        settle?.(undefined, err);
        reject(err);
        return;
      }
      const rid = ++this.#rid;
      let frame: string;
      try {
        frame = encodeFrame(op, rid, d);
      } catch (err) {
        const e = new LaneError("bad_request", `encode ${op}: ${String(err)}`);
        settle?.(undefined, e);
        reject(e);
        return;
      }
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
      };
      const p: Pending = {
        expect,
        timer: setTimeout(() => {
          conn.pending.delete(rid);
          done();
          const err = new LaneError("timeout", `no ${expect} within ${timeoutMs} ms`);
          settle?.(undefined, err);
          reject(err);
        }, timeoutMs),
        resolve: (f) => {
          done();
          resolve(f);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      if (settle !== undefined) p.settle = settle;
      const onAbort = (): void => {
        if (!conn.pending.delete(rid)) return;
        clearTimeout(p.timer);
        settle?.(undefined, new LaneError("closed", "aborted"));
        reject(abortReason(signal as AbortSignal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      conn.pending.set(rid, p);
      this.#write(conn, frame);
    });
  }

  #failPending(conn: Conn, err: LaneError): void {
    const pending = [...conn.pending.values()];
    conn.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.settle?.(undefined, err);
      p.reject(err);
    }
  }

  /** Sends a subscribe for room from its position. With report (a resubscribe nobody awaits), a refusal becomes an error event. */
  #startSubscribe(conn: Conn, room: string, st: RoomSub, report: boolean): SubAttempt {
    const d: { room: string; since?: number; presence?: boolean } = { room };
    if (st.last !== undefined) d.since = st.last;
    if (st.presence) d.presence = true;
    const a: SubAttempt = { conn, settled: false, promise: Promise.resolve(0) };
    st.attempt = a;
    a.promise = this.#request(conn, "subscribe", d, "subscribed", this.#requestTimeout, undefined, (f, err) => {
      // Runs while the answer is handled, before any later frame.
      a.settled = true;
      if (this.#rooms.get(room) !== st || st.attempt !== a) return;
      if (f !== undefined && f.op === "subscribed") {
        if (st.last === undefined) {
          try {
            st.last = decodeRoomSeq(f.d, "subscribed").seq;
          } catch {
            // the promise rejects with the same error
          }
        }
        return;
      }
      if (err?.code === "connection_lost") return; // the next connection resubscribes
      if (!report) return; // subscribe() decides
      const e = err ?? decodeError(f?.d, room);
      if (e.code === "unavailable" || e.code === "rate_limited" || e.code === "timeout") {
        // Try again on the same connection a little later.
        setTimeout(() => {
          if (!conn.dead && this.#rooms.get(room) === st && st.attempt === a) this.#startSubscribe(conn, room, st, true);
        }, this.#backoffMin);
      } else {
        this.#rooms.delete(room);
      }
      this.emit("error", new LaneError(e.code, `resubscribe ${room}: ${e.message}`, { room }));
    }).then((f) => decodeRoomSeq(f.d, "subscribed").seq);
    a.promise.catch(() => {}); // a resubscribe's outcome is handled above
    return a;
  }

  /** Drops room's subscription if st (and, when given, attempt a) is still its latest. */
  #forget(room: string, st: RoomSub, a: SubAttempt | undefined): void {
    if (this.#rooms.get(room) === st && (a === undefined || st.attempt === a)) this.#rooms.delete(room);
  }

  // ---- frames -------------------------------------------------------------------

  #onFrame(conn: Conn, data: unknown): void {
    conn.received = true;
    let f: ServerFrame;
    try {
      f = parseFrame(data);
    } catch (err) {
      this.#badFrame(err);
      return;
    }
    if (f.rid !== undefined) {
      const p = conn.pending.get(f.rid);
      if (p === undefined) return; // its call gave up
      conn.pending.delete(f.rid);
      clearTimeout(p.timer);
      if (f.op === "error") {
        const err = decodeError(f.d);
        p.settle?.(f, err);
        p.reject(err);
      } else if (f.op !== p.expect) {
        const err = new LaneError("bad_frame", `reply op ${f.op}, want ${p.expect}`);
        p.settle?.(undefined, err);
        p.reject(err);
      } else {
        p.settle?.(f, undefined);
        p.resolve(f);
      }
      return;
    }
    try {
      switch (f.op) {
        case "msgs":
          this.#onBatch(conn, decodeBatch(f.d));
          break;
        case "ticks":
          // The server's default: one frame naming every passive room that changed.
          for (const t of decodeTicks(f.d)) {
            this.emit("tick", t);
            this.#noteSeq(t.room, t.seq);
          }
          break;
        case "tick": {
          const t = decodeRoomSeq(f.d, "tick");
          this.emit("tick", t);
          this.#noteSeq(t.room, t.seq);
          break;
        }
        case "read": {
          const r = decodeRoomSeq(f.d, "read");
          this.emit("read", r);
          this.#emitUnread(this.#unread.read(r.room, r.seq, true));
          break;
        }
        case "member": {
          const m = decodeMember(f.d);
          if (m.user === this.#ready?.user) {
            if (m.action === "join") this.#emitUnread(this.#unread.join(m.room));
            else {
              this.#rooms.delete(m.room); // the server delivers nothing of the room any more
              this.#emitUnread(this.#unread.leave(m.room));
            }
          }
          this.emit("member", m);
          break;
        }
        case "room": {
          const c = decodeRoomChange(f.d);
          if (c.action === "deleted") {
            this.#rooms.delete(c.room); // as after a leave: nothing of the room follows
            this.#emitUnread(this.#unread.leave(c.room));
          }
          this.emit("room", c);
          break;
        }
        case "presence":
          this.emit("presence", decodePresenceChange(f.d));
          break;
        case "typing": {
          const t = decodeTyping(f.d);
          let users = this.#typing.get(t.room);
          if (users === undefined) this.#typing.set(t.room, (users = new Map()));
          for (const u of t.users) users.set(u, Date.now() + typingShowMs);
          this.emit("typing", t);
          break;
        }
        case "error":
          this.emit("error", decodeError(f.d));
          break;
        default:
          // heartbeat_ack, and ops of later versions
          break;
      }
    } catch (err) {
      this.#badFrame(err);
    }
  }

  #badFrame(err: unknown): void {
    this.#stats.badFrames++;
    this.emit("error", err instanceof LaneError ? err : new LaneError("bad_frame", String(err)));
  }

  /** Delivers what is new of a batch of a subscribed room, in order, once. */
  #onBatch(conn: Conn, b: Batch): void {
    if (b.msgs.length === 0) return;
    const st = this.#rooms.get(b.room);
    if (st !== undefined) {
      const inFlight = st.attempt !== undefined && !st.attempt.settled;
      // Without a baseline, a batch before the subscribe's answer is of an older
      // subscription: the answer comes before any batch of the new one.
      if (!(st.last === undefined && inFlight)) {
        const res = acceptBatch(st.last, b);
        this.#stats.duplicates += res.dropped;
        if (res.gap !== undefined) {
          // Deliver nothing past the gap: resubscribe from the last seq delivered,
          // which sends the missing messages and these again, in order. While a
          // subscribe is in flight, its catch-up covers the gap already.
          if (!inFlight) {
            this.#stats.gaps++;
            this.emit("error", new LaneError("gap", `room ${b.room}: seq ${res.gap.after + 1}..${res.gap.next - 1} missing; resubscribing`, { room: b.room }));
            this.#startSubscribe(conn, b.room, st, true);
          }
        } else {
          st.last = res.last;
          if (res.deliver !== undefined)
            for (const m of batchMessages(res.deliver)) {
              this.#typing.get(m.room)?.delete(m.user); // a message ends its sender's typing
              this.emit("message", m);
            }
        }
      }
    }
    this.#noteSeq(b.room, batchEnd(b));
  }

  // ---- unread and refresh ---------------------------------------------------------

  #noteSeq(room: string, seq: number): void {
    this.#emitUnread(this.#unread.seq(room, seq));
  }

  #emitUnread(u: RoomUnread | undefined): void {
    if (u !== undefined) this.emit("unread", u);
  }

  #onAck(room: string, seq: number): void {
    this.#noteSeq(room, seq);
    if (!this.#readOnSend) return;
    this.#emitUnread(this.#unread.read(room, seq, false));
    const conn = this.#conn;
    if (conn === undefined) return;
    this.#request(conn, "read", { room, seq }, "ok", this.#requestTimeout).catch((err: unknown) => {
      if (err instanceof LaneError && (err.code === "connection_lost" || err.code === "closed")) return;
      this.emit("error", err instanceof LaneError ? err : new LaneError("internal", String(err)));
    });
  }

  /** With a token provider, refreshes the session before its token expires. */
  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    const expiresAt = this.#expiresAt;
    if (this.#provider === undefined || expiresAt === undefined || this.#conn === undefined) return;
    const remaining = expiresAt - Date.now();
    if (remaining <= 0) return; // the server closes with 4001; the reconnect gets a new token
    const delay = remaining > 2 * this.#refreshMargin ? remaining - this.#refreshMargin : remaining / 2;
    if (delay > maxTimer) {
      this.#refreshTimer = setTimeout(() => this.#scheduleRefresh(), maxTimer);
      return;
    }
    this.#refreshTimer = setTimeout(() => void this.#autoRefresh(expiresAt), delay);
  }

  async #autoRefresh(expiresAt: number): Promise<void> {
    const provider = this.#provider;
    if (provider === undefined || this.#closed || this.#conn === undefined) return;
    try {
      await this.refresh(await provider());
    } catch (err) {
      if (this.#closed) return;
      const e = err instanceof LaneError ? err : new LaneError("token", `token provider: ${String(err)}`);
      if (e.code === "connection_lost") return; // the reconnect identifies with a new token
      this.emit("error", new LaneError(e.code, `auto-refresh: ${e.message}`));
      // Try again, halfway to the expiry, while there is time.
      const remaining = expiresAt - Date.now();
      if (remaining > 1000 && this.#expiresAt === expiresAt && this.#conn !== undefined) {
        clearTimeout(this.#refreshTimer);
        this.#refreshTimer = setTimeout(() => void this.#autoRefresh(expiresAt), Math.min(remaining / 2, 30000));
      }
    }
  }
}

function checkRoom(room: string): void {
  if (!validId(room)) throw new LaneError("bad_request", `room ${JSON.stringify(room)} is not a valid id`);
}

function checkSeq(room: string, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new LaneError("bad_request", `seq ${seq} is no message's`, { room });
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new LaneError("closed", "aborted");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortReason(signal as AbortSignal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
