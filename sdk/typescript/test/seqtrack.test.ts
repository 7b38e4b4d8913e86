import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { acceptBatch, batchMessages, type Batch } from "@laneim/client/internal";

/** A batch of room r from seq, n entries, ts 1000 + i. */
function batch(seq: number, n: number): Batch {
  return { room: "r", seq, ts: 1000, msgs: Array.from({ length: n }, (_, i) => ["u", i, `m${seq + i}`] as [string, number, unknown]) };
}

describe("acceptBatch", () => {
  it("delivers the next batch whole", () => {
    const r = acceptBatch(3, batch(4, 2));
    assert.deepEqual(r.deliver, batch(4, 2));
    assert.equal(r.last, 5);
    assert.equal(r.dropped, 0);
    assert.equal(r.gap, undefined);
  });
  it("accepts anything without a baseline", () => {
    const r = acceptBatch(undefined, batch(40, 3));
    assert.deepEqual(r.deliver, batch(40, 3));
    assert.equal(r.last, 42);
  });
  it("drops a batch already delivered", () => {
    const r = acceptBatch(10, batch(8, 3));
    assert.equal(r.deliver, undefined);
    assert.equal(r.last, 10);
    assert.equal(r.dropped, 3);
  });
  it("cuts the delivered entries off an overlapping batch, keeping seqs and timestamps", () => {
    const r = acceptBatch(5, batch(4, 4)); // 4..7
    assert.equal(r.dropped, 2);
    assert.equal(r.last, 7);
    assert.ok(r.deliver !== undefined);
    assert.deepEqual(
      batchMessages(r.deliver).map((m) => [m.seq, m.ts, m.body]),
      [
        [6, 1002, "m6"],
        [7, 1003, "m7"],
      ],
    );
  });
  it("delivers nothing past a gap and names it", () => {
    const r = acceptBatch(5, batch(8, 2));
    assert.equal(r.deliver, undefined);
    assert.equal(r.last, 5);
    assert.deepEqual(r.gap, { room: "r", after: 5, next: 8 });
  });
  it("ignores an empty batch", () => {
    const r = acceptBatch(5, { room: "r", seq: 0, ts: 0, msgs: [] });
    assert.equal(r.deliver, undefined);
    assert.equal(r.last, 5);
  });
  it("replays any sequence of overlapping batches into each seq once, in order", () => {
    let last: number | undefined = 0;
    const seen: number[] = [];
    for (const [seq, n] of [[1, 3], [2, 2], [1, 5], [6, 1], [4, 4], [10, 2], [8, 5]] as const) {
      const r = acceptBatch(last, batch(seq, n));
      if (r.gap === undefined) last = r.last;
      if (r.deliver) seen.push(...batchMessages(r.deliver).map((m) => m.seq));
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });
});
