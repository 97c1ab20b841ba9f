// The snapreport web chat: one page over the HTTP API (POST api/v1/messages and friends).
// Plain ES module, no build step. Every text from the server is rendered with textContent.

const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp"];
const USER_ID_PATTERN = /^[A-Za-z0-9_.@:-]{1,64}$/;
const STORAGE = { userId: "snapreport.userId", token: "snapreport.token" };

const TEXTS = {
  zh: {
    title: "随手拍",
    subtitle: "拍照上报 · 结单",
    userId: "用户 ID",
    userIdHint: "字母、数字及 _ . @ : -，最多 64 个字符",
    settings: "设置",
    token: "API 令牌（可选）",
    tokenHint: "服务端设置了访问令牌时填写；只保存在本浏览器。",
    orders: "我的工单",
    refresh: "刷新",
    done: "完成",
    noOrders: "暂无工单。",
    loadingOrders: "加载中…",
    ordersNeedUser: "填写用户 ID 后显示工单。",
    photo: "发送照片",
    location: "发送当前位置",
    message: "消息",
    messagePlaceholder: "输入消息…",
    send: "发送",
    welcome:
      "拍一张现场照片发给我，我来识别问题并生成工单。问题解决后，发送「结单 单号」再拍一张现场照片即可结单。",
    dropHint: "松开即可发送照片",
    dismiss: "关闭",
    quickReplies: "快捷回复",
    transcript: "对话记录",
    stateTitle: "当前状态",
    states: {
      idle: "空闲",
      waiting_location: "等待位置",
      waiting_confirm: "等待确认",
      waiting_close_photo: "等待结单照片",
    },
    quick: {
      help: ["帮助", "帮助"],
      close: ["结单", "结单"],
      yes: ["确认", "确认"],
      cancel: ["取消", "取消"],
      forceClose: ["强制结单", "强制结单"],
    },
    status: { open: "处理中", closed: "已结单" },
    closeThis: "结单",
    verified: "已核验",
    unverified: "未核验",
    forced: "强制结单",
    sending: "发送中…",
    failed: "未发送",
    retry: "重试",
    locating: "定位中…",
    photoAlt: "上传的照片",
    orderPhotoAlt: "工单 {number} 的照片",
    myLocation: "我的位置",
    chattingAs: "当前用户：{id}",
    needUser: "请先填写用户 ID（字母、数字及 _ . @ : -，最多 64 个字符）。",
    network: "无法连接服务器，请检查网络后重试。",
    badType: "只能发送 JPEG、PNG 或 WebP 图片。",
    geoUnavailable: "此浏览器无法获取位置（需要 HTTPS 或本机地址）。也可以直接输入位置文字。",
    geoFailed: "无法获取位置：{message}。也可以直接输入位置文字。",
    httpError: "服务器返回 HTTP {status}",
    unauthorized: "需要 API 令牌：请在「设置」中填写。",
  },
  en: {
    title: "SnapReport",
    subtitle: "Snap, report, close",
    userId: "User ID",
    userIdHint: "Letters, digits and _ . @ : -, up to 64 characters",
    settings: "Settings",
    token: "API token (optional)",
    tokenHint: "Needed when the server sets an access token; kept in this browser only.",
    orders: "My orders",
    refresh: "Refresh",
    done: "Done",
    noOrders: "No orders yet.",
    loadingOrders: "Loading…",
    ordersNeedUser: "Enter a user ID to see your orders.",
    photo: "Send a photo",
    location: "Send my location",
    message: "Message",
    messagePlaceholder: "Message…",
    send: "Send",
    welcome:
      "Send me a photo of the problem: I will recognise it and file a work order. Once it is fixed, send “close NUMBER” and a photo of the fixed scene.",
    dropHint: "Drop to send the photo",
    dismiss: "Dismiss",
    quickReplies: "Quick replies",
    transcript: "Conversation",
    stateTitle: "Current state",
    states: {
      idle: "idle",
      waiting_location: "waiting for location",
      waiting_confirm: "waiting for confirmation",
      waiting_close_photo: "waiting for close photo",
    },
    quick: {
      help: ["Help", "help"],
      close: ["Close an order", "close"],
      yes: ["Confirm", "yes"],
      cancel: ["Cancel", "cancel"],
      forceClose: ["Force close", "force close"],
    },
    status: { open: "open", closed: "closed" },
    closeThis: "Close",
    verified: "verified",
    unverified: "unverified",
    forced: "forced",
    sending: "sending…",
    failed: "not sent",
    retry: "Retry",
    locating: "Locating…",
    photoAlt: "uploaded photo",
    orderPhotoAlt: "photo of order {number}",
    myLocation: "My location",
    chattingAs: "Chatting as {id}",
    needUser: "Enter your user ID first (letters, digits and _ . @ : -, up to 64 characters).",
    network: "Cannot reach the server. Check the connection and retry.",
    badType: "Only JPEG, PNG or WebP images can be sent.",
    geoUnavailable:
      "This browser cannot share a location here (it needs HTTPS or a local address). You can type the location instead.",
    geoFailed: "Could not get your location: {message}. You can type the location instead.",
    httpError: "The server answered HTTP {status}",
    unauthorized: "An API token is required: enter it under Settings.",
  },
};

