// Finds Redis connections that stopped answering without closing, and makes them reconnect.
import type { RedisClient } from "./connection.js";

/**
 * ioredis waits for a reply forever. A connection whose peer vanished without FIN or RST
 * (a crashed host, a dropped NAT entry, a hung proxy) stays "ready", or stays in its
 * handshake when it reconnected into such a path, and everything queued on it waits with
 * it, for good. TCP keepalive alone takes many minutes to notice, and not at all when a
 * proxy in the middle is the one answering it.
 */
export type RedisWatchdog = {
  /** Watches a connection from now on; `blockingCopies`: also every duplicate made of it (see below). */
  watch(client: RedisClient, opts: WatchOptions): void;
  /**
   * When the critical connections were last all known to answer: the oldest of their last
   * answers (undefined while none is open). A healthy process is a few seconds behind.
   */
  lastContact(): number | undefined;
  stop(): void;
};

export type WatchOptions = {
  name: string;
  /** The process cannot work without it (the queue Redis, not the optional cache). */
  critical?: boolean;
  /**
   * A BullMQ Worker duplicates the connection it is given for its blocking fetch
   * (BZPOPMIN). Such a copy is not pinged (a PING would wait behind the fetch, up to
   * 10 s): BullMQ's own watchdog resets it when a fetch outlives its timeout, and this
   * one times its handshakes, which BullMQ waits on without a limit.
   */
  blockingCopies?: boolean;
};

type WatchdogOptions = {
  /** A PING or a handshake unanswered this long means the connection is dead. */
  timeoutMs: number;
  /** Told about each connection dropped, and why. */
  onDrop: (name: string, why: string) => void;
};

type Watched = {
  client: RedisClient;
  name: string;
  critical: boolean;
  blocking: boolean;
  lastOkAt: number;
  // The first PING sent since the last answer, while none has come.
  unansweredSince: number | undefined;
  inFlight: number;
  handshake: NodeJS.Timeout | undefined;
  dropping: boolean;
};

// Enough unanswered PINGs queued on one connection; more would prove nothing new.
const MAX_PINGS_IN_FLIGHT = 3;

/**
 * One per process. Every ready connection without blocking commands gets a PING every
 * timeoutMs/2 (one command per connection and period, never on the path of a request or
 * a job); one that leaves a PING unanswered for timeoutMs is dropped with
 * `disconnect(true)` and reconnects, and ioredis sends again what was in flight on it
 * (BullMQ's connections wait for that, the producer's commands fail at once). A handshake
 * (AUTH, CLIENT SETNAME/SETINFO, INFO) unanswered for timeoutMs is dropped the same way,
 * on every connection: ioredis has no timeout of its own for it.
 */
export function createRedisWatchdog({ timeoutMs, onDrop }: WatchdogOptions): RedisWatchdog {
  const open = new Set<Watched>();
  let stopped = false;
  let copies = 0;

  const drop = (w: Watched, why: string) => {
    if (w.dropping || stopped) return;
    w.dropping = true;
    w.unansweredSince = undefined;
    onDrop(w.name, why);
    w.client.disconnect(true);
  };

  const answered = (w: Watched) => {
    w.lastOkAt = Date.now();
    w.unansweredSince = undefined;
  };

  const ping = (w: Watched) => {
    if (w.inFlight >= MAX_PINGS_IN_FLIGHT) return;
    w.inFlight++;
    w.unansweredSince ??= Date.now();
    w.client.ping().then(
      () => answered(w),
      // An error reply (BUSY, LOADING…) is an answer: the connection is alive.
      (err: Error) => void (err.name === "ReplyError" && answered(w)),
    ).finally(() => w.inFlight--);
  };

  const check = (w: Watched) => {
    if (w.client.status !== "ready" || w.dropping) return;
    if (w.blocking) return void (w.lastOkAt = Date.now());
    if (w.unansweredSince !== undefined && Date.now() - w.unansweredSince >= timeoutMs) {
      drop(w, `no answer to PING for ${Date.now() - w.unansweredSince} ms`);
      return;
    }
    ping(w);
  };

  const timer = setInterval(() => {
    // A reply that arrived while the event loop was busy is read before judging: I/O
    // callbacks run before setImmediate's, so a slow process is not taken for a dead peer.
    setImmediate(() => {
      for (const w of open) check(w);
    });
  }, Math.max(100, Math.floor(timeoutMs / 2)));
  timer.unref();

  function watch(client: RedisClient, opts: WatchOptions & { blocking?: boolean }): void {
    const w: Watched = {
      client,
      name: opts.name,
      critical: opts.critical ?? false,
      blocking: opts.blocking ?? false,
      lastOkAt: Date.now(),
      unansweredSince: undefined,
      inFlight: 0,
      handshake: undefined,
      dropping: false,
    };
    open.add(w);
    const clearHandshake = () => {
      clearTimeout(w.handshake);
      w.handshake = undefined;
    };
    client.on("connect", () => {
      clearHandshake();
      if (stopped) return;
      w.handshake = setTimeout(() => {
        if (client.status === "connect") drop(w, `handshake unanswered for ${timeoutMs} ms`);
      }, timeoutMs);
      w.handshake.unref();
    });
    client.on("ready", () => {
      clearHandshake();
      answered(w);
    });
    client.on("close", () => {
      clearHandshake();
      w.dropping = false;
    });
    // Closed for good unless someone connects it again (BullMQ does, to reset a copy).
    client.on("end", () => {
      clearHandshake();
      open.delete(w);
    });
    client.on("connecting", () => {
      if (stopped || open.has(w)) return;
      w.lastOkAt = Date.now();
      open.add(w);
    });
    if (opts.blockingCopies) {
      const duplicate = client.duplicate.bind(client) as (...args: unknown[]) => RedisClient;
      (client as { duplicate: (...args: unknown[]) => RedisClient }).duplicate = (...args: unknown[]) => {
        const copy = duplicate(...args);
        watch(copy, { name: `${opts.name}-blocking-${++copies}`, critical: opts.critical, blocking: true });
        return copy;
      };
    }
  }

  return {
    watch,
    lastContact() {
      let oldest: number | undefined;
      for (const w of open) if (w.critical) oldest = Math.min(oldest ?? w.lastOkAt, w.lastOkAt);
      return oldest;
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const w of open) clearTimeout(w.handshake);
      open.clear();
    },
  };
}
