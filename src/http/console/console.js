// DataMiddleware operator console. Plain JavaScript, no build step, no
// dependencies. The admin token lives in this closure only (never in
// localStorage or a cookie): reloading the page signs out. Every action is a
// call to the public HTTP API, so it meets the same checks as any client, and
// every failure is shown in the banner with the server's message.
"use strict";
(function () {
  const state = { token: null, user: null, game: null, player: null, ledgerPage: 1, ordersPage: 1,
    order: null, editing: null, configVersion: null, timer: null, history: new Map() };
  const PAGE_SIZE = 10;
  const $ = (id) => document.getElementById(id);

  // Builds an element; children are nodes or text (never parsed as HTML).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v);
    }
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return el;
  }

  function showError(message) {
    const e = $("error");
    e.textContent = message;
    e.hidden = false;
    $("notice").hidden = true;
  }
  function showNotice(message) {
    const n = $("notice");
    n.textContent = message;
    n.hidden = false;
    $("error").hidden = true;
  }

  // One API call: JSON in and out, the token and game attached; throws an
  // Error carrying the server's message on any failure.
  async function api(method, path, body, headers) {
    const h2 = Object.assign({}, headers || {});
    if (state.token) h2["Authorization"] = "Bearer " + state.token;
    if (state.game) h2["X-Game-Id"] = state.game;
    if (body !== undefined) h2["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers: h2, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new Error(method + " " + path + ": the server did not answer (" + e.message + ")");
    }
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON: reported below */ }
    if (!response.ok) {
      const message = json && json.message ? json.message : (response.statusText || "HTTP " + response.status);
      const code = json && json.code && json.code !== response.status ? " (" + json.code + ")" : "";
      const err = new Error(method + " " + path + ": " + response.status + " " + message + code);
      err.status = response.status;
      if (response.status === 401 && state.token) signOut("Your session ended: " + message);
      throw err;
    }
    return json ? json.data : null;
  }

  // Runs an action; shows its error instead of swallowing it.
  async function attempt(fn, success) {
    try {
      const out = await fn();
      if (success) showNotice(success);
      return out;
    } catch (e) {
      showError(e.message);
      return undefined;
    }
  }

  // ---- sign in / out ----
  async function signIn(event) {
    event.preventDefault();
    if (state.token || $("login-submit").disabled) return;
    const error = $("login-error");
    error.hidden = true;
    const username = $("login-username").value;
    const password = $("login-password").value;
    $("login-submit").disabled = true;
    try {
      const data = await api("POST", "/api/v1/auth/admin", { username, password });
      state.token = data.token;
      state.user = username;
      $("login-password").value = "";
      await start();
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong username or password." : e.message;
      error.hidden = false;
    } finally {
      $("login-submit").disabled = false;
    }
  }

  // Revokes the token on the server; the page then starts afresh (nothing
  // of the last session stays in it). A failed revocation is reported.
  async function signOut(reason) {
    const token = state.token;
    state.token = null;
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    if (token && !reason) {
      try {
        const r = await fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } });
        if (!r.ok) throw new Error("HTTP " + r.status);
      } catch (e) {
        state.token = token;
        showError("Sign-out failed, the session is still valid: " + e.message);
        return;
      }
    }
    closeFeed("signed out");
    if (reason) {
      $("app-view").hidden = true;
      $("login-view").hidden = false;
      $("login-error").textContent = reason;
      $("login-error").hidden = false;
      return;
    }
    location.hash = "";
    location.reload();
  }

  async function start() {
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("whoami").textContent = "signed in as " + state.user;
    const games = await attempt(() => api("GET", "/api/v1/games"));
    const select = $("game-select");
    select.replaceChildren();
    for (const g of (games && games.games) || []) select.append(h("option", { value: g.game_id }, g.game_id + " — " + g.name));
    state.game = select.value || null;
    route(!games);
    if (state.timer) clearInterval(state.timer);
    state.timer = setInterval(() => { if (currentPage() === "overview") refreshOverview(); }, 2000);
  }

  // Forgets what was shown of another game (player and order ids are per game).
  function forgetGameViews() {
    state.player = null;
    state.order = null;
    state.lookup = (state.lookup || 0) + 1;
    closeFeed("another game");
    $("player-view").hidden = true;
    $("order-view").hidden = true;
    editItem(null);
    closeBoard();
    closeAudit();
  }

  // ---- pages ----
  function currentPage() {
    const p = location.hash.replace("#", "");
    return ["overview", "players", "orders", "catalogue", "leaderboards", "audit", "cache", "config"].includes(p) ? p : "overview";
  }
  function route(keepMessages) {
    if (!state.token) return;
    const page = currentPage();
    for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + page;
    for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.page === page);
    if (keepMessages !== true) {
      $("error").hidden = true;
      $("notice").hidden = true;
    }
    if (page === "players" && state.player) reloadPlayer();
    if (page === "leaderboards") refreshBoard();
    ({ overview: refreshOverview, players: () => {}, orders: () => {}, catalogue: loadCatalogue, leaderboards: loadBoards,
      audit: refreshAudit, cache: loadCache, config: loadConfig })[page]();
  }

  const fmt = (v, digits) => (v == null ? "—" : typeof v === "number" ? v.toFixed(digits == null ? 0 : digits) : String(v));
  const cell = (v, digits) => h("td", { class: "num" }, fmt(v, digits));

  // ---- overview ----
  async function refreshOverview() {
    const data = await attempt(() => api("GET", "/api/v1/cluster/nodes"));
    if (!data) return;
    $("registry").textContent = "registry: " + data.registry;
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    for (const n of data.nodes) {
      const backends = h("td", {});
      for (const b of n.backends || []) {
        const lag = b.lag_s != null ? " " + b.lag_s.toFixed(1) + " s" : "";
        backends.append(h("span", { class: b.up ? "up" : "down", title: b.error || "" }, b.name + (b.up ? " up" : " down") + lag), " ");
      }
      body.append(h("tr", { "data-node": n.node_id },
        h("td", {}, n.node_id), cell(n.shards), h("td", { class: "num rps" }, fmt(n.requests_per_s, 1)),
        cell(n.p50_ms, 2), cell(n.p99_ms, 2), cell(n.http_connections), cell(n.tcp_connections),
        h("td", { class: "num" }, n.cache_hit_ratio == null ? "—" : (n.cache_hit_ratio * 100).toFixed(1) + " %"),
        backends, h("td", {}, n.version)));
      const hist = state.history.get(n.node_id) || [];
      hist.push({ rps: n.requests_per_s || 0, p99: n.p99_ms || 0 });
      while (hist.length > 90) hist.shift();
      state.history.set(n.node_id, hist);
    }
    const live = new Set(data.nodes.map((n) => n.node_id));
    for (const id of [...state.history.keys()]) if (!live.has(id)) state.history.delete(id);
    drawChart($("chart-rps"), "rps");
    drawChart($("chart-p99"), "p99");
    $("overview-updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  }

  const COLOURS = ["#2457c5", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d5a97"];
  // A line per node over the last samples, scaled to the largest value.
  function drawChart(svg, key) {
    const ns = "http://www.w3.org/2000/svg";
    const el = (tag, attrs, text) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text != null) e.textContent = text;
      return e;
    };
    const [w, hgt, left, bottom] = [600, 160, 44, 16];
    let max = 0;
    for (const hist of state.history.values()) for (const p of hist) max = Math.max(max, p[key]);
    max = max > 0 ? max * 1.1 : 1;
    svg.replaceChildren(el("line", { class: "axis", x1: left, y1: hgt - bottom, x2: w, y2: hgt - bottom }),
      el("line", { class: "axis", x1: left, y1: 4, x2: left, y2: hgt - bottom }),
      el("text", { class: "label", x: 2, y: 14 }, max >= 100 ? max.toFixed(0) : max.toFixed(2)),
      el("text", { class: "label", x: 2, y: hgt - bottom }, "0"));
    let i = 0;
    for (const [node, hist] of state.history) {
      const colour = COLOURS[i++ % COLOURS.length];
      const step = (w - left) / 89;
      const points = hist.map((p, j) => (left + (90 - hist.length + j) * step).toFixed(1) + "," +
        (hgt - bottom - (p[key] / max) * (hgt - bottom - 6)).toFixed(1)).join(" ");
      svg.append(el("polyline", { class: "line", stroke: colour, points }));
      svg.append(el("text", { class: "label", x: left + 6 + (i - 1) * 90, y: hgt - 2, fill: colour }, node));
    }
  }

  // ---- players ----
  async function findPlayer(event) {
    event.preventDefault();
    const q = $("player-query").value.trim();
    const byName = () => api("GET", "/api/v1/players?username=" + encodeURIComponent(q));
    // Digits are an id, or else a username made of digits.
    const data = await attempt(async () => {
      if (!/^\d+$/.test(q)) return byName();
      try { return await api("GET", "/api/v1/players/" + q); } catch (e) {
        if (e.status === 404) return byName();
        throw e;
      }
    });
    if (!data) return;
    state.player = data.player;
    state.ledgerPage = 1;
    state.ordersPage = 1;
    openFeed(state.player);
    await showPlayer();
  }

  async function reloadPlayer() {
    const data = await attempt(() => api("GET", "/api/v1/players/" + state.player.id));
    if (!data) return;
    state.player = data.player;
    await showPlayer();
  }

  async function showPlayer() {
    const p = state.player;
    const lookup = state.lookup = (state.lookup || 0) + 1;
    $("player-view").hidden = false;
    $("player-title").textContent = p.username + " (#" + p.id + ")";
    const dl = $("player-profile");
    dl.replaceChildren();
    for (const k of ["id", "username", "nickname", "email", "level", "exp", "gold", "diamonds", "status", "version", "created_at", "last_login_at"]) {
      dl.append(h("dt", {}, k), h("dd", { "data-field": k }, p[k] == null ? "—" : String(p[k])));
    }
    $("player-ban").hidden = p.status !== "active";
    $("player-unban").hidden = p.status !== "banned";
    const base = "/api/v1/players/" + p.id;
    const [items, ledger, orders] = await Promise.all([
      attempt(() => api("GET", base + "/items")),
      attempt(() => api("GET", base + "/ledger?page=" + state.ledgerPage + "&page_size=" + PAGE_SIZE)),
      attempt(() => api("GET", base + "/orders?page=" + state.ordersPage + "&page_size=" + PAGE_SIZE)),
    ]);
    if (lookup !== state.lookup) return; // a newer look-up or page has been asked for
    const itemRows = $("player-items").tBodies[0];
    itemRows.replaceChildren();
    for (const i of (items && items.items) || []) itemRows.append(h("tr", {}, h("td", {}, i.item_id), cell(i.quantity), h("td", {}, i.updated_at)));
    const ledgerRows = $("player-ledger").tBodies[0];
    ledgerRows.replaceChildren();
    for (const e of (ledger && ledger.items) || []) {
      ledgerRows.append(h("tr", {}, cell(e.id), h("td", {}, e.currency), cell(e.delta), cell(e.balance_after),
        h("td", {}, e.reason), h("td", {}, e.reference), h("td", {}, e.created_at)));
    }
    pager("ledger", ledger, (page) => { state.ledgerPage = page; showPlayer(); });
    const orderRows = $("player-orders").tBodies[0];
    orderRows.replaceChildren();
    for (const o of (orders && orders.items) || []) {
      const actions = h("td", {});
      if (o.status === "pending") actions.append(h("button", { type: "button", class: "secondary", onclick: () => moveOrder(o.order_id, "cancel") }, "Cancel"));
      if (o.status === "paid") actions.append(h("button", { type: "button", class: "danger", "data-refund": o.order_id, onclick: () => moveOrder(o.order_id, "refund") }, "Refund"));
      orderRows.append(h("tr", { "data-order": o.order_id }, h("td", {}, o.order_id), h("td", {}, o.item_id), cell(o.quantity),
        h("td", { class: "num" }, o.total_price + " " + o.currency), h("td", { class: "status" }, o.status), h("td", {}, o.created_at), actions));
    }
    pager("orders", orders, (page) => { state.ordersPage = page; showPlayer(); });
  }

  function pager(name, data, go) {
    const span = document.querySelector('[data-pager="' + name + '"]');
    span.replaceChildren();
    if (!data) return;
    const pages = Math.max(1, Math.ceil(data.total / data.page_size));
    span.append(h("button", { type: "button", class: "secondary", onclick: () => go(data.page - 1) }, "‹"),
      h("span", {}, "page " + data.page + " of " + pages + " (" + data.total + ")"),
      h("button", { type: "button", class: "secondary", onclick: () => go(data.page + 1) }, "›"));
    span.firstChild.disabled = data.page <= 1;
    span.lastChild.disabled = data.page >= pages;
  }

  async function setStatus(status) {
    const p = state.player;
    try {
      await api("PUT", "/api/v1/players/" + p.id, { status }, { "If-Match": String(p.version) });
      showNotice("Player " + p.username + " is now " + status + ".");
    } catch (e) {
      // 409: changed meanwhile (a balance moved); show the current player to decide again.
      showError(e.status === 409 ? "The player changed meanwhile; reloaded — check and try again. (" + e.message + ")" : e.message);
    }
    await reloadPlayer();
  }

  async function adjustWallet(event) {
    event.preventDefault();
    const button = $("wallet-form").querySelector("button");
    if (button.disabled) return;
    const body = { currency: $("wallet-currency").value, delta: Number($("wallet-delta").value), reason: $("wallet-reason").value };
    if (!Number.isInteger(body.delta) || body.delta === 0) return showError("Delta must be a whole number other than 0.");
    button.disabled = true;
    try {
      const ok = await attempt(() => api("POST", "/api/v1/players/" + state.player.id + "/wallet", body),
        "Wallet adjusted by " + body.delta + " " + body.currency + ".");
      if (ok !== undefined) {
        $("wallet-delta").value = "";
        await reloadPlayer();
      }
    } finally {
      button.disabled = false;
    }
  }

  // ---- live notifications (SPEC §11) ----
  // One WebSocket per looked-up player: the stored inbox (HTTP) first, then
  // the socket authenticates with the admin token (a browser cannot set a
  // header on an upgrade), subscribes to the player and asks for what came
  // since the inbox (resume), so nothing is missed or shown twice. A dropped
  // socket is opened again with a growing delay and resumes after the last
  // id it saw.
  const FEED_MAX = 200;
  const INBOX_PAGE = 200;
  const feed = { ws: null, gen: 0, player: null, game: null, lastId: null, seen: new Set(), live: false,
    replaying: false, attempts: 0, retry: null, stop: null };

  function setFeedState(kind, text) {
    const s = $("feed-state");
    s.dataset.state = kind;
    s.textContent = text || kind;
  }

  // A line above the list: what the socket said besides notifications.
  function feedNote(text, isError) {
    const list = $("feed-notes");
    list.prepend(h("li", { class: isError ? "error" : "" }, new Date().toLocaleTimeString() + " — " + text));
    while (list.children.length > 5) list.lastChild.remove();
  }

  // One line of at most n characters.
  const clip = (text, n) => { const t = text == null ? "" : String(text).replace(/\s+/g, " "); return t.length > n ? t.slice(0, n - 1) + "…" : t; };
  const signed = (v) => (typeof v === "number" && v > 0 ? "+" + v : String(v));

  // A short, plain-text rendering of a notification's data.
  function describe(kind, d) {
    d = d || {};
    switch (kind) {
      case "wallet": return signed(d.delta) + " " + d.currency + " → " + d.balance + (d.reason ? " (" + d.reason + ")" : "");
      case "item": return d.item_id + " " + signed(d.delta) + " → " + d.quantity;
      case "order": return "order " + d.order_id + " → " + d.status;
      case "message": return (d.subject ? "“" + clip(d.subject, 60) + "” " : "") + clip(d.body, 160) + (d.from ? " — from " + d.from : "");
      case "maintenance": return (d.active === false ? "maintenance over" : "maintenance: ") + (d.message ? " " + clip(d.message, 160) : "");
      case "player": return "status → " + d.status;
      default: return clip(JSON.stringify(d), 160);
    }
  }

  // A message's whole text, for the tooltip of its short rendering.
  function full(n) {
    const d = n.data || {};
    return n.kind === "message" ? (d.subject ? d.subject + "\n\n" : "") + (d.body == null ? "" : String(d.body)) : "";
  }

  function when(at) {
    if (typeof at !== "number") return at == null ? "—" : String(at);
    const d = new Date(at);
    return isNaN(d.getTime()) ? String(at) : d.toISOString();
  }

  // Shows one notification in id order, newest on top, once.
  function showNotification(n, via) {
    if (typeof n.id !== "number" || feed.seen.has(n.id)) return;
    feed.seen.add(n.id);
    const row = h("tr", { "data-id": String(n.id), "data-kind": String(n.kind), "data-via": via },
      cell(n.id), h("td", { class: "kind" }, n.kind), h("td", { class: "what", title: full(n) }, describe(n.kind, n.data)),
      h("td", { title: String(n.at) }, when(n.at)), h("td", { class: "via" }, via));
    const body = $("feed-list").tBodies[0];
    const after = [...body.rows].find((r) => Number(r.dataset.id) < n.id);
    body.insertBefore(row, after || null);
    while (body.rows.length > FEED_MAX) body.lastChild.remove();
  }

  // A wallet notification carries the balance it left: the profile above
  // shows it at once (the rest of the page is read again on the next action).
  function showBalance(d) {
    const p = state.player;
    if (!p || p.id !== feed.player || !d || !["gold", "diamonds"].includes(d.currency) || typeof d.balance !== "number") return;
    p[d.currency] = d.balance;
    const dd = document.querySelector('#player-profile dd[data-field="' + d.currency + '"]');
    if (dd) dd.textContent = String(d.balance);
  }

  // Ends the current feed (another player, another game, signing out); its
  // socket's late events are ignored from here on.
  function closeFeed(why) {
    feed.gen++;
    clearTimeout(feed.retry);
    feed.retry = null;
    const ws = feed.ws;
    feed.ws = null;
    feed.live = false;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, why || "closed by the console");
  }

  async function openFeed(player) {
    closeFeed("another player");
    const gen = feed.gen;
    Object.assign(feed, { player: player.id, game: state.game, lastId: null, seen: new Set(), attempts: 0, stop: null, replaying: false });
    $("feed-list").tBodies[0].replaceChildren();
    $("feed-notes").replaceChildren();
    setFeedState("connecting", "connecting — reading the inbox");
    const base = "/api/v1/players/" + player.id + "/notifications";
    try {
      let after = 0;
      const stored = [];
      for (let i = 0; i < 50; i++) {
        const page = await api("GET", base + "?after=" + after + "&limit=" + INBOX_PAGE);
        if (gen !== feed.gen) return;
        stored.push(...page.notifications);
        feed.lastId = page.last_id;
        if (page.notifications.length < INBOX_PAGE) break;
        after = page.notifications[page.notifications.length - 1].id;
      }
      for (const n of stored.slice(-FEED_MAX)) showNotification(n, "inbox");
      feedNote("Inbox: " + stored.length + " stored notification(s), newest id " + feed.lastId + ".");
    } catch (e) {
      if (gen !== feed.gen) return;
      feedNote("The inbox could not be read: " + e.message + " — live notifications only.", true);
    }
    connectFeed(gen);
  }

  function connectFeed(gen) {
    if (gen !== feed.gen || !state.token) return;
    feed.retry = null;
    setFeedState("connecting");
    let ws;
    try {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    } catch (e) {
      setFeedState("closed", "closed — " + e.message);
      return;
    }
    feed.ws = ws;
    feed.live = false;
    let opened = false;
    const mine = () => gen === feed.gen && ws === feed.ws;
    ws.onopen = () => {
      opened = true;
      if (!mine()) return;
      setFeedState("connecting", "connecting — authenticating");
      ws.send(JSON.stringify({ type: "auth", token: state.token }));
    };
    ws.onmessage = (event) => { if (mine()) onFeedMessage(ws, event.data); };
    ws.onclose = (event) => { if (mine()) onFeedClosed(gen, event, opened); };
  }

  function onFeedMessage(ws, text) {
    let m;
    try { m = JSON.parse(text); } catch (_) { return feedNote("Not JSON from the server: " + clip(text, 80), true); }
    switch (m.type) {
      case "ready":
        // An admin's socket names the game of each player it follows (player
        // ids are per game).
        setFeedState("connecting", "connecting — subscribing");
        ws.send(JSON.stringify({ type: "subscribe", player_id: feed.player, game: feed.game }));
        return;
      case "subscribed":
        if (m.player_id !== feed.player) return;
        feed.attempts = 0;
        feed.live = true;
        if (feed.lastId == null || feed.lastId > m.last_id) {
          feed.lastId = m.last_id;
        } else if (feed.lastId < m.last_id) {
          // What was made between the inbox (or the drop) and now.
          feed.replaying = true;
          ws.send(JSON.stringify({ type: "resume", player_id: feed.player, after: feed.lastId, game: feed.game }));
        }
        setFeedState("live", "live — following #" + feed.player + " in " + feed.game);
        return;
      case "notification":
        if (m.player_id !== feed.player || m.game !== feed.game) return;
        feed.lastId = Math.max(feed.lastId || 0, m.id);
        showNotification(m, feed.replaying ? "replay" : "live");
        if (m.kind === "wallet") showBalance(m.data);
        return;
      case "missed":
        if (m.player_id !== feed.player) return;
        feed.lastId = Math.max(feed.lastId || 0, m.to);
        feedNote("Missed while away and not stored, so not replayed: " + (m.from === m.to ? "id " + m.from : "ids " + m.from + "–" + m.to) +
          " (only messages are stored, unless realtime.persist); the player is read again.");
        // What they changed (a balance, an order) shows in the page read afresh.
        if (state.player && state.player.id === feed.player && currentPage() === "players") reloadPlayer();
        return;
      case "resumed":
        feed.replaying = false;
        if (m.replayed || m.missed) feedNote("Caught up after id " + m.after + ": " + m.replayed + " replayed, " + m.missed + " not stored.");
        return;
      case "session_revoked":
        feed.stop = "session revoked";
        feedNote("The admin session was revoked.", true);
        return;
      case "error":
        feedNote("Server: " + m.message, true);
        // Not following yet (the subscription failed): try again later.
        if (!feed.live) ws.close(1000, "subscribe failed");
        return;
      default:
        return;
    }
  }

  function onFeedClosed(gen, event, opened) {
    feed.ws = null;
    feed.live = false;
    feed.replaying = false;
    const reason = event.reason ? " " + event.reason : "";
    const closed = "closed (" + event.code + reason + ")";
    if (!opened) feedNote("/ws did not open (" + event.code + "): the server is unreachable or refused the upgrade " +
      "(403 when the page's origin is neither the server's own nor in http.cors_origins).", true);
    if (event.code === 4001) feed.stop = feed.stop || "session revoked";
    if (event.code === 1008 && /^authentication failed/.test(event.reason)) feed.stop = "authentication failed";
    if (feed.stop || !state.token) {
      setFeedState("closed", closed + (feed.stop ? " — " + feed.stop : ""));
      return;
    }
    // 1 s, 2 s, 4 s … up to 30 s, a little jitter so nodes are not hit at once.
    const delay = Math.min(30000, 1000 * 2 ** feed.attempts) * (0.8 + Math.random() * 0.4);
    feed.attempts = Math.min(feed.attempts + 1, 5);
    setFeedState("closed", closed + " — reconnecting in " + Math.ceil(delay / 1000) + " s");
    feed.retry = setTimeout(() => connectFeed(gen), delay);
  }

  async function sendMessage(event) {
    event.preventDefault();
    const button = $("message-form").querySelector("button");
    if (button.disabled || !state.player) return;
    const body = { subject: $("message-subject").value, body: $("message-body").value };
    if (!body.body.trim()) return showError("Write a message.");
    const p = state.player;
    button.disabled = true;
    try {
      const data = await attempt(() => api("POST", "/api/v1/players/" + p.id + "/notifications", body),
        "Message sent to " + p.username + ".");
      if (data === undefined) return;
      $("message-body").value = "";
      // A live feed shows it as the socket delivers it; without one, here.
      const n = data.notification;
      if (n && !feed.live && feed.player === p.id && feed.game === n.game) showNotification(n, "sent");
    } finally {
      button.disabled = false;
    }
  }

  // ---- orders ----
  async function moveOrder(id, how) {
    const call = how === "cancel" ? () => api("DELETE", "/api/v1/orders/" + id)
      : () => api("PUT", "/api/v1/orders/" + id + "/status", { status: "refunded" });
    const data = await attempt(call, "Order " + id + (how === "cancel" ? " cancelled." : " refunded."));
    if (data === undefined) return;
    if (state.order && state.order.order_id === id) showOrder(data.order);
    if (state.player && currentPage() === "players") await reloadPlayer();
  }

  async function findOrder(event) {
    event.preventDefault();
    const id = $("order-query").value.trim();
    const data = await attempt(() => api("GET", "/api/v1/orders/" + encodeURIComponent(id)));
    if (data) showOrder(data.order);
  }

  function showOrder(o) {
    state.order = o;
    $("order-view").hidden = false;
    const dl = $("order-detail");
    dl.replaceChildren();
    for (const k of ["order_id", "player_id", "item_id", "quantity", "unit_price", "total_price", "currency", "status", "created_at", "paid_at", "cancel_reason"]) {
      dl.append(h("dt", {}, k), h("dd", { "data-field": k }, o[k] == null ? "—" : String(o[k])));
    }
    $("order-cancel").hidden = o.status !== "pending";
    $("order-refund").hidden = o.status !== "paid";
  }

  // ---- catalogue ----
  async function loadCatalogue() {
    const data = await attempt(() => api("GET", "/api/v1/items"));
    if (!data) return;
    const rows = $("items").tBodies[0];
    rows.replaceChildren();
    for (const i of data.items) {
      const actions = h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => editItem(i) }, "Edit"));
      if (i.status !== "deleted") actions.append(" ", h("button", { type: "button", class: "danger", "data-withdraw": i.item_id, onclick: () => withdrawItem(i.item_id) }, "Withdraw"));
      rows.append(h("tr", { "data-item": i.item_id }, h("td", {}, i.item_id), h("td", {}, i.name), h("td", {}, i.type), h("td", {}, i.quality),
        cell(i.price_gold), cell(i.price_diamonds), cell(i.max_stack), h("td", { class: "status" }, i.status), actions));
    }
  }

  function editItem(item) {
    state.editing = item ? item.item_id : null;
    $("item-form-title").textContent = item ? "Edit " + item.item_id : "New item";
    $("item-save").textContent = item ? "Save" : "Create";
    $("item-id").disabled = !!item;
    const v = item || { item_id: "", name: "", type: "", quality: "", description: "", price_gold: 0, price_diamonds: 0, max_stack: 99 };
    $("item-id").value = v.item_id; $("item-name").value = v.name; $("item-type").value = v.type;
    $("item-quality").value = v.quality; $("item-description").value = v.description;
    $("item-price-gold").value = v.price_gold; $("item-price-diamonds").value = v.price_diamonds; $("item-max-stack").value = v.max_stack;
  }

  async function saveItem(event) {
    event.preventDefault();
    const body = { name: $("item-name").value, price_gold: Number($("item-price-gold").value),
      price_diamonds: Number($("item-price-diamonds").value), max_stack: Number($("item-max-stack").value),
      description: $("item-description").value };
    if ($("item-type").value || state.editing) body.type = $("item-type").value;
    if ($("item-quality").value || state.editing) body.quality = $("item-quality").value;
    let ok;
    if (state.editing) {
      ok = await attempt(() => api("PUT", "/api/v1/items/" + encodeURIComponent(state.editing), body), "Item " + state.editing + " saved.");
    } else {
      body.item_id = $("item-id").value;
      ok = await attempt(() => api("POST", "/api/v1/items", body), "Item " + body.item_id + " created.");
    }
    if (ok !== undefined) { editItem(null); await loadCatalogue(); }
  }

  async function withdrawItem(id) {
    const ok = await attempt(() => api("DELETE", "/api/v1/items/" + encodeURIComponent(id)), "Item " + id + " withdrawn.");
    if (ok !== undefined) await loadCatalogue();
  }

  // ---- leaderboards (SPEC §12) ----
  // The selected game's boards, and one board's records at a time: a page of
  // its top (paged by the server's next_cursor; the cursors of the pages
  // before are kept for going back) or the records around a player. Every
  // name and number is put in the page as text.
  const board = { def: null, view: null, back: [], next: null, gen: 0 };
  const boardPath = (id) => "/api/v1/leaderboards/" + encodeURIComponent(id);

  async function loadBoards() {
    const game = state.game;
    const data = await attempt(() => api("GET", "/api/v1/leaderboards"));
    if (!data || game !== state.game) return; // another game was chosen meanwhile
    const rows = $("boards").tBodies[0];
    rows.replaceChildren();
    for (const b of data.boards) {
      rows.append(h("tr", { "data-board": b.id, class: board.def && board.def.id === b.id ? "selected" : "" },
        h("td", {}, b.id), h("td", {}, b.sort), h("td", {}, b.operator), h("td", {}, b.reset),
        h("td", {}, b.player_writable ? "yes" : "no"), h("td", {}, b.created_at),
        h("td", {}, h("button", { type: "button", class: "secondary", "data-view": b.id, onclick: () => openBoard(b) }, "View"), " ",
          h("button", { type: "button", class: "danger", "data-delete": b.id, onclick: () => deleteBoard(b.id) }, "Delete"))));
    }
    if (!data.boards.length) rows.append(h("tr", {}, h("td", { colspan: "7", class: "muted" }, "No leaderboards in this game yet.")));
    // The board shown was withdrawn meanwhile (by another operator).
    if (board.def && !data.boards.some((b) => b.id === board.def.id)) closeBoard();
  }

  function closeBoard() {
    board.def = null;
    board.view = null;
    board.gen++;
    $("board-view").hidden = true;
    for (const tr of $("boards").tBodies[0].rows) tr.classList.remove("selected");
  }

  function openBoard(b) {
    board.def = b;
    $("board-view").hidden = false;
    $("board-title").textContent = b.id;
    $("board-about").textContent = b.sort + ", " + b.operator + ", reset " + b.reset +
      (b.player_writable ? ", player writable" : "");
    for (const tr of $("boards").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.board === b.id);
    $("board-records").tBodies[0].replaceChildren();
    $("board-showing").textContent = "";
    showTop(null, []);
  }

  // `?a=1&b=2` of the fields given a value (an empty field is the server's default).
  function query(pairs) {
    const q = pairs.filter(([, v]) => v != null && v !== "").map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
    return q ? "?" + q : "";
  }
  const period = () => $("board-period").value.trim();

  // The top from `cursor` (null: rank 1); `back` is the cursors of the pages before.
  async function showTop(cursor, back) {
    if (!board.def) return;
    const id = board.def.id;
    const gen = ++board.gen;
    const data = await attempt(() => api("GET", boardPath(id) + query([["limit", $("board-limit").value.trim()],
      ["cursor", cursor], ["period", period()]])));
    if (!data || gen !== board.gen) return;
    board.view = { kind: "top", cursor };
    board.back = back;
    board.next = data.next_cursor == null ? null : String(data.next_cursor);
    showRecords(data, "Top of " + id, null);
  }

  async function showAround(player) {
    if (!board.def) return;
    const id = board.def.id;
    const limit = $("board-around-limit").value.trim();
    const gen = ++board.gen;
    const data = await attempt(() => api("GET", boardPath(id) + "/around/" + encodeURIComponent(player) +
      query([["limit", limit], ["period", period()]])));
    if (!data || gen !== board.gen) return;
    const records = data.records || [];
    const first = records[0];
    const last = records[records.length - 1];
    // Reading on goes to the top read from the last rank shown; a short list
    // (fewer than asked) already reaches the bottom.
    board.view = { kind: "around", player, cursor: first && first.rank > 1 ? String(first.rank - 1) : null };
    board.back = [];
    board.next = last && records.length >= (Number(limit) || 11) ? String(last.rank) : null;
    showRecords(data, "Around player " + player + " on " + id, Number(player));
  }

  function showRecords(data, what, player) {
    const records = data.records || [];
    const rows = $("board-records").tBodies[0];
    rows.replaceChildren();
    for (const r of records) {
      rows.append(h("tr", { "data-rank": r.rank, "data-player": r.player_id, class: r.player_id === player ? "focus" : "" },
        cell(r.rank), cell(r.player_id), h("td", { class: "username" }, r.username), cell(r.score), cell(r.subscore)));
    }
    if (!records.length) rows.append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "No records in this period.")));
    const first = records[0];
    const last = records[records.length - 1];
    $("board-showing").textContent = what + " — period " + data.period +
      (first ? ", ranks " + first.rank + "–" + last.rank : ", no records");
    $("board-prev").disabled = !board.back.length;
    $("board-next").disabled = board.next == null;
  }

  // Reads the view shown again (coming back to the page).
  function refreshBoard() {
    if (!board.def || !board.view) return;
    if (board.view.kind === "around") showAround(board.view.player);
    else showTop(board.view.cursor, board.back);
  }

  async function createBoard(event) {
    event.preventDefault();
    const button = $("board-save");
    if (button.disabled) return;
    const body = { id: $("board-id").value.trim(), sort: $("board-sort").value, operator: $("board-operator").value,
      reset: $("board-reset").value, player_writable: $("board-writable").checked };
    button.disabled = true;
    try {
      const data = await attempt(() => api("POST", "/api/v1/leaderboards", body), "Leaderboard " + body.id + " created.");
      if (data === undefined) return;
      $("board-form").reset();
      await loadBoards();
      openBoard(data.board);
    } finally {
      button.disabled = false;
    }
  }

  async function deleteBoard(id) {
    if (!window.confirm("Delete the leaderboard " + id + " and its records of every period? This cannot be undone.")) return;
    const ok = await attempt(() => api("DELETE", boardPath(id)), "Leaderboard " + id + " deleted.");
    if (ok === undefined) return;
    if (board.def && board.def.id === id) closeBoard();
    await loadBoards();
  }

  // ---- audit (SPEC §13) ----
  // The selected game's audit log, oldest first: every record, those about
  // a player (subject player:ID) or those by an admin (actor admin:NAME),
  // paged by the server's next_cursor (the cursors of the pages before are
  // kept for going back); and, on request, every chain verified — its
  // hashes re-computed and its signed checkpoints checked. Every field,
  // the details included, is put in the page as text.
  const audit = { filter: null, cursor: null, back: [], next: null, gen: 0, verifyGen: 0, problems: new Map() };
  const NOT_VERIFIED = "Not verified yet: Verify now re-computes every record's hash and checks each chain's " +
    "signed checkpoints (it reads the game's whole log).";

  // The filter the form names: its query and its title; or a message saying
  // what is missing.
  function auditFilter() {
    const by = $("audit-by").value;
    const who = $("audit-who").value.trim();
    const action = $("audit-action").value.trim();
    const f = { pairs: [], what: "All records" };
    if (by === "player") {
      if (!/^\d+$/.test(who)) return "Name the player by its id (digits).";
      f.pairs.push(["subject", "player:" + who]);
      f.what = "Records about player " + who;
    } else if (by === "admin") {
      const name = who.replace(/^admin:/, "");
      if (!name) return "Name the admin (the <name> of [admins.<name>]).";
      f.pairs.push(["actor", "admin:" + name]);
      f.what = "Records by admin " + name;
    }
    if (action) {
      f.pairs.push(["action", action]);
      f.what += ", action " + action;
    }
    return f;
  }

  // Forgets what was shown of another game.
  function closeAudit() {
    audit.gen++;
    audit.verifyGen++;
    Object.assign(audit, { cursor: null, back: [], next: null, problems: new Map() });
    $("audit-records").tBodies[0].replaceChildren();
    $("audit-showing").textContent = "";
    $("audit-prev").disabled = true;
    $("audit-next").disabled = true;
    $("audit-chains").hidden = true;
    $("audit-chains").tBodies[0].replaceChildren();
    $("audit-summary").className = "muted";
    $("audit-summary").textContent = NOT_VERIFIED;
  }

  // The page of records from `cursor` (null: the oldest); `back` is the
  // cursors of the pages before.
  async function showAudit(cursor, back) {
    const f = audit.filter;
    if (!f) return;
    const game = state.game;
    const gen = ++audit.gen;
    const data = await attempt(() => api("GET", "/api/v1/audit" +
      query(f.pairs.concat([["limit", $("audit-limit").value.trim()], ["after", cursor]]))));
    if (!data || gen !== audit.gen || game !== state.game) return;
    audit.cursor = cursor;
    audit.back = back;
    audit.next = data.next_cursor == null ? null : String(data.next_cursor);
    const records = data.records || [];
    const rows = $("audit-records").tBodies[0];
    rows.replaceChildren();
    for (const r of records) {
      const a = r.actor || {};
      rows.append(h("tr", { "data-chain": r.chain, "data-seq": r.seq, "data-action": r.action },
        h("td", {}, r.at), h("td", { class: "action" }, r.action), h("td", { class: "subject" }, r.subject),
        h("td", {}, a.role), h("td", { class: "actor" }, a.id), h("td", {}, a.client), h("td", {}, a.node),
        h("td", { class: "num" }, r.chain + " · " + r.seq),
        h("td", { class: "details", title: JSON.stringify(r.details, null, 2) }, JSON.stringify(r.details))));
    }
    if (!records.length) rows.append(h("tr", {}, h("td", { colspan: "9", class: "muted" }, "No records match.")));
    markAuditRows();
    $("audit-showing").textContent = f.what + " in " + data.game + " — page " + (back.length + 1) + ", " +
      records.length + " record(s)" + (audit.next == null ? ", the last page" : "");
    $("audit-prev").disabled = !back.length;
    $("audit-next").disabled = audit.next == null;
  }

  // Marks the records a verification found a chain's problem at.
  function markAuditRows() {
    for (const tr of $("audit-records").tBodies[0].rows) {
      const p = audit.problems.get(Number(tr.dataset.chain));
      tr.classList.toggle("tampered", !!p && p.seq === Number(tr.dataset.seq));
    }
  }

  // Coming to the page: the view shown read again (the first time, every record).
  function refreshAudit() {
    if (!audit.filter) audit.filter = { pairs: [], what: "All records" };
    showAudit(audit.cursor, audit.back);
  }

  async function verifyAudit() {
    const button = $("audit-verify");
    if (button.disabled) return;
    const game = state.game;
    const gen = ++audit.verifyGen;
    const summary = $("audit-summary");
    summary.className = "muted";
    summary.textContent = "Verifying every chain of " + game + "…";
    button.disabled = true;
    try {
      const data = await attempt(() => api("GET", "/api/v1/audit/chains"));
      if (gen !== audit.verifyGen || game !== state.game) return;
      if (!data) {
        summary.textContent = "Not verified: the verification failed (the message is above).";
        return;
      }
      showChains(data);
    } finally {
      button.disabled = false;
    }
  }

  // Each chain's verification: a summary line, and a row per chain that
  // holds records (or has a problem), those with a problem highlighted.
  function showChains(data) {
    const chains = data.chains || [];
    const bad = chains.filter((c) => !c.ok);
    audit.problems = new Map(bad.filter((c) => c.problem).map((c) => [c.chain, c.problem]));
    const summary = $("audit-summary");
    const at = " (" + data.game + ", " + new Date().toLocaleTimeString() + ")";
    if (!bad.length) {
      summary.className = "verified";
      summary.textContent = "All " + chains.length + " chains verified, " + data.records + " records, public key " +
        data.public_key + at + ".";
    } else {
      summary.className = "error";
      summary.textContent = bad.length + " of " + chains.length + " chains fail verification: " +
        bad.map((c) => "chain " + c.chain + (c.problem ? " record " + c.problem.seq + " " + c.problem.kind : "")).join("; ") +
        ". " + data.records + " records read, public key " + data.public_key + at + ".";
    }
    const rows = $("audit-chains").tBodies[0];
    rows.replaceChildren();
    let empty = 0;
    for (const c of chains) {
      if (c.ok && !c.records) { empty++; continue; }
      const p = c.problem;
      const cp = c.last_checkpoint;
      // A chain whose records fail is not read as far as its checkpoints.
      const checked = c.ok || (p && p.kind.startsWith("checkpoint"));
      rows.append(h("tr", { "data-chain": c.chain, class: c.ok ? "" : "problem" },
        cell(c.chain), cell(c.records), cell(c.head),
        h("td", { class: "checkpoint" }, cp ? "seq " + cp.seq + " at " + cp.at : checked ? "none yet" : "not checked"),
        h("td", { class: "status " + (c.ok ? "up" : "down") },
          c.ok ? "OK" : p ? p.kind + " at seq " + p.seq + " — " + p.detail : "failed")));
    }
    if (empty) rows.append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, empty + " chain(s) hold no records yet.")));
    $("audit-chains").hidden = false;
    markAuditRows();
  }

  // ---- cache ----
  async function loadCache() {
    const data = await attempt(() => api("GET", "/api/v1/cache/stats"));
    if (!data) return;
    const rows = $("cache-stats").tBodies[0];
    rows.replaceChildren();
    for (const s of data.shards) {
      rows.append(h("tr", {}, cell(s.shard), cell(s.l1.entries), cell(s.l1.hits), cell(s.l1.misses), cell(s.l1.evictions),
        h("td", {}, s.l2.configured ? (s.l2.up ? "up" : "down") : "off"), cell(s.l2.hits), cell(s.l2.misses), cell(s.loads),
        h("td", {}, s.invalidation_bus)));
    }
  }

  async function invalidate(body, what) {
    const ok = await attempt(() => api("POST", "/api/v1/cache/invalidate", body), what + " invalidated on every shard and node.");
    if (ok !== undefined) await loadCache();
  }

  // ---- cluster config ----
  async function loadConfig() {
    $("config-form").hidden = true;
    let data;
    try {
      data = await api("GET", "/api/v1/cluster/config");
    } catch (e) {
      const standAlone = e.status === 503 && /stand-alone|cluster\.redis/i.test(e.message);
      $("config-state").textContent = standAlone
        ? "No config centre: this node is stand-alone (set cluster.redis to share hot settings across nodes). " + e.message
        : e.message;
      if (!standAlone) showError(e.message);
      return;
    }
    state.configVersion = data.version;
    const s = data.settings || {};
    const d = data.defaults || {};
    $("config-state").textContent = "Version " + data.version + ". Empty fields fall back to each node's file (defaults shown).";
    const put = (id, key) => { $(id).value = s[key] == null ? "" : s[key]; $(id).placeholder = d[key] == null ? "" : String(d[key]); };
    put("cfg-rate", "rate_limit_per_ip_per_min");
    put("cfg-failed-ip", "failed_logins_per_ip_per_min");
    put("cfg-failed-user", "failed_logins_per_user_per_min");
    $("cfg-log-level").value = s.log_level || "";
    $("cfg-maintenance").value = s.maintenance ? JSON.stringify(s.maintenance) : "";
    $("config-form").hidden = false;
  }

  async function saveConfig(event) {
    event.preventDefault();
    const body = {};
    const num = (id, key) => { if ($(id).value !== "") body[key] = Number($(id).value); };
    num("cfg-rate", "rate_limit_per_ip_per_min");
    num("cfg-failed-ip", "failed_logins_per_ip_per_min");
    num("cfg-failed-user", "failed_logins_per_user_per_min");
    if ($("cfg-log-level").value) body.log_level = $("cfg-log-level").value;
    const m = $("cfg-maintenance").value.trim();
    if (m) {
      try { body.maintenance = JSON.parse(m); } catch (e) { return showError("Maintenance is not valid JSON: " + e.message); }
    }
    try {
      await api("PUT", "/api/v1/cluster/config", body, { "If-Match": String(state.configVersion) });
      showNotice("Settings saved; every node applies them within about a second.");
      await loadConfig();
    } catch (e) {
      if (e.status === 412) {
        const now = await attempt(() => api("GET", "/api/v1/cluster/config"));
        if (now) state.configVersion = now.version;
        showError("Someone changed the settings meanwhile (now version " + state.configVersion + "); your values are kept — save again to replace them.");
      } else {
        showError(e.message);
      }
    }
  }

  // ---- wiring ----
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("logout").addEventListener("click", () => signOut());
    $("game-select").addEventListener("change", (e) => { state.game = e.target.value; forgetGameViews(); route(); });
    window.addEventListener("hashchange", () => route());
    $("player-find").addEventListener("submit", findPlayer);
    $("player-ban").addEventListener("click", () => setStatus("banned"));
    $("player-unban").addEventListener("click", () => setStatus("active"));
    $("wallet-form").addEventListener("submit", adjustWallet);
    $("message-form").addEventListener("submit", sendMessage);
    $("order-find").addEventListener("submit", findOrder);
    $("order-cancel").addEventListener("click", () => moveOrder(state.order.order_id, "cancel"));
    $("order-refund").addEventListener("click", () => moveOrder(state.order.order_id, "refund"));
    $("item-form").addEventListener("submit", saveItem);
    $("item-new").addEventListener("click", () => editItem(null));
    $("board-form").addEventListener("submit", createBoard);
    $("board-top-form").addEventListener("submit", (e) => { e.preventDefault(); showTop(null, []); });
    $("board-around-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const player = $("board-player").value.trim();
      if (!player) return showError("Name a player id.");
      showAround(player);
    });
    $("board-next").addEventListener("click", () => {
      if (board.next != null && board.view) showTop(board.next, board.back.concat([board.view.cursor]));
    });
    $("board-prev").addEventListener("click", () => {
      if (!board.back.length) return;
      const back = board.back.slice();
      const cursor = back.pop();
      showTop(cursor, back);
    });
    $("audit-by").addEventListener("change", () => { $("audit-who").disabled = $("audit-by").value === "all"; });
    $("audit-who").disabled = $("audit-by").value === "all";
    $("audit-filter").addEventListener("submit", (e) => {
      e.preventDefault();
      const f = auditFilter();
      if (typeof f === "string") return showError(f);
      $("error").hidden = true;
      audit.filter = f;
      showAudit(null, []);
    });
    $("audit-next").addEventListener("click", () => {
      if (audit.next != null && audit.filter) showAudit(audit.next, audit.back.concat([audit.cursor]));
    });
    $("audit-prev").addEventListener("click", () => {
      if (!audit.back.length) return;
      const back = audit.back.slice();
      const cursor = back.pop();
      showAudit(cursor, back);
    });
    $("audit-verify").addEventListener("click", verifyAudit);
    $("cache-refresh").addEventListener("click", loadCache);
    $("cache-keys-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const keys = $("cache-keys").value.split(",").map((k) => k.trim()).filter((k) => k);
      if (!keys.length) return showError("Name at least one key.");
      invalidate({ keys }, keys.length + " key(s)");
    });
    $("cache-prefix-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if (!$("cache-prefix").value) return showError("Name a prefix (game1: drops everything of game1).");
      invalidate({ prefix: $("cache-prefix").value }, "Prefix " + JSON.stringify($("cache-prefix").value));
    });
    $("config-form").addEventListener("submit", saveConfig);
  });
})();
