// The chat page of laneim dev's browser demo, on the TypeScript SDK (./sdk, a copy of
// sdk/typescript/dist). It shows what a client of docs/protocol.md does:
//
// - a dev token from POST /v1/dev/token for the name picked, kept in localStorage and
//   renewed through the Client's tokenProvider before it expires;
// - the user's rooms with unread counts, which the Client keeps from ready, ticks,
//   read events and the user's own reads and sends;
// - one room open at a time: its newest history page, then a subscribe with since =
//   the page's last seq, so that the live messages follow the page without a gap;
//   older pages on scroll-up; the room marked read while the page is visible. The
//   room left is unsubscribed, so that it gets ticks (unread counts) again;
// - rooms created and joined over HTTP (LaneHttp), member join and leave events, and
//   the connection's state, reconnects included;
// - the open room's online count (subscribe with presence) and who is typing in it
//   (typing ops on keystrokes, at most one every 2.5 s; the server relays one every 3).
//
// User content only ever reaches the page as text (textContent, Text nodes): there is
// no innerHTML here, and the page's Content-Security-Policy allows only its own scripts.

import { Client, LaneHttp, newNonce } from "./sdk/index.js";

const base = location.origin;
const sessionKey = "laneim.session";
const lastRoomKey = (user) => `laneim.room.${user}`;
const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
/** Messages per history page (the protocol allows 1 to 200). */
const pageSize = 50;
/** The server's max_body_bytes default; a longer body is refused with too_large. */
const maxBodyBytes = 4096;
/** Consecutive messages of one sender within this long share one header. */
const groupMs = 5 * 60_000;
/** How close to the bottom (px) counts as "at the bottom" for following new messages. */
const followSlack = 80;

const $ = (id) => {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`#${id} is missing from index.html`);
  return e;
};

/**
 * el(tag, attributes, ...children) builds an element. Children are nodes or strings,
 * and a string becomes a Text node: this is how user content is put on the page.
 */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null && c !== false) e.append(c);
  return e;
}

// ---- session ------------------------------------------------------------------

/** This page's user and token: {user, token, expiresAt}. Other tabs may switch users in localStorage; this page keeps its own. */
let session;

function storedSession() {
  try {
    const s = JSON.parse(localStorage.getItem(sessionKey) ?? "null");
    if (s !== null && typeof s.user === "string" && idPattern.test(s.user)) {
      return { user: s.user, token: typeof s.token === "string" ? s.token : "", expiresAt: Number(s.expiresAt) || 0 };
    }
  } catch {
    // unreadable: start over
  }
  return undefined;
}

function saveSession() {
  try {
    localStorage.setItem(sessionKey, JSON.stringify(session));
  } catch {
    // storage full or disabled: the page works, a reload asks for the name again
  }
}

/** The current token, a fresh dev token when it expires within two minutes. */
async function currentToken() {
  if (session.token !== "" && session.expiresAt - Date.now() > 120_000) return session.token;
  const { token, expiresAt } = await LaneHttp.devToken(base, session.user);
  session = { user: session.user, token, expiresAt };
  saveSession();
  return token;
}

// ---- state ----------------------------------------------------------------------

/** The Client of the current connection attempt. */
let client;
/** LaneHttp for room management as session.user. */
let http;
let retryTimer;
let connectAttempt = 0;
/** Rooms of the user, by id: {name, named (the name is the server's), unread}. */
const rooms = new Map();
/** The room list's items, by room id. */
const roomItems = new Map();
/**
 * The open room: {room, gen, seqs: Set of seqs shown, oldest, lastSeq, more,
 * loadingOlder, subscribed (a subscribe was sent), live (it was answered)}.
 * undefined when none is open.
 */
let view;
/** Bumped at every open and close; async work of an older view sees it and stops. */
let viewGen = 0;
let reading = false;
let readAgain = false;

// ---- start ------------------------------------------------------------------------

function showLogin(message = "") {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-name").focus();
}

function start(user) {
  const stored = storedSession();
  session = stored?.user === user ? stored : { user, token: "", expiresAt: 0 };
  saveSession();
  $("login").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = user;
  paintAvatar($("me-avatar"), user);
  http = new LaneHttp({ baseUrl: base, token: currentToken });
  connect();
}

