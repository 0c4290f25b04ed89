/* sampan: the trader's screen. Plain JavaScript, no build step.

   Money is never a float here. The server sends integers with a unit suffix (`*_cents` in
   HK$0.01, `*_e3` in HK$0.001, `qty` in shares); JSON integers beyond 2^53 are kept exact by
   parsing them as BigInt (`parseJson`), every sum or product is BigInt, and formatting works on
   the digits. The screen's own checks (board lot, tick, price far from the last, notional over
   the account's limit) only help the trader before sending; the router decides, and its verdict
   and reason are shown as they come back on the WebSocket. */
"use strict";

/* ---------- Money and numbers: BigInt and strings only ---------- */

const Money = (() => {
  function big(v) {
    if (typeof v === "bigint") return v;
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") {
      if (!Number.isInteger(v)) throw new Error("not an integer: " + v);
      return BigInt(v);
    }
    if (typeof v === "string" && /^-?\d+$/.test(v)) return BigInt(v);
    throw new Error("not an integer: " + v);
  }
  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  // An integer with `scale` implied decimals → "1,234,567.89" (all digits kept).
  function scaled(v, scale, sign) {
    const n = big(v);
    if (n === null) return "—";
    const neg = n < 0n;
    const digits = (neg ? -n : n).toString().padStart(scale + 1, "0");
    const whole = digits.slice(0, digits.length - scale);
    const frac = scale ? "." + digits.slice(digits.length - scale) : "";
    const prefix = neg ? "-" : sign && n > 0n ? "+" : "";
    return prefix + group(whole) + frac;
  }
  const cents = (v, sign = false) => scaled(v, 2, sign);
  const e3 = (v, sign = false) => scaled(v, 3, sign);
  const qty = (v, sign = false) => scaled(v, 0, sign);
  // HK$0.001 × shares → cents, rounded half up away from zero (display only).
  function notionalCents(priceE3, shares) {
    const p = big(priceE3), q = big(shares);
    if (p === null || q === null) return null;
    const e3total = p * q;
    const neg = e3total < 0n;
    const a = neg ? -e3total : e3total;
    const c = (a + 5n) / 10n;
    return neg ? -c : c;
  }
  // Basis points of change from `base` to `value`, truncated toward zero.
  function changeBp(value, base) {
    const v = big(value), b = big(base);
    if (v === null || b === null || b === 0n) return null;
    return ((v - b) * 10000n) / b;
  }
  const pct = (bp) => (bp === null ? "—" : scaled(bp, 2, true) + "%");
  // "512.5" / "512.500" / "1,000" → HK$0.001 integer; null when not a price.
  function parsePriceE3(text) {
    const s = String(text).trim().replace(/,/g, "");
    const m = /^(\d{1,12})(?:\.(\d{0,3}))?$/.exec(s);
    if (!m) return null;
    return BigInt(m[1]) * 1000n + BigInt((m[2] || "").padEnd(3, "0"));
  }
  function parseQty(text) {
    const s = String(text).trim().replace(/,/g, "");
    if (!/^\d{1,15}$/.test(s)) return null;
    return BigInt(s);
  }
  const sign = (v) => { const n = big(v); return n === null || n === 0n ? "" : n > 0n ? "gain" : "loss"; };
  return { big, cents, e3, qty, notionalCents, changeBp, pct, parsePriceE3, parseQty, sign, scaled };
})();

// JSON with integers kept exact: an integer literal beyond 2^53 becomes a BigInt.
function parseJson(text) {
  return JSON.parse(text, function (key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}
function toJson(value) {
  // BigInts go out as bare integer literals, as the server expects integers.
  return JSON.stringify(value, (k, v) => (typeof v === "bigint" ? "\u0000" + v.toString() + "\u0000" : v))
    .replace(/"\u0000(-?\d+)\u0000"/g, "$1").replace(/"\\u0000(-?\d+)\\u0000"/g, "$1");
}

/* ---------- The HKEX spread table (Part A), used when an instrument brings no tick table ---------- */

// HKEX spread table Part A (from 4 Aug 2025) as the matcher holds it: [upper_e3 inclusive, tick_e3].
const PART_A_UPPERS = [[250, 1], [500, 5], [10000, 10], [20000, 10], [50000, 20], [100000, 50],
  [200000, 100], [500000, 200], [1000000, 500], [2000000, 1000], [5000000, 2000], [9995000, 5000]];
const PRICE_MAX_E3 = 9995000n;

// The tick at `priceE3`. An instrument's `tick_table` is [[from_e3, tick_e3], ...]: a price
// above `from` (up to and including the next row's `from`) moves in steps of `tick`; the first
// row starts at 0. That is HKEX's inclusive upper bound, as the matcher holds it.
function tickOf(inst, priceE3) {
  const table = inst && inst.tick_table && inst.tick_table.length ? inst.tick_table : null;
  if (!table) {
    for (const [upper, t] of PART_A_UPPERS) if (priceE3 <= BigInt(upper)) return BigInt(t);
    return BigInt(PART_A_UPPERS[PART_A_UPPERS.length - 1][1]);
  }
  let tick = Money.big(table[0][1]);
  for (const [from, t] of table) if (priceE3 > Money.big(from)) tick = Money.big(t);
  return tick;
}
function stepPrice(inst, priceE3, up) {
  const tick = tickOf(inst, up ? priceE3 : priceE3 - 1n);
  const base = priceE3 - (((priceE3 % tick) + tick) % tick);
  if (up) return base + tick;
  return base === priceE3 ? priceE3 - tick : base;
}

/* ---------- State ---------- */

const S = {
  user: null,
  csrf: null,
  accounts: new Map(),      // account → {account, member, limits, snapshot}
  account: null,            // the selected account
  instruments: new Map(),   // security → instrument
  stats: new Map(),         // security → {INTERNAL: stats, HKEX: stats}
  depth: new Map(),         // "VENUE:security" → depth
  movers: null,             // the analytics ranking: {venue, top: [stats row], bottom: [stats row]}
  orders: new Map(),        // cl_ord_id → order row
  alias: new Map(),         // a cancel or amend request's cl_ord_id → the order's first one
  inventory: [],
  batch: [],
  security: null,
  side: "BUY",
  watchMode: "all",
  pendingWarn: null,        // a warning the trader has seen once; Order again confirms it
  ws: null,
  wsBackoffMs: 500,
  risk: [],
  breaks: [],
  alerts: [],
};
const COLLAR_BP = 1000n;   // the router's collar: 10% from the reference price
const WARN_BP = 300n;      // the screen asks for a second click beyond 3%
const LOTS_MAX = 3000n;    // HKEX's largest order, in board lots
const WS_BACKOFF_MAX_MS = 10000;
const ORDERS_SHOWN_MAX = 500;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const code5 = (security) => String(security).padStart(5, "0");
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function timeOf(tsNs) {
  const ns = Money.big(tsNs);
  if (ns === null) return "";
  const d = new Date(Number(ns / 1000000n));
  return d.toLocaleTimeString("en-GB", { hour12: false, timeZone: "Asia/Hong_Kong" });
}

/* ---------- REST ---------- */

function cookie(name) {
  const m = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : null;
}
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.reason) || "HTTP " + status);
    this.status = status;
    this.code = (body && body.error) || "HTTP_" + status;
  }
}
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("sampan_csrf") || S.csrf || "";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : toJson(body),
  });
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = parseJson(text); } catch { data = { reason: text.slice(0, 200) }; }
  }
  if (res.status === 401 && path !== "/api/login" && path !== "/api/me") showLogin("Your session ended; log in again.");
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/* ---------- Login ---------- */

