// The snapreport staff console: orders (filters, pages, detail, actions, live updates) and the
// dashboard, over the Staff API as the signed-in person. Plain ES modules, no build step; every
// text from the server is rendered with textContent.

import { ApiError, callApi } from "../api.js";
import { format, translatePage } from "../texts.js";
import { Dashboard } from "./dashboard.js";
import { pickLanguage, rememberLanguage, TEXTS } from "./texts.js";

const PAGE_SIZE = 50;
const ACTIVE = ["open", "accepted"];
const FILTERS = ["q", "status", "team", "assignee", "alarm_type", "from", "to", "overdue"];
const PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
const ORDER_PATH = /^\/console\/orders\/([^/]+)$/;
const LIVE_RETRY_MS = 2000;
const LIVE_RETRY_MAX_MS = 60000;

const DESK = matchMedia("(min-width: 960px)");
const lang = pickLanguage();
const T = TEXTS[lang];
const locale = lang === "zh" ? "zh-CN" : "en";
const $ = (id) => document.getElementById(id);

const el = Object.fromEntries(
  [
    "tabs", "nav-orders", "nav-dashboard", "live", "signed-in-as", "language", "logout",
    "announce", "error", "error-text", "error-dismiss", "main", "signin", "signin-wecom",
    "orders-view", "list-pane", "filters", "f-status", "f-team", "teams", "types", "export",
    "list-status", "orders", "more", "more-filters", "detail", "back", "detail-title", "detail-status",
    "confirmation", "facts", "photos", "actions", "action-form", "action-legend",
    "action-fields", "action-submit", "action-cancel", "timeline", "sent", "dashboard",
  ].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), $(id)]),
);

const app = {
  me: null,
  orders: new Map(), // number -> order, in the list
  cursor: null,
  filter: null, // URLSearchParams of the list shown
  detail: null, // the order shown in detail, with events
  opener: null, // the element that opened the detail (focus returns there)
  pending: null, // the action whose form is open
  events: null,
  dashboard: null,
  types: new Set(),
  listToken: 0,
};

// ---------------------------------------------------------------- helpers

function api(path, options = {}) {
  return callApi(path, { csrf: app.me?.csrf_token, messages: T, ...options });
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function node(tag, { className, text, attrs } = {}, children = []) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, value);
  for (const child of children) if (child) element.append(child);
  return element;
}

function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(locale, {
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

function duration(ms) {
  const minutes = Math.max(1, Math.round(ms / 60000));
  if (minutes < 60) return lang === "zh" ? `${minutes} 分钟` : `${minutes} min`;
  const hours = Math.round(minutes / 6) / 10;
  if (hours < 48) return lang === "zh" ? `${hours} 小时` : `${hours} h`;
  const days = Math.round(hours / 2.4) / 10;
  return lang === "zh" ? `${days} 天` : `${days} d`;
}

function statusText(status) {
  return T.statuses[status] ?? status;
}

/** The SLA state of an order now: [key, text] with key ok | late | met | none. */
export function slaState(order, now = Date.now()) {
  const accept = order.due_accept_at ? Date.parse(order.due_accept_at) : null;
  const resolve = order.due_resolve_at ? Date.parse(order.due_resolve_at) : null;
  if (order.status === "closed" || order.status === "rejected") {
    const end = Date.parse(order.closed_at ?? "") || now;
    if (resolve !== null && order.status === "closed" && end > resolve) {
      return ["late", T.sla.closedLate];
    }
    return resolve === null ? ["none", T.sla.none] : ["met", T.sla.met];
  }
  if (resolve !== null && now > resolve) return ["late", T.sla.resolveLate];
  if (order.status === "open" && accept !== null && now > accept) {
    return ["late", T.sla.acceptLate];
  }
  const next = order.status === "open" && accept !== null ? accept : resolve;
  if (next === null) return ["none", T.sla.none];
  return ["ok", format(T.sla.due, { left: duration(next - now) })];
}

function announce(text) {
  // a fresh text node each time, so screen readers announce a repeat too
  el.announce.textContent = "";
  el.announce.append(document.createTextNode(text));
  el.announce.classList.add("shown");
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => el.announce.classList.remove("shown"), 6000);
}

function showError(error) {
  let message = error?.message || String(error);
  if (error instanceof ApiError && error.status === 401) message = T.unauthorized;
  el.errorText.textContent = message;
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.errorText.textContent = "";
}

function applyTexts() {
  translatePage(T, locale);
  for (const item of document.querySelectorAll("[data-status]")) {
    item.textContent = statusText(item.dataset.status);
  }
  el.language.textContent = T.language;
  el.language.lang = lang === "zh" ? "en" : "zh-CN";
  el.language.setAttribute("aria-label", T.languageLabel);
}

// ---------------------------------------------------------------- routing

function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/console";
  if (path === "/console/dashboard") return { view: "dashboard" };
  const match = ORDER_PATH.exec(path);
  if (match) return { view: "orders", number: decodeURIComponent(match[1]) };
  return { view: "orders" };
}

