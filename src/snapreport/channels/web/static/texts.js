// The page's own words, in Chinese and English. The replies come from the service, in the
// user's language (the session's); these are only the labels around them, and follow it.

export const TEXTS = {
  zh: {
    title: "随手拍",
    subtitle: "拍照上报 · 结单",
    userId: "用户 ID",
    userIdHint: "字母、数字及 _ . @ : -，最多 64 个字符",
    signedInAs: "已登录：{id}",
    logout: "退出登录",
    signInTitle: "请先登录",
    signInWeCom: "用企业微信登录",
    signInHint: "不在企业微信里？给助手发送「登录」，它会回复一个 5 分钟内有效的一次性登录链接。",
    signedOut: "已退出登录。",
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
    unauthorized: "登录已失效，请重新登录。",
    notification: "🔔 通知",
  },
  en: {
    title: "SnapReport",
    subtitle: "Snap, report, close",
    userId: "User ID",
    userIdHint: "Letters, digits and _ . @ : -, up to 64 characters",
    signedInAs: "Signed in as {id}",
    logout: "Sign out",
    signInTitle: "Please sign in",
    signInWeCom: "Sign in with WeCom",
    signInHint:
      "Not in WeCom? Send “login” (登录) to the assistant: it replies with a one-time sign-in link, valid for 5 minutes.",
    signedOut: "Signed out.",
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
    unauthorized: "Your sign-in has ended; please sign in again.",
    notification: "🔔 Notification",
  },
};

/** The texts for a language (the browser's at first, then the replies'): Chinese for zh*,
 * English otherwise. */
export function pickTexts(language = navigator.language || "zh") {
  const lang = language.toLowerCase().startsWith("zh") ? "zh" : "en";
  return { lang, T: TEXTS[lang] };
}

/** `format("hi {name}", { name: "x" })` → "hi x". */
export function format(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
}

/** Put the texts of `T` into the page: the title, and every element's text, placeholder, title
 * and aria-label named by its `data-i18n`, `data-i18n-placeholder`, `data-i18n-title` and
 * `data-i18n-aria-label` attribute. */
export function translatePage(T, locale) {
  document.documentElement.lang = locale;
  document.title = `${T.title} · snapreport`;
  const attributes = [
    ["i18n", (node, text) => (node.textContent = text)],
    ["i18nPlaceholder", (node, text) => (node.placeholder = text)],
    ["i18nTitle", (node, text) => (node.title = text)],
    ["i18nAriaLabel", (node, text) => node.setAttribute("aria-label", text)],
  ];
  for (const [key, put] of attributes) {
    const selector = `[data-${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const node of document.querySelectorAll(selector)) put(node, T[node.dataset[key]]);
  }
}
