// The snapreport web chat: one page over the HTTP API (POST api/v1/messages and friends).
// Plain ES modules, no build step. Every text from the server is rendered with textContent.

import { ApiError, callApi, newMessageId } from "./api.js";
import { NotificationFeed } from "./notifications.js";
import { format, pickTexts, translatePage } from "./texts.js";

const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp"];
// the server's user-id rule, filled into the page by the server (one rule, not a copy)
const USER_ID_PATTERN = new RegExp(
  document.querySelector('meta[name="snapreport-user-id-pattern"]').content,
);
const STORAGE = {
  userId: "snapreport.userId",
  notifications: "snapreport.notificationsSeen",
};

const QUICK_REPLIES = {
  // "我的工单" is not here: the orders panel shows them, with photos
  idle: ["help", "close"],
  waiting_location: ["cancel"],
  waiting_confirm: ["yes", "cancel"],
  waiting_close_photo: ["cancel"],
};

// the page's labels follow the language the replies are in (the session's, which the browser's
// language only suggests): see useLanguage
let { lang, T } = pickTexts();
const $ = (id) => document.getElementById(id);

const el = {
  badge: $("state-badge"),
  userId: $("user-id"),
  declared: $("declared"),
  signedIn: $("signed-in"),
  signedInAs: $("signed-in-as"),
  logout: $("logout-button"),
  signIn: $("signin"),
  signInWeCom: $("signin-wecom"),
  chat: $("chat"),
  transcript: $("transcript"),
  welcome: $("welcome"),
  drop: $("drop-overlay"),
  error: $("error"),
  errorText: $("error-text"),
  errorDismiss: $("error-dismiss"),
  quick: $("quick-replies"),
  composer: $("composer"),
  photoInput: $("photo-input"),
  locationButton: $("location-button"),
  message: $("message-input"),
  ordersPanel: $("orders-panel"),
  ordersToggle: $("orders-toggle"),
  ordersRefresh: $("orders-refresh"),
  ordersClose: $("orders-close"),
  ordersStatus: $("orders-status"),
  ordersList: $("orders-list"),
  orderTemplate: $("order-template"),
};

const app = {
  state: "idle",
  // the answers the last reply offers (the type catalog after an unclassified photo)
  choices: [],
  // "强制结单" only makes sense once a close photo was sent and not accepted
  closePhotoRejected: false,
  queue: Promise.resolve(),
  thumbnailUrls: [],
  // "declared" (the page names its user: an open service on loopback) or "signin"
  mode: "signin",
  // the signed-in user: {user_id, roles, teams, csrf_token}, or null
  me: null,
};

// ---------------------------------------------------------------- small helpers

function userId() {
  return app.me ? app.me.user_id : el.userId.value.trim();
}

function timeLabel(date = new Date()) {
  return date.toLocaleTimeString(lang === "zh" ? "zh-CN" : undefined, {
    hour: "2-digit",
    minute: "2-digit",
  });
}

function applyTexts() {
  translatePage(T, lang === "zh" ? "zh-CN" : "en");
  el.transcript.setAttribute("aria-label", T.transcript);
  el.badge.title = T.stateTitle;
}

/** Labels in the language of the replies ("zh-CN" or "en"), when it differs from the page's. */
function useLanguage(language) {
  if (!language) return;
  const picked = pickTexts(language);
  if (picked.lang === lang) return;
  ({ lang, T } = picked);
  applyTexts();
  setState(app.state);
}

// ---------------------------------------------------------------- errors

function showError(error) {
  let text;
  if (error instanceof ApiError) {
    text = error.code ? `${error.message} (${error.code})` : error.message;
    if (error.status === 401 && app.mode === "signin") {
      text = T.unauthorized;
      showSignIn();
    }
  } else {
    text = String(error?.message ?? error);
  }
  el.errorText.textContent = text;
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.errorText.textContent = "";
}

function api(path, options = {}) {
  return callApi(path, { ...options, csrf: app.me?.csrf_token, messages: T });
}

function userPath(suffix) {
  return `api/v1/users/${encodeURIComponent(userId())}/${suffix}`;
}

// ---------------------------------------------------------------- transcript

function scrollToEnd() {
  el.transcript.scrollTop = el.transcript.scrollHeight;
}

