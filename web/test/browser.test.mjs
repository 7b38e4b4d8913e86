// End-to-end test of laneim dev's browser demo (web/): headless Chromium, driven by
// puppeteer-core, against a real `laneim dev` built from this repository. Two users in
// two browser contexts (separate storage, as two people on two machines) chat through
// the pages; every check reads what the pages show.
//
//   node --test browser.test.mjs     (in web/test, after npm ci; or go tool task browser)
//
// Environment: LANEIM_BIN (a built laneim; default: go build), CHROMIUM_PATH (default
// /usr/bin/chromium, Debian's package), LANEIM_SCREENSHOTS (where the screenshots go;
// default a new temporary dir, printed at the end). Everything listens on 127.0.0.1,
// every wait is bounded, and the server and the browser are stopped at the end.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import puppeteer from "puppeteer-core";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const chromium = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** Bound on each wait for a page to show something. */
const waitMs = 15_000;
/** The chat page's history page size (app.js pageSize). */
const pageSize = 50;
/** Messages seeded before bob joins: more than one history page. */
const seeded = 60;
/** Messages alice sends while the status page watches. */
const statusMessages = 10;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** `laneim dev` on a loopback port and a temporary data dir, restartable on both. */
class Server {
  proc;
  log = [];
  constructor(bin, data, port) {
    this.bin = bin;
    this.data = data;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
  }