const QUICK_REPLIES = {
  // "我的工单" is not here: the orders panel shows them, with photos
  idle: ["help", "close"],
  waiting_location: ["cancel"],
  waiting_confirm: ["yes", "cancel"],
  waiting_close_photo: ["cancel"],
};

const lang = (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
const T = TEXTS[lang];
const $ = (id) => document.getElementById(id);

const el = {
  badge: $("state-badge"),
  userId: $("user-id"),
  token: $("api-token"),
  settings: $("settings"),
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
  photoButton: $("photo-button"),
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
  // "强制结单" only makes sense once a close photo was sent and not accepted
  closePhotoRejected: false,
  queue: Promise.resolve(),
  thumbnailUrls: [],
};

// ---------------------------------------------------------------- small helpers

function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
}

function newMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; a phone on plain http over the LAN has none
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function userId() {
  return el.userId.value.trim();
}

function authHeaders() {
  const token = el.token.value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function timeLabel(date = new Date()) {
  return date.toLocaleTimeString(lang === "zh" ? "zh-CN" : undefined, {
    hour: "2-digit",
    minute: "2-digit",
  });
}

function applyTexts() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = `${T.title} · snapreport`;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = T[node.dataset.i18n];
  }
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = T[node.dataset.i18nPlaceholder];
  }
  for (const node of document.querySelectorAll("[data-i18n-title]")) {
    node.title = T[node.dataset.i18nTitle];
  }
  for (const node of document.querySelectorAll("[data-i18n-aria-label]")) {
    node.setAttribute("aria-label", T[node.dataset.i18nAriaLabel]);
  }
  el.transcript.setAttribute("aria-label", T.transcript);
  el.badge.title = T.stateTitle;
}

// ---------------------------------------------------------------- errors

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function showError(error) {
  let text;
  if (error instanceof ApiError) {
    text = error.code ? `${error.message} (${error.code})` : error.message;
    if (error.status === 401) {
      text = `${T.unauthorized} — ${text}`;
      el.settings.open = true;
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

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
    });
  } catch {
    throw new ApiError("", T.network, 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && typeof body.error === "object" ? body.error : null;
    throw new ApiError(
      error?.code ?? `http_${response.status}`,
      error?.message ?? format(T.httpError, { status: response.status }),
      response.status,
    );
  }
  return body ?? {};
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

function renderQuickReplies() {
  const keys = [...(QUICK_REPLIES[app.state] ?? [])];
  if (app.state === "waiting_close_photo" && app.closePhotoRejected) keys.unshift("forceClose");
  el.quick.replaceChildren(
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
  if (attempt.file) {
    const form = new FormData();
    form.append("user_id", attempt.userId);
    form.append("message_id", attempt.messageId);
    if (attempt.text) form.append("text", attempt.text);
    form.append("image", attempt.file, attempt.file.name || "photo");
    return { method: "POST", body: form };
  }
  const payload = { user_id: attempt.userId, message_id: attempt.messageId };
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
    // the token worked: give the room back to the conversation
    if (el.token.value.trim()) el.settings.open = false;
    for (const reply of body.replies ?? []) {
      if (reply.text) addAssistantBubble(reply.text);
    }
    const state = body.state ?? "idle";
    app.closePhotoRejected =
      state === "waiting_close_photo" &&
      (Boolean(attempt.file) || (app.closePhotoRejected && app.state === state));
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
    // fetched rather than linked so a bearer token can go along
    const response = await fetch(url, { headers: authHeaders() });
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

function init() {
  applyTexts();
  el.userId.value = localStorage.getItem(STORAGE.userId) ?? "";
  el.token.value = localStorage.getItem(STORAGE.token) ?? "";
  setState("idle");

  el.userId.addEventListener("change", onUserChanged);
  $("identity").addEventListener("submit", (event) => event.preventDefault());
  el.userId.addEventListener("keydown", (event) => {
    // Enter takes the id (the blur fires "change") and moves on to the message box
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      el.message.focus();
    }
  });
  el.token.addEventListener("change", () => {
    const token = el.token.value.trim();
    if (token) localStorage.setItem(STORAGE.token, token);
    else localStorage.removeItem(STORAGE.token);
    refreshOrders();
  });

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

  if (USER_ID_PATTERN.test(userId())) {
    refreshSession();
    refreshOrders();
    el.message.focus();
  } else {
    el.ordersStatus.textContent = T.ordersNeedUser;
    el.userId.focus();
  }
  document.body.dataset.ready = "true";
}

init();
