import type { ReadyRoom } from "./frames.js";

/** Where the user stands in one room: unread = seq - readSeq. */
export interface RoomUnread {
  room: string;
  /** The room's latest seq known to the client. */
  seq: number;
  /** The user's read mark. */
  readSeq: number;
  /** seq - readSeq, never below 0. */
  unread: number;
}

interface State {
  seq: number;
  readSeq: number;
}

function view(room: string, s: State): RoomUnread {
  return { room, seq: s.seq, readSeq: s.readSeq, unread: Math.max(0, s.seq - s.readSeq) };
}

/**
 * Unread counts per room (docs/protocol.md: unread = seq - read_seq), fed with what
 * the client learns: ready's rooms, ticks, msgs, acks of the user's own sends, read
 * events and the user's own read calls. Both marks only go up, as on the server.
 * Every update returns the room's new state when its unread count changed, and
 * undefined otherwise.
 */
export class UnreadTracker {
  readonly #rooms = new Map<string, State>();

  /**
   * Replaces everything with ready's rooms (the server's word after every connect).
   * Returns the rooms whose count changed, including rooms no longer listed (the user
   * left them meanwhile), which go to 0.
   */
  reset(rooms: readonly ReadyRoom[]): RoomUnread[] {
    const before = this.#rooms;
    const changed: RoomUnread[] = [];
    const next = new Map<string, State>();
    for (const r of rooms) {
      const old = before.get(r.room);
      // seq only grows; a seq learned from an ack may be ahead of a list read just before it.
      const s = { seq: Math.max(r.seq, old?.seq ?? 0), readSeq: r.readSeq };
      next.set(r.room, s);
      const was = old === undefined ? 0 : view(r.room, old).unread;
      if (was !== view(r.room, s).unread) changed.push(view(r.room, s));
    }
    for (const [room, old] of before) {
      if (!next.has(room) && view(room, old).unread !== 0) changed.push({ room, seq: old.seq, readSeq: old.seq, unread: 0 });
    }
    this.#rooms.clear();
    for (const [room, s] of next) this.#rooms.set(room, s);
    return changed;
  }

  /**
   * Takes the server's word on some rooms (a page of the room list) and keeps the
   * others. Returns the rooms whose count changed.
   */
  merge(rooms: readonly ReadyRoom[]): RoomUnread[] {
    const changed: RoomUnread[] = [];
    for (const r of rooms) {
      const u = this.#update(r.room, (s) => {
        s.seq = Math.max(s.seq, r.seq);
        s.readSeq = r.readSeq;
      });
      if (u !== undefined) changed.push(u);
    }
    return changed;
  }

  /** The room's latest seq is at least seq (a tick, a batch, an ack). */
  seq(room: string, seq: number): RoomUnread | undefined {
    return this.#update(room, (s) => {
      s.seq = Math.max(s.seq, seq);
    });
  }

  /**
   * The user read room up to seq. From the user's own read call the mark is capped at
   * the latest seq known, as the server caps it at the room's last seq; a server's
   * read event (capped already) may instead reveal a later seq.
   */
  read(room: string, seq: number, fromServer: boolean): RoomUnread | undefined {
    return this.#update(room, (s) => {
      if (fromServer) s.seq = Math.max(s.seq, seq);
      s.readSeq = Math.max(s.readSeq, Math.min(seq, s.seq));
    });
  }

  /** The user joined room: it counts from 0 until the server says more. */
  join(room: string): RoomUnread | undefined {
    return this.#update(room, () => {});
  }

  /** The user left room. Returns its state at 0 if it had unread messages. */
  leave(room: string): RoomUnread | undefined {
    const s = this.#rooms.get(room);
    this.#rooms.delete(room);
    if (s === undefined || view(room, s).unread === 0) return undefined;
    return { room, seq: s.seq, readSeq: s.seq, unread: 0 };
  }

  /** The room's state, or undefined for a room the client does not know. */
  get(room: string): RoomUnread | undefined {
    const s = this.#rooms.get(room);
    return s === undefined ? undefined : view(room, s);
  }

  /** The unread count of room (0 for a room the client does not know). */
  unread(room: string): number {
    return this.get(room)?.unread ?? 0;
  }

  /** Every known room, ordered by room id. */
  all(): RoomUnread[] {
    return [...this.#rooms].map(([room, s]) => view(room, s)).sort((a, b) => (a.room < b.room ? -1 : a.room > b.room ? 1 : 0));
  }

  #update(room: string, change: (s: State) => void): RoomUnread | undefined {
    let s = this.#rooms.get(room);
    if (s === undefined) {
      s = { seq: 0, readSeq: 0 };
      this.#rooms.set(room, s);
    }
    const before = view(room, s).unread;
    change(s);
    const after = view(room, s);
    return after.unread === before ? undefined : after;
  }
}
