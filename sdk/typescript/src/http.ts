// A small helper for laneIM's HTTP API (docs/protocol.md, "HTTP API"), on the global
// fetch or one passed in.

import { LaneError } from "./errors.js";
import { batchMessages, decodeBatch, decodePresencePage, decodeRoomsPage, validId, validNonce, type Message, type PresencePage, type RoomsPage } from "./frames.js";
import { newNonce } from "./nonce.js";

/** A token, or a function returning the current one (called for every request or connect). */
export type TokenSource = string | (() => string | Promise<string>);

/** What the helper needs of a fetch answer. */
export interface FetchResponseLike {
  readonly status: number;
  text(): Promise<string>;
}

/** What the helper needs of fetch; the global fetch fits. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<FetchResponseLike>;

export interface HttpOptions {
  /** http(s)://host:port of a gateway, without /v1. */
  baseUrl: string;
  /** Sent as Authorization: Bearer; none without it. */
  token?: TokenSource;
  /** Defaults to the global fetch. */
  fetch?: FetchLike;
  /** Bound on each request (default 15000 ms). */
  timeoutMs?: number;
  /** Headers sent with every request besides the helper's own. */
  headers?: Record<string, string>;
}

export interface RoomInfo {
  room: string;
  name: string;
  owner: string;
  public: boolean;
}

export interface RoomDetails extends RoomInfo {
  /** The room's last seq. */
  seq: number;
  /** How many members it has. */
  members: number;
  /** Its moderators, in id order (absent from servers before moderators). */
  moderators?: string[];
}

/** How long a mute or a ban lasts (neither: until lifted) and why (at most 200 bytes). */
export interface SanctionOptions {
  /** When it ends, Unix ms. */
  until?: number | undefined;
  /** Or: how long from now, ms. */
  durationMs?: number | undefined;
  reason?: string | undefined;
}

/** One muted or banned user: until absent for no end; by: who imposed it. */
export interface Sanction {
  user: string;
  until?: number;
  by: string;
  reason?: string;
}

export interface SanctionPage {
  users: Sanction[];
  more: boolean;
}

function sanctionBody(options: SanctionOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (options.until !== undefined) body["until"] = options.until;
  if (options.durationMs !== undefined) body["duration_ms"] = options.durationMs;
  if (options.reason !== undefined) body["reason"] = options.reason;
  return body;
}

function decodeSanctionPage(d: unknown): SanctionPage {
  const o = (d ?? {}) as { users?: unknown; more?: unknown };
  if (!Array.isArray(o.users ?? []) || (o.more !== undefined && typeof o.more !== "boolean")) {
    throw new LaneError("bad_frame", "a page of mutes or bans is not {users, more}");
  }
  const users = ((o.users ?? []) as Record<string, unknown>[]).map((u): Sanction => {
    if (typeof u?.["user"] !== "string" || typeof u["by"] !== "string") throw new LaneError("bad_frame", "a mute or ban has no user or by");
    const s: Sanction = { user: u["user"], by: u["by"] };
    if (typeof u["until"] === "number") s.until = u["until"];
    if (typeof u["reason"] === "string") s.reason = u["reason"];
    return s;
  });
  return { users, more: o.more === true };
}

/** Bounds of a history page: exclusive seqs, limit 1 to 200 (default 50). */
export interface PageOptions {
  before?: number | undefined;
  after?: number | undefined;
  limit?: number | undefined;
}

/** A page of a room's messages in ascending seq order. */
export interface Page {
  room: string;
  messages: Message[];
  /** Whether more messages lie beyond the page (newer with after, older otherwise). */
  more: boolean;
}

/** The user id (claim sub) of a JWT, read without verifying it; undefined if unreadable. */
export function tokenUser(token: string): string | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(json);
    if (typeof claims === "object" && claims !== null && "sub" in claims && typeof claims.sub === "string") {
      return claims.sub;
    }
  } catch {
    // not a JWT
  }
  return undefined;
}

/**
 * The WebSocket endpoint of an HTTP base URL: http://h:p -> ws://h:p/v1/ws, https ->
 * wss. A ws or wss URL is completed the same way.
 */
