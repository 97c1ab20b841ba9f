// In-app notifications: polled from GET api/v1/users/{id}/notifications and shown as they
// arrive. The id of the last one seen is kept per user in this browser, so a reload shows only
// what is new; a user's first visit shows just the latest few, not the whole history.

const POLL_MS = 10000;
const MAX_PAGES = 20;
const FIRST_VISIT_SHOWN = 3;

export class NotificationFeed {
  /** `api(path)` fetches JSON; `show(notification)` renders one; `storagePrefix` names the
   * localStorage keys of the cursors. */
  constructor({ api, show, storagePrefix, pollMs = POLL_MS }) {
    this.api = api;
    this.show = show;
    this.prefix = storagePrefix;
    this.pollMs = pollMs;
    this.user = "";
    this.timer = null;
  }

  /** Follow `userId`'s notifications (and stop following the previous user's). */
  watch(userId) {
    clearTimeout(this.timer);
    this.user = userId;
    this.poll();
  }

  async poll() {
    const user = this.user;
    if (!user) return;
    const key = `${this.prefix}.${user}`;
    const seen = localStorage.getItem(key);
    let after = seen;
    const fresh = [];
    try {
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const query = after ? `?after=${encodeURIComponent(after)}` : "";
        const body = await this.api(
          `api/v1/users/${encodeURIComponent(user)}/notifications${query}`,
        );
        if (user !== this.user) return; // the user changed meanwhile: theirs are polled now
        const list = body.notifications ?? [];
        fresh.push(...list);
        if (list.length) after = list[list.length - 1].id;
        if (!body.next_cursor) break;
      }
      for (const notification of seen === null ? fresh.slice(-FIRST_VISIT_SHOWN) : fresh) {
        this.show(notification);
      }
      if (after) localStorage.setItem(key, after);
    } catch {
      // away or refused: the next poll tries again (errors of the chat itself are shown)
    } finally {
      if (user === this.user) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.poll(), this.pollMs);
      }
    }
  }
}