function go(path, { replace = false } = {}) {
  const url = path + (path.startsWith("/console/dashboard") ? "" : location.search);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

async function render({ focus = true } = {}) {
  const where = route();
  const dashboard = where.view === "dashboard";
  el.navOrders.toggleAttribute("aria-current", !dashboard);
  if (!dashboard) el.navOrders.setAttribute("aria-current", "page");
  el.navDashboard.toggleAttribute("aria-current", dashboard);
  if (dashboard) el.navDashboard.setAttribute("aria-current", "page");
  el.ordersView.hidden = dashboard;
  el.dashboard.hidden = !dashboard;
  if (dashboard) {
    app.dashboard ??= new Dashboard({ api, T, locale });
    await app.dashboard.show();
    if (focus) $("dashboard-title").focus();
    return;
  }
  const params = new URLSearchParams(location.search);
  if (!app.filter || app.filter.toString() !== listParams(params).toString()) {
    fillFilters(params);
    await loadList(params);
  }
  if (where.number) await openDetail(where.number, { focus });
  else closeDetail({ focus: focus && app.detail !== null });
}

// ---------------------------------------------------------------- the list

function fillFilters(params) {
  for (const name of FILTERS) {
    const input = el.filters.elements[name];
    if (input.type === "checkbox") input.checked = params.get(name) === "true";
    else input.value = params.get(name) ?? "";
  }
  // folded on a phone unless one of them is set; always open on a desk
  const folded = ["team", "assignee", "alarm_type", "from", "to", "overdue"];
  el.moreFilters.open = DESK.matches || folded.some((name) => params.get(name));
}

function dayStart(date, days = 0) {
  // a date input's day, in this browser's time zone, as ISO 8601 (UTC)
  const [y, m, d] = date.split("-").map(Number);
  return new Date(y, m - 1, d + days).toISOString();
}

/** The API's query for the page's filter (the page's own URL keeps the form's values). */
function listParams(params) {
  const query = new URLSearchParams();
  const status = params.get("status") ?? "";
  if (status === "") for (const s of ACTIVE) query.append("status", s);
  else if (status !== "any") query.set("status", status);
  for (const name of ["q", "team", "assignee", "alarm_type"]) {
    const value = params.get(name)?.trim();
    if (value) query.set(name, value);
  }
  if (params.get("from")) query.set("from", dayStart(params.get("from")));
  if (params.get("to")) query.set("to", dayStart(params.get("to"), 1)); // to is exclusive
  if (params.get("overdue") === "true") query.set("overdue", "true");
  return query;
}

function formParams() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const input = el.filters.elements[name];
    if (input.type === "checkbox") {
      if (input.checked) params.set(name, "true");
    } else if (input.value.trim()) params.set(name, input.value.trim());
  }
  return params;
}

async function loadList(params) {
  const token = ++app.listToken;
  app.filter = listParams(params);
  app.orders.clear();
  app.cursor = null;
  el.orders.replaceChildren();
  el.more.hidden = true;
  el.export.href = `/api/v1/orders.csv?${app.filter}`;
  el.listStatus.textContent = T.loading;
  el.orders.setAttribute("aria-busy", "true");
  await loadPage(token);
}