function addBubble(role, build) {
  el.welcome.hidden = true;
  const bubble = document.createElement("div");
  bubble.className = `bubble ${role}`;
  const body = document.createElement("div");
  body.className = "bubble-body";
  build(body);
  const meta = document.createElement("div");
  meta.className = "bubble-meta";
  const time = document.createElement("time");
  time.textContent = timeLabel();
  meta.append(time);
  bubble.append(body, meta);
  el.transcript.append(bubble);
  scrollToEnd();
  return bubble;
}

function addText(container, text) {
  const p = document.createElement("p");
  p.textContent = text;
  container.append(p);
}

function addUserBubble(message) {
  return addBubble("user", (body) => {
    if (message.file) {
      const img = document.createElement("img");
      img.className = "photo";
      img.alt = T.photoAlt;
      img.src = URL.createObjectURL(message.file);
      img.addEventListener("load", scrollToEnd, { once: true });
      body.append(img);
    }
    if (message.location) body.append(locationCard(message.location));
    if (message.text) addText(body, message.text);
  });
}

const SVG_NS = "http://www.w3.org/2000/svg";

function pinIcon() {
  // drawn rather than an emoji: not every phone or server has an emoji font
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("pin");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute(
    "d",
    "M12 2.5a7 7 0 0 0-7 7c0 5.3 7 12 7 12s7-6.7 7-12a7 7 0 0 0-7-7zm0 9.6a2.6 2.6 0 1 1 0-5.2 2.6 2.6 0 0 1 0 5.2z",
  );
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

function locationCard({ latitude, longitude, label }) {
  const card = document.createElement("div");
  card.className = "location";
  const coordinates = `${latitude.toFixed(5)}, ${longitude.toFixed(5)}`;
  const title = document.createElement("span");
  title.className = "location-label";
  title.textContent = label || T.myLocation;
  const detail = document.createElement("span");
  detail.className = "location-coordinates";
  detail.textContent = coordinates;
  card.append(pinIcon(), title, detail);
  return card;
}

function addAssistantBubble(text) {
  return addBubble("assistant", (body) => addText(body, text));
}

function addNote(text) {
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = text;
  el.transcript.append(note);
  scrollToEnd();
}

function addNotification({ text, created_at: createdAt }) {
  const note = document.createElement("p");
  note.className = "note notification";
  note.textContent = `${T.notification} ${timeLabel(new Date(createdAt))} · ${text}`;
  el.transcript.append(note);
  scrollToEnd();
}

const notifications = new NotificationFeed({
  api: (path) => api(path),
  show: addNotification,
  storagePrefix: STORAGE.notifications,
});

function showTyping() {
  const typing = document.createElement("div");
  typing.className = "typing";
  typing.setAttribute("aria-hidden", "true");
  typing.append(...[0, 1, 2].map(() => document.createElement("span")));
  el.transcript.append(typing);
  scrollToEnd();
  return typing;
}

function setBubbleStatus(bubble, status, retry) {
  bubble.querySelector(".bubble-status")?.remove();
  bubble.classList.toggle("pending", status === "pending");
  bubble.classList.toggle("failed", status === "failed");
  if (status === "sent") return;
  const line = document.createElement("div");
  line.className = "bubble-status";
  line.textContent = status === "pending" ? T.sending : T.failed;
  if (status === "failed") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "retry";
    button.textContent = T.retry;
    button.addEventListener("click", retry, { once: true });
    line.append(" · ", button);
  }
  bubble.querySelector(".bubble-meta").prepend(line);
}

// ---------------------------------------------------------------- state

function setState(state) {
  app.state = state in T.states ? state : "idle";
  el.badge.dataset.state = app.state;
  el.badge.textContent = T.states[app.state];
  document.body.dataset.state = app.state;
  renderQuickReplies();
}

function choiceButton(choice, index) {
  // the number answers, whatever the language; the label shows both
  const button = document.createElement("button");
  button.type = "button";
  button.className = "quick choice";
  button.textContent = `${index + 1}. ${choice}`;
  button.addEventListener("click", () => enqueue({ text: String(index + 1) }));
  return button;
}

function renderQuickReplies() {
  // while choices answer the question, "yes" would only ask it again
  const keys = (QUICK_REPLIES[app.state] ?? []).filter((key) => !app.choices.length || key !== "yes");
  if (app.state === "waiting_close_photo" && app.closePhotoRejected) keys.unshift("forceClose");
  el.quick.replaceChildren(
    ...app.choices.map(choiceButton),
    ...keys.map((key) => {
      const [label, text] = T.quick[key];
      const button = document.createElement("button");
      button.type = "button";
      button.className = key === "yes" ? "quick primary" : "quick";
      button.textContent = label;
      button.addEventListener("click", () => enqueue({ text }));
      return button;
    }),
  );
}

