// An in-memory stand-in for a laneIM gateway, speaking docs/protocol.md to the client
// through a fake WebSocket: deterministic, so that reconnects, retries, duplicates and
// gaps can be staged frame by frame. The end-to-end test checks the same against a
// real server.

import type { WebSocketConstructor, WebSocketLike } from "@laneim/client";

export interface Frame {
  op: string;
  rid?: number;
  d?: any;
}

type Listener = (ev: any) => void;

/** The client's end of a connection to the FakeServer. */
export class FakeSocket implements WebSocketLike {
  readonly sent: Frame[] = [];
  readonly subscribed = new Set<string>();
  closed = false;
  identified = false;
  user = "";
  readonly #listeners = new Map<string, Listener[]>();

  constructor(readonly server: FakeServer, readonly url: string) {
    setTimeout(() => {
      if (this.closed) return;
      if (server.refuseConnections) {
        // As Node's WebSocket does on a refused dial: an error and no close event.
        this.closed = true;
        this.#dispatch("error", {});
        return;
      }
      this.#dispatch("open", {});
    }, 0);
  }

  addEventListener(type: string, listener: Listener): void {
    const list = this.#listeners.get(type) ?? [];
    list.push(listener);
    this.#listeners.set(type, list);
  }

  send(data: string): void {
    if (this.closed) return;
    const f = JSON.parse(data) as Frame;
    this.sent.push(f);
    // Answers arrive later, as over a network.
    setTimeout(() => {
      if (!this.closed) this.server.handle(this, f);
    }, 0);
  }

  /** The client closes: the server echoes its code. */
  close(code = 1000, reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    setTimeout(() => this.#dispatch("close", { code, reason }), 0);
  }

  /** A frame from the server. */
  push(f: Frame | string): void {
    if (this.closed) return;
    this.#dispatch("message", { data: typeof f === "string" ? f : JSON.stringify(f) });
  }

  /** The server closes with code. */
  serverClose(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.#dispatch("close", { code, reason });
  }

  /** Frames the client sent with op. */
  frames(op: string): Frame[] {
    return this.sent.filter((f) => f.op === op);
  }

  #dispatch(type: string, ev: unknown): void {
    for (const l of this.#listeners.get(type) ?? []) l(ev);
  }
}

interface StoredMsg {
  user: string;
  ts: number;
  body: unknown;
}

/**
 * A scripted gateway: identify -> ready, heartbeat -> heartbeat_ack, subscribe (with
 * since: catch-up from its store), send -> ack with the room's next seq (a repeated
 * nonce gets its first seq), history, read, refresh. `intercept` can take over any
 * frame first (return true when handled).
 */
export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  readonly rooms = new Map<string, StoredMsg[]>();
  readonly readSeq = new Map<string, number>();
  readonly nonces = new Map<string, number>();
  readonly tokens: string[] = [];
  heartbeatMs = 30000;
  /** Rooms a page of the room list holds (ready's first page, the rooms op). */
  roomsPageSize = 500;
  expiresAt: number | undefined;
  refuseConnections = false;
  /** Tokens identify refuses with 4001 "bad token". */
  refuse: (token: string) => boolean = () => false;
  intercept: (sock: FakeSocket, f: Frame) => boolean = () => false;
  /** Whether subscribers get live messages (off: stage frames by hand). */
  fanout = true;

  readonly WebSocket: WebSocketConstructor;

