import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { UnreadTracker } from "@laneim/client/internal";

describe("UnreadTracker", () => {
  it("counts seq - readSeq from ready, ticks and reads", () => {
    const t = new UnreadTracker();
    const changed = t.reset([
      { room: "a", seq: 10, readSeq: 4 },
      { room: "b", seq: 3, readSeq: 3 },
    ]);
    assert.deepEqual(changed, [{ room: "a", seq: 10, readSeq: 4, unread: 6 }]);
    assert.equal(t.unread("a"), 6);
    assert.equal(t.unread("b"), 0);
    assert.equal(t.unread("nope"), 0);

    assert.deepEqual(t.seq("b", 5), { room: "b", seq: 5, readSeq: 3, unread: 2 });
    assert.equal(t.seq("b", 4), undefined, "seq never goes down");
    assert.deepEqual(t.read("a", 10, false), { room: "a", seq: 10, readSeq: 10, unread: 0 });
    assert.equal(t.read("a", 7, true), undefined, "the read mark never goes down");
  });
  it("caps the user's own read at the latest seq known, and learns a later seq from a read event", () => {
    const t = new UnreadTracker();
    t.reset([{ room: "a", seq: 5, readSeq: 0 }]);
    t.read("a", 1_000_000, false);
    assert.deepEqual(t.get("a"), { room: "a", seq: 5, readSeq: 5, unread: 0 });
    assert.equal(t.seq("a", 7)?.unread, 2);
    t.read("a", 9, true);
    assert.deepEqual(t.get("a"), { room: "a", seq: 9, readSeq: 9, unread: 0 });
  });
  it("adds joined rooms, drops left ones, and resets to the server's word", () => {
    const t = new UnreadTracker();
    t.reset([{ room: "a", seq: 2, readSeq: 0 }]);
    assert.equal(t.join("c"), undefined);
    assert.equal(t.seq("c", 3)?.unread, 3);
    assert.deepEqual(t.leave("c"), { room: "c", seq: 3, readSeq: 3, unread: 0 });
    assert.equal(t.get("c"), undefined);
    assert.equal(t.leave("c"), undefined);
    // After a reconnect: a was left meanwhile, d joined with unread messages.
    const changed = t.reset([{ room: "d", seq: 8, readSeq: 6 }]);
    assert.deepEqual(changed, [
      { room: "d", seq: 8, readSeq: 6, unread: 2 },
      { room: "a", seq: 2, readSeq: 2, unread: 0 },
    ]);
    assert.deepEqual(t.all().map((r) => r.room), ["d"]);
  });
  it("merges a page of the room list without dropping other rooms", () => {
    const t = new UnreadTracker();
    t.reset([{ room: "a", seq: 2, readSeq: 0 }]);
    const changed = t.merge([
      { room: "b", seq: 4, readSeq: 1 },
      { room: "a", seq: 2, readSeq: 2 },
    ]);
    assert.deepEqual(changed, [
      { room: "b", seq: 4, readSeq: 1, unread: 3 },
      { room: "a", seq: 2, readSeq: 2, unread: 0 },
    ]);
    assert.deepEqual(t.all().map((r) => r.room), ["a", "b"]);
  });
  it("keeps a seq learned from an ack when ready lists an older one", () => {
    const t = new UnreadTracker();
    t.reset([{ room: "a", seq: 2, readSeq: 2 }]);
    t.seq("a", 5);
    t.reset([{ room: "a", seq: 4, readSeq: 2 }]);
    assert.equal(t.unread("a"), 3);
  });
});
