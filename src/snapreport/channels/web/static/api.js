// Talking to the HTTP API: errors as `ApiError`, ids for messages.

/** An answer that is not a success: the API's `{"error": {"code", "message"}}`, or a network
 * failure (status 0). */
export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** A UUID for a message; the service answers a repeated id with its first answer. */
export function newMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; a phone on plain http over the LAN has none
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The CSRF header a signed-in request that changes something must carry, or none. */
export function csrfHeaders(csrf, method = "GET") {
  return csrf && !["GET", "HEAD", "OPTIONS"].includes(method) ? { "X-CSRF-Token": csrf } : {};
}

/**
 * Fetch `path` (relative to the page) and return its JSON body; throw `ApiError` otherwise.
 * The session cookie goes along by itself (same origin); `csrf` is the session's token.
 * `messages.network` and `messages.httpError` word the failures that carry no error body.
 */
export async function callApi(path, { csrf, messages, ...options }) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        ...csrfHeaders(csrf, options.method),
        ...(options.headers || {}),
      },
    });
  } catch {
    throw new ApiError("", messages.network, 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 204) return {};
  if (!response.ok) {
    const error = body && typeof body.error === "object" ? body.error : null;
    throw new ApiError(
      error?.code ?? `http_${response.status}`,
      error?.message ?? messages.httpError.replace("{status}", String(response.status)),
      response.status,
    );
  }
  return body ?? {};
}
