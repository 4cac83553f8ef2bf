/* parley agent console: log in (POST /v3.0/agent/token), then everything over the agent RTM
 * WebSocket. Every text a visitor or an agent wrote is put on the page with textContent. */
"use strict";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "parley-agent-session";
const QUEUE_POLL_MS = 3000;
const TYPING_IDLE_MS = 3000;
const PEEK_TTL_MS = 20000;

const state = {
  token: null, license: 1, until: 0,
  me: null, ws: null, online: false, everOnline: false, attempt: 0, retry: 0,
  chats: new Map(), // chat id -> record (see upsert)
  queue: [],
  current: null,
  selectOnArrival: null,
  knownAgents: new Map(), // agent id -> name, for the transfer list
  queueTimer: 0, pinger: 0,
  typingOn: false, typingAt: 0, typingTimer: 0,
};

// -- small helpers ------------------------------------------------------------------------
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k === "cls") node.className = v;
    else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid != null) node.append(kid);
  return node;
}

const clock = (sec) => new Date(sec * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function ago(sec) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - sec));
  if (s < 60) return "just now";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

function httpUrl(raw) {
  try {
    const u = new URL(raw);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch (e) {
    return null;
  }
}

let toastTimer = 0;
function toast(text) {
  $("toast").textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $("toast").textContent = ""; }, 5000);
}

// -- RTM ----------------------------------------------------------------------------------
let rid = 0;
const waiting = new Map();

function call(action, payload) {
  return new Promise((resolve, reject) => {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new Error("Not connected to the server."));
    const id = "c" + ++rid;
    waiting.set(id, { resolve, reject });
    ws.send(JSON.stringify({ request_id: id, action, payload: payload || {} }));
  });
}

function connect() {
  clearTimeout(state.retry);
  state.retry = 0;
  if (state.ws || !state.token) return;
  renderConnection();
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/v3.0/agent/rtm/ws?license_id=" + state.license);
  state.ws = ws;
  ws.onopen = () => {
    call("login", { token: "Bearer " + state.token, reconnect: state.everOnline })
      .then(loggedIn)
      .catch((err) => {
        if (err.api && err.api.type === "authentication") return logout("Your session has ended. Please log in again.");
        ws.close();
      });
  };
  ws.onmessage = (msg) => {
    let frame;
    try { frame = JSON.parse(msg.data); } catch (e) { return; }
    if (frame.type === "push") { onPush(frame.action, frame.payload || {}); return; }
    const w = waiting.get(frame.request_id);
    if (!w) return;
    waiting.delete(frame.request_id);
    if (frame.success) w.resolve(frame.payload);
    else {
      const api = (frame.payload && frame.payload.error) || {};
      const err = new Error(api.message || "The request failed.");
      err.api = api;
      w.reject(err);
    }
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.online = false;
    clearInterval(state.pinger);
    clearInterval(state.queueTimer);
    for (const w of waiting.values()) w.reject(new Error("Not connected to the server."));
    waiting.clear();
    renderConnection();
    if (!state.token) return;
    const delay = Math.min(30000, 500 * 2 ** Math.min(state.attempt++, 6)) * (0.8 + Math.random() * 0.4);
    state.retry = setTimeout(connect, delay);
  };
}

async function loggedIn(answer) {
  state.online = true;
  state.everOnline = true;
  state.attempt = 0;
  state.me = answer.my_profile;
  renderMe();
  renderConnection();
  for (const item of answer.chats_summary || []) upsert(item);
  renderMine();
  clearInterval(state.pinger);
  state.pinger = setInterval(() => {
    const ws = state.ws;
    const dead = setTimeout(() => ws && ws.close(), 10000);
    call("ping").then(() => clearTimeout(dead), () => clearTimeout(dead));
  }, 25000);
  clearInterval(state.queueTimer);
  state.queueTimer = setInterval(loadQueue, QUEUE_POLL_MS);
  loadQueue();
  if (state.current) openChat(state.current, false);
  else {
    const first = [...state.chats.values()].find((r) => r.mine && r.active);
    if (first) openChat(first.id, false);
  }
}