function showLogin(message) {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  S.user = null;
  $("#app").hidden = true;
  $("#login").hidden = false;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#login-user").focus();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = $("#login-submit");
  button.disabled = true;
  try {
    const out = await api("POST", "/api/login", { username: $("#login-user").value, password: $("#login-pass").value });
    S.csrf = out.csrf;
    $("#login-pass").value = "";
    await start(out.user);
  } catch (e) {
    const err = $("#login-error");
    err.hidden = false;
    err.textContent = e.status === 429 ? "Too many attempts: " + e.message : e.status === 401 ? "Wrong username or password." : e.message;
  } finally {
    button.disabled = false;
  }
});

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } catch { /* the session is gone either way */ }
  S.accounts.clear(); S.orders.clear(); S.batch = [];
  showLogin("Logged out.");
});

/* ---------- Start ---------- */

async function start(user) {
  S.user = user;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who-user").textContent = user.username + (user.member ? " · " + user.member : "");
  $("#who-role").textContent = user.role;
  const officer = user.role === "risk" || user.role === "auditor" || user.role === "admin";
  $("#tab-risk").hidden = !officer;
  // Only traders place orders; the others see the ticket's checks but cannot send.
  const readOnly = user.role !== "trader";
  $("#t-order").disabled = readOnly;
  $("#t-stage").disabled = readOnly;
  $("#batch-submit").disabled = readOnly;
  $("#t-result").className = "result";
  $("#t-result").textContent = readOnly ? `A ${user.role} user does not place orders.` : "";

  const [instruments, accounts] = await Promise.all([api("GET", "/api/instruments"), api("GET", "/api/accounts")]);
  S.instruments.clear();
  for (const inst of instruments) S.instruments.set(Number(inst.security), inst);
  S.accounts.clear();
  for (const a of accounts) S.accounts.set(a.account, a);
  renderSecurityList();
  const pick = $("#account-select");
  pick.replaceChildren(...accounts.map((a) => el("option", { value: a.account }, a.account + " · " + a.member)));
  const remembered = localStorage.getItem("sampan.account");
  S.account = S.accounts.has(remembered) ? remembered : (accounts[0] && accounts[0].account) || null;
  pick.value = S.account || "";
  const firstSecurity = Number(localStorage.getItem("sampan.security")) || (instruments.find((i) => i.enabled) || instruments[0] || {}).security;
  if (firstSecurity) selectSecurity(Number(firstSecurity), false);
  renderHeader();
  renderWatch();
  await loadAccount();
  if (officer) loadRisk();
  connect();
}

async function loadAccount() {
  S.orders.clear();
  S.alias.clear();
  S.inventory = [];
  if (!S.account) { renderOrders(); renderInventory(); return; }
  const account = S.account;
  try {
    const [one, orders, inventory] = await Promise.all([
      api("GET", `/api/accounts/${encodeURIComponent(account)}`),
      api("GET", `/api/accounts/${encodeURIComponent(account)}/orders`),
      api("GET", `/api/accounts/${encodeURIComponent(account)}/inventory`),
    ]);
    if (account !== S.account) return;
    S.accounts.set(account, one);
    for (const o of orders) S.orders.set(o.cl_ord_id, { ...o, fills: o.fills || [] });
    S.inventory = inventory;
  } catch (e) {
    banner(`Account ${account}: ${e.message}`);
  }
  renderHeader(); renderOrders(); renderInventory();
}

$("#account-select").addEventListener("change", async (ev) => {
  const old = S.account;
  S.account = ev.target.value;
  localStorage.setItem("sampan.account", S.account);
  if (old) send({ op: "unsubscribe", channel: "account", account: old });
  send({ op: "subscribe", channel: "account", account: S.account });
  await loadAccount();
  validateTicket();
});

// A message across the top; it fades after a while unless it is `sticky` (a halted account).
function banner(text, sticky = false) {
  const b = $("#banner");
  b.textContent = text;
  b.hidden = !text;
  if (text && !sticky) setTimeout(() => { if (b.textContent === text) b.hidden = true; }, 8000);
}

/* ---------- WebSocket ---------- */

function send(msg) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(toJson(msg));
}

function connect() {
  if (!S.user) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  S.ws = ws;
  ws.onopen = () => {
    S.wsBackoffMs = 500;
    $("#conn").classList.add("live");
    $("#conn").title = "live";
    send({ op: "subscribe", channel: "market" });
    if (S.account) send({ op: "subscribe", channel: "account", account: S.account });
    if (S.security) send({ op: "subscribe", channel: "depth", security: S.security });
    if (S.user.role === "risk" || S.user.role === "auditor") send({ op: "subscribe", channel: "recon" });
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = parseJson(ev.data); } catch { return; }
    onMessage(msg);
  };
  ws.onclose = (ev) => {
    $("#conn").classList.remove("live");
    $("#conn").title = "disconnected" + (ev.reason ? ": " + ev.reason : "");
    if (S.ws !== ws || !S.user) return;
    if (ev.code === 1008) {
      // Refused as not logged in (or the session ended): ask the server who we are.
      api("GET", "/api/me").then(() => setTimeout(connect, S.wsBackoffMs)).catch(() => showLogin("Your session ended; log in again."));
      return;
    }
    // Reconnect with a bounded back-off, then reload what may have been missed.
    setTimeout(() => { if (S.ws === ws && S.user) { connect(); loadAccount(); } }, S.wsBackoffMs);
    S.wsBackoffMs = Math.min(S.wsBackoffMs * 2, WS_BACKOFF_MAX_MS);
  };
}