/** Creates a Client and connects it; a failed first connect is retried with backoff. */
async function connect() {
  clearTimeout(retryTimer);
  const c = new Client({ url: base, tokenProvider: currentToken });
  const old = client;
  client = c;
  old?.close(); // a client that stopped for good (its listeners ignore it from now on)
  listen(c);
  setConn("connecting");
  try {
    await c.connect();
    connectAttempt = 0;
    // A room open on an earlier Client (one that stopped for good) is opened again
    // on this one, which knows nothing of it.
    if (view !== undefined && client === c && !c.subscriptions().includes(view.room)) {
      const room = view.room;
      view.subscribed = false;
      closeRoom();
      void openRoom(room);
    }
  } catch (err) {
    if (client !== c) return;
    // A token the server refuses (a data dir started afresh has a new secret) is
    // replaced by a fresh one on the next attempt.
    if (err?.code === "unauthorized") session.token = "";
    const wait = Math.min(15_000, 500 * 2 ** connectAttempt++);
    setConn("offline", `${describe(err)}; retrying in ${Math.ceil(wait / 1000)} s`);
    retryTimer = setTimeout(connect, wait);
  }
}

function listen(c) {
  const mine = (f) => (arg) => {
    if (client === c) f(arg);
  };
  c.on("ready", mine(() => setConn("connected")));
  c.on("reconnect", mine(() => setConn("connected")));
  c.on(
    "close",
    mine((info) => {
      if (info.code === 4001) session.token = ""; // refused or expired: get a new one
      if (info.willReconnect) setConn("reconnecting", closeText(info));
      else if (info.code !== 1000) setConn("offline", closeText(info), true);
    }),
  );
  c.on("rooms", mine(syncRooms));
  c.on("unread", mine(onUnread));
  c.on("message", mine(onMessage));
  c.on("member", mine(onMember));
  c.on("presence", mine(onPresence));
  c.on("typing", mine(() => paintTyping()));
  c.on(
    "error",
    mine((e) => {
      if (e.code !== "gap") toast(describe(e)); // a gap is repaired by the client itself
    }),
  );
}

function logout() {
  clearTimeout(retryTimer);
  const c = client;
  client = undefined;
  c?.close();
  closeRoom();
  rooms.clear();
  renderRooms();
  try {
    localStorage.removeItem(sessionKey);
  } catch {
    // nothing stored
  }
  session = undefined;
  document.title = "laneIM";
  showLogin();
}

// ---- connection state ---------------------------------------------------------------

const connText = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…", offline: "Offline" };

function setConn(state, detail = "", offerReconnect = false) {
  const e = $("conn");
  e.dataset.state = state;
  e.title = detail;
  e.replaceChildren(connText[state]);
  if (detail !== "") e.append(el("span", { class: "conn-detail" }, detail));
  if (offerReconnect) e.append(" ", el("button", { type: "button", class: "link", onclick: () => connect() }, "Reconnect"));
  document.body.dataset.conn = state;
}

function closeText(info) {
  return info.reason ? `${info.code} ${info.reason}` : `closed (${info.code})`;
}

function describe(err) {
  if (err === null || typeof err !== "object") return String(err);
  return err.code ? `${err.code}: ${err.message}` : String(err.message ?? err);
}

let toastTimer;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 6000);
}

// ---- the room list ----------------------------------------------------------------------

/** The whole room list after a connect: the Client's rooms with unread counts, then names. */
async function syncRooms(list) {
  const listed = new Set(list.map((r) => r.room));
  for (const room of [...rooms.keys()]) {
    if (!listed.has(room)) {
      rooms.delete(room);
      if (view?.room === room) closeRoom();
    }
  }
  for (const r of list) {
    const known = rooms.get(r.room);
    rooms.set(r.room, { name: known?.name ?? r.room, named: known?.named ?? false, unread: r.unread });
  }
  renderRooms();
  const c = client;
  try {
    let after;
    for (;;) {
      const page = await c.listRooms(after === undefined ? {} : { after });
      if (client !== c) return;
      for (const r of page.rooms) {
        const known = rooms.get(r.room);
        if (known !== undefined) {
          known.name = r.name;
          known.named = true;
        }
      }
      const last = page.rooms.at(-1);
      if (!page.more || last === undefined) break;
      after = last.room;
    }
  } catch (err) {
    toast(`room names: ${describe(err)}`);
  }
  renderRooms();
  if (view !== undefined) $("room-title").textContent = rooms.get(view.room)?.name ?? view.room;
  else {
    const last = remembered(lastRoomKey(session?.user ?? ""));
    if (last !== null && rooms.has(last)) void openRoom(last);
  }
}