  constructor() {
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string) {
        super(server, url);
        server.sockets.push(this);
      }
    };
  }

  /** The latest connection. */
  get last(): FakeSocket {
    const s = this.sockets.at(-1);
    if (s === undefined) throw new Error("no connection yet");
    return s;
  }

  room(room: string): StoredMsg[] {
    let msgs = this.rooms.get(room);
    if (msgs === undefined) {
      msgs = [];
      this.rooms.set(room, msgs);
    }
    return msgs;
  }

  /** Stores a message and relays it to subscribed connections; returns its seq. */
  publish(room: string, user: string, body: unknown): number {
    const msgs = this.room(room);
    msgs.push({ user, ts: 1_700_000_000_000 + msgs.length, body });
    const seq = msgs.length;
    if (this.fanout) {
      for (const s of this.sockets) {
        if (s.closed || !s.identified) continue;
        if (s.subscribed.has(room)) s.push({ op: "msgs", d: this.batch(room, seq, seq) });
        else s.push({ op: "ticks", d: { rooms: [{ room, seq }] } });
      }
    }
    return seq;
  }

  /** The batch of room's messages from..to (inclusive). */
  batch(room: string, from: number, to: number): { room: string; seq: number; ts: number; msgs: unknown[] } {
    const msgs = this.room(room).slice(from - 1, to);
    const first = msgs[0];
    if (first === undefined) return { room, seq: 0, ts: 0, msgs: [] };
    return { room, seq: from, ts: first.ts, msgs: msgs.map((m) => [m.user, m.ts - first.ts, m.body]) };
  }

  /** A page of the room list after the room id after. */
  roomsPage(after: string | undefined, limit: number): { rooms: { room: string; name: string; seq: number; read_seq: number }[]; more: boolean } {
    const all = [...this.rooms.keys()].sort().filter((r) => after === undefined || r > after);
    return {
      rooms: all.slice(0, limit).map((room) => ({ room, name: room.toUpperCase(), seq: this.room(room).length, read_seq: this.readSeq.get(room) ?? 0 })),
      more: all.length > limit,
    };
  }

  handle(sock: FakeSocket, f: Frame): void {
    if (this.intercept(sock, f)) return;
    const reply = (op: string, d: unknown): void => sock.push(f.rid === undefined ? { op, d } : { op, rid: f.rid, d });
    switch (f.op) {
      case "identify": {
        const token = String(f.d?.token);
        this.tokens.push(token);
        if (this.refuse(token)) {
          sock.serverClose(4001, "bad token");
          return;
        }
        sock.identified = true;
        sock.user = token.split(":")[0] ?? "alice";
        const { rooms, more } = this.roomsPage(undefined, this.roomsPageSize);
        const d: Record<string, unknown> = {
          user: sock.user,
          session: "0123456789abcdef01234567",
          heartbeat_ms: this.heartbeatMs,
          rooms: rooms.map(({ name: _, ...r }) => r),
        };
        if (more) d["more"] = true;
        if (this.expiresAt !== undefined) d["expires_at"] = this.expiresAt;
        reply("ready", d);
        return;
      }
      case "heartbeat":
        reply("heartbeat_ack", {});
        return;
      case "subscribe": {
        const room = String(f.d.room);
        const seq = this.room(room).length;
        sock.subscribed.add(room);
        reply("subscribed", { room, seq });
        const since = f.d.since as number | undefined;
        if (since !== undefined && since < seq) sock.push({ op: "msgs", d: this.batch(room, since + 1, seq) });
        return;
      }
      case "unsubscribe":
        sock.subscribed.delete(String(f.d.room));
        reply("unsubscribed", { room: f.d.room });
        return;
      case "send": {
        const room = String(f.d.room);
        const key = `${room}/${sock.user}/${f.d.nonce}`;
        let seq = this.nonces.get(key);
        if (seq === undefined) {
          seq = this.publish(room, sock.user, f.d.body);
          this.nonces.set(key, seq);
        }
        const m = this.room(room)[seq - 1] as StoredMsg;
        reply("ack", { room, nonce: f.d.nonce, seq, ts: m.ts });
        return;
      }
      case "history": {
        const room = String(f.d.room);
        const n = this.room(room).length;
        const limit = (f.d.limit as number | undefined) ?? 50;
        const before = Math.min((f.d.before as number | undefined) ?? n + 1, n + 1);
        let from: number;
        let to: number;
        let more: boolean;
        if (f.d.after !== undefined) {
          from = (f.d.after as number) + 1;
          to = Math.min(before - 1, from + limit - 1);
          more = to < before - 1;
        } else {
          to = before - 1;
          from = Math.max(1, to - limit + 1);
          more = from > 1;
        }
        reply("history", { ...this.batch(room, from, to), more });
        return;
      }
      case "read": {
        const room = String(f.d.room);
        const seq = Math.min(f.d.seq as number, this.room(room).length);
        this.readSeq.set(room, Math.max(this.readSeq.get(room) ?? 0, seq));
        reply("ok", {});
        return;
      }
      case "watch":
        reply("ok", {});
        return;
      case "rooms": {
        reply("rooms", this.roomsPage(f.d?.after as string | undefined, Math.min((f.d?.limit as number | undefined) ?? 500, this.roomsPageSize)));
        return;
      }
      case "refresh":
        this.tokens.push(String(f.d.token));
        reply("ok", { expires_at: this.expiresAt ?? 0 });
        return;
      default:
        reply("error", { code: "bad_request", message: `unknown op "${f.op}"` });
    }
  }
}

/** Resolves when cond() holds, polling every 5 ms; rejects after timeoutMs. */
export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