async function loadPage(token = app.listToken) {
  const query = new URLSearchParams(app.filter);
  query.set("limit", String(PAGE_SIZE));
  if (app.cursor) query.set("cursor", app.cursor);
  try {
    const body = await api(`/api/v1/orders?${query}`);
    if (token !== app.listToken) return; // a newer filter won
    for (const order of body.orders) addRow(order, { atEnd: true });
    app.cursor = body.next_cursor;
    clearError();
  } catch (error) {
    if (token === app.listToken) showError(error);
  } finally {
    if (token === app.listToken) {
      el.orders.removeAttribute("aria-busy");
      listStatus();
    }
  }
}

function listStatus() {
  const count = app.orders.size;
  el.more.hidden = !app.cursor;
  el.listStatus.textContent = count
    ? format(app.cursor ? T.shownMore : T.shown, { count })
    : T.noOrders;
}

function rowFor(order) {
  const [slaKey, slaText] = slaState(order);
  const link = node("a", {
    className: "order-link",
    attrs: { href: `/console/orders/${encodeURIComponent(order.number)}` },
  }, [
    node("span", { className: "order-number", text: order.number }),
    node("span", { className: `chip status-${order.status}`, text: statusText(order.status) }),
    node("span", { className: "order-type", text: order.alarm_type }),
    node("span", { className: "order-location", text: order.location }),
    node("span", {
      className: "order-who",
      text: `${order.team ?? T.noTeam} · ${order.assignee ?? T.unassigned}`,
    }),
    node("span", { className: "order-time", text: format(T.created, { time: when(order.created_at) }) }),
    node("span", { className: `sla sla-${slaKey}`, text: slaText }),
  ]);
  const row = node("li", { className: "order", attrs: { "data-number": order.number } }, [link]);
  if (app.detail?.number === order.number) link.setAttribute("aria-current", "true");
  return row;
}

function addRow(order, { atEnd }) {
  const existing = el.orders.querySelector(`li[data-number="${CSS.escape(order.number)}"]`);
  app.orders.set(order.number, order);
  rememberType(order.alarm_type);
  const row = rowFor(order);
  if (existing) existing.replaceWith(row);
  else if (atEnd) el.orders.append(row);
  else el.orders.prepend(row);
}

function removeRow(number) {
  app.orders.delete(number);
  el.orders.querySelector(`li[data-number="${CSS.escape(number)}"]`)?.remove();
}

function rememberType(type) {
  if (app.types.has(type)) return;
  app.types.add(type);
  el.types.append(node("option", { attrs: { value: type } }));
}

/** Whether an order (from a live event) belongs in the list shown. */
function matchesFilter(order) {
  const filter = app.filter;
  const statuses = filter.getAll("status");
  if (statuses.length && !statuses.includes(order.status)) return false;
  for (const name of ["team", "assignee", "alarm_type"]) {
    if (filter.get(name) && order[name] !== filter.get(name)) return false;
  }
  const q = filter.get("q")?.toLowerCase();
  if (q && ![order.number, order.location, order.description].some((v) => v?.toLowerCase().includes(q))) {
    return false;
  }
  const created = Date.parse(order.created_at);
  if (filter.get("from") && created < Date.parse(filter.get("from"))) return false;
  if (filter.get("to") && created >= Date.parse(filter.get("to"))) return false;
  if (filter.get("overdue") === "true" && slaState(order)[0] !== "late") return false;
  return true;
}

// ---------------------------------------------------------------- the detail

