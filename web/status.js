// The status page of laneim dev's browser demo: GET /v1/status every 2 s, shown as
// this gateway's numbers, the rates of the process's counters, and the live nodes of
// the im_nodes bucket. In dev the route is open; outside dev it answers only to
// Authorization: Bearer <operator key>, which the page takes in a form and keeps in
// sessionStorage (for this tab only). Everything shown is set as text.

const pollMs = 2000;
const keyStore = "laneim.operatorKey";

const $ = (id) => {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`#${id} is missing from status.html`);
  return e;
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, String(v));
  }
  e.append(...children);
  return e;
}

function operatorKey() {
  try {
    return sessionStorage.getItem(keyStore) ?? "";
  } catch {
    return "";
  }
}

/** 3725 -> "1h 02m 05s". */
function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (d > 0) return `${d}d ${h}h ${pad(m)}m`;
  if (h > 0) return `${h}h ${pad(m)}m ${pad(sec)}s`;
  if (m > 0) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}

function rate(v) {
  if (typeof v !== "number") return "—";
  return v >= 100 ? Math.round(v).toLocaleString() : v.toFixed(1);
}

function setLine(state, text) {
  const line = $("status-line");
  line.dataset.state = state;
  line.textContent = text;
}

function show(st) {
  const gw = st.gateway ?? {};
  $("gw-id").textContent = gw.id ?? "—";
  $("gw-conns").textContent = String(gw.connections ?? "—");
  $("gw-rooms").textContent = String(gw.rooms ?? "—");
  $("gw-uptime").textContent = duration(gw.uptime_seconds);
  const rates = st.rates ?? {};
  $("rate-messages").textContent = rate(rates.messages_per_second);
  $("rate-deliveries").textContent = rate(rates.deliveries_per_second);
  $("rate-frames").textContent = rate(rates.frames_per_second);

  const now = Date.now();
  const order = { gateway: 0, logic: 1, pusher: 2 };
  const list = [...(st.nodes ?? [])].sort(
    (a, b) => (order[a.role] ?? 9) - (order[b.role] ?? 9) || String(a.id).localeCompare(String(b.id)),
  );
  $("nodes").replaceChildren(
    ...list.map((n) =>
      el(
        "tr",
        { dataset: { node: String(n.id), role: String(n.role) } },
        el("td", {}, el("span", { class: "role", dataset: { role: String(n.role) } }, String(n.role))),
        el("td", { class: "mono" }, String(n.id)),
        el("td", { class: "mono" }, n.address ? String(n.address) : "—"),
        el("td", { class: "num" }, String(n.connections ?? 0)),
        el("td", { class: "num" }, duration((now - Date.parse(n.started)) / 1000)),
        el("td", { class: "num" }, `${duration((now - Date.parse(n.updated)) / 1000)} ago`),
      ),
    ),
  );
  $("nodes-empty").hidden = list.length > 0;
}

async function poll() {
  const headers = { Accept: "application/json" };
  const key = operatorKey();
  if (key !== "") headers.Authorization = `Bearer ${key}`;
  try {
    const res = await fetch("/v1/status", { headers, cache: "no-store", signal: AbortSignal.timeout(5000) });
    if (res.status === 401) {
      setLine("error", "The operator key was refused (401). Enter the gateway's operator key.");
    } else if (res.status === 404) {
      setLine("error", "This gateway serves no status (404): outside dev mode it needs an operator key in its configuration.");
    } else if (!res.ok) {
      setLine("error", `GET /v1/status answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    } else {
      show(await res.json());
      setLine("ok", `Live · updated ${new Date().toLocaleTimeString()} · every ${pollMs / 1000} s`);
    }
  } catch (err) {
    setLine("error", `Cannot reach the gateway: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    setTimeout(poll, pollMs); // after the answer, so that a slow gateway is never asked twice at once
  }
}

$("key").value = operatorKey();
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  try {
    sessionStorage.setItem(keyStore, $("key").value.trim());
  } catch {
    // not kept
  }
  setLine("", "Loading…");
});

void poll();
