// Wire frames of docs/protocol.md and their decoding into the package's types.
// Everything a server sends is checked before use: a frame of the wrong shape is a
// LaneError with code bad_frame, never a crash or a half-filled object.

import { LaneError } from "./errors.js";

/** A message, as applications see it: one entry of a batch, expanded. */
export interface Message<Body = unknown> {
  room: string;
  seq: number;
  /** When the server stored it, Unix milliseconds. */
  ts: number;
  user: string;
  /** Any JSON value, as the sender wrote it; null for a delete and a deleted message. */
  body: Body;
  /** Set on an edit: this entry's body replaces the body of message `edit`. */
  edit?: number;
  /** Set on a delete: this entry deletes message `delete`. */
  delete?: number;
  /** Set on a message edited since it was sent (history, catch-up): the last edit's ts. */
  edited?: number;
  /** Set on a deleted message (history, catch-up); its body is null. */
  deleted?: true;
}

/** What a 4th element of an entry says: an edit, a delete, or the state of an earlier message. */
export type Mark = { edit: number } | { delete: number } | { edited: number } | { deleted: true };

/**
 * One entry of a batch on the wire: [user, ts offset from the batch's ts, body], and a
 * mark for anything but a plain message.
 */
export type Entry = [user: string, dt: number, body: unknown, mark?: Mark];

/** Consecutive messages of one room in seq order: entry i has seq `seq + i`. */
export interface Batch {
  room: string;
  seq: number;
  ts: number;
  msgs: Entry[];
  /** Only on history pages: whether more messages lie beyond the page. */
  more?: boolean;
}

/** A room of the user as ready lists it. */
export interface ReadyRoom {
  room: string;
  /** The room's last seq (0 without messages). */
  seq: number;
  /** The user's read mark in the room. */
  readSeq: number;
}

/** The answer to identify. */
export interface Ready {
  user: string;
  /** This connection's id (24 hex characters). */
  session: string;
  heartbeatMs: number;
  /** When the token, and with it the session, expires (Unix ms); absent without exp. */
  expiresAt?: number;
  /** The user's rooms, ordered by room id: all of them, or the first page when more. */
  rooms: ReadyRoom[];
  /** Whether more rooms follow (the rooms op pages them; the Client does it itself). */
  more: boolean;
}

/** A room of the user as a room list page (the rooms op, GET /v1/me/rooms) has it. */
export interface MyRoom {
  room: string;
  name: string;
  /** The room's last seq. */
  seq: number;
  /** The user's read mark. */
  readSeq: number;
}

/** A page of the user's rooms, ordered by room id. */
export interface RoomsPage {
  rooms: MyRoom[];
  /** Whether more rooms follow: ask again after the last room of this page. */
  more: boolean;
}

/** The latest seq of a room this connection is passive in. */
export interface Tick {
  room: string;
  seq: number;
}

/** Someone joined or left a room of the user (the user itself included). */
export interface MemberChange {
  room: string;
  user: string;
  action: "join" | "leave";
}

/**
 * A room of the user changed: renamed (name), given to a new owner (user), a moderator
 * appointed or removed (user, moderator), or deleted (nothing of it follows); a
 * member muted or unmuted, banned or unbanned (user, and until: when a mute or a ban
 * ends, Unix ms, absent for no end). A banned user's sessions get "banned" after the
 * member leave it caused.
 */
export interface RoomChange {
  room: string;
  action: RoomAction;
  name?: string;
  user?: string;
  moderator?: boolean;
  until?: number;
}

export type RoomAction = "renamed" | "owner" | "moderator" | "deleted" | "muted" | "unmuted" | "banned" | "unbanned";

const roomActions: ReadonlySet<string> = new Set<RoomAction>(["renamed", "owner", "moderator", "deleted", "muted", "unmuted", "banned", "unbanned"]);

export function decodeRoomChange(d: unknown): RoomChange {
  const o = obj(d, "room event");
  const action = str(o, "action", "room event");
  if (!roomActions.has(action)) {
    throw bad(`room event action ${JSON.stringify(action)} is unknown`);
  }
  const c: RoomChange = { room: room(o, "room event"), action: action as RoomAction };
  if (o["name"] !== undefined) c.name = str(o, "name", "room event");
  if (o["user"] !== undefined) c.user = str(o, "user", "room event");
  if (o["moderator"] !== undefined) {
    if (typeof o["moderator"] !== "boolean") throw bad("room event moderator is not a boolean");
    c.moderator = o["moderator"];
  }
  if (o["until"] !== undefined) {
    const until = o["until"];
    if (typeof until !== "number" || !Number.isSafeInteger(until) || until < 0) throw bad("room event until is not a time");
    c.until = until;
  }
  return c;
}

/** Another session of the user marked a room read; seq is the resulting read mark. */
export interface ReadMark {
  room: string;
  seq: number;
}

/** The answer to send: the message's seq and the time it was stored. */
export interface Ack {
  room: string;
  nonce: string;
  seq: number;
  ts: number;
}

