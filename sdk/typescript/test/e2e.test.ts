// End to end against a real `laneim dev` (built from this repository): chat between
// two clients, a reconnect that catches up with since, unread counts, history pages,
// refresh, and a server restart. Loopback only; every wait is bounded.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
  Client,
  LaneError,
  LaneHttp,
  LaneServerApi,
  type ClientOptions,
  type CloseInfo,
  type Message,
  type PresenceChange,
  type RoomChange,
  type Typing,
  type WebSocketConstructor,
} from "@laneim/client";

import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { LaneServer, workDir } from "./server.js";

const TEST_TIMEOUT = 60_000;

/** Resolves when cond() holds, polling every 10 ms; rejects after timeoutMs. */
async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A WebSocket constructor that records each connection and the frames sent on it,
 * and that while blocked dials a closed loopback port instead (so reconnect attempts
 * fail until unblocked).
 */
class Sockets {
  readonly all: WebSocket[] = [];
  readonly sent: string[][] = [];
  blocked = false;
  readonly ctor: WebSocketConstructor;

  constructor() {
    const t = this;
    this.ctor = class extends WebSocket {
      readonly #frames: string[] = [];
      constructor(url: string) {
        super(t.blocked ? "ws://127.0.0.1:1/v1/ws" : url);
        t.all.push(this);
        t.sent.push(this.#frames);
      }
      override send(data: string): void {
        this.#frames.push(data);
        super.send(data);
      }
    };
  }

  get last(): WebSocket {
    const ws = this.all.at(-1);
    if (ws === undefined) throw new Error("no socket");
    return ws;
  }

  /** The frames of op sent on the latest connection. */
  lastSent(op: string): { op: string; d: Record<string, unknown> }[] {
    return (this.sent.at(-1) ?? []).map((s) => JSON.parse(s) as { op: string; d: Record<string, unknown> }).filter((f) => f.op === op);
  }
}

interface Recorded {
  messages: Message[];
  closes: CloseInfo[];
  errors: LaneError[];
}

function record(c: Client): Recorded {
  const r: Recorded = { messages: [], closes: [], errors: [] };
  c.on("message", (m) => r.messages.push(m));
  c.on("close", (e) => r.closes.push(e));
  c.on("error", (e) => r.errors.push(e));
  return r;
}

/** Asserts that messages are exactly seqs from..to of room, in order. */
function assertRun(messages: Message[], room: string, from: number, to: number): void {
  const got = messages.filter((m) => m.room === room).map((m) => m.seq);
  assert.deepEqual(got, Array.from({ length: to - from + 1 }, (_, i) => from + i));
}

describe("laneim dev end to end", () => {
  let server: LaneServer;
  let work: { dir: string; remove(): Promise<void> };
  const clients: Client[] = [];
  const bodies = new Map<number, unknown>(); // general's seq -> body, from acks
  const onExit = (): void => server?.killNow();

  function client(token: string | (() => Promise<string>), options: Partial<ClientOptions> = {}): Client {
    const c = new Client({
      url: server.base,
      ...(typeof token === "string" ? { token } : { tokenProvider: token }),
      backoffMinMs: 50,
      backoffMaxMs: 500,
      requestTimeoutMs: 10_000,
      ...options,
    });
    clients.push(c);
    return c;
  }

  const token = async (user: string): Promise<string> => (await LaneHttp.devToken(server.base, user)).token;
  const http = async (user: string): Promise<LaneHttp> => new LaneHttp({ baseUrl: server.base, token: await token(user) });

  /** Sends and records the body by seq. */
  async function send(c: Client, body: unknown): Promise<number> {
    const { seq } = await c.send("general", body);
    bodies.set(seq, body);
    return seq;
  }

  before(
    async () => {
      work = await workDir();
      process.once("exit", onExit);
      server = await LaneServer.start(work.dir);
    },
    { timeout: 11 * 60_000 }, // the first `go build` of a fresh clone
  );

  after(
    async () => {
      for (const c of clients) c.close();
      await server?.stop();
      process.removeListener("exit", onExit);
      await work?.remove();
    },
    { timeout: 30_000 },
  );

  let alice: Client;
  let bob: Client;
  let bobSockets: Sockets;
  let aliceRec: Recorded;
  let bobRec: Recorded;

  it("two clients chat: send, ack, receive in seq order", { timeout: TEST_TIMEOUT }, async () => {
    const aliceHttp = await http("alice");
    const room = await aliceHttp.createRoom({ room: "general", name: "General", public: true });
    assert.deepEqual(room, { room: "general", name: "General", owner: "alice", public: true });
    await (await http("bob")).join("general");
    assert.deepEqual((await aliceHttp.members("general")).members, ["alice", "bob"]);

    alice = client(await token("alice"));
    bobSockets = new Sockets();
    bob = client(await token("bob"), { WebSocket: bobSockets.ctor, backoffMinMs: 100, backoffMaxMs: 200 });
    aliceRec = record(alice);
    bobRec = record(bob);
    const ready = await alice.connect();
    assert.equal(ready.user, "alice");
    assert.ok(ready.expiresAt !== undefined && ready.expiresAt > Date.now());
    assert.deepEqual(ready.rooms, [{ room: "general", seq: 0, readSeq: 0 }]);
    assert.equal(ready.more, false);
    await bob.connect();
    assert.deepEqual(await alice.subscribe("general"), { room: "general", seq: 0 });
    await bob.subscribe("general");

    // Pipelined sends from one connection are stored in the order sent.
    const seqs = await Promise.all(Array.from({ length: 20 }, (_, i) => send(alice, { text: `hello ${i}`, i })));
    assert.deepEqual(seqs, Array.from({ length: 20 }, (_, i) => i + 1));
    const reply = await send(bob, { text: "hi alice", reply_to: 20 });
    assert.equal(reply, 21);

    await until(() => bobRec.messages.length === 21 && aliceRec.messages.length === 21, "21 messages each");
    for (const r of [aliceRec, bobRec]) {
      assertRun(r.messages, "general", 1, 21);
      for (const m of r.messages) assert.deepEqual(m.body, bodies.get(m.seq));
      assert.equal(r.messages[20]?.user, "bob");
      assert.equal(r.messages[0]?.user, "alice");
      assert.ok((r.messages[0]?.ts ?? 0) > Date.now() - 60_000);
    }
  });

  it("a killed socket reconnects and catches up with since: no loss, no duplicate", { timeout: TEST_TIMEOUT }, async () => {
    const reconnects: number[] = [];
    bob.on("reconnect", (e) => reconnects.push(e.attempts));
    const lastBefore = bobRec.messages.at(-1)?.seq ?? 0;

    bobSockets.blocked = true; // reconnect attempts fail until unblocked
    bobSockets.last.close(4000, "test kills the socket");
    await until(() => bobRec.closes.length === 1, "bob's close");
    assert.equal(bobRec.closes[0]?.willReconnect, true);
    assert.equal(bob.connected, false);

    // Meanwhile alice sends, and so does bob (his send waits for the connection).
    const bobSend = send(bob, "sent while down");
    for (let i = 0; i < 10; i++) await send(alice, `while bob was away ${i}`);
    await sleep(300); // a few failed attempts
    assert.equal(bob.connected, false);
    bobSockets.blocked = false;

    const bobSeq = await bobSend;
    await until(() => reconnects.length === 1, "bob's reconnect");
    assert.ok((reconnects[0] ?? 0) >= 2, `attempts ${reconnects[0]}`);
    assert.deepEqual(bobSockets.lastSent("subscribe").map((f) => f.d), [{ room: "general", since: lastBefore }]);
    await until(() => bobRec.messages.length === 32, "bob's catch-up");
    assert.equal(bobSeq, 32);
    assertRun(bobRec.messages, "general", 1, 32);
    for (const m of bobRec.messages) assert.deepEqual(m.body, bodies.get(m.seq));
    await until(() => aliceRec.messages.length === 32, "alice has bob's message");
    assertRun(aliceRec.messages, "general", 1, 32);

    // Live again.
    await send(alice, "back to live");
    await until(() => bobRec.messages.length === 33, "live message");
    assertRun(bobRec.messages, "general", 1, 33);
    assert.equal(bob.stats.gaps, 0);
  });

  it("unread counts move with ticks, reads and own sends", { timeout: TEST_TIMEOUT }, async () => {
    const carolHttp = await http("carol");
    await carolHttp.join("general");
    const carolToken = await token("carol");
    const carol = client(carolToken); // passive in general: ticks, no bodies
    const carol2 = client(carolToken, { readOnSend: false }); // a second session of carol
    const carolMessages = record(carol).messages;
    await carol.connect();
    await carol2.connect();
    const seq = (await alice.history("general", { limit: 1 })).messages[0]?.seq ?? 0;
    assert.equal(seq, 33);
    assert.equal(carol.unread("general"), 33);
    assert.deepEqual(carol.rooms(), [{ room: "general", seq: 33, readSeq: 0, unread: 33 }]);

    const ticks: number[] = [];
    carol.on("tick", (t) => ticks.push(t.seq));
    await send(alice, "one more");
    await until(() => carol.unread("general") === 34, "tick to 34");
    assert.ok(ticks.includes(34));
    assert.equal(carolMessages.length, 0, "a passive session gets no bodies");

    await carol.read("general");
    assert.equal(carol.unread("general"), 0);
    await until(() => carol2.unread("general") === 0, "carol2's read event");

    for (let i = 0; i < 3; i++) await send(alice, `unread ${i}`);
    await until(() => carol.unread("general") === 3 && carol2.unread("general") === 3, "3 unread in both sessions");

    // A read over HTTP reaches every session.
    await carolHttp.read("general", 36);
    await until(() => carol.unread("general") === 1 && carol2.unread("general") === 1, "read event");

    // Carol writes: her session marks the room read up to her message, and the other hears of it.
    const mine = await send(carol, "carol here");
    assert.equal(mine, 38);
    assert.equal(carol.unread("general"), 0);
    await until(() => carol2.unread("general") === 0, "carol2 sees carol's read");
    const rooms = await carolHttp.myRooms();
    assert.deepEqual(rooms, { rooms: [{ room: "general", name: "General", seq: 38, readSeq: 38 }], more: false });
    assert.deepEqual(await carol.listRooms(), rooms);

    // Alice is subscribed: her count follows msgs. Her own last message (37) marked
    // the room read up to it, so carol's is her one unread message.
    await until(() => alice.unread("general") === 1, "alice's unread from msgs");
    assert.deepEqual(alice.rooms(), [{ room: "general", seq: 38, readSeq: 37, unread: 1 }]);
  });

  it("history pages back and forth, over WebSocket and HTTP alike", { timeout: TEST_TIMEOUT }, async () => {
    const newest = await bob.history("general", { limit: 10 });
    assert.deepEqual(newest.messages.map((m) => m.seq), [29, 30, 31, 32, 33, 34, 35, 36, 37, 38]);
    assert.equal(newest.more, true);
    const older = await bob.history("general", { before: 29, limit: 10 });
    assert.deepEqual(older.messages.map((m) => m.seq), [19, 20, 21, 22, 23, 24, 25, 26, 27, 28]);
    const first = await bob.history("general", { after: 0, limit: 5 });
    assert.deepEqual(first.messages.map((m) => m.seq), [1, 2, 3, 4, 5]);
    assert.equal(first.more, true);
    const tail = await bob.history("general", { after: 35 });
    assert.deepEqual(tail.messages.map((m) => m.seq), [36, 37, 38]);
    assert.equal(tail.more, false);
    for (const m of [...newest.messages, ...older.messages, ...first.messages]) assert.deepEqual(m.body, bodies.get(m.seq));

    const overHttp = await (await http("bob")).messages("general", { before: 29, limit: 10 });
    assert.deepEqual(overHttp, older);

    await assert.rejects(bob.history("general", { limit: 500 }), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
    await assert.rejects(bob.history("nosuchroom"), (e: unknown) => e instanceof LaneError && e.code === "forbidden");
  });

  it("refresh replaces the token; a token provider refreshes before expiry", { timeout: TEST_TIMEOUT }, async () => {
    const before = alice.expiresAt ?? 0;
    await sleep(1100); // exp has second precision
    const { expiresAt } = await alice.refresh(await token("alice"));
    assert.ok(expiresAt !== undefined && expiresAt > before, `${expiresAt} > ${before}`);
    assert.equal(alice.expiresAt, expiresAt);
    await assert.rejects(alice.refresh(await token("bob")), (e: unknown) => e instanceof LaneError && e.code === "forbidden");
    await assert.rejects(alice.refresh("not a token"), (e: unknown) => e instanceof LaneError && e.code === "unauthorized");

    // Dave's tokens last 5 s; the session outlives the first one by refreshing.
    await (await http("dave")).join("general");
    let calls = 0;
    const dave = client(async () => {
      calls++;
      return server.token("dave", "5s");
    });
    const daveRec = record(dave);
    const refreshes: (number | undefined)[] = [];
    dave.on("refresh", (e) => refreshes.push(e.expiresAt));
    const ready = await dave.connect();
    const firstExpiry = ready.expiresAt ?? 0;
    assert.ok(firstExpiry > Date.now() && firstExpiry <= Date.now() + 5000);
    await until(() => refreshes.length >= 1, "auto-refresh", 10_000);
    assert.ok((refreshes[0] ?? 0) > firstExpiry);
    await sleep(Math.max(0, firstExpiry - Date.now()) + 1500);
    assert.deepEqual(daveRec.closes, [], "the session outlived its first token");
    assert.ok(calls >= 2);
    const { seq } = await dave.send("general", "still here");
    bodies.set(seq, "still here");
    dave.close();
  });

  it("a user in more rooms than ready's first page gets the rest paged", { timeout: TEST_TIMEOUT }, async () => {
    const erinHttp = await http("erin");
    const names = Array.from({ length: 505 }, (_, i) => `erin-${String(i).padStart(3, "0")}`);
    for (let i = 0; i < names.length; i += 16) {
      await Promise.all(names.slice(i, i + 16).map((room) => erinHttp.createRoom({ room })));
    }
    const erin = client(await token("erin"));
    let listed: string[] | undefined;
    erin.on("rooms", (rooms) => (listed = rooms.map((r) => r.room)));
    const ready = await erin.connect();
    assert.equal(ready.more, true);
    assert.ok(ready.rooms.length < names.length);
    await until(() => listed !== undefined, "erin's whole room list");
    assert.deepEqual(listed, names);
    // Passive in every room, the last page's included.
    const last = names.at(-1) as string;
    await erinHttp.postMessage(last, "to the last room");
    await until(() => erin.unread(last) === 1, "a tick of a room of the last page");
    erin.close();
  });

  it("edits and deletes arrive as entries; history shows the current state; room events", { timeout: TEST_TIMEOUT }, async () => {
    const ownerHttp = await http("alice");
    await ownerHttp.createRoom({ room: "edits", public: true });
    await (await http("bob")).join("edits");
    const a = client(await token("alice"));
    const b = client(await token("bob"));
    const bRec = record(b);
    const changes: { room: string; action: string }[] = [];
    b.on("room", (c) => changes.push(c));
    await a.connect();
    await b.connect();
    await b.subscribe("edits");
    const sent = await a.send("edits", "helo");
    const edited = await a.edit("edits", sent.seq, "hello");
    assert.equal(edited.seq, sent.seq + 1);
    await assert.rejects(b.edit("edits", sent.seq, "mine"), (e: unknown) => e instanceof LaneError && e.code === "forbidden");
    await assert.rejects(a.edit("edits", 99, "x"), (e: unknown) => e instanceof LaneError && e.code === "not_found");
    const deleted = await a.delete("edits", sent.seq);
    assert.equal(deleted.seq, sent.seq + 2);
    await until(() => bRec.messages.filter((m) => m.room === "edits").length === 3, "3 entries of edits");
    const live = bRec.messages.filter((m) => m.room === "edits");
    assert.deepEqual(
      live.map((m) => [m.seq, m.body, m.edit, m.delete]),
      [
        [1, "helo", undefined, undefined],
        [2, "hello", 1, undefined],
        [3, null, undefined, 1],
      ],
    );
    const page = await b.history("edits");
    assert.equal(page.messages[0]?.deleted, true);
    assert.equal(page.messages[0]?.body, null);
    assert.equal(page.messages[1]?.edit, 1);
    const viaHttp = await ownerHttp.messages("edits", { after: 0 });
    assert.equal(viaHttp.messages.length, 3);

    await ownerHttp.renameRoom("edits", "Edited");
    await ownerHttp.addModerator("edits", "bob");
    assert.deepEqual((await ownerHttp.getRoom("edits")).moderators, ["bob"]);
    await ownerHttp.deleteRoom("edits");
    await until(() => changes.some((c) => c.action === "deleted"), "the deleted event");
    assert.deepEqual(
      changes.map((c) => c.action),
      ["renamed", "moderator", "deleted"],
    );
    a.close();
    b.close();
  });

  it("mutes and bans: refusals, room events, lists", { timeout: TEST_TIMEOUT }, async () => {
    const ownerHttp = await http("mona");
    await ownerHttp.createRoom({ room: "modroom", public: true });
    const nedHttp = await http("ned");
    await nedHttp.join("modroom");
    const ned = client(await token("ned"));
    const changes: RoomChange[] = [];
    ned.on("room", (c) => changes.push(c));
    await ned.connect();
    const end = Date.now() + 3_600_000;
    await ownerHttp.mute("modroom", "ned", { until: end, reason: "spam" });
    await until(() => changes.some((c) => c.action === "muted"), "the muted event");
    assert.deepEqual(changes.at(-1), { room: "modroom", action: "muted", user: "ned", until: end });
    await assert.rejects(ned.send("modroom", "hi"), (e: unknown) => e instanceof LaneError && e.code === "muted");
    await assert.rejects(nedHttp.postMessage("modroom", "hi"), (e: unknown) => e instanceof LaneError && e.code === "muted" && e.status === 403);
    assert.deepEqual(await ownerHttp.mutes("modroom"), { users: [{ user: "ned", until: end, by: "mona", reason: "spam" }], more: false });
    await assert.rejects(nedHttp.mutes("modroom"), (e: unknown) => e instanceof LaneError && e.code === "forbidden");
    await ownerHttp.unmute("modroom", "ned");
    await ned.send("modroom", "back");

    await ownerHttp.ban("modroom", "ned", { durationMs: 60_000 });
    await until(() => changes.some((c) => c.action === "banned"), "the banned event");
    await assert.rejects(nedHttp.join("modroom"), (e: unknown) => e instanceof LaneError && e.code === "forbidden");
    const bans = await ownerHttp.bans("modroom", { limit: 10 });
    assert.equal(bans.users[0]?.user, "ned");
    assert.ok((bans.users[0]?.until ?? 0) > Date.now());
    await ownerHttp.unban("modroom", "ned");
    await nedHttp.join("modroom");
    ned.close();
  });

  it("presence counts, events and pages, and typing with its expiry", { timeout: TEST_TIMEOUT }, async () => {
    const fayHttp = await http("fay");
    await fayHttp.createRoom({ room: "lounge" });
    await fayHttp.addMember("lounge", "gus");
    await fayHttp.addMember("lounge", "hal");
    const fay = client(await token("fay"));
    const changes: PresenceChange[] = [];
    const typings: Typing[] = [];
    fay.on("presence", (p) => changes.push(p));
    fay.on("typing", (t) => typings.push(t));
    await fay.connect();
    await fay.subscribe("lounge", { presence: true });
    await until(() => changes.length >= 1, "the first presence event");
    assert.deepEqual(changes[0], { room: "lounge", online: 1, on: [], off: [] });

    const gus = client(await token("gus"));
    await gus.connect();
    await gus.subscribe("lounge");
    await until(() => changes.some((p) => p.on.includes("gus")), "gus coming online");
    assert.equal(changes.at(-1)?.online, 2);
    assert.deepEqual(await fay.presence("lounge"), { room: "lounge", online: 2, users: ["fay", "gus"], more: false });
    assert.deepEqual(await fay.presence("lounge", { limit: 1 }), { room: "lounge", online: 2, users: ["fay"], more: true });
    // Over HTTP, to a member who is not connected; refused to one who is not a member.
    assert.deepEqual((await (await http("hal")).presence("lounge", { after: "fay" })).users, ["gus"]);
    await assert.rejects((await http("ivy")).presence("lounge"), (e: unknown) => e instanceof LaneError && e.code === "forbidden");

    await gus.typing("lounge");
    await until(() => typings.length >= 1, "gus typing");
    assert.deepEqual(typings[0], { room: "lounge", users: ["gus"] });
    assert.deepEqual(fay.typingUsers("lounge"), ["gus"]);
    // A message from gus ends his indicator.
    await gus.send("lounge", "done typing");
    await until(() => fay.typingUsers("lounge").length === 0, "gus's indicator cleared by his message");

    gus.close();
    await until(() => changes.some((p) => p.off.includes("gus")), "gus going offline");
    assert.equal(changes.at(-1)?.online, 1);
    fay.close();
  });

  it("the server API posts as a bot, manages members, reads presence and kicks", { timeout: TEST_TIMEOUT }, async () => {
    const apiKey = (await readFile(join(server.dataDir, "api_key"), "utf8")).trim();
    const api = new LaneServerApi({ baseUrl: server.base, apiKey });
    assert.deepEqual(await api.createRoom("owner", { room: "ops" }), { room: "ops", name: "ops", owner: "owner", public: false });
    await api.addMember("ops", "jan");
    const jan = client(await token("jan"));
    const janRec = record(jan);
    await jan.connect();
    await jan.subscribe("ops");
    const posted = await api.post("ops", "bot", { text: "deploy done" }, { nonce: "deploy-1" });
    assert.equal(posted.seq, 1);
    await until(() => janRec.messages.length === 1, "the bot's message");
    assert.equal(janRec.messages[0]?.user, "bot");
    assert.deepEqual(janRec.messages[0]?.body, { text: "deploy done" });
    // The bot is no member; the server reads as anyone.
    assert.deepEqual((await api.as("bot").messages("ops")).messages.map((m) => m.user), ["bot"]);
    assert.deepEqual(await api.presence("ops"), { room: "ops", online: 1, users: ["jan"], more: false });
    await assert.rejects(api.post("nosuch", "bot", "x"), (e: unknown) => e instanceof LaneError && e.code === "not_found");
    await assert.rejects(
      new LaneServerApi({ baseUrl: server.base, apiKey: "x".repeat(64) }).post("ops", "bot", "x"),
      (e: unknown) => e instanceof LaneError && e.code === "unauthorized",
    );
    await api.kick("jan", "maintenance");
    await until(() => janRec.closes.some((c) => c.code === 4003), "jan kicked with 4003");
    jan.close();
  });

  it("a refused static token fails connect for good", { timeout: TEST_TIMEOUT }, async () => {
    const c = client("not-a-token");
    await assert.rejects(c.connect(), (e: unknown) => e instanceof LaneError && e.code === "unauthorized" && e.closeCode === 4001);
    await assert.rejects(c.send("general", 1), (e: unknown) => e instanceof LaneError && e.code === "unauthorized");
  });

  it("clients ride out a server restart and continue where they were", { timeout: TEST_TIMEOUT }, async () => {
    const bobClosesBefore = bobRec.closes.length;
    const lastSeq = Math.max(...bodies.keys());
    await until(() => bobRec.messages.at(-1)?.seq === lastSeq, "bob has every message so far");
    await server.stop();
    await until(() => bobRec.closes.length > bobClosesBefore, "bob's close");
    assert.equal(bobRec.closes[bobClosesBefore]?.code, 1001);
    assert.equal(bobRec.closes[bobClosesBefore]?.willReconnect, true);
    await server.restart();
    await until(() => alice.connected && bob.connected, "both reconnected", 20_000);

    const seq = await send(alice, "after the restart");
    assert.equal(seq, lastSeq + 1);
    await until(() => bobRec.messages.at(-1)?.seq === seq, "bob gets it");
    assertRun(bobRec.messages, "general", 1, seq);
    assertRun(aliceRec.messages, "general", 1, seq);
    assert.deepEqual(
      [...aliceRec.errors, ...bobRec.errors].map((e) => e.code),
      [],
    );
  });
});