async function openDetail(number, { focus = true } = {}) {
  clearError();
  let order;
  let actions;
  let sent;
  const path = `/api/v1/orders/${encodeURIComponent(number)}`;
  try {
    [order, actions, sent] = await Promise.all([
      api(path),
      api(`${path}/actions`),
      api(`${path}/notifications`),
    ]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      showError(format(T.notFound, { number }));
    } else showError(error);
    closeDetail({ focus: false });
    return;
  }
  const changedOrder = app.detail?.number !== order.number;
  app.detail = order;
  showDetail(order, actions.actions ?? [], sent.notifications ?? []);
  el.ordersView.classList.add("with-detail");
  el.detail.hidden = false;
  for (const link of el.orders.querySelectorAll("a[aria-current]")) link.removeAttribute("aria-current");
  el.orders
    .querySelector(`li[data-number="${CSS.escape(order.number)}"] a`)
    ?.setAttribute("aria-current", "true");
  if (focus && changedOrder) el.detailTitle.focus();
}

function closeDetail({ focus = true } = {}) {
  app.detail = null;
  app.pending = null;
  el.detail.hidden = true;
  el.actionForm.hidden = true;
  el.confirmation.hidden = true;
  el.ordersView.classList.remove("with-detail");
  for (const link of el.orders.querySelectorAll("a[aria-current]")) link.removeAttribute("aria-current");
  if (!focus) return;
  const target = app.opener?.isConnected ? app.opener : el.orders.querySelector("a") ?? el.main;
  target.focus();
}

function fact(name, value, className) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) {
    return [];
  }
  const text = Array.isArray(value) ? value.join(", ") : String(value);
  return [
    node("dt", { text: T.fields[name] }),
    node("dd", { text, className, attrs: { "data-field": name } }),
  ];
}

function showDetail(order, actions, sent) {
  el.detailTitle.textContent = `${T.detail} ${order.number}`;
  el.detailStatus.textContent = statusText(order.status);
  el.detailStatus.className = `chip status-${order.status}`;
  const [slaKey, slaText] = slaState(order);
  const escalation = order.escalation ? ` · ${T.escalation[order.escalation] ?? order.escalation}` : "";
  el.facts.replaceChildren(
    ...fact("status", statusText(order.status)),
    ...fact("alarm_type", order.alarm_type),
    ...fact("location", order.location),
    ...fact("description", order.description),
    ...fact("reporter", order.reporter),
    ...fact("also_reported_by", order.also_reported_by),
    ...fact("team", order.team ?? T.noTeam),
    ...fact("assignee", order.assignee ?? T.unassigned),
    ...fact("created_at", when(order.created_at)),
    ...fact("accepted_at", order.accepted_at && when(order.accepted_at)),
    ...fact("due_accept_at", order.due_accept_at && when(order.due_accept_at)),
    ...fact("due_resolve_at", order.due_resolve_at && when(order.due_resolve_at)),
    ...fact("sla", slaText + escalation, `sla sla-${slaKey}`),
    ...fact("closed_at", order.closed_at && when(order.closed_at)),
    ...fact("closed_by", order.closed_by),
    ...fact("close_note", order.close_note),
    ...fact("close_verified", order.status === "closed" ? T.verified[String(order.close_verified)] : null),
    ...fact("reject_reason", order.reject_reason),
  );
  el.photos.replaceChildren(...photos(order));
  el.actions.replaceChildren(
    ...actions.map((action) =>
      node("button", {
        className: action === "accept" ? "primary" : "",
        text: T.action[action],
        attrs: { type: "button", "data-action": action },
      }),
    ),
  );
  if (!actions.length) el.actions.append(node("p", { className: "hint", text: T.noActions }));
  if (app.pending && !actions.includes(app.pending)) hideActionForm();
  el.timeline.replaceChildren(
    ...order.events.map((event) =>
      node("li", { attrs: { "data-kind": event.kind } }, [
        node("time", { text: when(event.at), attrs: { datetime: event.at } }),
        node("span", { className: "event-kind", text: T.events[event.kind] ?? event.kind }),
        node("span", { className: "event-actor", text: event.actor }),
        event.detail ? node("span", { className: "event-detail", text: event.detail }) : null,
      ]),
    ),
  );
  el.sent.replaceChildren(
    ...(sent.length
      ? sent.map((n) =>
          node("li", {}, [
            node("time", { text: when(n.created_at), attrs: { datetime: n.created_at } }),
            node("span", { className: "sent-to", text: format(T.notifiedTo, { user: n.user_id }) }),
            node("span", { className: "sent-text", text: n.text }),
          ]),
        )
      : [node("li", { className: "hint", text: T.noNotifications })]),
  );
}