// -- chats --------------------------------------------------------------------------------
function customerOf(rec) {
  return rec.users.find((u) => u.type === "customer") || { name: "", email: "", monitoring: { page: {} } };
}

function visitorName(rec) {
  const c = customerOf(rec);
  return c.name || c.email || "Visitor " + (c.id || "").slice(0, 4);
}

// Add or refresh a chat from a chat_item / chat-with-thread view.
function upsert(chat) {
  let rec = state.chats.get(chat.id);
  if (!rec) {
    rec = { id: chat.id, users: [], events: new Map(), threads: new Map(), active: true, unread: 0, peek: "", preview: "", order: 0, loaded: false };
    state.chats.set(chat.id, rec);
  }
  if (chat.users) rec.users = chat.users;
  rec.order = Math.max(rec.order, chat.order || 0);
  for (const u of rec.users) if (u.type === "agent" && state.me && u.id !== state.me.id) state.knownAgents.set(u.id, u.name || u.id);
  rec.mine = !!(state.me && rec.users.some((u) => u.id === state.me.id));
  if (chat.thread) {
    rec.threadId = chat.thread.id;
    rec.active = !!chat.thread.active;
    rec.threads.set(chat.thread.id, chat.thread);
    for (const ev of chat.thread.events || []) addEvent(rec, ev, false);
  }
  if (chat.last_event) {
    rec.threadId = rec.threadId || chat.last_event.thread_id;
    addEvent(rec, chat.last_event.event, false);
  }
  return rec;
}

function addEvent(rec, ev, live) {
  if (!ev || rec.events.has(ev.id)) return false;
  rec.events.set(ev.id, ev);
  if (ev.type === "message" || ev.type === "file") {
    rec.preview = (ev.recipients === "agents" ? "Note: " : "") + (ev.text || ev.name || "");
    if (live && ev.author_id !== (state.me && state.me.id) && (state.current !== rec.id || document.hidden)) rec.unread++;
  }
  if (state.current === rec.id) appendToLog(rec, ev);
  return true;
}

function authorLabel(rec, id) {
  if (state.me && id === state.me.id) return "You";
  const u = rec.users.find((x) => x.id === id);
  if (u) return u.type === "customer" ? visitorName(rec) : u.name || "Agent";
  return state.knownAgents.get(id) || "Agent";
}

function eventNode(rec, ev) {
  if (ev.type === "system_message") return el("div", { cls: "system", text: ev.text || "" });
  if (ev.type === "filled_form") {
    const lines = (ev.fields || []).map((f) => (f.label || f.name) + ": " + (f.value == null ? "" : String(f.value)));
    return el("div", { cls: "system", text: lines.join("\n") });
  }
  let body;
  if (ev.type === "message") body = el("div", { cls: "text", text: ev.text || "" });
  else if (ev.type === "file") {
    const href = httpUrl(ev.url || "");
    body = el("div", { cls: "text" }, href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: ev.name || "file" }) : ev.name || "file");
  } else if (ev.type === "custom") body = el("div", { cls: "text", text: JSON.stringify(ev.content || {}) });
  else return null;
  const fromVisitor = customerOf(rec).id === ev.author_id;
  const note = ev.recipients === "agents";
  const cls = "msg " + (note ? "note" : fromVisitor ? "visitor" : "agent");
  const meta = (note ? "Internal note · " : "") + authorLabel(rec, ev.author_id) + " · " + clock(ev.timestamp);
  return el("div", { cls }, body, el("div", { cls: "meta", text: meta }));
}

function appendToLog(rec, ev) {
  const log = $("log");
  const node = eventNode(rec, ev);
  if (!node) return;
  node.dataset.order = String(ev.order);
  const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  let after = null;
  for (let n = log.lastElementChild; n; n = n.previousElementSibling) {
    if (Number(n.dataset.order) <= ev.order) { after = n; break; }
  }
  if (after) after.after(node); else log.prepend(node);
  if (stick) log.scrollTop = log.scrollHeight;
}

