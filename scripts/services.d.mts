// Types for services.mjs, which stays plain JavaScript because it runs before `npm install`.

export type ServiceName = "postgres" | "redis";

export interface EnsureServicesOptions {
  /** Repository root; embedded servers keep their data under <root>/.data. */
  root: string;
  /** Where DATABASE_URL / REDIS_URL are looked up (default: process.env). */
  env?: Record<string, string | undefined>;
  log?: (line: string) => void;
  /** For tests: host:port probed instead of 127.0.0.1:5432 / 127.0.0.1:6379. */
  defaults?: { postgres?: string; redis?: string };
  /** For tests: ports of the embedded servers instead of 54329 / 63799. */
  ports?: { postgres?: number; redis?: number };
}

export interface Services {
  env: { DATABASE_URL: string; REDIS_URL: string };
  /** The embedded servers this call started (not those it found running). */
  started: ServiceName[];
  /** Stops only what this call started; safe to call more than once. */
  stop: () => Promise<void>;
  /** Human-readable lines, e.g. "PostgreSQL: embedded at 127.0.0.1:54329 (.data/postgres), started". */
  describe: string[];
}

export function ensureServices(options: EnsureServicesOptions): Promise<Services>;

/** Stops the embedded servers running under <root>/.data (what `node scripts/services.mjs down` does). */
export function stopEmbedded(options: { root: string; log?: (line: string) => void }): Promise<ServiceName[]>;