function onMessage(msg) {
  switch (msg.type) {
    case "depth": {
      S.depth.set(`${msg.venue}:${msg.security}`, msg);
      if (Number(msg.security) === S.security) { renderBook(msg.venue); scheduleQuote(); }
      break;
    }
    case "stats": {
      const sec = Number(msg.security);
      const entry = S.stats.get(sec) || {};
      entry[msg.venue || "INTERNAL"] = msg;
      entry.latest = msg;
      S.stats.set(sec, entry);
      scheduleWatch();
      if (sec === S.security) scheduleQuote();
      break;
    }
    case "movers": S.movers = msg; scheduleWatch(); break;
    case "account": {
      const a = S.accounts.get(msg.account);
      if (a) { a.snapshot = msg; if (msg.account === S.account) renderHeader(true); }
      if (S.risk.length) { const row = S.risk.find((r) => r.account === msg.account); if (row) { row.snapshot = msg; renderRisk(); } }
      break;
    }
    case "mark": case "control": {
      // Live risk's marked-to-market figures (risk.marks) and its cut-loss block (risk.controls).
      const field = msg.type;
      const a = S.accounts.get(msg.account);
      if (a) { a[field] = msg; if (msg.account === S.account) renderHeader(field === "mark"); }
      if (S.risk.length) { const row = S.risk.find((r) => r.account === msg.account); if (row) { row[field] = msg; renderRisk(); } }
      break;
    }
    case "limits": {
      const a = S.accounts.get(msg.account);
      if (a) { a.limits = { ...(a.limits || {}), ...msg }; if (msg.account === S.account) renderHeader(); }
      break;
    }
    case "exec": onExec(msg); break;
    case "inventory":
      if (msg.account === S.account) { S.inventory = msg.positions || []; renderInventory(); }
      break;
    case "recon_break": case "break":
      S.breaks = [msg, ...S.breaks.filter((b) => b.exec_id !== msg.exec_id)].slice(0, 200); renderBreaks(); break;
    case "surveillance_alert":
      S.alerts = [msg, ...S.alerts.filter((a) => a.alert_id !== msg.alert_id)].slice(0, 200); renderAlerts(); break;
    case "error": banner(`${msg.error}: ${msg.reason || ""}`); break;
    default: break;
  }
}

/* ---------- Execution reports → today's orders ---------- */

function onExec(er) {
  if (er.account !== S.account) return;
  // A SMART parent's children report under the parent's id. A cancel or amend reports under
  // its own request id with the order's id as `orig_cl_ord_id`: the order keeps its first id.
  const resolve = (id) => S.alias.get(id) || id;
  let key = er.parent_id || resolve(er.cl_ord_id);
  if (!er.parent_id && er.orig_cl_ord_id && S.orders.has(resolve(er.orig_cl_ord_id))) {
    key = resolve(er.orig_cl_ord_id);
    S.alias.set(er.cl_ord_id, key);
  }
  let o = S.orders.get(key);
  if (!o) {
    o = { cl_ord_id: key, order_id: er.order_id, security: er.security, side: er.side, route: er.parent_id ? "SMART" : er.venue,
      price_e3: er.price_e3, order_qty: er.order_qty, cum_qty: 0, leaves_qty: er.order_qty, avg_px_e3: null,
      status: er.ord_status, reject_reason: null, text: null, batch_id: null, ts_ns: er.ts_ns, fills: [] };
    S.orders.set(key, o);
  }
  if (er.exec_type === "TRADE" && !o.fills.some((f) => f.exec_id === er.exec_id)) {
    o.fills.push({ exec_id: er.exec_id, venue: er.venue, last_px_e3: er.last_px_e3, last_qty: er.last_qty, ts_ns: er.ts_ns });
  }
  if (er.exec_type === "CANCEL_REJECTED") {
    // The report answers the cancel or amend request; the order itself is unchanged.
  } else if (!er.parent_id) {
    o.order_id = er.order_id || o.order_id;
    o.status = er.ord_status;
    o.cum_qty = er.cum_qty;
    o.leaves_qty = er.leaves_qty;
    o.order_qty = er.order_qty;
    o.price_e3 = er.price_e3;
    if (er.batch_id) o.batch_id = er.batch_id;
    const cum = Money.big(er.cum_qty);
    if (cum && cum > 0n) o.avg_px_e3 = (Money.big(er.cum_notional_e3) + cum / 2n) / cum;
  } else {
    // A child's report: the parent's filled quantity is the sum of its fills.
    const filled = o.fills.reduce((s, f) => s + Money.big(f.last_qty), 0n);
    const notional = o.fills.reduce((s, f) => s + Money.big(f.last_qty) * Money.big(f.last_px_e3), 0n);
    o.cum_qty = filled;
    if (filled > 0n) o.avg_px_e3 = (notional + filled / 2n) / filled;
  }
  if (er.exec_type === "REJECTED" || er.exec_type === "CANCEL_REJECTED") {
    if (er.exec_type === "REJECTED") { o.reject_reason = er.reject_reason; o.text = er.text; }
    showVerdict(er, key);
  } else if (er.exec_type === "CANCELED" && key === S.lastSent) {
    $("#t-result").className = "result accepted";
    $("#t-result").textContent = `Canceled ${key}: ${Money.qty(er.cum_qty)} of ${Money.qty(er.order_qty)} filled.`;
  } else if (er.exec_type === "REPLACED") {
    const r = $("#t-result");
    if (er.cl_ord_id === S.lastSent || er.orig_cl_ord_id === S.lastSent || o.cl_ord_id === S.lastSent) {
      r.className = "result accepted";
      r.textContent = `Amended: ${Money.qty(er.order_qty)} @ ${Money.e3(er.price_e3)}`;
    }
  } else if (er.exec_type === "NEW" || er.exec_type === "TRADE") {
    showVerdict(er, key);
  }
  o.flash = true;
  renderOrders();
}

// A client order id: "B" and 15 random hex digits (the server accepts 1–40 of A-Za-z0-9._:-).
function newClOrdId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return "B" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 15);
}

function reasonText(code, text) {
  const words = {
    ACCOUNT_DISABLED: "the account is halted", MAX_NOTIONAL: "notional above the account's limit",
    PRICE_COLLAR: "price too far from the reference price", OFF_TICK: "price not on the spread table's tick",
    NOT_BOARD_LOT: "quantity not a whole number of board lots", INSUFFICIENT_INVENTORY: "not enough shares to sell",
    INSUFFICIENT_BUYING_POWER: "not enough buying power", CUT_LOSS: "equity below the cut-loss level",
    CUT_LOSS_BREACHED: "cut-loss breached (marked to market): only orders that reduce risk until a risk officer re-enables the account",
    SHORT_NOT_ALLOWED: "short selling not allowed", INSTRUMENT_DISABLED: "security not enabled",
  };
  return [code, words[code], text].filter(Boolean).join(" — ");
}

function showVerdict(er, key) {
  if (key !== S.lastSent) return;
  const r = $("#t-result");
  if (er.exec_type === "CANCEL_REJECTED") {
    r.className = "result rejected";
    r.textContent = `Cancel or amend rejected: ${reasonText(er.reject_reason, er.text)}`;
  } else if (er.exec_type === "REJECTED") {
    r.className = "result rejected";
    r.textContent = `Rejected: ${reasonText(er.reject_reason, er.text)}`;
  } else if (er.exec_type === "TRADE") {
    r.className = "result accepted";
    r.textContent = `Filled ${Money.qty(er.last_qty)} @ ${Money.e3(er.last_px_e3)} on ${er.venue} (${Money.qty(er.cum_qty)}/${Money.qty(er.order_qty)})`;
  } else {
    r.className = "result accepted";
    r.textContent = `Accepted by ${er.venue}: ${er.cl_ord_id}`;
  }
}

/* ---------- Rendering ---------- */