function remembered(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * Adds a room the user just joined or created, with its name when the caller knows
 * it, else from GET /v1/rooms/{room}.
 */
async function addRoom(room, name) {
  let r = rooms.get(room);
  if (r === undefined) {
    r = { name: name ?? room, named: false, unread: client?.unread(room) ?? 0 };
    rooms.set(room, r);
  }
  if (name !== undefined) {
    r.name = name;
    r.named = true;
  }
  renderRooms();
  if (r.named) return;
  try {
    const d = await http.getRoom(room);
    const now = rooms.get(room);
    if (now !== undefined) {
      now.name = d.name;
      now.named = true;
      renderRooms();
    }
  } catch {
    // the id stands in for the name
  }
}

function sortedRooms() {
  return [...rooms].sort(([a, ra], [b, rb]) => ra.name.localeCompare(rb.name) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Rebuilds the room list when rooms or names changed; counts alone go through paintUnread. */
function renderRooms() {
  const ul = $("rooms");
  ul.replaceChildren();
  roomItems.clear();
  for (const [room, r] of sortedRooms()) {
    const badge = el("span", { class: "unread", "aria-label": "unread messages" });
    const button = el(
      "button",
      { type: "button", class: "room-item", dataset: { room }, title: `#${room}`, onclick: () => void openRoom(room) },
      el("span", { class: "hash", "aria-hidden": "true" }, "#"),
      el("span", { class: "room-name" }, r.name),
      badge,
    );
    const li = el("li", {}, button);
    ul.append(li);
    roomItems.set(room, { button, badge });
    paintUnread(room);
  }
  $("rooms-empty").hidden = rooms.size > 0;
  markCurrent();
}

function markCurrent() {
  for (const [room, { button }] of roomItems) {
    if (room === view?.room) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

/** Whether the user is looking at room now: the page visible and the room open. */
function looking(room) {
  return view?.room === room && document.visibilityState === "visible";
}

/**
 * The count to show for room: the Client's, except for the room the user is looking
 * at once it is live, whose new messages are marked read as they arrive (showing
 * them as unread for the moment of the read op would only flicker).
 */
function shownUnread(room) {
  if (looking(room) && view.live) return 0;
  return rooms.get(room)?.unread ?? 0;
}

function paintUnread(room) {
  const item = roomItems.get(room);
  if (item !== undefined) {
    const n = shownUnread(room);
    item.badge.textContent = n > 0 ? (n > 999 ? "999+" : String(n)) : "";
    item.badge.hidden = n === 0;
    item.button.classList.toggle("has-unread", n > 0);
  }
  let total = 0;
  for (const r of rooms.keys()) total += shownUnread(r);
  document.title = total > 0 ? `(${total}) laneIM` : "laneIM";
}

function onUnread(u) {
  const r = rooms.get(u.room);
  if (r === undefined) {
    // A room the Client learned of first (a tick or a join before the list): add it.
    void addRoom(u.room);
    return;
  }
  r.unread = u.unread;
  paintUnread(u.room);
  if (u.unread > 0 && looking(u.room) && view.live) scheduleRead();
}

/** Marks the open room read up to the latest seq the Client knows, one read op at a time. */
function scheduleRead() {
  if (view === undefined) return;
  if (reading) {
    readAgain = true;
    return;
  }
  reading = true;
  const room = view.room;
  client
    .read(room)
    .catch((err) => toast(`read: ${describe(err)}`))
    .finally(() => {
      reading = false;
      if (readAgain) {
        readAgain = false;
        if (view !== undefined && looking(view.room) && client.unread(view.room) > 0) scheduleRead();
      }
    });
}

document.addEventListener("visibilitychange", () => {
  if (view === undefined) return;
  paintUnread(view.room);
  if (looking(view.room) && view.live && client?.unread(view.room) > 0) scheduleRead();
});

// ---- the open room ------------------------------------------------------------------------

async function openRoom(room) {
  if (view?.room === room) return;
  closeRoom();
  const gen = ++viewGen;
  view = { room, gen, seqs: new Set(), oldest: undefined, lastSeq: 0, more: false, loadingOlder: false, subscribed: false, live: false };
  try {
    localStorage.setItem(lastRoomKey(session.user), room);
  } catch {
    // not remembered
  }
  $("room-empty").hidden = true;
  $("room-view").hidden = false;
  $("room-title").textContent = rooms.get(room)?.name ?? room;
  $("room-id").textContent = `#${room}`;
  $("room-kind").hidden = true;
  $("room-members").textContent = "";
  $("room-online").textContent = "";
  $("typing").textContent = "";
  $("message-list").replaceChildren();
  $("older").hidden = true;
  setHistoryStatus("Loading…");
  markCurrent();
  paintUnread(room);
  $("composer-text").focus();
  void loadDetails(room, gen);
  const c = client;
  try {
    // The newest page first, then the live messages after it: subscribe with since
    // = the page's last seq makes the server send whatever came in between.
    const page = await c.history(room, { limit: pageSize });
    if (gen !== viewGen) return;
    addOlder(page);
    scrollToBottom();
    view.subscribed = true; // closeRoom unsubscribes from here on, answered or not
    await c.subscribe(room, { since: view.lastSeq, presence: true });
    if (gen !== viewGen) return;
    view.live = true;
    paintUnread(room);
    if (looking(room)) scheduleRead();
  } catch (err) {
    if (gen !== viewGen) return;
    setHistoryStatus(`Could not open #${room}: ${describe(err)}`);
  }
}

function closeRoom() {
  if (view === undefined) return;
  const { room, subscribed } = view;
  view = undefined;
  viewGen++;
  // Passive again: the room's news comes as ticks, which count as unread. Frames go
  // out in order, so this lands after a subscribe still waiting for its answer.
  if (subscribed && client !== undefined) client.unsubscribe(room).catch(() => {});
  $("room-view").hidden = true;
  $("room-empty").hidden = false;
  markCurrent();
  paintUnread(room);
}

async function loadDetails(room, gen) {
  try {
    const d = await http.getRoom(room);
    if (gen !== viewGen) return;
    $("room-title").textContent = d.name;
    const kind = $("room-kind");
    kind.textContent = d.public ? "public" : "private";
    kind.dataset.kind = d.public ? "public" : "private";
    kind.hidden = false;
    $("room-members").textContent = `${d.members} member${d.members === 1 ? "" : "s"} · owner ${d.owner}`;
    const r = rooms.get(room);
    if (r !== undefined && r.name !== d.name) {
      r.name = d.name;
      r.named = true;
      renderRooms();
    }
  } catch {
    // the header keeps the id
  }
}

function setHistoryStatus(text) {
  $("history-status").textContent = text;
}

/** Puts a history page (older than everything shown) at the top of the list. */
function addOlder(page) {
  const list = $("message-list");
  const frag = document.createDocumentFragment();
  for (const m of page.messages) {
    if (view.seqs.has(m.seq)) continue;
    view.seqs.add(m.seq);
    // An edit or a delete is already applied to its message in history.
    if (m.edit === undefined && m.delete === undefined) frag.append(messageItem(m));
  }
  list.prepend(frag);
  const first = page.messages[0];
  if (first !== undefined && (view.oldest === undefined || first.seq < view.oldest)) view.oldest = first.seq;
  const last = page.messages.at(-1);
  if (last !== undefined) view.lastSeq = Math.max(view.lastSeq, last.seq);
  view.more = page.more && view.oldest !== undefined && view.oldest > 1;
  $("older").hidden = !view.more;
  setHistoryStatus(view.more ? "" : view.seqs.size === 0 ? `No messages in #${view.room} yet. Say hello!` : `This is the beginning of #${view.room}.`);
  regroup();
}

async function loadOlder() {
  if (view === undefined || !view.more || view.loadingOlder || view.oldest === undefined) return;
  const { room, gen } = view;
  view.loadingOlder = true;
  setHistoryStatus("Loading older messages…");
  const box = $("messages");
  try {
    const page = await client.history(room, { before: view.oldest, limit: pageSize });
    if (gen !== viewGen) return;
    // Keep what the user looks at in place while the list grows above it.
    const fromBottom = box.scrollHeight - box.scrollTop;
    addOlder(page);
    box.scrollTop = box.scrollHeight - fromBottom;
  } catch (err) {
    if (gen === viewGen) setHistoryStatus(`Could not load older messages: ${describe(err)}`);
  } finally {
    if (gen === viewGen) view.loadingOlder = false;
  }
}

function onMessage(m) {
  if (view === undefined || m.room !== view.room) return;
  if (m.edit !== undefined || m.delete !== undefined) applyChange(m);
  else addMessage(m, m.user === session.user);
  paintTyping(); // a message ends its sender's typing
}

/** Applies a live edit or delete to the message it names, if shown. */
function applyChange(m) {
  view.seqs.add(m.seq);
  view.lastSeq = Math.max(view.lastSeq, m.seq);
  const body = $("message-list").querySelector(`li[data-seq="${m.edit ?? m.delete}"] .msg-body`);
  if (body === null) return;
  body.textContent = m.delete !== undefined ? "(deleted)" : `${messageText(m.body)} (edited)`;
}

function onPresence(p) {
  if (view === undefined || p.room !== view.room) return;
  $("room-online").textContent = `${p.online} online`;
}

/** Shows who is typing in the open room, as the Client keeps it (each for 5 s). */
function paintTyping() {
  const users = view === undefined || client === undefined ? [] : client.typingUsers(view.room);
  const shown = users.slice(0, 3).join(", ") + (users.length > 3 ? ` and ${users.length - 3} more` : "");
  $("typing").textContent = users.length === 0 ? "" : `${shown} ${users.length === 1 ? "is" : "are"} typing…`;
}

/** When this page last told the open room its user is typing. */
let typingSent = 0;

function onComposerInput() {
  if (view === undefined || !view.live || client === undefined) return;
  const now = Date.now();
  if (now - typingSent < 2500) return;
  typingSent = now;
  client.typing(view.room).catch(() => {}); // best effort: an indicator, not a message
}

/** Adds one message where its seq belongs (nearly always the end), once. */
function addMessage(m, follow) {
  if (view.seqs.has(m.seq)) return;
  view.seqs.add(m.seq);
  view.lastSeq = Math.max(view.lastSeq, m.seq);
  if (view.oldest === undefined) view.oldest = m.seq;
  if (view.seqs.size === 1) setHistoryStatus(view.more ? "" : `This is the beginning of #${view.room}.`);
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < followSlack;
  const list = $("message-list");
  const li = messageItem(m);
  // Walk back over unsent messages, and over messages and events that belong after this
  // one (an ack can overtake the message before it).
  let after = list.lastElementChild;
  while (after !== null && (after.dataset.pending !== undefined || Number(after.dataset.seq ?? after.dataset.after) >= m.seq)) {
    after = after.previousElementSibling;
  }
  if (after === null) list.prepend(li);
  else after.after(li);
  groupWithPrevious(li);
  const next = li.nextElementSibling;
  if (next !== null) groupWithPrevious(next);
  if (follow || atBottom) scrollToBottom();
}

function messageText(body) {
  if (typeof body === "string") return body;
  if (body !== null && typeof body === "object" && typeof body.text === "string") return body.text;
  return JSON.stringify(body);
}

function messageItem(m) {
  const when = new Date(m.ts);
  const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
  paintAvatar(avatar, m.user);
  return el(
    "li",
    { class: "msg", dataset: { seq: String(m.seq), user: m.user, ts: String(m.ts) } },
    avatar,
    el(
      "div",
      { class: "msg-main" },
      el(
        "div",
        { class: "msg-head" },
        el("span", { class: "msg-user" }, m.user),
        el("time", { class: "msg-time", datetime: when.toISOString(), title: `${when.toLocaleString()} · seq ${m.seq}` }, timeText(when)),
      ),
      el("div", { class: "msg-body" }, m.deleted ? "(deleted)" : m.edited !== undefined ? `${messageText(m.body)} (edited)` : messageText(m.body)),
    ),
  );
}

/** Hides the header of a message that follows one of the same sender closely. */
function groupWithPrevious(li) {
  if (!li.classList.contains("msg")) return;
  const prev = li.previousElementSibling;
  const same =
    prev !== null &&
    prev.classList.contains("msg") &&
    prev.dataset.user === li.dataset.user &&
    Number(li.dataset.ts) - Number(prev.dataset.ts) < groupMs;
  li.classList.toggle("cont", same);
}

function regroup() {
  for (const li of $("message-list").children) groupWithPrevious(li);
}

function timeText(d) {
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  if (d.toDateString() === now.toDateString()) return hm;
  return `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${hm}`;
}

function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

/** A colour of the user's own and the first letter of the name. */
function paintAvatar(e, user) {
  let h = 0;
  for (const ch of user) h = (h * 31 + ch.codePointAt(0)) % 360;
  e.style.backgroundColor = `hsl(${h} 55% 45%)`;
  e.textContent = user.slice(0, 1).toUpperCase();
}

function onMember(m) {
  if (m.user === session.user) {
    if (m.action === "join") void addRoom(m.room);
    else if (rooms.delete(m.room)) {
      if (view?.room === m.room) {
        closeRoom();
        toast(`You left #${m.room}`);
      }
      renderRooms();
    }
  }
  if (view === undefined || m.room !== view.room) return;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < followSlack;
  const now = new Date();
  $("message-list").append(
    el(
      "li",
      { class: "event", dataset: { after: String(view.lastSeq), user: m.user } },
      el("span", { class: "event-user" }, m.user),
      m.action === "join" ? " joined the room" : " left the room",
      el("time", { class: "msg-time", datetime: now.toISOString() }, timeText(now)),
    ),
  );
  if (atBottom) scrollToBottom();
  void loadDetails(m.room, view.gen);
}

// ---- sending ----------------------------------------------------------------------------

async function sendText(text, nonce = newNonce(), pending = undefined) {
  const { room, gen } = view;
  const body = { text };
  if (new TextEncoder().encode(JSON.stringify(body)).length > maxBodyBytes) {
    toast(`A message is at most ${maxBodyBytes} bytes.`);
    return;
  }
  // Shown greyed until the ack: then it is a message like the others, with its seq.
  let li = pending;
  if (li === undefined) {
    const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
    paintAvatar(avatar, session.user);
    li = el(
      "li",
      { class: "msg pending", dataset: { pending: nonce, user: session.user } },
      avatar,
      el(
        "div",
        { class: "msg-main" },
        el("div", { class: "msg-head" }, el("span", { class: "msg-user" }, session.user), el("span", { class: "msg-time" }, "sending…")),
        el("div", { class: "msg-body" }, text),
      ),
    );
    $("message-list").append(li);
    scrollToBottom();
  }
  try {
    // The client retries with the same nonce through timeouts and reconnects: the
    // server stores it once.
    const ack = await client.send(room, body, { nonce });
    li.remove();
    if (gen === viewGen) addMessage({ room, seq: ack.seq, ts: ack.ts, user: session.user, body }, true);
  } catch (err) {
    li.classList.add("failed");
    const status = li.querySelector(".msg-time");
    const retry = () => {
      li.classList.remove("failed");
      status.replaceChildren("sending…");
      void sendText(text, nonce, li); // the same nonce: stored once however often it is tried
    };
    status.replaceChildren(`not sent: ${describe(err)} `, el("button", { type: "button", class: "link", onclick: retry }, "Retry"));
  }
}

// ---- forms ------------------------------------------------------------------------------

function formError(id, err) {
  $(id).textContent = err === undefined ? "" : typeof err === "string" ? err : describe(err);
}

function wire() {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("login-name").value.trim();
    if (!idPattern.test(user)) {
      $("login-error").textContent = "A name is 1 to 64 of A-Z a-z 0-9 _ -";
      return;
    }
    $("login-error").textContent = "";
    start(user);
  });

  $("logout").addEventListener("click", logout);

  $("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("create-id").value.trim();
    const name = $("create-name").value.trim();
    const req = { public: $("create-public").checked };
    if (id !== "") req.room = id;
    if (name !== "") req.name = name;
    formError("create-error");
    try {
      const r = await http.createRoom(req);
      $("create-id").value = "";
      $("create-name").value = "";
      await addRoom(r.room, r.name);
      void openRoom(r.room);
    } catch (err) {
      formError("create-error", err.status === 409 ? `The id ${id} is taken.` : err);
    }
  });

  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const room = $("join-id").value.trim();
    formError("join-error");
    try {
      await http.join(room);
      $("join-id").value = "";
      await addRoom(room);
      void openRoom(room);
    } catch (err) {
      // No existence oracle: a private room and no room at all answer the same.
      formError("join-error", err.status === 403 ? `No public room #${room}.` : err);
    }
  });

  $("leave").addEventListener("click", async () => {
    if (view === undefined) return;
    const room = view.room;
    try {
      await http.leave(room); // the member event takes the room off the list
    } catch (err) {
      toast(`leave #${room}: ${describe(err)}`);
    }
  });

  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("composer-text");
    const text = input.value.trim();
    if (text === "" || view === undefined) return;
    input.value = "";
    void sendText(text);
  });

  $("composer-text").addEventListener("input", onComposerInput);
  setInterval(paintTyping, 1000); // typers expire after 5 s without news
  $("older").addEventListener("click", () => void loadOlder());
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 40) void loadOlder();
  });
}

wire();
const stored = storedSession();
if (stored !== undefined) start(stored.user);
else showLogin();