/** A frame from the server: {"op","rid"?,"d"}. */
export interface ServerFrame {
  op: string;
  rid?: number;
  d: unknown;
}

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
const noncePattern = /^[\x20-\x7e]{1,64}$/;

/** Whether s is a valid user or room id: 1 to 64 of A-Z a-z 0-9 _ -. */
export function validId(s: string): boolean {
  return idPattern.test(s);
}

/** Whether s is a valid nonce: 1 to 64 printable ASCII characters. */
export function validNonce(s: string): boolean {
  return noncePattern.test(s);
}

/** Encodes a client frame; rid and d are left out when undefined. */
export function encodeFrame(op: string, rid: number | undefined, d: unknown): string {
  return JSON.stringify({ op, rid, d });
}

function bad(message: string): LaneError {
  return new LaneError("bad_frame", message);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function obj(v: unknown, what: string): Obj {
  if (!isObj(v)) throw bad(`${what} is not an object`);
  return v;
}

function str(o: Obj, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== "string") throw bad(`${what}.${key} is not a string`);
  return v;
}

function int(o: Obj, key: string, what: string, min = 0): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw bad(`${what}.${key} is not an integer >= ${min}`);
  }
  return v;
}

function room(o: Obj, what: string): string {
  const r = str(o, "room", what);
  if (!validId(r)) throw bad(`${what}.room ${JSON.stringify(r)} is not a valid id`);
  return r;
}

/** Decodes the envelope of a server frame. */
export function parseFrame(data: unknown): ServerFrame {
  if (typeof data !== "string") throw bad("binary frame");
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch (err) {
    throw bad(`frame is not JSON: ${(err as Error).message}`);
  }
  const o = obj(v, "frame");
  const op = o["op"];
  if (typeof op !== "string" || op === "") throw bad("frame has no op");
  const f: ServerFrame = { op, d: o["d"] ?? {} };
  if (o["rid"] !== undefined && o["rid"] !== null) f.rid = int(o, "rid", "frame");
  return f;
}

/** Decodes a batch (a msgs event's d, or a history page). */
export function decodeBatch(d: unknown): Batch {
  const o = obj(d, "batch");
  const b: Batch = {
    room: room(o, "batch"),
    seq: int(o, "seq", "batch"),
    ts: int(o, "ts", "batch"),
    msgs: [],
  };
  const msgs = o["msgs"];
  if (!Array.isArray(msgs)) throw bad("batch.msgs is not an array");
  for (const [i, e] of msgs.entries()) {
    if (!Array.isArray(e) || (e.length !== 3 && e.length !== 4) || typeof e[0] !== "string" || !Number.isSafeInteger(e[1])) {
      throw bad(`batch entry ${i} is not [user, dt, body, mark?]`);
    }
    const mark = e.length === 4 ? decodeMark(e[3], i) : undefined;
    if (mark !== undefined) b.msgs.push([e[0], e[1] as number, e[2], mark]);
    else b.msgs.push([e[0], e[1] as number, e[2]]);
  }
  if (b.msgs.length > 0 && b.seq < 1) throw bad(`batch of room ${b.room} starts at seq ${b.seq}`);
  if (o["more"] !== undefined) {
    if (typeof o["more"] !== "boolean") throw bad("batch.more is not a boolean");
    b.more = o["more"];
  }
  return b;
}

/**
 * Decodes an entry's mark: one of edit, delete, edited (positive integers) or deleted
 * (true). A mark of none of them (a kind of a later version) is undefined: the entry is
 * a plain message, as docs/protocol.md says.
 */
export function decodeMark(v: unknown, i: number): Mark | undefined {
  const o = obj(v, `batch entry ${i} mark`);
  const keys = Object.keys(o).filter((k) => k === "edit" || k === "delete" || k === "edited" || k === "deleted");
  if (keys.length === 0) return undefined;
  if (keys.length > 1) throw bad(`batch entry ${i} mark names ${keys.length} of edit, delete, edited, deleted`);
  const key = keys[0] as "edit" | "delete" | "edited" | "deleted";
  if (key === "deleted") {
    if (o["deleted"] !== true) throw bad(`batch entry ${i} mark deleted is not true`);
    return { deleted: true };
  }
  const n = int(o, key, `batch entry ${i} mark`, 1);
  return key === "edit" ? { edit: n } : key === "delete" ? { delete: n } : { edited: n };
}

/** Turns the entries of a batch into messages, marks spread into their fields. */
export function batchMessages(b: Batch): Message[] {
  return b.msgs.map(([user, dt, body, mark], i) => {
    const m: Message = { room: b.room, seq: b.seq + i, ts: b.ts + dt, user, body };
    return mark === undefined ? m : { ...m, ...mark };
  });
}

/** The last seq of a batch with entries, or 0. */
export function batchEnd(b: Batch): number {
  return b.msgs.length === 0 ? 0 : b.seq + b.msgs.length - 1;
}