// ---------------------------------------------------------------- sending

function enqueue(message) {
  clearError();
  if (!USER_ID_PATTERN.test(userId())) {
    showError(new Error(T.needUser));
    el.userId.focus();
    return;
  }
  const bubble = addUserBubble(message);
  const attempt = { ...message, messageId: newMessageId(), userId: userId(), bubble };
  // one at a time and in order, like the server handles one user's messages
  app.queue = app.queue.then(() => deliver(attempt));
}

function buildRequest(attempt) {
  // signed in, the session says who speaks; declared, the page does
  const declared = app.me ? {} : { user_id: attempt.userId };
  if (attempt.file) {
    const form = new FormData();
    if (declared.user_id) form.append("user_id", declared.user_id);
    form.append("message_id", attempt.messageId);
    if (attempt.text) form.append("text", attempt.text);
    if (navigator.language) form.append("language", navigator.language);
    form.append("image", attempt.file, attempt.file.name || "photo");
    return { method: "POST", body: form };
  }
  const payload = { ...declared, message_id: attempt.messageId };
  // a hint: the session keeps the language it first got, or the one the user asked for
  if (navigator.language) payload.language = navigator.language;
  if (attempt.text) payload.text = attempt.text;
  if (attempt.location) payload.location = attempt.location;
  return {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  };
}

async function deliver(attempt) {
  setBubbleStatus(attempt.bubble, "pending");
  const typing = showTyping();
  try {
    const body = await api("api/v1/messages", buildRequest(attempt));
    setBubbleStatus(attempt.bubble, "sent");
    typing.remove();
    for (const reply of body.replies ?? []) {
      if (reply.text) addAssistantBubble(reply.text);
    }
    const state = body.state ?? "idle";
    app.closePhotoRejected =
      state === "waiting_close_photo" &&
      (Boolean(attempt.file) || (app.closePhotoRejected && app.state === state));
    app.choices = Array.isArray(body.choices) ? body.choices.map(String) : [];
    useLanguage(body.language);
    setState(state);
    if (body.order) await refreshOrders();
  } catch (error) {
    typing.remove();
    // the same message_id again: if the first try did reach the server, it answers once
    setBubbleStatus(attempt.bubble, "failed", () => {
      clearError();
      app.queue = app.queue.then(() => deliver(attempt));
    });
    showError(error);
  }
}

function sendPhoto(file) {
  if (!file) return;
  if (file.type && !ACCEPTED_TYPES.includes(file.type)) {
    showError(new Error(T.badType));
    return;
  }
  const caption = el.message.value.trim();
  el.message.value = "";
  enqueue({ file, text: caption });
}

function sendLocation() {
  clearError();
  if (!("geolocation" in navigator) || !window.isSecureContext) {
    showError(new Error(T.geoUnavailable));
    return;
  }
  el.locationButton.disabled = true;
  el.locationButton.classList.add("busy");
  el.locationButton.setAttribute("aria-busy", "true");
  const done = () => {
    el.locationButton.disabled = false;
    el.locationButton.classList.remove("busy");
    el.locationButton.removeAttribute("aria-busy");
  };
  navigator.geolocation.getCurrentPosition(
    (position) => {
      done();
      // a typed text becomes the location's label ("3号楼东侧")
      const label = el.message.value.trim().slice(0, 200);
      el.message.value = "";
      const { latitude, longitude } = position.coords;
      enqueue({ location: { latitude, longitude, label } });
    },
    (error) => {
      done();
      showError(new Error(format(T.geoFailed, { message: error.message || error.code })));
    },
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
  );
}

// ---------------------------------------------------------------- orders