function renderLog(rec) {
  const log = $("log");
  log.textContent = "";
  const threads = [...rec.threads.values()].sort((a, b) => a.order - b.order);
  for (const t of threads) {
    const when = new Date(t.order / 1000);
    const sep = el("div", { cls: "sep", text: when.toLocaleDateString([], { day: "numeric", month: "short" }) + ", " + clock(t.order / 1e6) });
    sep.dataset.order = String(t.order - 0.5);
    log.append(sep);
  }
  const events = [...rec.events.values()].sort((a, b) => a.order - b.order);
  for (const ev of events) appendToLog(rec, ev);
  log.scrollTop = log.scrollHeight;
}

async function openChat(id, focus) {
  const rec = state.chats.get(id);
  if (!rec) return;
  state.current = id;
  rec.unread = 0;
  renderMine();
  renderChat();
  renderLog(rec);
  if (focus) $("message").focus();
  try { // the visitor's earlier conversations too (newest 10 threads)
    const summary = await call("get_chat_threads_summary", { chat_id: id, pagination: { limit: 1000 } });
    const ids = summary.chat.threads_summary.map((t) => t.id).slice(-10);
    if (!ids.length) return;
    const got = await call("get_chat_threads", { chat_id: id, thread_ids: ids });
    rec.users = got.chat.users || rec.users;
    for (const t of got.chat.threads) {
      rec.threads.set(t.id, t);
      for (const ev of t.events) rec.events.set(ev.id, ev);
    }
    const last = got.chat.threads[got.chat.threads.length - 1];
    rec.threadId = last.id;
    rec.active = !!last.active;
    rec.mine = !!(state.me && rec.users.some((u) => u.id === state.me.id));
    rec.loaded = true;
    if (state.current === id) { renderChat(); renderLog(rec); }
    renderMine();
  } catch (err) {
    if (err.api) toast(err.message);
  }
  if (state.online && rec.active) call("update_last_seen_timestamp", { chat_id: id }).catch(() => {});
}

// -- rendering ----------------------------------------------------------------------------
function renderConnection() {
  const c = $("connection");
  c.textContent = state.online ? "Online" : state.everOnline ? "Reconnecting…" : "Connecting…";
  c.classList.toggle("off", !state.online);
}

function renderMe() {
  const me = state.me;
  $("me-name").textContent = me.name || me.email;
  $("me-avatar").textContent = (me.name || me.email || "?").trim().charAt(0).toUpperCase();
  setSwitch(me.routing_status === "accepting_chats");
}

function setSwitch(on) {
  $("accepting").setAttribute("aria-checked", String(on));
}

function renderQueue() {
  const ul = $("queue");
  ul.textContent = "";
  for (const item of state.queue) {
    const rec = { users: item.users || [] };
    const last = item.last_event && item.last_event.event;
    const li = el("li", { cls: "queue-item" },
      el("div", { cls: "who" },
        el("strong", { text: visitorName(rec) }),
        el("span", { text: (last && (last.text || last.name)) || "No message yet" }),
        el("span", { text: "Waiting since " + ago((item.order || 0) / 1e6) })),
      el("button", { type: "button", cls: "primary", text: "Accept", "data-chat": item.id }));
    ul.append(li);
  }
  $("queue-empty").hidden = state.queue.length > 0;
  $("queue-count").textContent = state.queue.length ? String(state.queue.length) : "";
}