export function wsUrl(base: string): string {
  const u = new URL(base);
  switch (u.protocol) {
    case "http:":
    case "ws:":
      u.protocol = "ws:";
      break;
    case "https:":
    case "wss:":
      u.protocol = "wss:";
      break;
    default:
      throw new LaneError("bad_request", `url ${base}: scheme must be http(s) or ws(s)`);
  }
  const path = u.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/v1/ws")) u.pathname = `${path}/v1/ws`;
  return u.toString();
}

const statusCodes: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  429: "rate_limited",
  502: "unavailable",
  503: "unavailable",
  504: "unavailable",
};

/** The LaneError of a non-2xx answer: its {"error":{code,message}}, or the status alone. */
export function httpError(status: number, answer: string): LaneError {
  try {
    const v: unknown = JSON.parse(answer);
    if (typeof v === "object" && v !== null && "error" in v) {
      const e = v.error;
      if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" && e.code !== "") {
        const message = "message" in e && typeof e.message === "string" ? e.message : "";
        return new LaneError(e.code, message, { status });
      }
    }
  } catch {
    // not JSON: a proxy's answer, or Go's plain-text ones
  }
  const text = answer.trim().slice(0, 200);
  return new LaneError(statusCodes[status] ?? "internal", text || `HTTP ${status}`, { status });
}

function checkId(kind: string, id: string): string {
  if (!validId(id)) throw new LaneError("bad_request", `${kind} ${JSON.stringify(id)} is not a valid id`);
  return id;
}

function query(params: Record<string, number | string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}

/** Calls laneIM's HTTP API with a bearer token. Every failure is a LaneError with status. */
function checkSeq(seq: number): number {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new LaneError("bad_request", `seq ${seq} is no message's`);
  return seq;
}

export class LaneHttp {
  readonly baseUrl: string;
  readonly #token: TokenSource | undefined;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;

  constructor(options: HttpOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (f === undefined) throw new LaneError("bad_request", "no fetch: pass one in the options");
    this.#fetch = f;
    this.#timeoutMs = options.timeoutMs ?? 15000;
    this.#headers = { ...options.headers };
  }

  /** POST /v1/dev/token: a token of user from a server in dev mode (404 outside it). */
  static async devToken(baseUrl: string, user: string, options: Omit<HttpOptions, "baseUrl" | "token"> = {}): Promise<{ token: string; expiresAt: number }> {
    const out = await new LaneHttp({ ...options, baseUrl }).request("POST", "/v1/dev/token", { user });
    if (typeof out !== "object" || out === null || !("token" in out) || typeof out.token !== "string") {
      throw new LaneError("bad_frame", "dev token answer has no token");
    }
    const expiresAt = "expires_at" in out && typeof out.expires_at === "number" ? out.expires_at : 0;
    return { token: out.token, expiresAt };
  }