function setCents(id, value, flash) {
  const node = document.getElementById(id);
  const text = Money.cents(value);
  if (flash && node.textContent !== text) { node.classList.remove("flash"); void node.offsetWidth; node.classList.add("flash"); }
  node.textContent = text;
}

function renderHeader(flash = false) {
  const a = S.accounts.get(S.account);
  // Live risk's mark (every position at the newest trade of either venue) when there is one,
  // else the ledger's snapshot (positions at the last fill price the ledger posted).
  const mark = a && a.mark;
  const snap = mark || (a && a.snapshot);
  const breached = mark ? mark.level === "BREACHED" : snap && snap.cut_loss_breached;
  const limits = (a && a.limits) || {};
  setCents("h-equity", snap ? snap.equity_cents : null, flash);
  setCents("h-portfolio", snap ? snap.portfolio_value_cents : null, flash);
  setCents("h-cash", snap ? snap.available_cash_cents : null, flash);
  setCents("h-credit", snap ? snap.credit_line_used_cents : null, flash);
  setCents("h-cutloss", snap ? snap.cut_loss_equity_cents : null, flash);
  $("#h-credit-of").textContent = limits.credit_line_cents !== undefined ? "of " + Money.cents(limits.credit_line_cents) : "";
  const dist = $("#h-cutloss-dist");
  if (snap) {
    const d = Money.big(snap.equity_cents) - Money.big(snap.cut_loss_equity_cents);
    const level = breached ? "BREACHED " : mark && mark.level === "WARNING" ? "WARNING headroom " : "headroom ";
    dist.textContent = level + Money.cents(d) + (mark ? " (marked)" : "");
    dist.className = "sub " + (breached || d < 0n ? "loss" : "");
  } else dist.textContent = "";
  $("#h-equity").className = breached ? "loss" : "";
  const halted = `Account ${S.account} is halted: new orders are refused.`;
  const blocked = `Account ${S.account}: cut-loss breached; orders that add risk are refused until a risk officer re-enables it.`;
  if (limits.enabled === false) banner(halted, true);
  else if (a && a.control && a.control.blocked) banner(blocked, true);
  else if ($("#banner").textContent.endsWith("is halted: new orders are refused.") || $("#banner").textContent.endsWith("re-enables it.")) banner("");
}

function lastOf(security) {
  const st = S.stats.get(security) || {};
  let best = st.latest && st.latest.last_e3 !== null && st.latest.last_e3 !== undefined ? st.latest : null;
  if (!best) for (const v of ["INTERNAL", "HKEX"]) {
    const s = st[v];
    if (s && s.last_e3 !== null && s.last_e3 !== undefined && (!best || Money.big(s.ts_ns) > Money.big(best.ts_ns))) best = s;
  }
  const inst = S.instruments.get(security);
  const prev = (best && best.prev_close_e3) || (inst && inst.prev_close_e3) || null;
  const last = best ? best.last_e3 : null;
  const bp = best && best.change_bp !== undefined && best.change_bp !== null ? Money.big(best.change_bp) : Money.changeBp(last, prev);
  return { last, prev, bp, venue: best && best.venue };
}

function renderQuote() {
  const inst = S.instruments.get(S.security);
  $("#d-code").textContent = S.security ? code5(S.security) : "—";
  $("#d-name").textContent = inst ? inst.name : "";
  const q = lastOf(S.security);
  $("#d-last").textContent = q.last !== null ? Money.e3(q.last) : q.prev !== null ? Money.e3(q.prev) + " (prev)" : "—";
  const chg = $("#d-change");
  chg.textContent = q.last !== null ? Money.pct(q.bp) : "";
  chg.className = "chg " + (q.bp === null ? "" : Money.sign(q.bp));
  const cells = [];
  for (const v of ["INTERNAL", "HKEX"]) {
    const d = S.depth.get(`${v}:${S.security}`);
    const bids = (d && d.bids) || [], asks = (d && d.asks) || [];
    const bid = bids[0], ask = asks[0];
    const spread = bid && ask ? Money.e3(Money.big(ask.price_e3) - Money.big(bid.price_e3)) : "—";
    const total = (side) => side.reduce((n, l) => n + Money.big(l.qty), 0n);
    cells.push(el("span", { class: "vs-venue" }, v === "HKEX" ? "HKEX" : "Internal"),
      el("span", {}, "bid ", el("b", { class: "gain" }, bid ? Money.e3(bid.price_e3) : "—")),
      el("span", {}, "ask ", el("b", { class: "loss" }, ask ? Money.e3(ask.price_e3) : "—")),
      el("span", {}, "spread ", el("b", {}, spread)),
      el("span", {}, "5-level bids ", el("b", {}, Money.qty(total(bids)))),
      el("span", {}, "asks ", el("b", {}, Money.qty(total(asks)))));
  }
  $("#venue-stats").replaceChildren(...cells);
}

function renderBook(venue) {
  const body = document.getElementById("book-" + venue);
  const d = S.depth.get(`${venue}:${S.security}`);
  const bids = (d && d.bids) || [], asks = (d && d.asks) || [];
  let maxQty = 1n;
  for (const l of [...bids, ...asks]) { const q = Money.big(l.qty); if (q > maxQty) maxQty = q; }
  const rows = [];
  for (let i = 0; i < 5; i++) {
    const b = bids[i], a = asks[i];
    const w = (l) => (l ? `--w:${Number((Money.big(l.qty) * 100n) / maxQty)}%` : "");
    rows.push(el("tr", {},
      el("td", { class: "cnt" }, b ? (b.count ?? b.orders ?? "") : ""),
      el("td", { class: "bq", style: w(b) }, b ? Money.qty(b.qty) : ""),
      el("td", { class: "bid", title: "sell at this price", onclick: b ? () => fillPrice(b.price_e3, "SELL") : null }, b ? Money.e3(b.price_e3) : ""),
      el("td", { class: "ask", title: "buy at this price", onclick: a ? () => fillPrice(a.price_e3, "BUY") : null }, a ? Money.e3(a.price_e3) : ""),
      el("td", { class: "aq", style: w(a) }, a ? Money.qty(a.qty) : ""),
      el("td", { class: "cnt" }, a ? (a.count ?? a.orders ?? "") : ""),
    ));
  }
  body.replaceChildren(...rows);
}

function fillPrice(priceE3, side) {
  setSide(side);
  $("#t-price").value = Money.e3(priceE3).replace(/,/g, "");
  validateTicket();
  $("#t-qty").focus();
}

function renderSecurityList() {
  $("#security-list").replaceChildren(...[...S.instruments.values()].filter((i) => i.enabled)
    .map((i) => el("option", { value: code5(i.security) }, i.name)));
}

let quoteQueued = false;
function scheduleQuote() {
  if (quoteQueued) return;
  quoteQueued = true;
  requestAnimationFrame(() => { quoteQueued = false; renderQuote(); });
}

let watchQueued = false;
function scheduleWatch() {
  if (watchQueued) return;
  watchQueued = true;
  requestAnimationFrame(() => { watchQueued = false; renderWatch(); });
}

