import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { backoffDelay } from "@laneim/client/internal";

describe("backoffDelay", () => {
  it("doubles from min, capped at max, with equal jitter", () => {
    // attempt: [fixed half, whole] of min * 2^attempt, capped at max
    const cases: [number, number, number][] = [
      [0, 125, 250],
      [1, 250, 500],
      [2, 500, 1000],
      [5, 4000, 8000],
      [6, 7500, 15000],
      [60, 7500, 15000],
    ];
    for (const [attempt, lo, hi] of cases) {
      assert.equal(backoffDelay(attempt, 250, 15000, 0), lo, `attempt ${attempt} at r=0`);
      assert.equal(backoffDelay(attempt, 250, 15000, 0.999999), hi, `attempt ${attempt} at r~1`);
      for (let i = 0; i < 100; i++) {
        const d = backoffDelay(attempt, 250, 15000);
        assert.ok(d >= lo && d <= hi, `attempt ${attempt}: ${d} not in [${lo}, ${hi}]`);
      }
    }
  });
  it("treats max below min as min", () => {
    assert.equal(backoffDelay(3, 1000, 10, 0), 5);
  });
});
