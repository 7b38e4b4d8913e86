import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { LaneError } from "@laneim/client";
import {
  batchEnd,
  batchMessages,
  decodeAck,
  decodeBatch,
  decodeError,
  decodeMember,
  decodeRoomChange,
  decodePresenceChange,
  decodePresencePage,
  decodeReady,
  decodeTicks,
  decodeRefreshed,
  decodeRoomsPage,
  decodeTyping,
  encodeFrame,
  parseFrame,
  validId,
  validNonce,
} from "@laneim/client/internal";

function badFrame(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof LaneError && err.code === "bad_frame");
}

describe("parseFrame", () => {
  it("reads op, rid and d", () => {
    assert.deepEqual(parseFrame('{"op":"ack","rid":7,"d":{"seq":1}}'), { op: "ack", rid: 7, d: { seq: 1 } });
    assert.deepEqual(parseFrame('{"op":"tick","d":{"room":"r","seq":2}}'), { op: "tick", d: { room: "r", seq: 2 } });
  });

  it("decodes ticks and refuses malformed ones", () => {
    assert.deepEqual(decodeTicks({ rooms: [{ room: "a", seq: 1 }, { room: "b", seq: 7 }] }), [
      { room: "a", seq: 1 },
      { room: "b", seq: 7 },
    ]);
    assert.deepEqual(decodeTicks({ rooms: [] }), []);
    assert.throws(() => decodeTicks({ rooms: {} }));
    assert.throws(() => decodeTicks({}));
    assert.throws(() => decodeTicks({ rooms: [{ room: "", seq: 1 }] }));
    assert.throws(() => decodeTicks({ rooms: [{ room: "a", seq: "1" }] }));
  });
  it("treats a missing or null d as {} and a null rid as none", () => {
    assert.deepEqual(parseFrame('{"op":"heartbeat_ack"}'), { op: "heartbeat_ack", d: {} });
    assert.deepEqual(parseFrame('{"op":"ok","rid":null,"d":null}'), { op: "ok", d: {} });
  });
  it("refuses what is not a frame", () => {
    badFrame(() => parseFrame("not json"));
    badFrame(() => parseFrame("[1,2]"));
    badFrame(() => parseFrame('{"d":{}}'));
    badFrame(() => parseFrame('{"op":""}'));
    badFrame(() => parseFrame('{"op":"ok","rid":-1}'));
    badFrame(() => parseFrame('{"op":"ok","rid":1.5}'));
    badFrame(() => parseFrame('{"op":"ok","rid":"7"}'));
    badFrame(() => parseFrame(new Uint8Array([123, 125])));
  });
});

describe("encodeFrame", () => {
  it("leaves out an undefined rid", () => {
    assert.equal(encodeFrame("heartbeat", undefined, {}), '{"op":"heartbeat","d":{}}');
    assert.equal(encodeFrame("send", 3, { room: "r", nonce: "n", body: "<b>" }), '{"op":"send","rid":3,"d":{"room":"r","nonce":"n","body":"<b>"}}');
  });
});

describe("batches", () => {
  const wire = { room: "general", seq: 1001, ts: 1764064800123, msgs: [["alice", 0, "hello"], ["bob", 2, { text: "hi", reply_to: 1000 }]] };

  it("turns entries into messages, seq + i and ts + dt", () => {
    const b = decodeBatch(wire);
    assert.equal(batchEnd(b), 1002);
    assert.deepEqual(batchMessages(b), [
      { room: "general", seq: 1001, ts: 1764064800123, user: "alice", body: "hello" },
      { room: "general", seq: 1002, ts: 1764064800125, user: "bob", body: { text: "hi", reply_to: 1000 } },
    ]);
  });
  it("reads an empty batch and a history page's more", () => {
    const b = decodeBatch({ room: "r", seq: 0, ts: 0, msgs: [], more: false });
    assert.equal(batchEnd(b), 0);
    assert.deepEqual(batchMessages(b), []);
    assert.equal(b.more, false);
  });
  it("refuses malformed batches", () => {
    badFrame(() => decodeBatch(null));
    badFrame(() => decodeBatch({ ...wire, room: "bad room" }));
    badFrame(() => decodeBatch({ ...wire, seq: 0 }));
    badFrame(() => decodeBatch({ ...wire, seq: -3 }));
    badFrame(() => decodeBatch({ ...wire, msgs: {} }));
    badFrame(() => decodeBatch({ ...wire, msgs: [["alice", 0]] }));
    badFrame(() => decodeBatch({ ...wire, msgs: [[1, 0, "x"]] }));
    badFrame(() => decodeBatch({ ...wire, msgs: [["alice", "0", "x"]] }));
    badFrame(() => decodeBatch({ ...wire, more: "yes" }));
  });
});