function renderWatch() {
  const query = $("#w-search").value.trim().toLowerCase();
  let list = [...S.instruments.values()].filter((i) => i.enabled);
  const rows = list.map((i) => ({ inst: i, q: lastOf(Number(i.security)) }));
  let shown;
  if (S.watchMode === "all") {
    shown = rows.sort((x, y) => Number(x.inst.security) - Number(y.inst.security));
  } else {
    // The analytics app's ranking as the server sends it (the page ranks nothing itself).
    const ranked = S.movers && Array.isArray(S.movers[S.watchMode]) ? S.movers[S.watchMode] : [];
    const order = ranked.map((m) => Number(typeof m === "object" ? m.security : m));
    shown = order.map((sec) => rows.find((r) => Number(r.inst.security) === sec)).filter(Boolean);
  }
  if (query) shown = shown.filter((r) => code5(r.inst.security).includes(query) || String(r.inst.name).toLowerCase().includes(query));
  const body = $("#watchlist tbody");
  if (!shown.length) { body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 4 }, query ? "No match" : S.watchMode === "all" ? "No prices yet" : "No movers yet"))); return; }
  body.replaceChildren(...shown.map((r) => {
    const sec = Number(r.inst.security);
    return el("tr", { class: sec === S.security ? "selected" : "", dataset: { security: sec }, onclick: () => selectSecurity(sec, true) },
      el("td", { class: "num" }, code5(sec)),
      el("td", {}, r.inst.name),
      el("td", { class: "num" }, r.q.last !== null ? Money.e3(r.q.last) : r.q.prev !== null ? Money.e3(r.q.prev) : "—"),
      el("td", { class: "num " + (r.q.last !== null ? Money.sign(r.q.bp) : "") }, r.q.last !== null ? Money.pct(r.q.bp) : "—"),
    );
  }));
}

function renderOrders() {
  const body = $("#orders tbody");
  const list = [...S.orders.values()].sort((a, b) => (Money.big(b.ts_ns) > Money.big(a.ts_ns) ? 1 : -1)).slice(0, ORDERS_SHOWN_MAX);
  $("#n-orders").textContent = list.length || "";
  if (!list.length) { body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 12 }, "No orders today"))); return; }
  body.replaceChildren(...list.map((o) => {
    const open = o.status === "NEW" || o.status === "PARTIALLY_FILLED" || o.status === "PENDING_NEW";
    const fills = (o.fills || []).map((f) => el("div", {}, el("span", { class: "fill-venue" }, f.venue), ` ${Money.qty(f.last_qty)} @ ${Money.e3(f.last_px_e3)} · ${f.exec_id} · ${timeOf(f.ts_ns)}`));
    const row = el("tr", { class: o.flash ? "flash" : "", dataset: { clOrdId: o.cl_ord_id } },
      el("td", { class: "num" }, timeOf(o.ts_ns)),
      el("td", { title: o.order_id || "" }, o.cl_ord_id, o.batch_id ? el("span", { class: "muted" }, " ⧉") : ""),
      el("td", { class: "side-" + o.side }, o.side),
      el("td", { class: "num" }, code5(o.security)),
      el("td", {}, o.route || ""),
      el("td", { class: "num" }, Money.e3(o.price_e3)),
      el("td", { class: "num" }, Money.qty(o.order_qty)),
      el("td", { class: "num" }, Money.qty(o.cum_qty)),
      el("td", { class: "num" }, o.avg_px_e3 !== null && o.avg_px_e3 !== undefined && Money.big(o.cum_qty) > 0n ? Money.e3(o.avg_px_e3) : ""),
      el("td", {}, el("span", { class: "st st-" + o.status }, o.status), o.reject_reason ? el("div", { class: "reason" }, reasonText(o.reject_reason, o.text)) : ""),
      el("td", { class: "fills" }, fills),
      el("td", { class: "actions" }, open && S.user.role === "trader" ? [
        o.route === "INTERNAL" ? el("button", { class: "ghost", title: "load into the ticket to amend", onclick: () => startAmend(o) }, "Amend") : "",
        el("button", { class: "ghost", onclick: () => cancelOrder(o) }, "Cancel"),
      ] : ""),
    );
    o.flash = false;
    return row;
  }));
}

// Amend mode: the ticket holds an open internal order's terms; Order sends the amend.
function startAmend(o) {
  S.amending = o;
  setSide(o.side === "BUY" ? "BUY" : "SELL");
  $("#t-security").value = code5(o.security);
  selectSecurity(Number(o.security), false);
  $("#t-qty").value = Money.big(o.order_qty).toString();
  $("#t-price").value = Money.e3(o.price_e3).replace(/,/g, "");
  $("#t-order").textContent = "Amend";
  $("#t-result").className = "result";
  $("#t-result").textContent = `Amending ${o.cl_ord_id}: change quantity or price, then Amend (Esc to leave).`;
  validateTicket();
  $("#t-qty").focus();
}
function stopAmend() {
  S.amending = null;
  $("#t-order").textContent = "Order";
}

async function cancelOrder(o) {
  try {
    S.lastSent = o.cl_ord_id;
    $("#t-result").className = "result";
    $("#t-result").textContent = `Cancel sent for ${o.cl_ord_id}; waiting for the venue…`;
    await api("POST", `/api/orders/${encodeURIComponent(o.cl_ord_id)}/cancel`, { account: S.account });
  } catch (e) { banner(`Cancel ${o.cl_ord_id}: ${e.message}`); }
}

function renderInventory() {
  const body = $("#inventory tbody");
  $("#n-inventory").textContent = S.inventory.length || "";
  if (!S.inventory.length) { body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 8 }, "No holdings"))); return; }
  body.replaceChildren(...S.inventory.map((p) => {
    const sec = Number(p.security);
    const inst = S.instruments.get(sec);
    const q = lastOf(sec);
    const qty = Money.big(p.qty);
    const last = p.last_e3 !== null && p.last_e3 !== undefined ? Money.big(p.last_e3) : q.last !== null ? Money.big(q.last) : q.prev !== null ? Money.big(q.prev) : null;
    const cost = p.avg_cost_e3 !== null && p.avg_cost_e3 !== undefined ? Money.big(p.avg_cost_e3) : null;
    const pnl = last !== null && cost !== null ? Money.notionalCents(last - cost, qty) : null;
    return el("tr", { dataset: { security: sec } },
      el("td", { class: "num" }, code5(sec)),
      el("td", {}, inst ? inst.name : ""),
      el("td", { class: "num" }, Money.qty(p.qty)),
      el("td", { class: "num" }, Money.qty(p.available_qty ?? p.qty)),
      el("td", { class: "num" }, cost !== null ? Money.e3(cost) : "—"),
      el("td", { class: "num" }, last !== null ? Money.e3(last) : "—"),
      el("td", { class: "num" }, p.value_cents !== undefined && p.value_cents !== null ? Money.cents(p.value_cents) : "—"),
      el("td", { class: "num " + Money.sign(pnl) }, pnl !== null ? Money.cents(pnl, true) : "—"),
    );
  }));
}