function renderMine() {
  const ul = $("mine");
  ul.textContent = "";
  const mine = [...state.chats.values()].filter((r) => r.mine || r.keep)
    .sort((a, b) => (b.active - a.active) || b.order - a.order);
  for (const rec of mine) {
    const btn = el("button", { type: "button", cls: "chat-item" + (rec.active ? "" : " closed"), "data-chat": rec.id,
      "aria-current": state.current === rec.id ? "true" : "false" },
    el("span", { cls: "who" }, el("strong", { text: visitorName(rec) }), el("span", { text: rec.preview || "…" })),
    rec.active ? null : el("span", { cls: "tag", text: "Closed" }),
    rec.unread ? el("span", { cls: "badge", text: String(rec.unread), "aria-label": rec.unread + " unread" }) : null);
    ul.append(el("li", null, btn));
  }
  $("mine-empty").hidden = mine.length > 0;
  const active = mine.filter((r) => r.active).length;
  $("mine-count").textContent = active ? String(active) : "";
  const unread = mine.reduce((n, r) => n + r.unread, 0);
  document.title = (unread ? "(" + unread + ") " : "") + "parley — agent console";
}

function renderChat() {
  const rec = state.chats.get(state.current);
  $("placeholder").hidden = !!rec;
  $("chat").hidden = !rec;
  $("details").hidden = !rec;
  if (!rec) return;
  const customer = customerOf(rec);
  const page = (customer.monitoring && customer.monitoring.page) || {};
  $("chat-title").textContent = visitorName(rec);
  $("chat-sub").textContent = rec.active ? (rec.mine ? "Active" : "Active — you are not in this chat") : "Chat closed";
  const canWrite = rec.active && rec.mine && state.online;
  for (const id of ["message", "send", "note", "transfer", "transfer-to", "close-chat"]) $(id).disabled = !canWrite;
  renderPeek();
  renderTransferTargets();
  const dl = $("visitor");
  dl.textContent = "";
  const row = (label, value) => { if (value) dl.append(el("dt", { text: label }), el("dd", null, value)); };
  row("Name", customer.name || "—");
  row("Email", customer.email || "—");
  const href = httpUrl(page.url || "");
  row("Page", page.url ? (href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: page.url }) : page.url) : "");
  row("Page title", page.title || "");
  row("Came from", page.referrer || "");
  row("Time zone", (customer.monitoring && customer.monitoring.timezone) || "");
  row("Visitor ID", customer.id || "");
  row("Chat ID", rec.id);
}

function renderPeek() {
  const rec = state.chats.get(state.current);
  $("peek").textContent = rec && rec.active && rec.peek ? visitorName(rec) + " is typing: " + rec.peek : "";
}

function renderTransferTargets() {
  const sel = $("transfer-to");
  const before = sel.value;
  sel.textContent = "";
  const groups = (state.me && state.me.groups) || [0];
  for (const g of groups) sel.append(el("option", { value: "group:" + g, text: g === 0 ? "All agents (group 0)" : "Group " + g }));
  for (const [id, name] of state.knownAgents) sel.append(el("option", { value: "agent:" + id, text: "Agent: " + name }));
  if ([...sel.options].some((o) => o.value === before)) sel.value = before;
}