describe("payloads", () => {
  it("decodes ready, with and without expires_at", () => {
    const d = { user: "alice", session: "abc", heartbeat_ms: 30000, expires_at: 1795885923000, rooms: [{ room: "a", seq: 5, read_seq: 3 }] };
    assert.deepEqual(decodeReady(d), {
      user: "alice",
      session: "abc",
      heartbeatMs: 30000,
      expiresAt: 1795885923000,
      rooms: [{ room: "a", seq: 5, readSeq: 3 }],
      more: false,
    });
    assert.equal(decodeReady({ ...d, more: true }).more, true);
    const { expires_at: _, ...noExp } = d;
    assert.equal("expiresAt" in decodeReady(noExp), false);
    badFrame(() => decodeReady({ ...d, rooms: [{ room: "a", seq: 5 }] }));
  });
  it("decodes a page of the room list", () => {
    assert.deepEqual(decodeRoomsPage({ rooms: [{ room: "a", name: "A", seq: 2, read_seq: 1 }], more: true }), {
      rooms: [{ room: "a", name: "A", seq: 2, readSeq: 1 }],
      more: true,
    });
    assert.deepEqual(decodeRoomsPage({ rooms: [], more: false }), { rooms: [], more: false });
    badFrame(() => decodeRoomsPage({ rooms: [{ room: "a", seq: 2, read_seq: 1 }] }));
  });
  it("decodes ack, member, refresh answers and errors", () => {
    assert.deepEqual(decodeAck({ room: "r", nonce: "n", seq: 4, ts: 9 }), { room: "r", nonce: "n", seq: 4, ts: 9 });
    badFrame(() => decodeAck({ room: "r", nonce: "n", seq: 0, ts: 9 }));
    assert.deepEqual(decodeMember({ room: "r", user: "bob", action: "join" }), { room: "r", user: "bob", action: "join" });
    badFrame(() => decodeMember({ room: "r", user: "bob", action: "kick" }));
    assert.equal(decodeRefreshed({ expires_at: 123 }), 123);
    assert.equal(decodeRefreshed({ expires_at: 0 }), undefined);
    const e = decodeError({ code: "forbidden", message: "not a member of room x" }, "x");
    assert.equal(e.code, "forbidden");
    assert.equal(e.message, "not a member of room x");
    assert.equal(e.room, "x");
    assert.equal(decodeError({ message: "no code" }).code, "bad_frame");
  });
});

describe("ids and nonces", () => {
  it("follow docs/protocol.md", () => {
    assert.ok(validId("general_1-A"));
    assert.ok(validId("x".repeat(64)));
    assert.ok(!validId(""));
    assert.ok(!validId("x".repeat(65)));
    assert.ok(!validId("a.b"));
    assert.ok(!validId("é"));
    assert.ok(validNonce(" ~"));
    assert.ok(!validNonce(""));
    assert.ok(!validNonce("\n"));
    assert.ok(!validNonce("n".repeat(65)));
  });
});