function photos(order) {
  // every photo of the report (merged reports' too), then the close photo
  const reported = order.image_keys?.length ? order.image_keys : [order.image_key];
  return [
    ...reported.map((key, index) => photo(order, "report", key, index, reported.length)),
    photo(order, "close", order.close_image_key, 0, 1),
  ];
}

function photo(order, which, key, index, count) {
  const kind = which === "report" ? T.before : T.after;
  const label = count > 1 ? format(T.photoNth, { which: kind, index: index + 1, count }) : kind;
  const figure = node("figure", { className: "photo" }, [node("figcaption", { text: label })]);
  if (!key) {
    figure.append(node("p", { className: "hint", text: T.noPhoto }));
    return figure;
  }
  // the key in the query: a new close photo after a reopen is a new address (photos are cached)
  const number = encodeURIComponent(order.number);
  const src = `/api/v1/orders/${number}/photos/${which}?index=${index}&v=${encodeURIComponent(key)}`;
  const image = node("img", {
    attrs: { src, alt: format(T.photoAlt, { number: order.number, which: label }), loading: "lazy" },
  });
  figure.append(node("a", { attrs: { href: src, target: "_blank", rel: "noopener" } }, [image]));
  return figure;
}

// ---------------------------------------------------------------- actions

const FORMS = {
  transfer: [{ name: "to", label: "transferTo", required: true, list: "teams", max: 64 }],
  reject: [{ name: "reason", label: "reason", required: true, area: true, max: 500 }],
  close: [
    { name: "note", label: "note", area: true, max: 2000 },
    { name: "photo", label: "closePhoto", file: true },
  ],
  reopen: [{ name: "reason", label: "reopenReason", area: true, max: 500 }],
  comment: [{ name: "text", label: "commentText", required: true, area: true, max: 2000 }],
};

function showActionForm(action) {
  app.pending = action;
  el.actionLegend.textContent = `${T.action[action]} · ${app.detail.number}`;
  el.actionFields.replaceChildren(
    ...FORMS[action].map((spec) => {
      const id = `a-${spec.name}`;
      let input;
      if (spec.file) {
        input = node("input", { attrs: { type: "file", accept: PHOTO_TYPES.join(","), capture: "environment" } });
      } else if (spec.area) {
        input = node("textarea", { attrs: { rows: "3", maxlength: String(spec.max) } });
      } else {
        input = node("input", { attrs: { maxlength: String(spec.max), autocapitalize: "off", spellcheck: "false" } });
        if (spec.list) input.setAttribute("list", spec.list);
      }
      input.id = id;
      input.name = spec.name;
      input.required = Boolean(spec.required);
      return node("div", { className: "field" }, [node("label", { text: T[spec.label], attrs: { for: id } }), input]);
    }),
  );
  el.actionSubmit.textContent = T.action[action];
  el.actionForm.hidden = false;
  el.actionForm.querySelector("input, textarea").focus();
}

function hideActionForm({ focus = false } = {}) {
  const action = app.pending;
  app.pending = null;
  el.actionForm.hidden = true;
  el.actionFields.replaceChildren();
  if (focus) (el.actions.querySelector(`[data-action="${action}"]`) ?? el.detailTitle).focus();
}

