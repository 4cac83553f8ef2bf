/* parley chat widget. Embed with:
 *   <script src="https://YOUR-PARLEY-HOST/widget.js" data-license-id="1" async></script>
 * No dependencies, no third-party resources; it talks only to the host it was loaded from.
 * Everything a person wrote is put on the page with textContent, never as HTML. */
(() => {
  "use strict";
  const script = document.currentScript || document.querySelector('script[src*="widget.js"][data-license-id]') ||
    document.querySelector('script[src*="widget.js"]');
  if (!script || window.__parleyWidget) return;
  window.__parleyWidget = true;

  const BASE = new URL(script.src, location.href).origin;
  const LIC = parseInt(script.getAttribute("data-license-id") || "1", 10) || 1;
  const KEY = "parley:" + LIC + ":";
  const TYPING_TTL = 15000;

  // -- storage: the open state per tab (sessionStorage), identity and outbox per browser --------
  const box = (name) => {
    let s = null;
    try { s = window[name]; } catch (e) { /* blocked */ }
    return {
      get(k) { try { return JSON.parse(s.getItem(KEY + k)); } catch (e) { return null; } },
      set(k, v) { try { v == null ? s.removeItem(KEY + k) : s.setItem(KEY + k, JSON.stringify(v)); } catch (e) { /* full */ } },
    };
  };
  const ses = box("sessionStorage");
  const loc = box("localStorage");

  const S = {
    open: ses.get("open") === true,
    unread: ses.get("unread") || 0,
    refresh: loc.get("refresh"),
    customerId: loc.get("customer"),
    chatId: loc.get("chat"),
    who: loc.get("who"),
    outbox: loc.get("outbox") || [],
    token: null, tokenUntil: 0,
    ws: null, online: false, everOnline: false, attempt: 0, retry: 0, stopped: "",
    active: false, closed: false, typing: false, queue: null, config: null,
    users: {}, seen: new Set(), ended: new Set(), flushing: false,
  };

  // -- DOM --------------------------------------------------------------------------------
  const h = (tag, attrs, ...kids) => {
    const el = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === "text") el.textContent = attrs[k];
      else if (k === "cls") el.className = attrs[k];
      else el.setAttribute(k, attrs[k]);
    }
    for (const kid of kids) if (kid) el.append(kid);
    return el;
  };
  const icon = (d) => {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  };
  const BUBBLE = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  const CHEVRON = "M6 9l6 6 6-6";
  const PLANE = "M3 20l18-8L3 4v6l12 2-12 2z";

  const CSS = `
:host{all:initial}
*{box-sizing:border-box}
.w{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f29}
.l{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:60px;height:60px;border-radius:50%;border:0;
background:#2f5fe0;color:#fff;cursor:pointer;box-shadow:0 6px 20px rgba(20,40,110,.35);display:grid;place-items:center}
.l:hover{background:#2350c8}
.l:focus-visible,button:focus-visible,.log:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}
textarea:focus,input:focus{outline:0;border-color:#2f5fe0;box-shadow:0 0 0 3px rgba(47,95,224,.2)}
.l svg{width:28px;height:28px;fill:currentColor}
.l.o svg{fill:none;stroke:currentColor;stroke-width:2.5;stroke-linecap:round;stroke-linejoin:round}
.b{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#e5383b;
color:#fff;font:700 12px/22px system-ui,sans-serif;text-align:center;border:2px solid #fff}
.d{position:fixed;right:20px;bottom:92px;z-index:2147483000;width:370px;height:560px;max-height:calc(100vh - 112px);
display:flex;flex-direction:column;background:#fff;border-radius:16px;overflow:hidden;box-shadow:0 12px 48px rgba(15,25,60,.28)}
[hidden]{display:none!important}
header{background:linear-gradient(135deg,#2f5fe0,#5b3fd6);color:#fff;padding:16px 18px;display:flex;gap:12px;align-items:center}
.av{width:38px;height:38px;border-radius:50%;background:rgba(255,255,255,.22);display:grid;place-items:center;font-weight:700;flex:none}
.av svg{width:20px;height:20px;fill:#fff}
header h2{margin:0;font-size:16px;font-weight:650}
header p{margin:2px 0 0;font-size:13px;opacity:.85}
.log{flex:1;overflow-y:auto;padding:16px 14px 8px;background:#f6f7fb;display:flex;flex-direction:column;gap:6px}
.m{max-width:80%;display:flex;flex-direction:column;align-items:flex-start}
.m .t{padding:9px 13px;border-radius:16px 16px 16px 4px;background:#fff;border:1px solid #e3e6ef;white-space:pre-wrap;
overflow-wrap:anywhere}
.m .i{font-size:11.5px;color:#667085;margin:2px 6px 4px}
.m.me{align-self:flex-end;align-items:flex-end}
.m.me .t{background:#2f5fe0;color:#fff;border-color:#2f5fe0;border-radius:16px 16px 4px 16px}
.m.p .t{opacity:.6}
.m.f .t{background:#fde8e8;color:#8a1c1c;border-color:#f5b5b5}
.m a{color:inherit}
.s{align-self:center;text-align:center;font-size:12.5px;color:#667085;padding:2px 8px}
.sep{align-self:stretch;text-align:center;font-size:11.5px;color:#98a2b3;margin:8px 0 2px;text-transform:uppercase;letter-spacing:.04em}
.empty{margin:auto;text-align:center;color:#667085;font-size:14px;padding:20px}
.st{min-height:0;font-size:12.5px;color:#475467;padding:0 16px;background:#f6f7fb}
.st:not(:empty){padding:4px 16px 6px}
.cl{margin:0 14px 8px;padding:8px 12px;border-radius:10px;background:#eef1f8;color:#344054;font-size:13px;text-align:center}
form{margin:0}
.c{display:flex;gap:8px;align-items:flex-end;padding:10px 12px 12px;border-top:1px solid #e8eaf1;background:#fff}
textarea{flex:1;resize:none;border:1px solid #d0d5dd;border-radius:12px;padding:9px 12px;font:inherit;color:inherit;
max-height:120px;min-height:40px;background:#fff}
.c button{flex:none;width:40px;height:40px;border:0;border-radius:50%;background:#2f5fe0;color:#fff;cursor:pointer;display:grid;place-items:center}
.c button svg{width:20px;height:20px;fill:currentColor}
.pf{padding:16px;display:flex;flex-direction:column;gap:10px;border-top:1px solid #e8eaf1}
.pf p{margin:0;color:#475467;font-size:14px}
label{font-size:13px;font-weight:600;color:#344054;display:block;margin-bottom:3px}
input{width:100%;border:1px solid #d0d5dd;border-radius:10px;padding:9px 12px;font:inherit;color:inherit}
.pf button{border:0;border-radius:10px;padding:11px;background:#2f5fe0;color:#fff;font:600 15px system-ui,sans-serif;cursor:pointer}
.ft{font-size:11px;color:#98a2b3;text-align:center;padding:0 0 8px;background:#fff}
@media (max-width:480px){
.d{inset:0;width:auto;height:auto;max-height:none;border-radius:0}
.l.o{top:12px;right:10px;bottom:auto;width:40px;height:40px;background:rgba(255,255,255,.18);box-shadow:none}
header{padding-right:60px}
.m{max-width:88%}
}`;

  const host = h("div", { "data-parley": "widget" });
  const root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    root.append(h("style", { text: CSS })); // old browsers (no constructable stylesheets)
  }

  const agentName = h("p", { text: "We usually reply in a few minutes" });
  const avatar = h("div", { cls: "av" }, icon(BUBBLE));
  const log = h("div", { cls: "log", role: "log", "aria-label": "Messages", "aria-live": "polite", tabindex: "0" });
  const empty = h("p", { cls: "empty", text: "Hi! Ask us anything — we are happy to help." });
  log.append(empty);
  const status = h("div", { cls: "st", role: "status" });
  const closedNote = h("div", { cls: "cl", hidden: "" });
  const ta = h("textarea", { id: "pm", rows: "1", "aria-label": "Message", placeholder: "Write a message…", maxlength: "16000" });
  const send = h("button", { type: "submit", "aria-label": "Send", title: "Send" }, icon(PLANE));
  const compose = h("form", { cls: "c" }, ta, send);
  const nameIn = h("input", { id: "pn", name: "name", autocomplete: "name", maxlength: "256" });
  const mailIn = h("input", { id: "pe", name: "email", type: "email", autocomplete: "email", maxlength: "254" });
  const pre = h("form", { cls: "pf", hidden: "" },
    h("p", { text: "Please introduce yourself so we can help you better." }),
    h("div", null, h("label", { for: "pn", text: "Name" }), nameIn),
    h("div", null, h("label", { for: "pe", text: "Email" }), mailIn),
    h("button", { type: "submit", text: "Start chat" }));
  const dialog = h("section", { cls: "d", role: "dialog", "aria-label": "Chat", "aria-modal": "false", id: "pd", hidden: "" },
    h("header", null, avatar, h("div", null, h("h2", { text: "Chat with us" }), agentName)),
    log, status, closedNote, pre, compose, h("div", { cls: "ft", text: "Powered by parley" }));
  const badge = h("span", { cls: "b", "aria-hidden": "true", hidden: "" });
  const launcher = h("button", { cls: "l", type: "button", "aria-controls": "pd", "aria-expanded": "false" }, icon(BUBBLE), badge);
  root.append(h("div", { cls: "w" }, dialog, launcher));

  // -- rendering --------------------------------------------------------------------------
  const time = (sec) => new Date(sec * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function renderLauncher() {
    const svg = launcher.querySelector("svg");
    svg.replaceWith(icon(S.open ? CHEVRON : BUBBLE));
    launcher.classList.toggle("o", S.open);
    launcher.setAttribute("aria-expanded", String(S.open));
    launcher.setAttribute("aria-label", S.open ? "Minimize chat" : "Open chat" + (S.unread ? ", " + S.unread + " unread" : ""));
    badge.textContent = S.unread > 9 ? "9+" : String(S.unread);
    badge.hidden = S.open || !S.unread;
  }

  function renderStatus() {
    let text = "";
    if (S.stopped) text = S.stopped;
    else if (!S.online) {
      text = S.everOnline ? "Connection lost — reconnecting…" : "Connecting…";
      if (S.outbox.length) text += " Your messages will be sent as soon as we are back.";
    } else if (S.typing) text = "Agent is typing…";
    else if (S.queue) text = "You are number " + S.queue.position + " in the queue. An agent will be with you soon.";
    if (status.textContent !== text) status.textContent = text;
    closedNote.hidden = !S.closed;
    closedNote.textContent = "Chat closed";
    if (S.closed) closedNote.append(h("br"), "Write a message to start a new conversation.");
    const showPre = !!(S.config && S.config.prechat_form && !S.chatId && !S.who && !S.outbox.length);
    pre.hidden = !showPre;
    compose.hidden = showPre;
    const agents = Object.values(S.users).filter((u) => u.type === "agent" && S.active);
    const a = agents[agents.length - 1];
    agentName.textContent = a ? a.name || "Support agent" : "We usually reply in a few minutes";
    avatar.textContent = "";
    if (a && a.name) avatar.textContent = a.name.trim().charAt(0).toUpperCase();
    else avatar.append(icon(BUBBLE));
  }

  const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  const toBottom = () => { log.scrollTop = log.scrollHeight; };

  // Keep the log sorted by event order; pending messages (no order yet) stay last.
  function place(el, order) {
    empty.remove();
    const stick = nearBottom();
    el.dataset.order = String(order);
    let after = null;
    for (let n = log.lastElementChild; n; n = n.previousElementSibling) {
      if (Number(n.dataset.order) <= order) { after = n; break; }
    }
    if (after) after.after(el); else log.prepend(el);
    if (stick || S.open) toBottom();
  }

  function authorName(id) {
    const u = S.users[id];
    return (u && u.name) || (u && u.type === "customer" ? "You" : "Agent");
  }

  function eventEl(ev) {
    const mine = ev.author_id === S.customerId;
    if (ev.type === "system_message") return h("div", { cls: "s", text: ev.text || "" });
    if (ev.type === "filled_form") {
      const text = (ev.fields || []).map((f) => (f.label || f.name) + ": " + (f.value == null ? "" : String(f.value))).join("\n");
      return h("div", { cls: "s", text });
    }
    let body;
    if (ev.type === "message") body = h("div", { cls: "t", text: ev.text || "" });
    else if (ev.type === "file") {
      body = h("div", { cls: "t" });
      const safe = /^https?:\/\//i.test(ev.url || "") ? ev.url : null;
      body.append(safe ? h("a", { href: safe, target: "_blank", rel: "noopener noreferrer", text: ev.name || "file" }) : (ev.name || "file"));
    } else return null;
    const info = mine ? time(ev.timestamp) : authorName(ev.author_id) + " · " + time(ev.timestamp);
    return h("div", { cls: "m" + (mine ? " me" : "") }, body, h("div", { cls: "i", text: info }));
  }

  function pendingEl(cid) { return log.querySelector('[data-cid="' + CSS_ESCAPE(cid) + '"]'); }
  const CSS_ESCAPE = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, "");

  function addEvent(ev) {
    if (!ev || S.seen.has(ev.id)) return false;
    S.seen.add(ev.id);
    if (ev.custom_id) {
      const had = pendingEl(ev.custom_id);
      if (had) had.remove();
      dropFromOutbox(ev.custom_id);
    }
    const el = eventEl(ev);
    if (el) place(el, ev.order);
    return true;
  }

  // Answers how many new messages from others it showed.
  function renderThread(thread) {
    let fresh = 0;
    if (!thread) return fresh;
    const key = "sep:" + thread.id;
    if (!S.seen.has(key) && (thread.events || []).length) {
      S.seen.add(key);
      const when = new Date((thread.order || 0) / 1000);
      const sep = h("div", { cls: "sep", text: when.toLocaleDateString([], { day: "numeric", month: "short" }) + ", " +
        when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) });
      place(sep, thread.order - 0.5);
    }
    for (const ev of thread.events || []) {
      if (addEvent(ev) && ev.author_id !== S.customerId && (ev.type === "message" || ev.type === "file")) fresh++;
    }
    return fresh;
  }

  function remember(users) { for (const u of users || []) S.users[u.id] = u; }

  function showPending(item) {
    let el = pendingEl(item.cid);
    if (!el) {
      el = h("div", { cls: "m me p", "data-cid": item.cid }, h("div", { cls: "t", text: item.text }), h("div", { cls: "i" }));
      empty.remove();
      log.append(el);
      el.dataset.order = "Infinity";
    }
    el.lastChild.textContent = S.online ? "Sending…" : "Pending — will be sent when the connection is back";
    toBottom();
  }

  function showFailed(item, why) {
    const el = pendingEl(item.cid);
    if (!el) return;
    el.className = "m me f";
    el.lastChild.textContent = "Not sent: " + why;
  }

  // -- RTM --------------------------------------------------------------------------------
  let rid = 0;
  const waiting = new Map();
  let pinger = 0;

  function call(action, payload) {
    return new Promise((resolve, reject) => {
      const ws = S.ws;
      if (!ws || ws.readyState !== 1) return reject(new Error("offline"));
      const id = "w" + ++rid;
      waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ request_id: id, action, payload: payload || {} }));
    });
  }

  function apiError(f) {
    const e = (f.payload && f.payload.error) || {};
    const err = new Error(e.message || "request failed");
    err.api = e;
    return err;
  }

  async function fetchJson(path, init) {
    const r = await fetch(BASE + path, init);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error((body.error && body.error.message) || "HTTP " + r.status);
      err.api = body.error || { type: "http", code: r.status };
      throw err;
    }
    return body;
  }

  async function getToken() {
    const body = { license_id: LIC };
    if (S.refresh) body.refresh_token = S.refresh;
    let t;
    try {
      t = await fetchJson("/v3.0/customer/token", {
        method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body),
      });
    } catch (e) {
      if (e.api && e.api.type === "authentication" && S.refresh) { // forgotten or foreign identity: start anew
        S.refresh = null;
        loc.set("refresh", null);
        return getToken();
      }
      throw e;
    }
    if (S.customerId && t.customer_id !== S.customerId) forget();
    S.token = t.access_token;
    S.tokenUntil = Date.now() + (t.expires_in - 60) * 1000;
    S.refresh = t.refresh_token;
    S.customerId = t.customer_id;
    loc.set("refresh", t.refresh_token);
    loc.set("customer", t.customer_id);
  }

  function forget() { // another visitor now: nothing of the previous one may show
    S.chatId = null;
    loc.set("chat", null);
    S.seen.clear();
    S.users = {};
    log.textContent = "";
    log.append(empty);
    for (const item of S.outbox) showPending(item);
  }

  function loginPayload() {
    const page = { url: location.href.slice(0, 8000), title: document.title.slice(0, 1000), referrer: document.referrer.slice(0, 8000) };
    const customer = { monitoring: { page } };
    try { customer.monitoring.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone.slice(0, 64); } catch (e) { /* none */ }
    if (S.who) Object.assign(customer, S.who);
    return { token: "Bearer " + S.token, customer, last_chats_limit: 1, last_threads_limit: 10 };
  }

  async function connect() {
    clearTimeout(S.retry);
    S.retry = 0;
    if (S.ws || S.stopped) return;
    renderStatus();
    try {
      if (!S.config) S.config = await fetchJson("/v3.0/customer/config?license_id=" + LIC).catch((e) => {
        if (e.api && e.api.type === "license_not_found") throw e;
        return null;
      });
      if (!S.token || Date.now() > S.tokenUntil) await getToken();
    } catch (e) {
      if (e.api && (e.api.type === "customer_banned" || e.api.type === "license_not_found")) return stop(e.api.type);
      return later();
    }
    renderStatus();
    const ws = new WebSocket(BASE.replace(/^http/, "ws") + "/v3.0/customer/rtm/ws?license_id=" + LIC);
    S.ws = ws;
    ws.onopen = () => call("login", loginPayload()).then(loggedIn).catch((e) => {
      if (e.api && e.api.type === "authentication") S.token = null;
      if (e.api && e.api.type === "customer_banned") stop("customer_banned");
      ws.close();
    });
    ws.onmessage = (msg) => {
      let f;
      try { f = JSON.parse(msg.data); } catch (e) { return; }
      if (f.type === "push") return onPush(f.action, f.payload || {});
      const w = waiting.get(f.request_id);
      if (!w) return;
      waiting.delete(f.request_id);
      f.success ? w.resolve(f.payload) : w.reject(apiError(f));
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null;
      S.online = false;
      clearInterval(pinger);
      for (const w of waiting.values()) w.reject(new Error("offline"));
      waiting.clear();
      S.typing = false;
      for (const item of S.outbox) showPending(item);
      renderStatus();
      later();
    };
  }

  function later() {
    if (S.stopped || S.retry) return;
    const delay = Math.min(30000, 500 * 2 ** Math.min(S.attempt++, 6)) * (0.8 + Math.random() * 0.4);
    S.retry = setTimeout(connect, delay);
  }

  function stop(reason) {
    S.stopped = reason === "customer_banned" ? "Chat is not available for you." :
      reason === "license_not_found" ? "Chat is not available on this site." : "Chat is unavailable.";
    if (S.ws) S.ws.close();
    renderStatus();
  }

  async function loggedIn(r) {
    const again = S.everOnline;
    S.online = true;
    S.everOnline = true;
    S.attempt = 0;
    if (S.customerId && r.customer_id !== S.customerId) forget();
    S.customerId = r.customer_id;
    clearInterval(pinger);
    pinger = setInterval(() => {
      const ws = S.ws;
      const t = setTimeout(() => ws && ws.close(), 10000); // no answer: the connection is dead
      call("ping").then(() => clearTimeout(t), () => clearTimeout(t));
    }, 25000);
    const chat = (r.last_chats_summary || [])[0];
    if (chat) {
      if (chat.id !== S.chatId) { S.chatId = chat.id; loc.set("chat", chat.id); }
      remember(chat.users);
      const ids = (chat.last_threads_summary || []).map((t) => t.id);
      if (ids.length) {
        const got = await call("get_chat_threads", { chat_id: chat.id, thread_ids: ids });
        remember(got.chat.users);
        let missed = 0;
        for (const t of got.chat.threads) missed += renderThread(t);
        if (again && missed && !S.open) { S.unread += missed - 1; bumpUnread(); } // arrived while we were away
        const last = got.chat.threads[got.chat.threads.length - 1];
        S.active = !!(last && last.active);
        S.closed = !!last && !last.active;
      }
    } else if (S.chatId) {
      forget();
    }
    if (S.open) seen();
    renderStatus();
    flush();
  }

  function onPush(action, p) {
    if (p.chat_id && S.chatId && p.chat_id !== S.chatId) return;
    switch (action) {
      case "incoming_event": {
        const ev = p.event;
        if (addEvent(ev) && ev.author_id !== S.customerId && (ev.type === "message" || ev.type === "file")) {
          S.typing = false;
          if (!S.open) bumpUnread();
        }
        break;
      }
      case "incoming_chat_thread": // our chat started or reopened from another tab
        S.chatId = p.chat.id;
        loc.set("chat", p.chat.id);
        remember(p.chat.users);
        renderThread(p.chat.thread);
        S.active = true;
        S.closed = false;
        break;
      case "incoming_typing_indicator":
        S.typing = !!p.typing_indicator.is_typing;
        clearTimeout(S.typingTimer);
        if (S.typing) S.typingTimer = setTimeout(() => { S.typing = false; renderStatus(); }, TYPING_TTL);
        break;
      case "thread_closed":
        S.ended.add(p.thread_id);
        S.active = false;
        S.closed = true;
        S.typing = false;
        S.queue = null;
        break;
      case "chat_user_added":
        remember([p.user]);
        S.queue = null;
        break;
      case "chat_user_removed":
        delete S.users[p.user_id];
        break;
      case "queue_position_updated":
        S.queue = p.queue;
        break;
      case "customer_disconnected":
        if (p.reason === "access_token_expired") S.token = null;
        if (p.reason === "customer_banned" || p.reason === "license_not_found") stop(p.reason);
        break;
    }
    renderStatus();
  }

  function bumpUnread() {
    S.unread++;
    ses.set("unread", S.unread);
    renderLauncher();
  }

  function seen() {
    if (S.chatId && S.online) call("update_last_seen_timestamp", { chat_id: S.chatId }).catch(() => {});
  }

  // -- sending: an outbox that survives reconnects and reloads; custom_id makes resends idempotent
  function saveOutbox() { loc.set("outbox", S.outbox); }
  function dropFromOutbox(cid) {
    const n = S.outbox.length;
    S.outbox = S.outbox.filter((m) => m.cid !== cid);
    if (S.outbox.length !== n) saveOutbox();
  }

  function queueMessage(text) {
    const item = { cid: "pw" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10), text };
    S.outbox.push(item);
    saveOutbox();
    showPending(item);
    renderStatus();
    if (S.online) flush();
    else if (!S.ws && !S.stopped) connect(); // the visitor acts: try now rather than at the next back-off tick
  }

  async function flush() {
    if (S.flushing) return;
    S.flushing = true;
    try {
      while (S.online && S.outbox.length) {
        const item = S.outbox[0];
        showPending(item);
        const event = { type: "message", text: item.text, custom_id: item.cid };
        let thread = "";
        try {
          if (!S.chatId) {
            const r = await call("start_chat", { chat: { thread: { events: [event] } } });
            S.chatId = r.chat.id;
            loc.set("chat", r.chat.id);
            remember(r.chat.users);
            renderThread(r.chat.thread);
            thread = r.chat.thread.id;
          } else {
            const r = await call("send_event", { chat_id: S.chatId, event });
            addEvent(r.event);
            thread = r.thread_id;
          }
          S.active = !S.ended.has(thread); // a thread_closed push may overtake the answer
          S.closed = !S.active;
          dropFromOutbox(item.cid);
        } catch (e) {
          if (!e.api) break; // offline: the item waits for the next connection
          if (e.api.type === "not_found" && S.chatId) { forget(); continue; } // the chat is gone: start a new one
          if (e.api.type === "too_many_requests") { await new Promise((ok) => setTimeout(ok, 1500)); continue; }
          dropFromOutbox(item.cid);
          showFailed(item, e.message);
        }
        renderStatus();
      }
    } finally {
      S.flushing = false;
    }
    renderStatus();
  }

  // -- sneak peek while typing (throttled to one a second) --------------------------------
  let peekAt = 0;
  let peekTimer = 0;
  function peek() {
    clearTimeout(peekTimer);
    const wait = peekAt + 1000 - Date.now();
    if (wait > 0) { peekTimer = setTimeout(peek, wait); return; }
    if (!S.online || !S.chatId || !S.active) return;
    peekAt = Date.now();
    call("send_sneak_peek", { chat_id: S.chatId, sneak_peek_text: ta.value.slice(0, 4096) }).catch(() => {});
  }

  // -- open / minimize, keyboard ---------------------------------------------------------
  function setOpen(open, focus) {
    S.open = open;
    ses.set("open", open);
    dialog.hidden = !open;
    if (open) {
      S.unread = 0;
      ses.set("unread", 0);
      toBottom();
      seen();
      if (focus) (pre.hidden ? ta : nameIn).focus();
    } else if (focus) launcher.focus();
    renderLauncher();
  }

  launcher.addEventListener("click", () => setOpen(!S.open, true));
  dialog.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { e.preventDefault(); setOpen(false, true); }
  });
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); compose.requestSubmit(); }
  });
  ta.addEventListener("input", () => {
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight + 2, 120) + "px";
    peek();
  });
  compose.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if (!text) return;
    ta.value = "";
    ta.style.height = "";
    clearTimeout(peekTimer);
    queueMessage(text);
    ta.focus();
  });
  pre.addEventListener("submit", (e) => {
    e.preventDefault();
    const who = {};
    if (nameIn.value.trim()) who.name = nameIn.value.trim();
    if (mailIn.value.trim()) {
      if (!/^[^@\s]+@[^@\s]+$/.test(mailIn.value.trim())) { mailIn.setCustomValidity("Please enter an e-mail address"); mailIn.reportValidity(); return; }
      who.email = mailIn.value.trim();
    }
    S.who = who;
    loc.set("who", who);
    if (S.online && (who.name || who.email)) call("update_customer", { customer: who }).catch(() => {});
    renderStatus();
    ta.focus();
  });
  mailIn.addEventListener("input", () => mailIn.setCustomValidity(""));
  window.addEventListener("online", () => { if (!S.ws) connect(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !S.ws && S.attempt > 2) connect(); });

  // -- start ------------------------------------------------------------------------------
  const mount = () => {
    document.body.append(host);
    for (const item of S.outbox) showPending(item);
    setOpen(S.open, false);
    renderStatus();
    connect();
  };
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
