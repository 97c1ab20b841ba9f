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

/** The bearer header for `token`, or none. */
export function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * Fetch `path` (relative to the page) and return its JSON body; throw `ApiError` otherwise.
 * `messages.network` and `messages.httpError` word the failures that carry no error body.
 */
export async function callApi(path, { token, messages, ...options }) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { Accept: "application/json", ...authHeaders(token), ...(options.headers || {}) },
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
