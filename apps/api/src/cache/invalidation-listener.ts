// Listens on the catalog's pub/sub channel and evicts what workers report changed.
import type { InvalidationMessage } from "@ingest/catalog";
import type { RedisClient } from "@ingest/redis";

type Handlers = {
  onMessage: (msg: InvalidationMessage) => void;
  /** live=false: messages may be lost from now on; live=true: subscribed (again). */
  onLive: (live: boolean) => void;
  onBadMessage: (raw: string) => void;
};

/**
 * Subscribes to the catalog's invalidation channel on a connection of its own.
 * The subscription is renewed by hand on every (re)connect rather than by ioredis,
 * whose "ready" comes before its resubscription is confirmed: only once SUBSCRIBE has
 * answered is the channel live, and anything cached while it was not is dropped.
 */
export function listenForInvalidations(sub: RedisClient, channel: string, h: Handlers): void {
  let live = false;
  const setLive = (next: boolean) => {
    if (live === next && !next) return;
    live = next;
    h.onLive(next);
  };
  sub.on("ready", () => {
    sub.subscribe(channel).then(
      () => setLive(true),
      () => sub.disconnect(true),
    );
  });
  sub.on("close", () => setLive(false));
  sub.on("message", (ch: string, raw: string) => {
    if (ch !== channel) return;
    let msg: InvalidationMessage;
    try {
      msg = JSON.parse(raw) as InvalidationMessage;
    } catch {
      return h.onBadMessage(raw);
    }
    if ("all" in msg || (Array.isArray(msg.ids) && msg.ids.every(Number.isInteger))) h.onMessage(msg);
    else h.onBadMessage(raw);
  });
}