/* ---------- Order ticket ---------- */

function setSide(side) {
  S.side = side;
  for (const b of $$(".side-tabs .tab")) {
    const on = b.dataset.side === side;
    b.classList.toggle("active", on);
    b.setAttribute("aria-selected", on);
  }
  $(".ticket").classList.toggle("sell-mode", side === "SELL");
  $(".ticket").classList.toggle("buy-mode", side === "BUY");
  $("#t-order").textContent = S.amending ? "Amend" : "Order";
  $("#t-order").title = (side === "BUY" ? "Buy" : "Sell") + " (Enter)";
  S.pendingWarn = null;
  validateTicket();
}
for (const b of $$(".side-tabs .tab")) b.addEventListener("click", () => setSide(b.dataset.side));

function selectSecurity(security, focusTicket) {
  if (!S.instruments.has(security)) return;
  const old = S.security;
  if (old === security && !focusTicket) return;
  S.security = security;
  localStorage.setItem("sampan.security", String(security));
  if (old !== null && old !== security) send({ op: "unsubscribe", channel: "depth", security: old });
  if (old !== security) send({ op: "subscribe", channel: "depth", security });
  $("#t-security").value = code5(security);
  renderQuote(); renderBook("INTERNAL"); renderBook("HKEX");
  scheduleWatch();
  validateTicket();
  if (focusTicket) $("#t-qty").focus();
}

function ticketValues() {
  const secText = $("#t-security").value.trim();
  const security = /^\d{1,5}$/.test(secText) ? Number(secText) : null;
  return {
    security,
    inst: security !== null ? S.instruments.get(security) : null,
    qty: Money.parseQty($("#t-qty").value),
    price: Money.parsePriceE3($("#t-price").value),
    route: ($("input[name=route]:checked") || {}).value || "INTERNAL",
    tif: $("#t-tif").value,
    side: S.side,
  };
}

// Checks that stop a fat finger; [{level: "error"|"warn", field, text}].
function ticketProblems(v, a) {
  const out = [];
  const err = (field, text) => out.push({ level: "error", field, text });
  if ($("#t-security").value.trim() === "") err("t-security", "Choose a security.");
  else if (!v.inst) err("t-security", `Unknown security ${$("#t-security").value.trim()}.`);
  else if (!v.inst.enabled) err("t-security", `${code5(v.security)} is not enabled for trading.`);
  const lot = v.inst ? Money.big(v.inst.board_lot) : null;
  if ($("#t-qty").value.trim() === "") err("t-qty", "Enter a quantity.");
  else if (v.qty === null || v.qty <= 0n) err("t-qty", "Quantity must be a whole number of shares above zero.");
  else if (lot && v.qty % lot !== 0n) err("t-qty", `Quantity must be a multiple of the board lot (${Money.qty(lot)} shares).`);
  else if (lot && v.qty / lot > LOTS_MAX) err("t-qty", `At most ${Money.qty(LOTS_MAX)} board lots in one order.`);
  if ($("#t-price").value.trim() === "") err("t-price", "Enter a price.");
  else if (v.price === null || v.price <= 0n) err("t-price", "Price must be a positive number with at most 3 decimals.");
  else if (v.price > PRICE_MAX_E3) err("t-price", `Price above the spread table's highest (${Money.e3(PRICE_MAX_E3)}).`);
  else if (v.inst) {
    const tick = tickOf(v.inst, v.price);
    if (v.price % tick !== 0n) {
      const down = v.price - (v.price % tick);
      err("t-price", `Price not on tick: at ${Money.e3(v.price)} the tick is ${Money.e3(tick)} (try ${Money.e3(down)} or ${Money.e3(down + tick)}).`);
    } else {
      const q = lastOf(v.security);
      const ref = q.last !== null ? Money.big(q.last) : q.prev !== null ? Money.big(q.prev) : null;
      if (ref !== null && ref > 0n) {
        const away = ((v.price - ref) * 10000n) / ref;
        const absAway = away < 0n ? -away : away;
        const what = q.last !== null ? "the last price" : "the previous close";
        if (absAway > COLLAR_BP) err("t-price", `Price ${Money.pct(away)} from ${what} (${Money.e3(ref)}): more than ${Money.pct(COLLAR_BP).slice(1)} away.`);
        else if (absAway > WARN_BP) out.push({ level: "warn", field: "t-price", text: `Price ${Money.pct(away)} from ${what} (${Money.e3(ref)}). Press Order again to send.` });
      }
    }
  }
  if (v.qty !== null && v.price !== null && a && a.limits && a.limits.max_order_notional_cents !== undefined) {
    const notional = Money.notionalCents(v.price, v.qty);
    const max = Money.big(a.limits.max_order_notional_cents);
    if (notional > max) err("t-qty", `Notional HK$${Money.cents(notional)} is above the account's limit of HK$${Money.cents(max)}.`);
  }
  if (!a) err("account-select", "No account to trade.");
  else if (a.limits && a.limits.enabled === false) err("account-select", `Account ${a.account} is halted.`);
  return out;
}

function validateTicket(show = false) {
  const v = ticketValues();
  const a = S.accounts.get(S.account);
  $("#t-security-name").textContent = v.inst ? `${v.inst.name} · lot ${Money.qty(v.inst.board_lot)}` : "";
  $("#t-qty-hint").textContent = v.inst && v.qty !== null && v.inst.board_lot ? `${Money.qty(v.qty / Money.big(v.inst.board_lot))} lots` : "";
  $("#t-price-hint").textContent = v.inst && v.price !== null && v.price > 0n ? `tick ${Money.e3(tickOf(v.inst, v.price))}` : "";
  $("#t-notional").textContent = v.qty !== null && v.price !== null ? "HK$" + Money.cents(Money.notionalCents(v.price, v.qty)) : "—";
  const problems = ticketProblems(v, a);
  for (const id of ["t-security", "t-qty", "t-price"]) {
    const typed = $("#" + id).value.trim() !== "";
    $("#" + id).classList.toggle("bad", (show || typed) && problems.some((p) => p.field === id && p.level === "error"));
  }
  const visible = problems.filter((p) => show || (p.level === "error" && $("#" + p.field) && $("#" + p.field).value && $("#" + p.field).value.trim() !== "") || p.level === "warn");
  $("#t-problems").replaceChildren(...visible.map((p) => el("li", { class: p.level === "warn" ? "warn" : "" }, p.text)));
  return { v, problems };
}

for (const id of ["t-security", "t-qty", "t-price"]) {
  $("#" + id).addEventListener("input", () => { S.pendingWarn = null; validateTicket(); });
}
$("#t-security").addEventListener("change", () => {
  const v = ticketValues();
  if (v.inst) selectSecurity(v.security, false);
});
$("#t-tif").addEventListener("change", () => validateTicket());
for (const r of $$("input[name=route]")) r.addEventListener("change", () => validateTicket());

