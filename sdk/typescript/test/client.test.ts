// The client's state machine against the in-memory FakeServer: every reconnect,
// retry, duplicate and gap staged frame by frame.

import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { Client, LaneError, type ClientOptions, type CloseInfo, type Message, type RoomUnread, type WebSocketConstructor } from "@laneim/client";

import { FakeServer, sleep, until } from "./fake.js";

// The global WebSocket fits the constructor type (a compile-time check).
export const globalFits: WebSocketConstructor | undefined = typeof WebSocket === "undefined" ? undefined : WebSocket;

const clients: Client[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function newClient(server: FakeServer, options: Partial<ClientOptions> = {}): Client {
  const c = new Client({
    url: "ws://fake.invalid/v1/ws",
    token: "alice:t1",
    WebSocket: server.WebSocket,
    backoffMinMs: 5,
    backoffMaxMs: 20,
    requestTimeoutMs: 1000,
    ...options,
  });
  clients.push(c);
  return c;
}

/** Collects a client's messages, closes and errors. */
function record(c: Client): { messages: Message[]; closes: CloseInfo[]; errors: LaneError[]; unread: RoomUnread[] } {
  const r = { messages: [] as Message[], closes: [] as CloseInfo[], errors: [] as LaneError[], unread: [] as RoomUnread[] };
  c.on("message", (m) => r.messages.push(m));
  c.on("close", (e) => r.closes.push(e));
  c.on("error", (e) => r.errors.push(e));
  c.on("unread", (u) => r.unread.push(u));
  return r;
}

const seqs = (ms: Message[]): number[] => ms.map((m) => m.seq);

describe("Client with a fake server", () => {
  it("identifies, gets ready and heartbeats at heartbeat_ms", async () => {
    const server = new FakeServer();
    server.heartbeatMs = 20;
    server.expiresAt = Date.now() + 3_600_000;
    server.publish("general", "bob", "hi");
    const c = newClient(server);
    const ready = await c.connect();
    assert.equal(ready.user, "alice");
    assert.equal(ready.expiresAt, server.expiresAt);
    assert.deepEqual(ready.rooms, [{ room: "general", seq: 1, readSeq: 0 }]);
    assert.deepEqual(server.last.sent[0], { op: "identify", d: { token: "alice:t1" } });
    assert.equal(c.connected, true);
    assert.equal(c.unread("general"), 1);
    await until(() => server.last.frames("heartbeat").length >= 3, "three heartbeats");
  });

  it("reconnects after a drop and resubscribes since the last seq: nothing lost, nothing repeated", async () => {
    const server = new FakeServer();
    const c = newClient(server);
    const r = record(c);
    const reconnects: number[] = [];
    c.on("reconnect", (e) => reconnects.push(e.attempts));
    await c.connect();
    await c.subscribe("room1");
    for (let i = 0; i < 3; i++) server.publish("room1", "bob", i);
    await until(() => r.messages.length === 3, "3 messages");

    server.refuseConnections = true; // down for a while
    server.last.serverClose(1001, "server shutting down");
    assert.deepEqual(r.closes, [{ code: 1001, reason: "server shutting down", willReconnect: true }]);
    assert.equal(c.connected, false);
    server.publish("room1", "bob", 3);
    server.publish("room1", "bob", 4);
    await sleep(30);
    server.refuseConnections = false;

    await until(() => r.messages.length === 5, "catch-up to 5");
    assert.deepEqual(server.last.frames("subscribe").map((f) => f.d), [{ room: "room1", since: 3 }]);
    server.publish("room1", "bob", 5);
    await until(() => r.messages.length === 6, "live 6");
    assert.deepEqual(seqs(r.messages), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(r.messages.map((m) => m.body), [0, 1, 2, 3, 4, 5]);
    assert.equal(reconnects.length, 1);
    assert.ok((reconnects[0] ?? 0) >= 1);
    assert.equal(c.stats.reconnects, 1);
  });

  it("watches rooms, refuses bad sets, and watches again after a reconnect", async () => {
    const server = new FakeServer();
    const c = newClient(server);
    await c.connect();
    await c.watch(["room1", "room2"]);
    assert.deepEqual(server.last.frames("watch").map((f) => f.d), [{ rooms: ["room1", "room2"] }]);
    await assert.rejects(c.watch(["bad room"]), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
    await assert.rejects(c.watch(Array.from({ length: 17 }, (_, i) => `r${i}`)), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
    server.last.serverClose(1001, "server shutting down");
    await until(() => c.connected && server.last.frames("watch").length === 1, "watch again on the new connection");
    assert.deepEqual(server.last.frames("watch").map((f) => f.d), [{ rooms: ["room1", "room2"] }]);
  });

  it("drops duplicate entries of overlapping batches", async () => {
    const server = new FakeServer();
    server.fanout = false;
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    for (let i = 0; i < 5; i++) server.publish("r", "bob", i);
    await c.subscribe("r", { since: 0 }); // the catch-up brings 1..5
    await until(() => r.messages.length === 5, "catch-up");
    server.last.push({ op: "msgs", d: server.batch("r", 3, 5) });
    server.last.push({ op: "msgs", d: server.batch("r", 1, 2) });
    server.publish("r", "bob", 5);
    server.last.push({ op: "msgs", d: server.batch("r", 4, 6) });
    await until(() => r.messages.length === 6, "6");
    await sleep(10);
    assert.deepEqual(seqs(r.messages), [1, 2, 3, 4, 5, 6]);
    assert.equal(c.stats.duplicates, 3 + 2 + 2);
  });

  it("holds back a batch past a gap and resubscribes since the last seq", async () => {
    const server = new FakeServer();
    server.fanout = false;
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    await c.subscribe("r");
    for (let i = 0; i < 6; i++) server.publish("r", "bob", i);
    server.last.push({ op: "msgs", d: server.batch("r", 1, 2) });
    server.last.push({ op: "msgs", d: server.batch("r", 5, 6) }); // 3 and 4 missing
    server.last.push({ op: "msgs", d: server.batch("r", 6, 6) }); // while repairing: no second resubscribe
    await until(() => r.messages.length === 6, "repaired");
    assert.deepEqual(seqs(r.messages), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(server.last.frames("subscribe").map((f) => f.d), [{ room: "r" }, { room: "r", since: 2 }]);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]?.code, "gap");
    assert.equal(c.stats.gaps, 1);
  });

  it("retries a send with the same nonce after a timeout", async () => {
    const server = new FakeServer();
    let dropped = 0;
    server.intercept = (_s, f) => f.op === "send" && dropped++ === 0; // the first attempt gets no ack
    const c = newClient(server, { sendTimeoutMs: 40 });
    await c.connect();
    const ack = await c.send("r", { text: "hello" }, { nonce: "n-1" });
    assert.equal(ack.seq, 1);
    assert.equal(ack.nonce, "n-1");
    const sends = server.last.frames("send");
    assert.ok(sends.length >= 2);
    for (const f of sends) assert.deepEqual(f.d, { room: "r", nonce: "n-1", body: { text: "hello" } });
    assert.notEqual(sends[0]?.rid, sends[1]?.rid);
    assert.equal(server.room("r").length, 1, "stored once");
  });

  it("retries a send with the same nonce across a reconnect, and stores it once", async () => {
    const server = new FakeServer();
    let first = true;
    server.intercept = (sock, f) => {
      if (f.op !== "send" || !first) return false;
      first = false;
      // Stored, but the connection drops before the ack.
      server.publish(String(f.d.room), sock.user, f.d.body);
      server.nonces.set(`${f.d.room}/${sock.user}/${f.d.nonce}`, 1);
      sock.serverClose(4008, "too slow");
      return true;
    };
    const c = newClient(server);
    await c.connect();
    const ack = await c.send("r", "once");
    assert.equal(ack.seq, 1);
    assert.equal(server.room("r").length, 1);
    assert.equal(server.sockets.length, 2);
    assert.equal(server.sockets[0]?.frames("send")[0]?.d.nonce, ack.nonce);
    assert.equal(server.sockets[1]?.frames("send")[0]?.d.nonce, ack.nonce);
  });

  it("retries a send the server answers unavailable", async () => {
    const server = new FakeServer();
    let n = 0;
    server.intercept = (sock, f) => {
      if (f.op !== "send" || n++ > 0) return false;
      sock.push({ op: "error", rid: f.rid as number, d: { code: "unavailable", message: "no ack in time" } });
      return true;
    };
    const c = newClient(server);
    await c.connect();
    assert.equal((await c.send("r", 1)).seq, 1);
    assert.equal(server.last.frames("send").length, 2);
  });

  it("fails a send the server refuses, without retrying", async () => {
    const server = new FakeServer();
    server.intercept = (sock, f) => {
      if (f.op !== "send") return false;
      sock.push({ op: "error", rid: f.rid as number, d: { code: "forbidden", message: "not a member of room r" } });
      return true;
    };
    const c = newClient(server);
    await c.connect();
    await assert.rejects(c.send("r", 1), (e: unknown) => e instanceof LaneError && e.code === "forbidden");
    assert.equal(server.last.frames("send").length, 1);
    await assert.rejects(c.send("bad room", 1), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
    await assert.rejects(c.send("r", 1, { nonce: "" }), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
  });

  it("stops for good when kicked (4003), failing what waits", async () => {
    const server = new FakeServer();
    server.intercept = (_s, f) => f.op === "send"; // never acked
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    const pending = c.send("r", "x");
    await until(() => server.last.frames("send").length === 1, "send");
    server.last.serverClose(4003, "kicked by an operator");
    await assert.rejects(pending, (e: unknown) => e instanceof LaneError && e.code === "closed" && e.closeCode === 4003);
    await sleep(50);
    assert.equal(server.sockets.length, 1, "no reconnect");
    assert.deepEqual(r.closes, [{ code: 4003, reason: "kicked by an operator", willReconnect: false }]);
    await assert.rejects(c.history("r"), (e: unknown) => e instanceof LaneError && e.code === "closed");
  });

  it("refuses to start with a refused token, and stops when a static token is refused on reconnect", async () => {
    const server = new FakeServer();
    server.refuse = (t) => t === "alice:bad";
    const bad = newClient(server, { token: "alice:bad" });
    await assert.rejects(bad.connect(), (e: unknown) => e instanceof LaneError && e.code === "unauthorized" && e.closeCode === 4001);
    assert.equal(server.sockets.length, 1);

    const c = newClient(server);
    const r = record(c);
    await c.connect();
    server.refuse = () => true; // say the secret was rotated
    server.last.serverClose(1001, "server shutting down");
    await until(() => r.closes.length === 2, "final close");
    assert.deepEqual(r.closes, [
      { code: 1001, reason: "server shutting down", willReconnect: true },
      { code: 4001, reason: "bad token", willReconnect: false },
    ]);
    await sleep(50);
    assert.equal(server.sockets.length, 3, "one reconnect attempt only");
  });

  it("stops when a static token expires (4001), but reconnects with a token provider", async () => {
    const server = new FakeServer();
    const s = newClient(server);
    const sr = record(s);
    await s.connect();
    server.last.serverClose(4001, "token expired");
    assert.deepEqual(sr.closes, [{ code: 4001, reason: "token expired", willReconnect: false }]);

    let calls = 0;
    const c = newClient(server, { token: undefined, tokenProvider: async () => `alice:p${++calls}` });
    const ready: string[] = [];
    c.on("ready", (r) => ready.push(r.session));
    await c.connect();
    server.last.serverClose(4001, "token expired");
    await until(() => ready.length === 2, "reconnected");
    assert.equal(calls, 2, "the provider is called on every connect");
    assert.deepEqual(server.tokens.slice(-2), ["alice:p1", "alice:p2"]);
  });

  it("gives up on a silent server after two heartbeat intervals and reconnects", async () => {
    const server = new FakeServer();
    server.heartbeatMs = 20;
    let mute = true;
    server.intercept = (sock, f) => mute && sock === server.sockets[0] && f.op === "heartbeat";
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    await until(() => r.closes.length === 1, "watchdog", 2000);
    assert.equal(r.closes[0]?.code, 1006);
    assert.equal(r.closes[0]?.willReconnect, true);
    mute = false;
    await until(() => c.connected && server.sockets.length === 2, "reconnected");
  });

  it("resubscribes every room on reconnect, and a subscribe in flight completes on the new connection", async () => {
    const server = new FakeServer();
    let swallow = true;
    server.intercept = (sock, f) => {
      if (f.op === "subscribe" && f.d.room === "late" && swallow) {
        swallow = false;
        sock.serverClose(1006, "");
        return true;
      }
      return false;
    };
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    await c.subscribe("a", { since: 0 });
    server.publish("a", "bob", "a1");
    await until(() => r.messages.length === 1, "a1");
    const sub = await c.subscribe("late");
    assert.deepEqual(sub, { room: "late", seq: 0 });
    assert.deepEqual(
      server.last.frames("subscribe").map((f) => f.d).sort((x, y) => String(x.room).localeCompare(String(y.room))),
      [{ room: "a", since: 1 }, { room: "late" }],
    );
    assert.deepEqual(c.subscriptions(), ["a", "late"]);
  });

  it("drops a room whose resubscribe is refused, with an error event", async () => {
    const server = new FakeServer();
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    await c.subscribe("gone");
    server.intercept = (sock, f) => {
      if (f.op !== "subscribe") return false;
      sock.push({ op: "error", rid: f.rid as number, d: { code: "forbidden", message: "not a member of room gone" } });
      return true;
    };
    server.last.serverClose(1001, "");
    await until(() => r.errors.length === 1, "error event");
    assert.equal(r.errors[0]?.code, "forbidden");
    assert.equal(r.errors[0]?.room, "gone");
    assert.deepEqual(c.subscriptions(), []);
  });

  it("counts unread from ready, ticks, read events, own sends and read calls", async () => {
    const server = new FakeServer();
    for (let i = 0; i < 4; i++) server.publish("a", "bob", i);
    server.readSeq.set("a", 1);
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    assert.equal(c.unread("a"), 3);
    server.publish("a", "bob", "tick me"); // passive: a tick
    await until(() => c.unread("a") === 4, "tick");
    server.last.push({ op: "read", d: { room: "a", seq: 3 } }); // another session read
    await until(() => c.unread("a") === 2, "read event");
    await c.read("a");
    assert.equal(c.unread("a"), 0);
    assert.deepEqual(server.last.frames("read").at(-1)?.d, { room: "a", seq: 5 });
    server.publish("a", "bob", "x");
    await until(() => c.unread("a") === 1, "tick");
    await c.send("a", "mine"); // readOnSend: read up to the own message
    assert.equal(c.unread("a"), 0);
    await until(() => server.readSeq.get("a") === 7, "read op after the ack");
    assert.deepEqual(
      r.unread.map((u) => u.unread),
      [3, 4, 2, 0, 1, 2, 0],
    );
    assert.deepEqual(c.rooms(), [{ room: "a", seq: 7, readSeq: 7, unread: 0 }]);
  });

  it("pages the room list after a ready with more, and forgets rooms left meanwhile", async () => {
    const server = new FakeServer();
    server.roomsPageSize = 2;
    for (const room of ["a", "b", "c", "d", "e"]) server.publish(room, "bob", room);
    const c = newClient(server);
    const lists: string[][] = [];
    c.on("rooms", (rooms) => lists.push(rooms.map((r) => `${r.room}:${r.unread}`)));
    const ready = await c.connect();
    assert.equal(ready.more, true);
    assert.deepEqual(ready.rooms.map((r) => r.room), ["a", "b"]);
    await until(() => lists.length === 1, "rooms event");
    assert.deepEqual(lists[0], ["a:1", "b:1", "c:1", "d:1", "e:1"]);
    assert.deepEqual(server.last.frames("rooms").map((f) => f.d), [{ after: "b" }, { after: "d" }]);
    assert.equal(c.unread("e"), 1);

    // Left c and e while disconnected.
    server.rooms.delete("c");
    server.rooms.delete("e");
    server.last.serverClose(1001, "");
    await until(() => lists.length === 2, "rooms event after the reconnect");
    assert.deepEqual(lists[1], ["a:1", "b:1", "d:1"]);
    assert.equal(c.unread("e"), 0);

    const page = await c.listRooms({ after: "a", limit: 1 });
    assert.deepEqual(page, { rooms: [{ room: "b", name: "B", seq: 1, readSeq: 0 }], more: true });
  });

  it("takes a ready without more as the whole room list", async () => {
    const server = new FakeServer();
    server.publish("a", "bob", 1);
    const c = newClient(server);
    const lists: string[][] = [];
    c.on("rooms", (rooms) => lists.push(rooms.map((r) => r.room)));
    assert.equal((await c.connect()).more, false);
    assert.deepEqual(lists, [["a"]]);
    assert.equal(server.last.frames("rooms").length, 0);
  });

  it("keeps reconnecting when identify is refused with 4030 (too many connections)", async () => {
    const server = new FakeServer();
    let refuse = true;
    server.intercept = (sock, f) => {
      if (f.op !== "identify" || !refuse) return false;
      sock.push({ op: "error", d: { code: "forbidden", message: "alice has 64 connections to this gateway, the most max_conns_per_user allows" } });
      sock.serverClose(4030, "too many connections");
      return true;
    };
    const first = newClient(server);
    await assert.rejects(first.connect(), (e: unknown) => e instanceof LaneError && e.code === "forbidden" && e.closeCode === 4030);

    refuse = false;
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    refuse = true;
    server.last.serverClose(1001, "");
    await until(() => server.sockets.length >= 5, "several attempts");
    assert.equal(c.connected, false);
    refuse = false;
    await until(() => c.connected, "reconnected once a place is free");
    assert.deepEqual(r.closes.map((x) => x.willReconnect), [true]);
  });

  it("leaves the read mark alone on send with readOnSend false", async () => {
    const server = new FakeServer();
    const c = newClient(server, { readOnSend: false });
    await c.connect();
    await c.send("a", "mine");
    assert.equal(c.unread("a"), 1);
    await sleep(10);
    assert.equal(server.last.frames("read").length, 0);
  });

  it("tracks membership changes of the user", async () => {
    const server = new FakeServer();
    server.publish("a", "bob", 1);
    const c = newClient(server);
    const members: string[] = [];
    c.on("member", (m) => members.push(`${m.user} ${m.action} ${m.room}`));
    await c.connect();
    await c.subscribe("a");
    server.last.push({ op: "member", d: { room: "b", user: "alice", action: "join" } });
    server.last.push({ op: "member", d: { room: "a", user: "carol", action: "join" } });
    server.last.push({ op: "member", d: { room: "a", user: "alice", action: "leave" } });
    await until(() => members.length === 3, "members");
    assert.deepEqual(members, ["alice join b", "carol join a", "alice leave a"]);
    assert.deepEqual(c.rooms().map((x) => x.room), ["b"]);
    assert.deepEqual(c.subscriptions(), []);
  });

  it("refreshes the token before it expires with a token provider", async () => {
    const server = new FakeServer();
    server.expiresAt = Date.now() + 200;
    let calls = 0;
    const c = newClient(server, { token: undefined, tokenProvider: () => `alice:r${++calls}` });
    const refreshed: (number | undefined)[] = [];
    c.on("refresh", (e) => refreshed.push(e.expiresAt));
    await c.connect();
    server.expiresAt = Date.now() + 10_000_000; // the refreshed token lasts
    await until(() => refreshed.length === 1, "auto-refresh", 2000);
    assert.deepEqual(server.last.frames("refresh").map((f) => f.d), [{ token: "alice:r2" }]);
    assert.equal(c.expiresAt, server.expiresAt);
  });

  it("refreshes with a given token and uses it to reconnect", async () => {
    const server = new FakeServer();
    server.expiresAt = Date.now() + 3_600_000;
    const c = newClient(server);
    await c.connect();
    server.expiresAt += 3_600_000;
    assert.deepEqual(await c.refresh("alice:t2"), { expiresAt: server.expiresAt });
    assert.equal(c.expiresAt, server.expiresAt);
    server.last.serverClose(1001, "");
    await until(() => c.connected && server.sockets.length === 2, "reconnected");
    assert.equal(server.tokens.at(-1), "alice:t2");
  });

  it("pages history", async () => {
    const server = new FakeServer();
    for (let i = 1; i <= 7; i++) server.publish("h", "bob", `m${i}`);
    const c = newClient(server);
    await c.connect();
    const newest = await c.history("h", { limit: 3 });
    assert.deepEqual(seqs(newest.messages), [5, 6, 7]);
    assert.equal(newest.more, true);
    const older = await c.history("h", { before: 5, limit: 3 });
    assert.deepEqual(seqs(older.messages), [2, 3, 4]);
    const after = await c.history("h", { after: 5 });
    assert.deepEqual(seqs(after.messages), [6, 7]);
    assert.equal(after.more, false);
    assert.deepEqual(server.last.frames("history").at(-1)?.d, { room: "h", after: 5 });
  });

  it("close() fails pending calls, emits close 1000 and never reconnects", async () => {
    const server = new FakeServer();
    server.intercept = (_s, f) => f.op === "history";
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    const h = c.history("r");
    await until(() => server.last.frames("history").length === 1, "history sent");
    c.close();
    await assert.rejects(h, (e: unknown) => e instanceof LaneError && e.code === "closed");
    await assert.rejects(c.send("r", 1), (e: unknown) => e instanceof LaneError && e.code === "closed");
    await assert.rejects(c.connect(), (e: unknown) => e instanceof LaneError && e.code === "closed");
    assert.deepEqual(r.closes, [{ code: 1000, reason: "client closed", willReconnect: false }]);
    await sleep(30);
    assert.equal(server.sockets.length, 1);
    assert.equal(server.last.closed, true);
  });

  it("close() during a reconnect stops it", async () => {
    const server = new FakeServer();
    const c = newClient(server, { backoffMinMs: 50, backoffMaxMs: 50 });
    await c.connect();
    server.last.serverClose(1001, "");
    c.close();
    await sleep(80);
    assert.equal(server.sockets.length, 1);
  });

  it("close() during the first connect fails it at once", async () => {
    const server = new FakeServer();
    server.intercept = (_s, f) => f.op === "identify"; // no ready, ever
    const c = newClient(server);
    const connecting = c.connect();
    await until(() => server.sockets.length === 1 && server.last.sent.length === 1, "identify sent");
    const t0 = Date.now();
    c.close();
    await assert.rejects(connecting, (e: unknown) => e instanceof LaneError && e.code === "closed");
    assert.ok(Date.now() - t0 < 500);
  });

  it("fails a send whose body is not JSON, without a retry", async () => {
    const server = new FakeServer();
    const c = newClient(server);
    await c.connect();
    await assert.rejects(c.send("r", { n: 1n }), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
    assert.equal(server.last.frames("send").length, 0);
  });

  it("reports bad frames and keeps going", async () => {
    const server = new FakeServer();
    const c = newClient(server);
    const r = record(c);
    await c.connect();
    await c.subscribe("r");
    server.last.push("not json");
    server.last.push({ op: "msgs", d: { room: "r", seq: 1, ts: 0, msgs: [["bob"]] } });
    server.publish("r", "bob", "fine");
    await until(() => r.messages.length === 1, "message after bad frames");
    assert.deepEqual(r.errors.map((e) => e.code), ["bad_frame", "bad_frame"]);
    assert.equal(c.stats.badFrames, 2);
  });
});
