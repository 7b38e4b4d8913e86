import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Emitter } from "@laneim/client";

interface Events {
  n: number;
  s: string;
}

class Bus extends Emitter<Events> {
  fire<K extends keyof Events>(type: K, v: Events[K]): void {
    this.emit(type, v);
  }
}

describe("Emitter", () => {
  it("calls listeners in order, removes them, and runs once listeners once", () => {
    const bus = new Bus();
    const got: string[] = [];
    const off = bus.on("n", (n) => got.push(`a${n}`));
    bus.on("n", (n) => got.push(`b${n}`));
    bus.once("s", (s) => got.push(`once ${s}`));
    bus.fire("n", 1);
    bus.fire("s", "x");
    bus.fire("s", "y");
    off();
    bus.fire("n", 2);
    assert.deepEqual(got, ["a1", "b1", "once x", "b2"]);
    assert.equal(bus.listenerCount("s"), 0);
  });
  it("keeps calling listeners when one throws, and reports the error as uncaught", async () => {
    const bus = new Bus();
    const got: number[] = [];
    bus.on("n", () => {
      throw new Error("boom");
    });
    bus.on("n", (n) => got.push(n));
    // The test runner's own handler would fail the test: stand in for it meanwhile.
    const runners = process.listeners("uncaughtException");
    process.removeAllListeners("uncaughtException");
    try {
      const uncaught = new Promise<unknown>((resolve) => process.once("uncaughtException", resolve));
      bus.fire("n", 7);
      assert.deepEqual(got, [7]);
      assert.equal(((await uncaught) as Error).message, "boom");
    } finally {
      for (const l of runners) process.on("uncaughtException", l);
    }
  });
});