  async start() {
    const args = ["dev", "--data", this.data, "--http", `127.0.0.1:${this.port}`, "--nats-listen", "none"];
    const proc = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    const keep = (chunk) => {
      this.log.push(...chunk.toString().split("\n").filter((l) => l !== ""));
      if (this.log.length > 300) this.log.splice(0, this.log.length - 300);
    };
    proc.stdout.on("data", keep);
    proc.stderr.on("data", keep);
    proc.once("exit", () => {
      if (this.proc === proc) this.proc = undefined;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.proc !== proc) throw new Error(`laneim dev exited at start:\n${this.log.join("\n")}`);
      try {
        const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`laneim dev not healthy within 60 s:\n${this.log.join("\n")}`);
      }
      await sleep(100);
    }
  }

  /** SIGTERM (the server drains), SIGKILL after 10 s. */
  async stop() {
    const proc = this.proc;
    if (proc === undefined) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** POST to the HTTP API as user (a dev token each time). */
  async post(user, path, body) {
    const tok = await fetch(`${this.base}/v1/dev/token`, { method: "POST", body: JSON.stringify({ user }), signal: AbortSignal.timeout(5000) });
    const { token } = await tok.json();
    const res = await fetch(this.base + path, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    assert.ok(res.ok, `POST ${path}: ${res.status} ${await res.text()}`);
  }
}

describe("browser demo", { timeout: 15 * 60_000 }, () => {
  let work;
  let server;
  let browser;
  let shots;
  /** Uncaught errors of every page: a test fails on any. */
  const pageErrors = [];
  const pages = {};

  before(
    async () => {
      work = await mkdtemp(join(tmpdir(), "laneim-web-e2e-"));
      shots = process.env.LANEIM_SCREENSHOTS || (await mkdtemp(join(tmpdir(), "laneim-web-shots-")));
      mkdirSync(shots, { recursive: true });
      let bin = process.env.LANEIM_BIN;
      if (!bin) {
        bin = join(work, "laneim");
        await run("go", ["build", "-o", bin, "./cmd/laneim"], { cwd: repoRoot, timeout: 10 * 60_000, maxBuffer: 16 << 20 });
      }
      server = new Server(bin, join(work, "data"), await freePort());
      await server.start();
      const args = ["--disable-dev-shm-usage", "--lang=en-US"];
      // Chromium's sandbox refuses to run as root (CI runs as root).
      if (process.getuid?.() === 0) args.push("--no-sandbox");
      browser = await puppeteer.launch({ executablePath: chromium, headless: true, args, timeout: 30_000, protocolTimeout: 30_000 });
    },
    { timeout: 12 * 60_000 },
  );

  after(async () => {
    if (browser !== undefined) {
      await Promise.race([browser.close(), sleep(10_000)]);
      browser.process()?.kill("SIGKILL");
    }
    await server?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
    if (shots !== undefined) console.log(`# screenshots: ${shots}`);
  });

  /** A page of its own browser context, signed in as user. */
  async function signIn(user, shotBefore) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.setDefaultTimeout(waitMs);
    page.on("pageerror", (err) => pageErrors.push(`${user}: ${err.message}`));
    await page.setViewport({ width: 1200, height: 760 });
    await page.goto(server.base, { waitUntil: "load" });
    await page.waitForSelector("#login-name", { visible: true });
    if (shotBefore !== undefined) await shot(page, shotBefore);
    await page.type("#login-name", user);
    await page.click("#login-form button[type=submit]");
    await waitConn(page, "Connected");
    assert.equal(await text(page, "#me-name"), user);
    // The page marks the open room read only while it is visible.
    assert.equal(await page.evaluate(() => document.visibilityState), "visible");
    pages[user] = page;
    return page;
  }

  async function shot(page, name) {
    await page.screenshot({ path: join(shots, `${name}.png`) });
  }

  function text(page, selector) {
    return page.$eval(selector, (e) => e.textContent.trim());
  }

  /** The connection state the page shows, e.g. "Connected" or "Reconnecting…". */
  async function waitConn(page, state) {
    await page.waitForFunction((s) => document.querySelector("#conn")?.firstChild?.textContent === s, { polling: 100 }, state);
  }

  /** Waits until the element of selector shows exactly want. */
  async function waitText(page, selector, want) {
    await page.waitForFunction((sel, w) => document.querySelector(sel)?.textContent.trim() === w, { polling: 100 }, selector, want);
  }

  /** The bodies of the messages the open room shows, top to bottom (not those still sending). */
  function bodies(page) {
    return page.$$eval("#message-list .msg:not(.pending) .msg-body", (els) => els.map((e) => e.textContent));
  }

  /**
   * Waits until the open room shows at least atLeast messages (default 1) and, when
   * last is given, ends with it. (The predicate runs in the page, whose CSP allows no
   * eval: it takes data, not code.)
   */
  async function waitBodies(page, { last, atLeast = 1 }, what) {
    try {
      await page.waitForFunction(
        (l, n) => {
          const list = [...document.querySelectorAll("#message-list .msg:not(.pending) .msg-body")].map((e) => e.textContent);
          return list.length >= n && (l === null || list.at(-1) === l);
        },
        { polling: 100 },
        last ?? null,
        atLeast,
      );
    } catch (err) {
      throw new Error(`${what}: the page shows ${JSON.stringify((await bodies(page)).slice(-8))}`, { cause: err });
    }
  }

  /** The unread badge of room in the room list: "" when hidden. */
  function badge(page, room) {
    return page.$eval(`[data-room="${room}"] .unread`, (e) => (e.hidden ? "" : e.textContent));
  }

  async function send(page, message) {
    await page.type("#composer-text", message);
    await page.keyboard.press("Enter");
  }

  async function openRoom(page, room, title) {
    await page.click(`[data-room="${room}"]`);
    await waitText(page, "#room-title", title);
  }

  const seeds = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `seed ${from + i}`);

  it("alice signs in and creates a public room", async () => {
    const alice = await signIn("alice", "01-sign-in");
    await alice.type("#create-name", "General");
    await alice.type("#create-id", "general");
    assert.equal(await alice.$eval("#create-public", (e) => e.checked), true);
    await alice.click("#create-form button[type=submit]");
    await waitText(alice, '[data-room="general"] .room-name', "General");
    await waitText(alice, "#room-title", "General");
    await waitText(alice, "#room-kind", "public");
    await waitText(alice, "#history-status", "No messages in #general yet. Say hello!");
  });

  it("alice's page shows messages sent over HTTP live, in order", async () => {
    for (let i = 1; i <= seeded; i++) {
      await server.post("alice", "/v1/rooms/general/messages", { nonce: `seed-${i}`, body: { text: `seed ${i}` } });
    }
    const alice = pages.alice;
    await waitBodies(alice, { last: "seed 60", atLeast: seeded }, "alice sees the seeded messages");
    assert.deepEqual(await bodies(alice), seeds(1, seeded));
  });

  it("bob joins the room by id and sees its newest page; alice sees him join", async () => {
    const bob = await signIn("bob");
    await waitText(bob, "#rooms-empty", "No rooms yet. Create one, or join a public room by its id.");
    await bob.type("#join-id", "general");
    await bob.click("#join-form button[type=submit]");
    await waitText(bob, "#room-title", "General");
    await waitBodies(bob, { last: "seed 60" }, "bob sees the newest message");
    assert.deepEqual(await bodies(bob), seeds(seeded - pageSize + 1, seeded));
    assert.equal(await bob.$eval("#older", (e) => !e.hidden), true, "a load older button while older pages exist");
    await waitText(bob, "#room-members", "2 members · owner alice");
    await shot(bob, "02-bob-joined");

    const alice = pages.alice;
    await alice.waitForFunction(() => [...document.querySelectorAll("#message-list .event")].some((e) => e.textContent.startsWith("bob joined the room")), { polling: 100 });
    await waitText(alice, "#room-members", "2 members · owner alice");
  });

  it("alice sees bob online, and typing while he writes", async () => {
    const { alice, bob } = pages;
    await waitText(alice, "#room-online", "2 online");
    await waitText(bob, "#room-online", "2 online");
    await bob.type("#composer-text", "typing");
    await waitText(alice, "#typing", "bob is typing…");
    assert.equal(await bob.$eval("#typing", (e) => e.textContent), "", "bob is not shown his own typing");
    await shot(alice, "02b-alice-sees-bob-typing");
    await bob.$eval("#composer-text", (e) => {
      e.value = "";
    });
    // Shown for 5 s after the last typing event.
    await alice.waitForFunction(() => document.querySelector("#typing")?.textContent === "", { polling: 200, timeout: 10_000 });
  });

  it("bob scrolls back through history to the beginning", async () => {
    const bob = pages.bob;
    await bob.$eval("#messages", (e) => {
      e.scrollTop = 0;
    });
    await waitBodies(bob, { atLeast: seeded }, "the older page arrives on scroll-up");
    assert.deepEqual(await bodies(bob), seeds(1, seeded));
    await waitText(bob, "#history-status", "This is the beginning of #general.");
    assert.equal(await bob.$eval("#older", (e) => e.hidden), true);
    await bob.$eval("#messages", (e) => {
      e.scrollTop = 0;
    });
    await shot(bob, "03-bob-history");
  });

  it("alice and bob chat live and both pages show the messages in order", async () => {
    const { alice, bob } = pages;
    await send(alice, "hello bob");
    await waitBodies(bob, { last: "hello bob" }, "bob receives alice's message");
    await send(bob, "hi alice <b>not bold</b>");
    await waitBodies(alice, { last: "hi alice <b>not bold</b>" }, "alice receives bob's answer");
    for (const m of ["one", "two", "three"]) await send(alice, m);
    const want = ["hello bob", "hi alice <b>not bold</b>", "one", "two", "three"];
    for (const [who, page] of Object.entries(pages)) {
      await waitBodies(page, { last: "three" }, `${who} sees the last message`);
      // Each page shows every message of the room once, in seq order.
      assert.deepEqual(await bodies(page), [...seeds(1, seeded), ...want], `${who}'s page`);
      assert.equal(await page.$$eval("#message-list .pending", (els) => els.length), 0, `${who} has nothing left sending`);
      // User content is text: the markup in bob's message made no element.
      assert.equal(await page.$$eval("#message-list .msg-body b", (els) => els.length), 0);
    }
    await shot(alice, "04-alice-chat");
    await shot(bob, "05-bob-chat");
  });

  it("bob's unread count of the room moves while he looks at another room, and drops to 0 when he opens it", async () => {
    const { alice, bob } = pages;
    await bob.type("#create-name", "Bob's notes");
    await bob.type("#create-id", "bob-notes");
    await bob.click("#create-public"); // private
    await bob.click("#create-form button[type=submit]");
    await waitText(bob, "#room-title", "Bob's notes");
    await waitText(bob, "#room-kind", "private");
    assert.equal(await badge(bob, "general"), "");

    for (const m of ["ping 1", "ping 2", "ping 3"]) await send(alice, m);
    await waitBodies(alice, { last: "ping 3" }, "alice's pings are acked");
    await waitText(bob, '[data-room="general"] .unread', "3");
    assert.equal(await bob.title(), "(3) laneIM");
    await shot(bob, "06-bob-unread");

    await openRoom(bob, "general", "General");
    await waitBodies(bob, { last: "ping 3" }, "bob sees the pings");
    assert.equal(await badge(bob, "general"), "");
    // Looking away again shows the Client's count, which only the read op brought to 0.
    await openRoom(bob, "bob-notes", "Bob's notes");
    await bob.waitForFunction(() => document.querySelector('[data-room="general"] .unread')?.hidden === true, { polling: 100 });
    // And the server keeps it: a reload lists the room from a fresh ready.
    await bob.reload({ waitUntil: "load" });
    await waitConn(bob, "Connected");
    await waitText(bob, "#room-title", "Bob's notes");
    await bob.waitForSelector('[data-room="general"]');
    assert.equal(await badge(bob, "general"), "");
    assert.equal(await bob.title(), "laneIM");
    await shot(bob, "07-bob-read");
  });

  it("the status page lists the live nodes and this gateway", async () => {
    // A context of its own: a second tab in bob's would put his chat in the background.
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.setDefaultTimeout(waitMs);
    page.on("pageerror", (err) => pageErrors.push(`status: ${err.message}`));
    await page.setViewport({ width: 1200, height: 760 });
    await page.goto(`${server.base}/web/status.html`, { waitUntil: "load" });
    await page.waitForFunction(() => document.querySelectorAll("#nodes tr").length >= 3, { polling: 100 });
    const rows = await page.$$eval("#nodes tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(
      rows.map((r) => r[0]),
      ["gateway", "logic", "pusher"],
    );
    assert.deepEqual(rows[0].slice(1, 3), ["dev0", `127.0.0.1:${server.port}`]);
    // A node reports its connections every 5 s.
    await waitText(page, '#nodes tr[data-role="gateway"] td:nth-child(4)', "2");
    await waitText(page, "#gw-id", "dev0");
    await waitText(page, "#gw-conns", "2");
    // Rates come from the second poll on, two seconds later, and show the traffic
    // between two polls.
    await page.waitForFunction(() => /^[0-9]/.test(document.querySelector("#rate-messages")?.textContent ?? ""), { polling: 100 });
    for (let i = 1; i <= statusMessages; i++) {
      await server.post("alice", "/v1/rooms/general/messages", { nonce: `status-${i}`, body: { text: `status ${i}` } });
    }
    await page.waitForFunction(
      () => ["#rate-messages", "#rate-deliveries", "#rate-frames"].every((id) => Number(document.querySelector(id)?.textContent) > 0),
      { polling: 100 },
    );
    assert.match(await text(page, "#status-line"), /^Live · updated /);
    await shot(page, "08-status");
    await context.close();
  });

  it("the page shows the connection state through a server restart, then chats again", async () => {
    const { alice, bob } = pages;
    await server.stop();
    await waitConn(alice, "Reconnecting…");
    await shot(alice, "09-alice-reconnecting");
    await server.start();
    await waitConn(alice, "Connected");
    await waitConn(bob, "Connected");
    await send(alice, "back again");
    await waitBodies(alice, { last: "back again" }, "alice's message after the restart is acked");
    // Bob looks at his other room: the status messages and this one are unread.
    await waitText(bob, '[data-room="general"] .unread', String(statusMessages + 1));
    await openRoom(bob, "general", "General");
    await waitBodies(bob, { last: "back again" }, "bob gets it after the restart");
    const tail = (await bodies(bob)).slice(-3);
    assert.deepEqual(tail, [`status ${statusMessages - 1}`, `status ${statusMessages}`, "back again"]);
    assert.equal(await badge(bob, "general"), "");
  });

  it("no page threw", () => {
    assert.deepEqual(pageErrors, []);
  });
});
