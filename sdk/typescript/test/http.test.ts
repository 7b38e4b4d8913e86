import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { LaneError, LaneHttp, LaneServerApi, tokenUser, wsUrl, type FetchLike } from "@laneim/client";
import { httpError } from "@laneim/client/internal";

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A fetch that records calls and answers with status and body. */
function fakeFetch(status: number, body: string, calls: Call[]): FetchLike {
  return async (url, init) => {
    calls.push({ url, method: init.method, headers: init.headers, body: init.body });
    return { status, text: async () => body };
  };
}

// A token of user alice (signature not checked by the client).
const aliceToken = `e30.${Buffer.from(JSON.stringify({ sub: "alice", exp: 1 })).toString("base64url")}.sig`;

describe("LaneHttp", () => {
  it("calls the global fetch as a plain function, as browsers require", async () => {
    const saved = globalThis.fetch;
    let self: unknown = "not called";
    // A browser's fetch throws "Illegal invocation" unless this is the window or undefined.
    globalThis.fetch = function (this: unknown) {
      self = this;
      if (this !== undefined && this !== globalThis) return Promise.reject(new TypeError("Illegal invocation"));
      return Promise.resolve(new Response('{"token":"t","expires_at":1}', { status: 200 }));
    } as typeof fetch;
    try {
      assert.deepEqual(await LaneHttp.devToken("http://h", "alice"), { token: "t", expiresAt: 1 });
    } finally {
      globalThis.fetch = saved;
    }
    assert.equal(self, undefined);
  });

  it("sends JSON with the bearer token and decodes the answer", async () => {
    const calls: Call[] = [];
    const h = new LaneHttp({
      baseUrl: "http://127.0.0.1:8080/",
      token: aliceToken,
      fetch: fakeFetch(201, '{"room":"general","name":"General","owner":"alice","public":true}', calls),
    });
    const room = await h.createRoom({ room: "general", name: "General", public: true });
    assert.deepEqual(room, { room: "general", name: "General", owner: "alice", public: true });
    assert.deepEqual(calls, [
      {
        url: "http://127.0.0.1:8080/v1/rooms",
        method: "POST",
        headers: { Accept: "application/json", Authorization: `Bearer ${aliceToken}`, "Content-Type": "application/json" },
        body: '{"room":"general","name":"General","public":true}',
      },
    ]);
  });

  it("uses the token's user to join and leave, and a provider for every request", async () => {
    const calls: Call[] = [];
    let n = 0;
    const h = new LaneHttp({
      baseUrl: "http://h",
      token: () => {
        n++;
        return aliceToken;
      },
      fetch: fakeFetch(204, "", calls),
    });
    await h.join("general");
    await h.leave("general");
    await h.read("general", 12);
    assert.deepEqual(
      calls.map((c) => `${c.method} ${c.url} ${c.body ?? ""}`),
      ["PUT http://h/v1/rooms/general/members/alice ", "DELETE http://h/v1/rooms/general/members/alice ", 'PUT http://h/v1/rooms/general/read {"seq":12}'],
    );
    assert.ok(n >= 3);
  });

  it("turns a history page into messages and builds the query", async () => {
    const calls: Call[] = [];
    const h = new LaneHttp({
      baseUrl: "http://h",
      token: aliceToken,
      fetch: fakeFetch(200, '{"room":"r","seq":4,"ts":100,"msgs":[["bob",0,"a"],["eve",5,{"x":1}]],"more":true}', calls),
    });
    const page = await h.messages("r", { before: 6, limit: 2 });
    assert.equal(calls[0]?.url, "http://h/v1/rooms/r/messages?before=6&limit=2");
    assert.deepEqual(page, {
      room: "r",
      more: true,
      messages: [
        { room: "r", seq: 4, ts: 100, user: "bob", body: "a" },
        { room: "r", seq: 5, ts: 105, user: "eve", body: { x: 1 } },
      ],
    });
  });

  it("maps my rooms' read_seq and posts messages with a nonce", async () => {
    const calls: Call[] = [];
    const rooms = new LaneHttp({ baseUrl: "http://h", token: aliceToken, fetch: fakeFetch(200, '{"rooms":[{"room":"a","name":"A","seq":3,"read_seq":1}],"more":true}', calls) });
    assert.deepEqual(await rooms.myRooms({ after: "0", limit: 1 }), { rooms: [{ room: "a", name: "A", seq: 3, readSeq: 1 }], more: true });
    assert.equal(calls.at(-1)?.url, "http://h/v1/me/rooms?after=0&limit=1");
    const post = new LaneHttp({ baseUrl: "http://h", token: aliceToken, fetch: fakeFetch(200, '{"seq":9,"ts":77}', calls) });
    assert.deepEqual(await post.postMessage("a", { text: "hi" }, { nonce: "n1" }), { seq: 9, ts: 77, nonce: "n1" });
    assert.equal(calls.at(-1)?.body, '{"nonce":"n1","body":{"text":"hi"}}');
  });

  it("leaves rooms in bulk and manages blocks", async () => {
    const calls: Call[] = [];
    const left = new LaneHttp({ baseUrl: "http://h", token: aliceToken, fetch: fakeFetch(200, '{"left":["a"]}', calls) });
    assert.deepEqual(await left.leaveRooms(["a", "b"]), ["a"]);
    assert.equal(calls.at(-1)?.body, '{"rooms":["a","b"]}');
    const blocks = new LaneHttp({ baseUrl: "http://h", token: aliceToken, fetch: fakeFetch(200, '{"users":["eve"],"more":false}', calls) });
    assert.deepEqual(await blocks.blocks({ limit: 10 }), { users: ["eve"], more: false });
    await blocks.block("eve");
    await blocks.unblock("eve");
    assert.deepEqual(
      calls.slice(-3).map((c) => `${c.method} ${c.url}`),
      ["GET http://h/v1/me/blocks?limit=10", "PUT http://h/v1/me/blocks/eve", "DELETE http://h/v1/me/blocks/eve"],
    );
  });

  it("fails with the answer's code and the status", async () => {
    const h = new LaneHttp({
      baseUrl: "http://h",
      token: aliceToken,
      fetch: fakeFetch(403, '{"error":{"code":"forbidden","message":"not a member of room x"}}', []),
    });
    await assert.rejects(h.getRoom("x"), (e: unknown) => e instanceof LaneError && e.code === "forbidden" && e.status === 403 && e.message === "not a member of room x");
    await assert.rejects(h.getRoom("not valid"), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
  });

  it("gets a dev token", async () => {
    const calls: Call[] = [];
    const got = await LaneHttp.devToken("http://h", "alice", { fetch: fakeFetch(200, '{"token":"t","expires_at":5}', calls) });
    assert.deepEqual(got, { token: "t", expiresAt: 5 });
    assert.equal(calls[0]?.body, '{"user":"alice"}');
    assert.equal(calls[0]?.headers["Authorization"], undefined);
  });

  it("times out a request that gets no answer", async () => {
    const never: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
    const h = new LaneHttp({ baseUrl: "http://h", fetch: never, timeoutMs: 20 });
    await assert.rejects(h.health(), (e: unknown) => e instanceof LaneError && e.code === "timeout");
  });
});

describe("httpError", () => {
  it("falls back on the status for answers without an error body", () => {
    const e = httpError(502, "<html>bad gateway</html>");
    assert.equal(e.code, "unavailable");
    assert.equal(e.status, 502);
    assert.equal(httpError(404, "").code, "not_found");
    assert.equal(httpError(500, "{}").code, "internal");
  });
});

describe("wsUrl and tokenUser", () => {
  it("derive the WebSocket endpoint", () => {
    assert.equal(wsUrl("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ws");
    assert.equal(wsUrl("https://chat.example/"), "wss://chat.example/v1/ws");
    assert.equal(wsUrl("https://chat.example/im"), "wss://chat.example/im/v1/ws");
    assert.equal(wsUrl("ws://h:1/v1/ws"), "ws://h:1/v1/ws");
    assert.throws(() => wsUrl("ftp://h"), LaneError);
  });
  it("read the user of a token", () => {
    assert.equal(tokenUser(aliceToken), "alice");
    assert.equal(tokenUser("nope"), undefined);
    assert.equal(tokenUser("a.!!!.c"), undefined);
  });

  it("LaneServerApi sends the API key and the acting user", async () => {
    const calls: Call[] = [];
    const api = new LaneServerApi({ baseUrl: "http://h", apiKey: "k".repeat(32), fetch: fakeFetch(200, '{"seq":3,"ts":5}', calls) });
    assert.deepEqual(await api.post("general", "bot", { text: "hi" }, { nonce: "n1" }), { seq: 3, ts: 5, nonce: "n1" });
    await api.kick("mallory", "spam");
    await api.kick("eve");
    assert.deepEqual(
      calls.map((c) => `${c.method} ${c.url} ${c.headers["Authorization"]} ${c.headers["Laneim-User"]} ${c.body ?? ""}`),
      [
        `POST http://h/v1/rooms/general/messages Bearer ${"k".repeat(32)} bot {"nonce":"n1","body":{"text":"hi"}}`,
        `POST http://h/v1/users/mallory/kick Bearer ${"k".repeat(32)} system {"reason":"spam"}`,
        `POST http://h/v1/users/eve/kick Bearer ${"k".repeat(32)} system `,
      ],
    );
    assert.throws(() => api.as("not valid"), (e: unknown) => e instanceof LaneError && e.code === "bad_request");
    assert.throws(() => new LaneServerApi({ baseUrl: "http://h", apiKey: "" }), (e: unknown) => e instanceof LaneError);
  });
});