function orderBody(v) {
  return { account: S.account, security: v.security, side: v.side, qty: v.qty, price_e3: v.price, route: v.route, time_in_force: v.tif };
}

// The ticket's gate: errors stop the order; a warning needs a second press of the same order.
function gate() {
  const { v, problems } = validateTicket(true);
  if (problems.some((p) => p.level === "error")) return null;
  const warn = problems.find((p) => p.level === "warn");
  const key = toJson(orderBody(v));
  if (warn && S.pendingWarn !== key) { S.pendingWarn = key; return null; }
  S.pendingWarn = null;
  return v;
}

$("#ticket").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (S.user.role !== "trader") return;
  const v = gate();
  const r = $("#t-result");
  if (!v) { r.className = "result rejected"; r.textContent = "Not sent: see above."; return; }
  const button = $("#t-order");
  button.disabled = true;
  r.className = "result"; r.textContent = "Sending…";
  if (S.amending) {
    const o = S.amending;
    try {
      S.lastSent = o.cl_ord_id;
      await api("POST", `/api/orders/${encodeURIComponent(o.cl_ord_id)}/amend`, { account: S.account, qty: v.qty, price_e3: v.price });
      if (r.textContent === "Sending…") r.textContent = `Amend sent for ${o.cl_ord_id}; waiting for the router…`;
      stopAmend();
    } catch (e) {
      r.className = "result rejected";
      r.textContent = `Refused: ${e.code} — ${e.message}`;
    } finally {
      button.disabled = false;
    }
    return;
  }
  try {
    // The id is chosen here, before sending, so a verdict that arrives on the WebSocket
    // before the REST answer is still recognised as this order's.
    const clOrdId = newClOrdId();
    S.lastSent = clOrdId;
    const out = await api("POST", "/api/orders", { ...orderBody(v), cl_ord_id: clOrdId });
    S.lastSent = out.cl_ord_id;
    const existing = S.orders.get(out.cl_ord_id);
    if (!existing) {
      S.orders.set(out.cl_ord_id, { cl_ord_id: out.cl_ord_id, order_id: null, security: v.security, side: v.side, route: v.route,
        price_e3: v.price, order_qty: v.qty, cum_qty: 0n, leaves_qty: v.qty, avg_px_e3: null, status: "PENDING_NEW",
        reject_reason: null, text: null, batch_id: null, ts_ns: BigInt(Date.now()) * 1000000n, fills: [], flash: true });
      renderOrders();
    }
    if (r.textContent === "Sending…") r.textContent = `Sent ${out.cl_ord_id}; waiting for the router…`;
  } catch (e) {
    r.className = "result rejected";
    r.textContent = `Refused: ${e.code} — ${e.message}`;
  } finally {
    button.disabled = false;
  }
});

function clearTicket() {
  stopAmend();
  $("#t-qty").value = "";
  $("#t-price").value = "";
  $("#t-result").textContent = "";
  S.pendingWarn = null;
  validateTicket();
  $("#t-qty").focus();
}
$("#t-clear").addEventListener("click", clearTicket);

/* ---------- Batch staging ---------- */

$("#t-stage").addEventListener("click", stage);
function stage() {
  if (S.user.role !== "trader") return;
  const v = gate();
  if (!v) { $("#t-result").className = "result rejected"; $("#t-result").textContent = "Not staged: see above."; return; }
  S.batch.push({ ...orderBody(v), result: "" });
  $("#t-result").className = "result"; $("#t-result").textContent = `Staged (${S.batch.length} in batch).`;
  renderBatch();
}

function renderBatch() {
  const body = $("#batch tbody");
  $("#n-batch").textContent = S.batch.length || "";
  let total = 0n;
  body.replaceChildren(...S.batch.map((o, i) => {
    const n = Money.notionalCents(o.price_e3, o.qty);
    total += n;
    return el("tr", {},
      el("td", { class: "num" }, i + 1), el("td", { class: "side-" + o.side }, o.side), el("td", { class: "num" }, code5(o.security)),
      el("td", { class: "num" }, Money.qty(o.qty)), el("td", { class: "num" }, Money.e3(o.price_e3)), el("td", {}, o.route), el("td", {}, o.time_in_force),
      el("td", { class: "num" }, Money.cents(n)), el("td", {}, o.result),
      el("td", {}, el("button", { class: "ghost", onclick: () => { S.batch.splice(i, 1); renderBatch(); } }, "Remove")));
  }));
  if (!S.batch.length) body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 10 }, "Stage orders from the ticket (Shift+Enter), then submit them together.")));
  $("#batch-total").textContent = S.batch.length ? `${S.batch.length} orders · notional HK$${Money.cents(total)}` : "";
}
$("#batch-clear").addEventListener("click", () => { S.batch = []; renderBatch(); });
$("#batch-submit").addEventListener("click", async () => {
  if (!S.batch.length) return;
  const orders = S.batch.map(({ result, ...o }) => ({ ...o, account: S.account }));
  try {
    const out = await api("POST", "/api/batches", { account: S.account, orders });
    banner("");
    $("#t-result").className = "result accepted";
    $("#t-result").textContent = `Batch ${out.batch_id}: ${out.orders.length} orders sent.`;
    S.batch = [];
    renderBatch();
    showPane("orders");
  } catch (e) {
    for (const o of S.batch) o.result = `${e.code}: ${e.message}`;
    renderBatch();
  }
});

/* ---------- Risk officer's view ---------- */

async function loadRisk() {
  try {
    const [rows, breaks, alerts] = await Promise.all([
      api("GET", "/api/risk/accounts"), api("GET", "/api/recon/breaks").catch(() => []),
      api("GET", "/api/surveillance/alerts").catch(() => []),
    ]);
    S.risk = rows; S.breaks = breaks || []; S.alerts = (alerts || []).slice(0, 200);
  } catch (e) { banner("Risk view: " + e.message); }
  renderRisk(); renderBreaks(); renderAlerts();
}