// -- pushes -------------------------------------------------------------------------------
function onPush(action, p) {
  const rec = p.chat_id ? state.chats.get(p.chat_id) : null;
  switch (action) {
    case "incoming_chat_thread": {
      const r = upsert(p.chat);
      r.active = true;
      state.queue = state.queue.filter((q) => q.id !== r.id);
      renderQueue();
      if (state.selectOnArrival === r.id || !state.current) { state.selectOnArrival = null; openChat(r.id, true); }
      else if (state.current === r.id) { renderChat(); renderLog(r); }
      break;
    }
    case "incoming_event":
      if (!rec) return;
      if (addEvent(rec, p.event, true) && customerOf(rec).id === p.event.author_id) rec.peek = "";
      if (p.thread_id) rec.threadId = p.thread_id;
      break;
    case "incoming_sneak_peek":
      if (!rec) return;
      rec.peek = p.sneak_peek.text || "";
      clearTimeout(rec.peekTimer); // a visitor who stopped typing is no longer typing
      rec.peekTimer = setTimeout(() => { rec.peek = ""; renderPeek(); }, PEEK_TTL_MS);
      break;
    case "incoming_typing_indicator":
      break;
    case "thread_closed":
      if (rec) { rec.active = false; rec.peek = ""; rec.keep = rec.keep || rec.mine; }
      state.queue = state.queue.filter((q) => q.id !== p.chat_id);
      renderQueue();
      break;
    case "chat_user_added":
      if (rec) {
        rec.users = [...rec.users.filter((u) => u.id !== p.user.id), p.user];
        rec.mine = !!(state.me && rec.users.some((u) => u.id === state.me.id));
      }
      if (p.user && state.me && p.user.id !== state.me.id) state.knownAgents.set(p.user.id, p.user.name || p.user.id);
      break;
    case "chat_user_removed":
      if (rec) {
        rec.users = rec.users.filter((u) => u.id !== p.user_id);
        if (state.me && p.user_id === state.me.id) {
          rec.mine = false;
          rec.keep = false;
          if (state.current === rec.id) { state.current = null; toast("The chat was handed over."); }
        }
      }
      break;
    case "chat_transferred":
      break;
    case "customer_updated":
      if (rec) rec.users = rec.users.map((u) => (u.id === p.customer.id ? p.customer : u));
      break;
    case "customer_page_updated":
      for (const r of state.chats.values()) {
        const c = customerOf(r);
        if (c.id === p.customer_id) c.monitoring = { ...(c.monitoring || {}), page: { url: p.url, title: p.title, referrer: p.referrer } };
      }
      break;
    case "routing_status_set":
      if (state.me && p.agent_id === state.me.id) { state.me.routing_status = p.status; setSwitch(p.status === "accepting_chats"); }
      break;
    case "agent_disconnected":
      if (p.reason === "access_token_expired") logout("Your session has ended. Please log in again.");
      return;
    default:
      return;
  }
  renderMine();
  if (state.current && (!rec || rec.id === state.current)) renderChat();
  else if (!state.current) renderChat();
}

// -- actions ------------------------------------------------------------------------------
async function loadQueue() {
  if (!state.online) return;
  try {
    const got = await call("get_chats_summary", { filters: { status: "queued" }, pagination: { limit: 25 } });
    const fresh = got.chats_summary.slice().sort((a, b) => a.order - b.order); // oldest waits longest: first
    const same = fresh.length === state.queue.length && fresh.every((c, i) => c.id === state.queue[i].id &&
      JSON.stringify(c.last_event || null) === JSON.stringify(state.queue[i].last_event || null));
    state.queue = fresh;
    if (!same) renderQueue();
  } catch (err) { /* next poll */ }
}

async function accept(chatId) {
  state.selectOnArrival = chatId;
  try {
    await call("add_user_to_chat", { chat_id: chatId, user_id: state.me.id, user_type: "agent" });
    state.queue = state.queue.filter((q) => q.id !== chatId);
    renderQueue();
  } catch (err) {
    state.selectOnArrival = null;
    toast(err.message);
    loadQueue();
  }
}