export function decodeReady(d: unknown): Ready {
  const o = obj(d, "ready");
  const rooms = o["rooms"] ?? [];
  if (!Array.isArray(rooms)) throw bad("ready.rooms is not an array");
  const r: Ready = {
    user: str(o, "user", "ready"),
    session: str(o, "session", "ready"),
    heartbeatMs: int(o, "heartbeat_ms", "ready"),
    rooms: rooms.map((v: unknown) => {
      const ro = obj(v, "ready.rooms[]");
      return { room: room(ro, "ready.rooms[]"), seq: int(ro, "seq", "ready.rooms[]"), readSeq: int(ro, "read_seq", "ready.rooms[]") };
    }),
    more: o["more"] === true,
  };
  if (o["expires_at"] !== undefined && o["expires_at"] !== 0) r.expiresAt = int(o, "expires_at", "ready");
  return r;
}

/** Decodes a page of the user's rooms: the rooms op's reply, GET /v1/me/rooms's answer. */
export function decodeRoomsPage(d: unknown): RoomsPage {
  const o = obj(d, "rooms page");
  const rooms = o["rooms"] ?? [];
  if (!Array.isArray(rooms)) throw bad("rooms page.rooms is not an array");
  return {
    rooms: rooms.map((v: unknown) => {
      const ro = obj(v, "rooms[]");
      return { room: room(ro, "rooms[]"), name: str(ro, "name", "rooms[]"), seq: int(ro, "seq", "rooms[]"), readSeq: int(ro, "read_seq", "rooms[]") };
    }),
    more: o["more"] === true,
  };
}

/** Decodes {room, seq}: a tick, a read event, a subscribed reply. */
export function decodeRoomSeq(d: unknown, what: string): { room: string; seq: number } {
  const o = obj(d, what);
  return { room: room(o, what), seq: int(o, "seq", what) };
}

/**
 * Decodes a ticks event's d: {"rooms":[{room, seq}...]}, the newest seqs of the passive
 * rooms that changed since the previous ticks event.
 */
export function decodeTicks(d: unknown): { room: string; seq: number }[] {
  const o = obj(d, "ticks");
  const rooms = o["rooms"];
  if (!Array.isArray(rooms)) throw bad("ticks.rooms is not an array");
  return rooms.map((v: unknown) => decodeRoomSeq(v, "ticks.rooms[]"));
}

export function decodeMember(d: unknown): MemberChange {
  const o = obj(d, "member");
  const action = str(o, "action", "member");
  if (action !== "join" && action !== "leave") throw bad(`member.action ${JSON.stringify(action)} is unknown`);
  return { room: room(o, "member"), user: str(o, "user", "member"), action };
}

export function decodeAck(d: unknown): Ack {
  const o = obj(d, "ack");
  return { room: room(o, "ack"), nonce: str(o, "nonce", "ack"), seq: int(o, "seq", "ack", 1), ts: int(o, "ts", "ack") };
}

/** Decodes refresh's answer: the new expiry, undefined for a token without exp. */
export function decodeRefreshed(d: unknown): number | undefined {
  const o = obj(d, "refresh answer");
  const at = o["expires_at"] === undefined ? 0 : int(o, "expires_at", "refresh answer");
  return at === 0 ? undefined : at;
}

/** A page of a room's online members (the presence op, GET /v1/rooms/{room}/presence). */
export interface PresencePage {
  room: string;
  /** How many of the room's members are online in all. */
  online: number;
  /** A page of them, ordered by user id. */
  users: string[];
  /** Whether more follow the page (ask again with after = the last user). */
  more: boolean;
}

/**
 * A presence event of a room subscribed with presence: the online count, and who came
 * online (on) or went offline (off) since the room's previous presence event. The first
 * one after a subscribe has the count and empty lists.
 */
export interface PresenceChange {
  room: string;
  online: number;
  on: string[];
  off: string[];
}

/** Who is typing in a subscribed room (the user itself aside). Show each for about 5 s unless named again. */
export interface Typing {
  room: string;
  users: string[];
}

function ids(o: Obj, key: string, what: string): string[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v) || !v.every((u) => typeof u === "string" && validId(u))) throw bad(`${what}.${key} is not a list of ids`);
  return v as string[];
}

export function decodePresencePage(d: unknown): PresencePage {
  const o = obj(d, "presence");
  return { room: room(o, "presence"), online: int(o, "online", "presence"), users: ids(o, "users", "presence"), more: o["more"] === true };
}

export function decodePresenceChange(d: unknown): PresenceChange {
  const o = obj(d, "presence");
  return { room: room(o, "presence"), online: int(o, "online", "presence"), on: ids(o, "on", "presence"), off: ids(o, "off", "presence") };
}

export function decodeTyping(d: unknown): Typing {
  const o = obj(d, "typing");
  return { room: room(o, "typing"), users: ids(o, "users", "typing") };
}

/** Turns an error frame's d ({code, message}) into a LaneError. */
export function decodeError(d: unknown, room?: string): LaneError {
  if (!isObj(d) || typeof d["code"] !== "string" || d["code"] === "") {
    return bad(`undecodable error: ${JSON.stringify(d)}`);
  }
  const message = typeof d["message"] === "string" ? d["message"] : "";
  return new LaneError(d["code"], message, room === undefined ? {} : { room });
}