function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(lang === "zh" ? "zh-CN" : undefined, {
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

async function loadThumbnail(img, url, number) {
  try {
    // fetched rather than linked, so a failure shows no broken image
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const objectUrl = URL.createObjectURL(await response.blob());
    app.thumbnailUrls.push(objectUrl);
    img.alt = format(T.orderPhotoAlt, { number });
    img.src = objectUrl;
    img.hidden = false;
  } catch {
    // a missing thumbnail is not worth an error banner
  }
}

function renderOrder(order) {
  const item = el.orderTemplate.content.firstElementChild.cloneNode(true);
  item.dataset.number = order.number;
  item.dataset.status = order.status;
  item.querySelector(".order-number").textContent = order.number;
  const chip = item.querySelector(".chip");
  chip.textContent = T.status[order.status] ?? order.status;
  chip.dataset.status = order.status;
  item.querySelector(".order-type").textContent = order.alarm_type ?? "";
  item.querySelector(".order-location").textContent = order.location ?? "";
  const meta = [formatDate(order.closed_at || order.created_at)];
  if (order.status === "closed") {
    if (order.forced) meta.push(T.forced);
    else if (order.close_verified === true) meta.push(T.verified);
    else if (order.close_verified === false || order.close_verified === null)
      meta.push(T.unverified);
  }
  item.querySelector(".order-meta").textContent = meta.filter(Boolean).join(" · ");
  if (order.image_url) {
    loadThumbnail(item.querySelector("img"), order.image_url.replace(/^\//, ""), order.number);
  }
  if (order.status === "open") {
    const button = item.querySelector(".order-close-button");
    button.hidden = false;
    button.textContent = T.closeThis;
    button.setAttribute("aria-label", `${T.closeThis} ${order.number}`);
    button.addEventListener("click", () => {
      setOrdersOpen(false);
      enqueue({ text: `${T.quick.close[1]} ${order.number}` });
    });
  }
  return item;
}

async function refreshOrders() {
  for (const url of app.thumbnailUrls.splice(0)) URL.revokeObjectURL(url);
  if (!USER_ID_PATTERN.test(userId())) {
    el.ordersList.replaceChildren();
    el.ordersStatus.textContent = T.ordersNeedUser;
    return;
  }
  el.ordersPanel.setAttribute("aria-busy", "true");
  el.ordersStatus.textContent = T.loadingOrders;
  try {
    const body = await api(userPath("orders"));
    const orders = body.orders ?? [];
    el.ordersList.replaceChildren(...orders.map(renderOrder));
    el.ordersStatus.textContent = orders.length ? "" : T.noOrders;
  } catch (error) {
    el.ordersStatus.textContent = "";
    showError(error);
  } finally {
    el.ordersPanel.removeAttribute("aria-busy");
  }
}

async function refreshSession() {
  if (!USER_ID_PATTERN.test(userId())) return;
  try {
    const body = await api(userPath("session"));
    useLanguage(body.language);
    setState(body.state ?? "idle");
  } catch {
    // no session yet, or an older server: the next answer tells the state anyway
    setState("idle");
  }
}

function setOrdersOpen(open) {
  el.ordersPanel.classList.toggle("open", open);
  el.ordersToggle.setAttribute("aria-expanded", String(open));
  document.body.classList.toggle("orders-open", open);
  if (open) el.ordersRefresh.focus();
}

// ---------------------------------------------------------------- wiring

function onUserChanged() {
  const id = userId();
  if (!USER_ID_PATTERN.test(id)) {
    el.userId.setAttribute("aria-invalid", "true");
    return;
  }
  el.userId.removeAttribute("aria-invalid");
  localStorage.setItem(STORAGE.userId, id);
  clearError();
  app.closePhotoRejected = false;
  if (el.transcript.querySelector(".bubble")) addNote(format(T.chattingAs, { id }));
  refreshSession();
  refreshOrders();
  notifications.watch(id);
}

function wireDragAndDrop() {
  let depth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types ?? []).includes("Files");
  el.chat.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    el.drop.hidden = false;
  });
  el.chat.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  el.chat.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) el.drop.hidden = true;
  });
  el.chat.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    el.drop.hidden = true;
    sendPhoto(event.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------- identity

function showSignIn() {
  app.me = null;
  document.body.dataset.identity = "signin";
  el.declared.hidden = true;
  el.signedIn.hidden = true;
  el.signIn.hidden = false;
  el.chat.hidden = true;
  el.ordersToggle.hidden = true;
  el.ordersPanel.hidden = true;
  el.badge.hidden = true;
  notifications.watch("");
  setOrdersOpen(false);
}

function showSignedIn() {
  document.body.dataset.identity = "signed-in";
  el.declared.hidden = true;
  el.signIn.hidden = true;
  el.signedIn.hidden = false;
  el.signedInAs.textContent = format(T.signedInAs, { id: app.me.user_id });
  el.chat.hidden = false;
  el.ordersToggle.hidden = false;
  el.ordersPanel.hidden = false;
  el.badge.hidden = false;
}

function showDeclared() {
  document.body.dataset.identity = "declared";
  el.signIn.hidden = true;
  el.signedIn.hidden = true;
  el.declared.hidden = false;
  el.chat.hidden = false;
  el.ordersToggle.hidden = false;
  el.ordersPanel.hidden = false;
  el.badge.hidden = false;
  el.userId.value = localStorage.getItem(STORAGE.userId) ?? "";
}

/** Who this page speaks for: the signed-in user, a declared id, or nobody yet. */
async function identify() {
  let options = { identity: "signin", wecom: false };
  try {
    options = await callApi("auth/options", { messages: T });
  } catch {
    // an older server: it only knows declared ids
    options = { identity: "declared", wecom: false };
  }
  app.mode = options.identity;
  el.signInWeCom.hidden = !options.wecom;
  el.signInWeCom.href = `auth/wecom/login?next=${encodeURIComponent(location.pathname)}`;
  try {
    app.me = await callApi("api/v1/me", { messages: T });
  } catch {
    app.me = null;
  }
  if (app.me) showSignedIn();
  else if (app.mode === "declared") showDeclared();
  else showSignIn();
}

async function logout() {
  clearError();
  try {
    await api("auth/logout", { method: "POST" });
  } catch (error) {
    showError(error);
    return;
  }
  el.transcript.querySelectorAll(".bubble, .note").forEach((node) => node.remove());
  el.welcome.hidden = false;
  el.ordersList.replaceChildren();
  setState("idle");
  if (app.mode === "declared") {
    app.me = null;
    showDeclared();
  } else {
    showSignIn();
  }
  addNote(T.signedOut);
}

async function init() {
  applyTexts();
  setState("idle");
  await identify();

  el.userId.addEventListener("change", onUserChanged);
  $("identity").addEventListener("submit", (event) => event.preventDefault());
  el.userId.addEventListener("keydown", (event) => {
    // Enter takes the id (the blur fires "change") and moves on to the message box
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      el.message.focus();
    }
  });
  el.logout.addEventListener("click", logout);

  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = el.message.value.trim();
    if (!text) return;
    el.message.value = "";
    enqueue({ text });
  });
  el.message.addEventListener("keydown", (event) => {
    // Enter that confirms an input-method candidate (拼音) must not send the message
    if (event.key === "Enter" && (event.isComposing || event.keyCode === 229)) {
      event.preventDefault();
    }
  });
  el.message.addEventListener("paste", (event) => {
    const file = Array.from(event.clipboardData?.files ?? []).find((f) =>
      f.type.startsWith("image/"),
    );
    if (file) {
      event.preventDefault();
      sendPhoto(file);
    }
  });
  el.photoInput.addEventListener("change", () => {
    sendPhoto(el.photoInput.files[0]);
    el.photoInput.value = "";
  });
  el.locationButton.addEventListener("click", sendLocation);
  el.errorDismiss.addEventListener("click", clearError);
  el.ordersToggle.addEventListener("click", () => {
    const open = !el.ordersPanel.classList.contains("open");
    setOrdersOpen(open);
    if (open) refreshOrders();
  });
  el.ordersClose.addEventListener("click", () => {
    setOrdersOpen(false);
    el.ordersToggle.focus();
  });
  el.ordersRefresh.addEventListener("click", refreshOrders);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && el.ordersPanel.classList.contains("open")) setOrdersOpen(false);
  });
  document.addEventListener("click", (event) => {
    // a tap on the dimmed page behind the orders sheet closes it
    if (!el.ordersPanel.classList.contains("open")) return;
    if (el.ordersPanel.contains(event.target) || el.ordersToggle.contains(event.target)) return;
    setOrdersOpen(false);
  });
  wireDragAndDrop();

  if (!el.chat.hidden && USER_ID_PATTERN.test(userId())) {
    refreshSession();
    refreshOrders();
    notifications.watch(userId());
    el.message.focus();
  } else if (!el.declared.hidden) {
    el.ordersStatus.textContent = T.ordersNeedUser;
    el.userId.focus();
  }
  document.body.dataset.ready = "true";
}

init();