async function sendText(recipients) {
  const rec = state.chats.get(state.current);
  const box = $("message");
  const text = box.value.trim();
  if (!rec || !text) return;
  const event = { type: "message", text, recipients, custom_id: "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8) };
  box.value = "";
  stopTyping();
  try {
    const got = await call("send_event", { chat_id: rec.id, event });
    addEvent(rec, got.event, false);
    renderMine();
  } catch (err) {
    box.value = box.value || text;
    toast("Not sent: " + err.message);
  }
  box.focus();
}

function typing() {
  const rec = state.chats.get(state.current);
  if (!rec || !rec.active || !rec.mine) return;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  if (state.typingOn && Date.now() - state.typingAt < TYPING_IDLE_MS) return;
  state.typingOn = true;
  state.typingAt = Date.now();
  state.typingChat = rec.id;
  call("send_typing_indicator", { chat_id: rec.id, is_typing: true }).catch(() => {});
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (!state.typingOn) return;
  state.typingOn = false;
  call("send_typing_indicator", { chat_id: state.typingChat, is_typing: false }).catch(() => {});
}

async function transfer() {
  const rec = state.chats.get(state.current);
  const [type, id] = $("transfer-to").value.split(":");
  if (!rec || !type) return;
  const target = { type, ids: [type === "group" ? Number(id) : id] };
  try {
    await call("transfer_chat", { chat_id: rec.id, target, force: type === "group" });
    toast("Chat transferred.");
  } catch (err) {
    toast("Transfer failed: " + err.message);
  }
}

async function closeChat() {
  const rec = state.chats.get(state.current);
  if (!rec) return;
  stopTyping();
  try {
    await call("close_thread", { chat_id: rec.id });
    rec.active = false;
    rec.keep = true;
    rec.peek = "";
    renderMine();
    renderChat();
    $("log").focus();
  } catch (err) {
    toast(err.message);
  }
}

async function toggleRouting() {
  const sw = $("accepting");
  const on = sw.getAttribute("aria-checked") !== "true";
  setSwitch(on);
  try {
    await call("set_routing_status", { status: on ? "accepting_chats" : "not_accepting_chats" });
    if (state.me) state.me.routing_status = on ? "accepting_chats" : "not_accepting_chats";
  } catch (err) {
    setSwitch(!on);
    toast(err.message);
  }
}

// -- session ------------------------------------------------------------------------------
function saveSession() {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: state.token, license: state.license, until: state.until }));
}

function start() {
  $("login-view").hidden = true;
  $("app").hidden = false;
  renderConnection();
  renderQueue();
  renderMine();
  renderChat();
  connect();
}

function logout(message) {
  state.token = null;
  sessionStorage.removeItem(SESSION_KEY);
  clearTimeout(state.retry);
  clearInterval(state.queueTimer);
  clearInterval(state.pinger);
  const ws = state.ws;
  state.ws = null;
  state.online = false;
  state.everOnline = false;
  if (ws) ws.close();
  state.chats.clear();
  state.queue = [];
  state.current = null;
  $("app").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
  $("email").focus();
}

async function login(event) {
  event.preventDefault();
  const err = $("login-error");
  err.textContent = "";
  const license = parseInt($("licence").value, 10);
  if (!(license > 0)) { err.textContent = "Enter your licence number."; return; }
  const body = { license_id: license, email: $("email").value.trim(), password: $("password").value };
  let answer;
  try {
    const resp = await fetch("/v3.0/agent/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    answer = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const type = answer.error && answer.error.type;
      err.textContent = type === "authentication" ? "Wrong email or password." :
        type === "license_not_found" ? "Licence " + license + " does not exist." : (answer.error && answer.error.message) || "Login failed.";
      return;
    }
  } catch (e) {
    err.textContent = "Cannot reach the server.";
    return;
  }
  state.token = answer.access_token;
  state.license = license;
  state.until = Date.now() + (answer.expires_in - 60) * 1000;
  $("password").value = "";
  saveSession();
  start();
}

function init() {
  const fromUrl = parseInt(new URLSearchParams(location.search).get("license_id") || "", 10);
  $("licence").value = String(fromUrl > 0 ? fromUrl : 1);
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  $("accepting").addEventListener("click", toggleRouting);
  $("queue").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-chat]");
    if (btn) { btn.disabled = true; accept(btn.dataset.chat); }
  });
  $("mine").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-chat]");
    if (btn) openChat(btn.dataset.chat, true);
  });
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); sendText("all"); });
  $("note").addEventListener("click", () => sendText("agents"));
  $("transfer").addEventListener("click", transfer);
  $("close-chat").addEventListener("click", closeChat);
  const box = $("message");
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText("all"); }
  });
  box.addEventListener("input", () => { if (box.value) typing(); else stopTyping(); });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    const rec = state.chats.get(state.current);
    if (rec && rec.unread) { rec.unread = 0; renderMine(); }
  });
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (saved && saved.token && saved.until > Date.now()) {
      Object.assign(state, { token: saved.token, license: saved.license, until: saved.until });
      start();
      return;
    }
  } catch (e) { /* no session */ }
  $("email").focus();
}

init();