function renderRisk() {
  const body = $("#risk tbody");
  const canChange = S.user.role === "risk";
  if (!S.risk.length) { body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 9 }, "No accounts"))); return; }
  body.replaceChildren(...S.risk.map((r) => {
    const s = r.mark || r.snapshot || {};
    const limits = r.limits || {};
    const enabled = limits.enabled !== false;
    const blocked = !!(r.control && r.control.blocked);
    const eq = Money.big(s.equity_cents);
    const cut = s.cut_loss_equity_cents !== undefined ? Money.big(s.cut_loss_equity_cents) : null;
    const dist = r.mark ? Money.big(r.mark.cut_loss_distance_cents) : r.cut_loss_distance_cents !== undefined ? Money.big(r.cut_loss_distance_cents) : eq !== null && cut !== null ? eq - cut : null;
    const exposure = r.exposure_cents !== undefined ? r.exposure_cents : s.holdings_value_cents;
    const breached = r.mark ? r.mark.level === "BREACHED" : s.cut_loss_breached;
    const state = !enabled ? ["HALTED", "state-halted"] : blocked ? ["BLOCKED", "state-breach"] : breached ? ["CUT-LOSS", "state-breach"] : r.mark && r.mark.level === "WARNING" ? ["WARNING", "state-breach"] : ["ACTIVE", "state-ok"];
    return el("tr", { dataset: { account: r.account } },
      el("td", {}, r.account), el("td", {}, r.member),
      el("td", { class: "num" }, Money.cents(s.equity_cents)),
      el("td", { class: "num" }, Money.cents(exposure)),
      el("td", { class: "num" }, Money.cents(s.credit_line_used_cents)),
      el("td", { class: "num" }, Money.cents(cut)),
      el("td", { class: "num " + (dist !== null && dist < 0n ? "loss" : "") }, Money.cents(dist)),
      el("td", { class: state[1] }, state[0]),
      el("td", {}, canChange ? el("button", { class: enabled ? "danger" : "ok", onclick: () => setEnabled(r, !enabled) }, enabled ? "Halt" : "Enable") : "",
        canChange && blocked ? el("button", { class: "ok", onclick: () => reEnable(r) }, "Re-enable") : ""),
    );
  }));
}

// Lift live risk's cut-loss block (risk.controls): the router accepts orders that add risk again.
async function reEnable(row) {
  try {
    row.control = await api("POST", `/api/risk/accounts/${encodeURIComponent(row.account)}/enable`);
    const a = S.accounts.get(row.account);
    if (a) a.control = row.control;
    banner(""); renderRisk(); renderHeader();
  } catch (e) { banner(`${row.account}: ${e.code} — ${e.message}`); }
}

async function setEnabled(row, enabled) {
  const l = row.limits || {};
  try {
    await api("PUT", `/api/accounts/${encodeURIComponent(row.account)}/limits`, {
      credit_line_cents: l.credit_line_cents, cut_loss_cents: l.cut_loss_cents,
      max_order_notional_cents: l.max_order_notional_cents, enabled,
    });
    row.limits = { ...l, enabled };
    const a = S.accounts.get(row.account);
    if (a) a.limits = { ...(a.limits || {}), enabled };
    banner(""); renderRisk(); renderHeader();
  } catch (e) { banner(`${row.account}: ${e.code} — ${e.message}`); }
}

function renderBreaks() {
  const body = $("#breaks tbody");
  if (!S.breaks.length) { body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 5 }, "No reconciliation breaks"))); return; }
  body.replaceChildren(...S.breaks.map((b) => el("tr", {},
    el("td", { class: "num" }, timeOf(b.ts_ns)), el("td", {}, b.exec_id), el("td", { class: "loss" }, b.kind),
    el("td", { class: b.status === "OPEN" ? "loss" : "gain" }, b.status), el("td", {}, b.detail))));
}

function renderAlerts() {
  const body = $("#alerts tbody");
  if (!S.alerts.length) { body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 6 }, "No surveillance alerts"))); return; }
  body.replaceChildren(...S.alerts.map((a) => el("tr", { dataset: { alert: a.alert_id } },
    el("td", { class: "num" }, timeOf(a.ts_ns)), el("td", { class: "loss" }, a.rule),
    el("td", {}, [a.member, ...(a.accounts || [])].filter(Boolean).join(" ")),
    el("td", {}, a.security === null || a.security === undefined ? "" : String(a.security)),
    el("td", {}, [...(a.order_ids || []), ...(a.exec_ids || [])].join(" ")),
    el("td", {}, a.detail))));
}

/* ---------- Panes, watchlist tabs, search, keyboard ---------- */

function showPane(name) {
  for (const t of $$("#lower-tabs .tab")) t.classList.toggle("active", t.dataset.pane === name);
  for (const p of $$(".lower .pane")) p.hidden = p.dataset.pane !== name;
  if (name === "risk") loadRisk();
}
for (const t of $$("#lower-tabs .tab")) t.addEventListener("click", () => showPane(t.dataset.pane));
for (const t of $$("[data-watch]")) {
  t.addEventListener("click", () => {
    S.watchMode = t.dataset.watch;
    for (const x of $$("[data-watch]")) x.classList.toggle("active", x === t);
    renderWatch();
  });
}
$("#w-search").addEventListener("input", renderWatch);
$("#w-search").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") {
    const first = $("#watchlist tbody tr[data-security]");
    if (first) selectSecurity(Number(first.dataset.security), true);
  }
});

document.addEventListener("keydown", (ev) => {
  if ($("#app").hidden) return;
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement && document.activeElement.tagName);
  if (ev.key === "F1") { ev.preventDefault(); setSide("BUY"); $("#t-qty").focus(); return; }
  if (ev.key === "F2") { ev.preventDefault(); setSide("SELL"); $("#t-qty").focus(); return; }
  if (ev.key === "/" && !typing) { ev.preventDefault(); $("#w-search").focus(); $("#w-search").select(); return; }
  if (ev.key === "Escape" && document.activeElement && document.activeElement.closest("#ticket")) { clearTicket(); return; }
  if (ev.key === "Enter" && ev.shiftKey && document.activeElement && document.activeElement.closest("#ticket")) { ev.preventDefault(); stage(); return; }
  if ((ev.key === "ArrowUp" || ev.key === "ArrowDown") && document.activeElement) {
    const up = ev.key === "ArrowUp";
    const v = ticketValues();
    if (document.activeElement.id === "t-price" && v.inst) {
      ev.preventDefault();
      const base = v.price !== null ? v.price : lastOf(v.security).last !== null ? Money.big(lastOf(v.security).last) : Money.big(v.inst.prev_close_e3);
      const next = stepPrice(v.inst, base, up);
      if (next > 0n && next <= PRICE_MAX_E3) $("#t-price").value = Money.e3(next).replace(/,/g, "");
      validateTicket();
    } else if (document.activeElement.id === "t-qty" && v.inst) {
      ev.preventDefault();
      const lot = Money.big(v.inst.board_lot);
      const q = v.qty !== null ? v.qty : 0n;
      const next = up ? q - (q % lot) + lot : q % lot ? q - (q % lot) : q - lot;
      if (next > 0n) $("#t-qty").value = next.toString();
      validateTicket();
    }
  }
});

// The risk view refreshes itself while it is shown (account snapshots of every account are not
// streamed to one socket).
const RISK_REFRESH_MS = 5000;
setInterval(() => {
  const pane = $(".lower .pane[data-pane=risk]");
  if (S.user && pane && !pane.hidden) loadRisk();
}, RISK_REFRESH_MS);

setInterval(() => {
  $("#clock").textContent = new Date().toLocaleTimeString("en-GB", { hour12: false, timeZone: "Asia/Hong_Kong" }) + " HKT";
}, 1000);

/* ---------- Boot ---------- */

window.sampan = { Money, parseJson, toJson, tickOf, stepPrice, state: S };
(async () => {
  setSide("BUY");
  renderBatch();
  try {
    const me = await api("GET", "/api/me");
    await start(me.user || me);
  } catch {
    showLogin("");
  }
})();