  /**
   * Sends method path with body as JSON (none when undefined) and returns the decoded
   * 2xx answer (undefined when empty, as 204 is).
   */
  async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { ...this.#headers, Accept: "application/json" };
    const token = typeof this.#token === "function" ? await this.#token() : this.#token;
    if (token !== undefined && token !== "") headers["Authorization"] = `Bearer ${token}`;
    const init: Parameters<FetchLike>[1] = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const abort = new AbortController();
    init.signal = abort.signal;
    const timer = setTimeout(() => abort.abort(), this.#timeoutMs);
    let status: number;
    let answer: string;
    // Called as a plain function, not as a method of this: a browser's fetch throws
    // "Illegal invocation" when its this is anything but the window (or undefined).
    const fetch = this.#fetch;
    try {
      const res = await fetch(this.baseUrl + path, init);
      status = res.status;
      answer = await res.text();
    } catch (err) {
      const timedOut = abort.signal.aborted;
      throw new LaneError(timedOut ? "timeout" : "unavailable", `${method} ${path}: ${timedOut ? "no answer in time" : String(err)}`);
    } finally {
      clearTimeout(timer);
    }
    if (status < 200 || status > 299) throw httpError(status, answer);
    if (answer.trim() === "") return undefined;
    try {
      return JSON.parse(answer) as unknown;
    } catch {
      throw new LaneError("bad_frame", `${method} ${path}: answer is not JSON`, { status });
    }
  }

  /** POST /v1/rooms: creates a room; the caller becomes owner and member. */
  async createRoom(options: { room?: string; name?: string; public?: boolean } = {}): Promise<RoomInfo> {
    if (options.room !== undefined) checkId("room", options.room);
    return (await this.request("POST", "/v1/rooms", options)) as RoomInfo;
  }

  /** GET /v1/rooms/{room}. */
  async getRoom(room: string): Promise<RoomDetails> {
    return (await this.request("GET", `/v1/rooms/${checkId("room", room)}`)) as RoomDetails;
  }

  /** PUT /v1/rooms/{room}/members/{user}: adds user (the owner may add anyone). */
  async addMember(room: string, user: string): Promise<void> {
    await this.request("PUT", `/v1/rooms/${checkId("room", room)}/members/${checkId("user", user)}`);
  }

  /** DELETE /v1/rooms/{room}/members/{user}: removes user (the owner may remove anyone). */
  async removeMember(room: string, user: string): Promise<void> {
    await this.request("DELETE", `/v1/rooms/${checkId("room", room)}/members/${checkId("user", user)}`);
  }

  /** Joins room as the token's user (a public room, or one the user was added to). */
  async join(room: string): Promise<void> {
    await this.addMember(room, await this.#me());
  }

  /** Leaves room as the token's user. */
  async leave(room: string): Promise<void> {
    await this.removeMember(room, await this.#me());
  }

  /** GET /v1/rooms/{room}/presence: how many members are online, and a page of them by id (members only). */
  async presence(room: string, options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<PresencePage> {
    return decodePresencePage(await this.request("GET", `/v1/rooms/${checkId("room", room)}/presence${query({ ...options })}`));
  }

  /** GET /v1/rooms/{room}/members: user ids ordered by id, after the id after. */
  async members(room: string, options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<{ members: string[]; more: boolean }> {
    const out = (await this.request("GET", `/v1/rooms/${checkId("room", room)}/members${query({ ...options })}`)) as {
      members: string[] | null;
      more: boolean;
    };
    return { members: out.members ?? [], more: out.more };
  }

  /** GET /v1/rooms/{room}/messages: a page of history, as the history op. */
  async messages(room: string, options: PageOptions = {}): Promise<Page> {
    const b = decodeBatch(await this.request("GET", `/v1/rooms/${checkId("room", room)}/messages${query({ ...options })}`));
    return { room: b.room, messages: batchMessages(b), more: b.more ?? false };
  }

  /**
   * POST /v1/rooms/{room}/messages: sends body with nonce (a fresh one by default).
   * A 503 means no ack came in time: call again with the same nonce, which is stored once.
   */
  async postMessage(room: string, body: unknown, options: { nonce?: string } = {}): Promise<{ seq: number; ts: number; nonce: string }> {
    const nonce = options.nonce ?? newNonce();
    if (!validNonce(nonce)) throw new LaneError("bad_request", "nonce must be 1 to 64 printable ASCII characters");
    const out = (await this.request("POST", `/v1/rooms/${checkId("room", room)}/messages`, { nonce, body: body ?? null })) as {
      seq: number;
      ts: number;
    };
    return { seq: out.seq, ts: out.ts, nonce };
  }

  /** PATCH /v1/rooms/{room}/messages/{seq}: edits the user's message seq, as the edit op. */
  async editMessage(room: string, seq: number, body: unknown, options: { nonce?: string } = {}): Promise<{ seq: number; ts: number; nonce: string }> {
    const nonce = options.nonce ?? newNonce();
    if (!validNonce(nonce)) throw new LaneError("bad_request", "nonce must be 1 to 64 printable ASCII characters");
    const out = (await this.request("PATCH", `/v1/rooms/${checkId("room", room)}/messages/${checkSeq(seq)}`, { nonce, body: body ?? null })) as {
      seq: number;
      ts: number;
    };
    return { seq: out.seq, ts: out.ts, nonce };
  }

  /** DELETE /v1/rooms/{room}/messages/{seq}: deletes message seq, as the delete op. */
  async deleteMessage(room: string, seq: number, options: { nonce?: string } = {}): Promise<{ seq: number; ts: number; nonce: string }> {
    const nonce = options.nonce ?? newNonce();
    if (!validNonce(nonce)) throw new LaneError("bad_request", "nonce must be 1 to 64 printable ASCII characters");
    const out = (await this.request("DELETE", `/v1/rooms/${checkId("room", room)}/messages/${checkSeq(seq)}`, { nonce })) as {
      seq: number;
      ts: number;
    };
    return { seq: out.seq, ts: out.ts, nonce };
  }

  /** PATCH /v1/rooms/{room}: renames the room (its owner and moderators). */
  async renameRoom(room: string, name: string): Promise<RoomInfo> {
    return (await this.request("PATCH", `/v1/rooms/${checkId("room", room)}`, { name })) as RoomInfo;
  }

  /** PUT /v1/rooms/{room}/owner: gives the room to user, a member (its owner). */
  async transferRoom(room: string, user: string): Promise<RoomInfo> {
    return (await this.request("PUT", `/v1/rooms/${checkId("room", room)}/owner`, { user: checkId("user", user) })) as RoomInfo;
  }

  /** DELETE /v1/rooms/{room}: deletes the room and its history (its owner). */
  async deleteRoom(room: string): Promise<void> {
    await this.request("DELETE", `/v1/rooms/${checkId("room", room)}`);
  }

  /** PUT /v1/rooms/{room}/moderators/{user}: appoints a member moderator (the owner). */
  async addModerator(room: string, user: string): Promise<void> {
    await this.request("PUT", `/v1/rooms/${checkId("room", room)}/moderators/${checkId("user", user)}`);
  }

  /** DELETE /v1/rooms/{room}/moderators/{user}: removes a moderator (the owner). */
  async removeModerator(room: string, user: string): Promise<void> {
    await this.request("DELETE", `/v1/rooms/${checkId("room", room)}/moderators/${checkId("user", user)}`);
  }

  /**
   * PUT /v1/rooms/{room}/mutes/{user}: mutes user (the owner and moderators): its sends
   * and edits fail with "muted" until options.until (Unix ms), for options.durationMs,
   * or, with neither, until unmute.
   */
  async mute(room: string, user: string, options: SanctionOptions = {}): Promise<void> {
    await this.request("PUT", `/v1/rooms/${checkId("room", room)}/mutes/${checkId("user", user)}`, sanctionBody(options));
  }

  /** DELETE /v1/rooms/{room}/mutes/{user}: lifts user's mute. */
  async unmute(room: string, user: string): Promise<void> {
    await this.request("DELETE", `/v1/rooms/${checkId("room", room)}/mutes/${checkId("user", user)}`);
  }

  /** GET /v1/rooms/{room}/mutes: the muted users ordered by id, after the id after (the owner and moderators). */
  async mutes(room: string, options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<SanctionPage> {
    return decodeSanctionPage(await this.request("GET", `/v1/rooms/${checkId("room", room)}/mutes${query({ ...options })}`));
  }

  /**
   * PUT /v1/rooms/{room}/bans/{user}: bans user (the owner and moderators): it leaves
   * the room and may not join or be added until the ban ends or unban.
   */
  async ban(room: string, user: string, options: SanctionOptions = {}): Promise<void> {
    await this.request("PUT", `/v1/rooms/${checkId("room", room)}/bans/${checkId("user", user)}`, sanctionBody(options));
  }

  /** DELETE /v1/rooms/{room}/bans/{user}: lifts user's ban (it is not added back). */
  async unban(room: string, user: string): Promise<void> {
    await this.request("DELETE", `/v1/rooms/${checkId("room", room)}/bans/${checkId("user", user)}`);
  }

  /** GET /v1/rooms/{room}/bans: the banned users, as mutes. */
  async bans(room: string, options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<SanctionPage> {
    return decodeSanctionPage(await this.request("GET", `/v1/rooms/${checkId("room", room)}/bans${query({ ...options })}`));
  }

  /** PUT /v1/rooms/{room}/read: sets the read mark; every session of the user gets a read event. */
  async read(room: string, seq: number): Promise<void> {
    await this.request("PUT", `/v1/rooms/${checkId("room", room)}/read`, { seq });
  }

  /**
   * GET /v1/me/rooms: a page of the user's rooms ordered by id, with seq and read
   * mark, after the room id after (limit 1 to 500, default 500). Page on more, not on
   * the count: a page may hold fewer rooms than limit and still have more.
   */
  async myRooms(options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<RoomsPage> {
    return decodeRoomsPage(await this.request("GET", `/v1/me/rooms${query({ ...options })}`));
  }

  /**
   * POST /v1/me/rooms/leave: leaves up to 500 rooms at once; resolves with those the
   * user was a member of, in the order given.
   */
  async leaveRooms(rooms: readonly string[]): Promise<string[]> {
    for (const r of rooms) checkId("room", r);
    const out = (await this.request("POST", "/v1/me/rooms/leave", { rooms })) as { left: string[] | null };
    return out.left ?? [];
  }

  /** PUT /v1/me/blocks/{user}: refuses user's adds of the caller to rooms until unblock. */
  async block(user: string): Promise<void> {
    await this.request("PUT", `/v1/me/blocks/${checkId("user", user)}`);
  }

  /** DELETE /v1/me/blocks/{user}. */
  async unblock(user: string): Promise<void> {
    await this.request("DELETE", `/v1/me/blocks/${checkId("user", user)}`);
  }

  /** GET /v1/me/blocks: the users the caller blocks, ordered by id, after the id after. */
  async blocks(options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<{ users: string[]; more: boolean }> {
    const out = (await this.request("GET", `/v1/me/blocks${query({ ...options })}`)) as { users: string[] | null; more: boolean };
    return { users: out.users ?? [], more: out.more };
  }

  /** GET /healthz: whether the gateway is connected to NATS and logic answers. */
  async health(): Promise<{ ok: boolean; gateway: string; connections: number }> {
    return (await this.request("GET", "/healthz")) as { ok: boolean; gateway: string; connections: number };
  }

  async #me(): Promise<string> {
    const token = typeof this.#token === "function" ? await this.#token() : this.#token;
    const user = token === undefined ? undefined : tokenUser(token);
    if (user === undefined) throw new LaneError("bad_request", "the token names no user (claim sub)");
    return user;
  }
}

/** Options of LaneServerApi: a gateway and one of the server's api_keys. */
export interface ServerApiOptions extends Omit<HttpOptions, "token" | "headers"> {
  /** One of the server's api_keys (laneim dev keeps its in <data>/api_key). */
  apiKey: string;
}

/** The user a server API request acts as when it names none. */
export const defaultServerUser = "system";

/**
 * laneIM's server API (docs/protocol.md, "Server API"), for a product's backend and
 * never a browser: the HTTP API with an API key, acting as any user, with owner rights
 * in every room (membership not needed to post, read or list). Every failure is a
 * LaneError with status.
 */
export class LaneServerApi {
  readonly #options: ServerApiOptions;

  constructor(options: ServerApiOptions) {
    if (options.apiKey === "") throw new LaneError("bad_request", "an API key is required");
    this.#options = options;
  }

  /** A LaneHttp acting as user (a bot, a system user): every route of the HTTP API, with the server's rights. */
  as(user: string = defaultServerUser): LaneHttp {
    const { apiKey, ...rest } = this.#options;
    return new LaneHttp({ ...rest, token: apiKey, headers: { "Laneim-User": checkId("user", user) } });
  }

  /** Posts body into room as user, who need not be a member; the same nonce is the same message. */
  async post(room: string, user: string, body: unknown, options: { nonce?: string } = {}): Promise<{ seq: number; ts: number; nonce: string }> {
    return this.as(user).postMessage(room, body, options);
  }

  /** Creates a room owned by owner. */
  async createRoom(owner: string, options: { room?: string; name?: string; public?: boolean } = {}): Promise<RoomInfo> {
    return this.as(owner).createRoom(options);
  }

  /** Adds user to room; its sessions and the members' get a member event. */
  async addMember(room: string, user: string): Promise<void> {
    await this.as().addMember(room, user);
  }

  /** Removes user from room. */
  async removeMember(room: string, user: string): Promise<void> {
    await this.as().removeMember(room, user);
  }

  /** Renames room. */
  async renameRoom(room: string, name: string): Promise<RoomInfo> {
    return this.as().renameRoom(room, name);
  }

  /** Deletes room and its history. */
  async deleteRoom(room: string): Promise<void> {
    await this.as().deleteRoom(room);
  }

  /** How many members of room are online, and a page of them by id. */
  async presence(room: string, options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<PresencePage> {
    return this.as().presence(room, options);
  }

  /** POST /v1/users/{user}/kick: closes every session of user with 4003 and reason (at most 120 bytes). */
  async kick(user: string, reason?: string): Promise<void> {
    await this.as().request("POST", `/v1/users/${checkId("user", user)}/kick`, reason === undefined ? undefined : { reason });
  }
}