describe("edits and deletes", () => {
  it("decodes entries with a mark into messages with its field", () => {
    const b = decodeBatch({
      room: "r",
      seq: 1,
      ts: 100,
      msgs: [
        ["a", 0, "hello", { edited: 150 }],
        ["b", 1, null, { deleted: true }],
        ["a", 2, "plain"],
        ["a", 50, "hello", { edit: 1 }],
        ["c", 60, null, { delete: 2 }],
      ],
    });
    assert.deepEqual(batchMessages(b), [
      { room: "r", seq: 1, ts: 100, user: "a", body: "hello", edited: 150 },
      { room: "r", seq: 2, ts: 101, user: "b", body: null, deleted: true },
      { room: "r", seq: 3, ts: 102, user: "a", body: "plain" },
      { room: "r", seq: 4, ts: 150, user: "a", body: "hello", edit: 1 },
      { room: "r", seq: 5, ts: 160, user: "c", body: null, delete: 2 },
    ]);
    assert.equal(batchEnd(b), 5);
  });

  it("refuses malformed marks", () => {
    for (const mark of [{ edit: 1, delete: 2 }, { edit: 0 }, { delete: -1 }, { edited: 1.5 }, { deleted: false }, [1], "edit", null]) {
      badFrame(() => decodeBatch({ room: "r", seq: 1, ts: 0, msgs: [["a", 0, "x", mark]] }));
    }
    badFrame(() => decodeBatch({ room: "r", seq: 1, ts: 0, msgs: [["a", 0, "x", { edit: 1 }, 5]] }));
  });

  it("reads a mark of no kind it knows as a plain message", () => {
    const b = decodeBatch({ room: "r", seq: 1, ts: 0, msgs: [["a", 0, "x", { pinned: true }], ["a", 0, "y", {}]] });
    assert.deepEqual(batchMessages(b), [
      { room: "r", seq: 1, ts: 0, user: "a", body: "x" },
      { room: "r", seq: 2, ts: 0, user: "a", body: "y" },
    ]);
  });

  it("decodes room events", () => {
    assert.deepEqual(decodeRoomChange({ room: "r", action: "renamed", name: "New" }), { room: "r", action: "renamed", name: "New" });
    assert.deepEqual(decodeRoomChange({ room: "r", action: "moderator", user: "bob", moderator: false }), {
      room: "r",
      action: "moderator",
      user: "bob",
      moderator: false,
    });
    assert.deepEqual(decodeRoomChange({ room: "r", action: "deleted" }), { room: "r", action: "deleted" });
    assert.deepEqual(decodeRoomChange({ room: "r", action: "muted", user: "bob", until: 1700000000000 }), {
      room: "r",
      action: "muted",
      user: "bob",
      until: 1700000000000,
    });
    assert.deepEqual(decodeRoomChange({ room: "r", action: "banned", user: "bob" }), { room: "r", action: "banned", user: "bob" });
    for (const action of ["unmuted", "unbanned"]) {
      assert.deepEqual(decodeRoomChange({ room: "r", action, user: "bob" }), { room: "r", action, user: "bob" });
    }
    badFrame(() => decodeRoomChange({ room: "r", action: "muted", user: "bob", until: "soon" }));
    badFrame(() => decodeRoomChange({ room: "r", action: "exploded" }));
    badFrame(() => decodeRoomChange({ room: "", action: "deleted" }));
    badFrame(() => decodeRoomChange({ room: "r", action: "moderator", moderator: "yes" }));
  });
});

describe("presence and typing", () => {
  it("decodes pages, events and typing, absent lists as empty", () => {
    assert.deepEqual(decodePresencePage({ room: "r", online: 3, users: ["a", "b"], more: true }), { room: "r", online: 3, users: ["a", "b"], more: true });
    assert.deepEqual(decodePresenceChange({ room: "r", online: 1 }), { room: "r", online: 1, on: [], off: [] });
    assert.deepEqual(decodePresenceChange({ room: "r", online: 2, on: ["x"], off: ["y"] }), { room: "r", online: 2, on: ["x"], off: ["y"] });
    assert.deepEqual(decodeTyping({ room: "r", users: ["bob"] }), { room: "r", users: ["bob"] });
  });
  it("refuses what is not of their shape", () => {
    badFrame(() => decodePresencePage({ room: "r", online: -1, users: [] }));
    badFrame(() => decodePresenceChange({ room: "r", online: 1, on: "x" }));
    badFrame(() => decodePresenceChange({ room: "r", online: 1, off: ["not an id!"] }));
    badFrame(() => decodeTyping({ room: "bad room", users: [] }));
    badFrame(() => decodeTyping({ room: "r", users: [1] }));
  });
});