function readPhoto(file) {
  return new Promise((resolve, reject) => {
    if (!PHOTO_TYPES.includes(file.type)) {
      reject(new Error(T.badPhoto));
      return;
    }
    const reader = new FileReader();
    reader.onload = () => resolve({ data: String(reader.result).split(",", 2)[1], mime: file.type });
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function bodyOf(action, form) {
  const value = (name) => form.elements[name]?.value.trim() ?? "";
  switch (action) {
    case "transfer":
      return { to: value("to") };
    case "reject":
      return { reason: value("reason") };
    case "reopen":
      return { reason: value("reason") };
    case "comment":
      return { text: value("text") };
    case "close": {
      const file = form.elements.photo?.files?.[0];
      return { note: value("note"), ...(file ? { image: await readPhoto(file) } : {}) };
    }
    default:
      return {};
  }
}

/** "status open → accepted; assignee — → lisi": what an action changed. */
function describeChange(before, after) {
  const parts = [];
  const shown = (field, v) => (v === null || v === undefined || v === "" ? "—" : field === "status" ? statusText(v) : String(v));
  for (const field of ["status", "team", "assignee", "reject_reason", "close_note"]) {
    if ((before[field] ?? null) !== (after[field] ?? null)) {
      parts.push(
        format(T.change, { field: T.fields[field], before: shown(field, before[field]), after: shown(field, after[field]) }),
      );
    }
  }
  return parts.join(lang === "zh" ? "；" : "; ");
}

async function act(action, form) {
  const before = app.detail;
  const number = before.number;
  const path = `/api/v1/orders/${encodeURIComponent(number)}/${action === "comment" ? "comments" : action}`;
  el.actionSubmit.disabled = true;
  const buttons = el.actions.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  el.actionSubmit.textContent = T.working;
  try {
    const body = action === "accept" ? {} : await bodyOf(action, form);
    const after = await post(path, body);
    app.own = `${after.number} ${after.status}`; // its live echo is not announced again
    const what = action === "comment" ? null : describeChange(before, after);
    const message = action === "comment"
      ? format(T.commented, { number })
      : what ? format(T.changed, { number, what }) : format(T.changedNothing, { number });
    hideActionForm();
    if (action !== "comment") updateListed(after);
    await openDetail(number, { focus: false });
    // a status region, focused: read out once, and the keyboard goes on from there
    el.confirmation.textContent = message;
    el.confirmation.hidden = false;
    el.confirmation.focus();
    clearError();
  } catch (error) {
    showError(error);
    el.actionSubmit.disabled = false;
    for (const button of buttons) button.disabled = false;
    // the order may have changed meanwhile (another person won): show it as it is now
    if (error instanceof ApiError && [403, 409].includes(error.status)) {
      await openDetail(number, { focus: false });
    }
  } finally {
    el.actionSubmit.disabled = false;
    if (app.pending) el.actionSubmit.textContent = T.action[app.pending];
  }
}

function updateListed(order) {
  if (matchesFilter(order)) {
    addRow(order, { atEnd: false });
  } else removeRow(order.number);
  listStatus();
}

// ---------------------------------------------------------------- live updates

function live(again = false) {
  if (!("EventSource" in window)) return;
  setLive("connecting");
  const events = new EventSource("/api/v1/events");
  app.events = events;
  let dropped = again;
  events.addEventListener("open", () => {
    app.liveDelay = 0;
    setLive("on");
    // the feed is at most once: what changed while it was away is read again
    if (dropped) refresh();
    dropped = false;
  });
  events.addEventListener("error", () => {
    dropped = true;
    if (events.readyState !== EventSource.CLOSED) {
      setLive("connecting"); // the browser reconnects by itself
      return;
    }
    // refused (signed out, too many streams): try again later, less and less often
    setLive("off");
    app.liveDelay = Math.min((app.liveDelay || LIVE_RETRY_MS / 2) * 2, LIVE_RETRY_MAX_MS);
    setTimeout(() => live(true), app.liveDelay);
  });
  events.addEventListener("order", (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    onOrderEvent(data);
  });
}

function refresh() {
  if (!el.dashboard.hidden) {
    app.dashboard?.changed();
    return;
  }
  loadList(new URLSearchParams(location.search));
  if (app.detail) openDetail(app.detail.number, { focus: false });
}

function setLive(state) {
  el.live.hidden = false;
  el.live.dataset.state = state;
  el.live.textContent = state === "on" ? T.live.on : state === "off" ? T.live.off : T.live.connecting;
}

function onOrderEvent({ type, order }) {
  if (!order?.number) return;
  const listed = app.orders.has(order.number);
  const fresh = type === "order.created";
  if (listed || (fresh && matchesFilter(order))) {
    if (type !== "order.commented") updateListed(order);
    if (fresh) announce(format(T.liveNew, { number: order.number, type: order.alarm_type }));
  }
  if (app.detail?.number === order.number) {
    const changed =
      type !== "order.commented" &&
      app.detail.status !== order.status &&
      app.own !== `${order.number} ${order.status}`;
    openDetail(order.number, { focus: false });
    if (changed) announce(format(T.liveChanged, { number: order.number, status: statusText(order.status) }));
  }
  if (!el.dashboard.hidden) app.dashboard?.changed();
}

// ---------------------------------------------------------------- sign-in and start

async function signIn() {
  let me;
  try {
    me = await api("/api/v1/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      await showSignIn();
      return null;
    }
    throw error;
  }
  return me;
}

async function showSignIn() {
  el.signin.hidden = false;
  const next = location.pathname + location.search;
  el.signinWecom.href = `/auth/wecom/login?next=${encodeURIComponent(next)}`;
  try {
    const options = await api("/auth/options");
    el.signinWecom.hidden = !options.wecom;
  } catch {
    el.signinWecom.hidden = true;
  }
  $("signin-title").focus?.();
}

function wire() {
  el.language.addEventListener("click", () => {
    rememberLanguage(lang === "zh" ? "en" : "zh");
    location.reload();
  });
  el.errorDismiss.addEventListener("click", clearError);
  el.logout.addEventListener("click", async () => {
    try {
      await api("/auth/logout", { method: "POST" });
    } catch (error) {
      showError(error);
      return;
    }
    app.events?.close();
    location.assign("/console");
  });
  for (const link of [el.navOrders, el.navDashboard]) {
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      const path = new URL(link.href).pathname;
      history.pushState(null, "", path === "/console" ? `/console${app.filterSearch ?? ""}` : path);
      render();
    });
  }
  el.filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = formParams();
    const search = params.toString() ? `?${params}` : "";
    app.filterSearch = search;
    history.pushState(null, "", `/console${search}`);
    render({ focus: false });
  });
  el.filters.addEventListener("reset", () => {
    setTimeout(() => el.filters.requestSubmit(), 0); // after the form has cleared itself
  });
  el.more.addEventListener("click", async () => {
    const count = app.orders.size;
    await loadPage();
    // keyboard users go on from the first new order
    el.orders.children[count]?.querySelector("a")?.focus();
  });
  el.orders.addEventListener("click", (event) => {
    const link = event.target.closest("a.order-link");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    app.opener = link;
    history.pushState(null, "", new URL(link.href).pathname + location.search);
    render();
  });
  el.back.addEventListener("click", () => {
    history.pushState(null, "", `/console${location.search}`);
    render();
  });
  el.actions.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    el.confirmation.hidden = true;
    if (action === "accept") act(action, null);
    else showActionForm(action);
  });
  el.actionForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (app.pending) act(app.pending, el.actionForm);
  });
  el.actionCancel.addEventListener("click", () => hideActionForm({ focus: true }));
  el.actionForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") hideActionForm({ focus: true });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el.detail.hidden && !app.pending && !event.defaultPrevented) {
      el.back.click();
    }
  });
  addEventListener("popstate", () => render());
  DESK.addEventListener("change", (event) => {
    if (event.matches) el.moreFilters.open = true;
  });
}

async function start() {
  applyTexts();
  wire();
  try {
    app.me = await signIn();
  } catch (error) {
    showError(error);
  }
  if (app.me) {
    const { user_id: user, roles, teams } = app.me;
    el.signedInAs.textContent = format(T.signedInAs, { id: user });
    el.signedInAs.title = format(T.rolesOf, { roles: roles.length ? roles.join(", ") : T.noRoles });
    el.signedInAs.hidden = false;
    el.logout.hidden = false;
    el.tabs.hidden = false;
    for (const team of teams) el.teams.append(node("option", { attrs: { value: team } }));
    app.filterSearch = route().view === "orders" ? location.search : "";
    live();
    await render({ focus: false });
  }
  document.body.dataset.ready = "true";
}

start();
