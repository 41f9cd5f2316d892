// Typed readers for environment variables. Each app declares its own schema in env.ts
// with these; a bad value stops the process with a message naming the variable.

class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

type Source = Record<string, string | undefined>;
type Reader<T> = (name: string, raw: string | undefined) => T;

export const str =
  (fallback?: string): Reader<string> =>
  (name, raw) => {
    if (raw !== undefined && raw !== "") return raw;
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is required`);
  };

export const optionalStr =
  (): Reader<string | undefined> =>
  (_name, raw) =>
    raw === undefined || raw === "" ? undefined : raw;

export const int =
  (fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): Reader<number> =>
  (name, raw) => {
    if (raw === undefined || raw === "") return fallback;
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`${name} must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };

export const bool =
  (fallback: boolean): Reader<boolean> =>
  (name, raw) => {
    if (raw === undefined || raw === "") return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new Error(`${name} must be true or false, got "${raw}"`);
  };

export const oneOf =
  <const T extends string>(values: readonly T[], fallback: T): Reader<T> =>
  (name, raw) => {
    if (raw === undefined || raw === "") return fallback;
    if (!(values as readonly string[]).includes(raw)) throw new Error(`${name} must be one of ${values.join(", ")}, got "${raw}"`);
    return raw as T;
  };

export const url =
  (protocols: string[], fallback?: string): Reader<string> =>
  (name, raw) => {
    const value = raw === undefined || raw === "" ? fallback : raw;
    if (value === undefined) throw new Error(`${name} is required`);
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new Error(`${name} is not a valid URL`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new Error(`${name} must use ${protocols.join(" or ")}, got ${parsed.protocol}`);
    }
    return value;
  };

export const optionalUrl =
  (protocols: string[]): Reader<string | undefined> =>
  (name, raw) =>
    raw === undefined || raw === "" ? undefined : url(protocols)(name, raw);

export type HostPort = { host: string; port: number };

/** A comma-separated "host:port" list (Redis Cluster seed nodes); unset gives undefined. */
export const hostPorts =
  (fallback?: string): Reader<HostPort[] | undefined> =>
  (name, raw) => {
    const value = raw === undefined || raw === "" ? fallback : raw;
    if (value === undefined || value.trim() === "") return undefined;
    return value.split(",").map((item) => {
      const m = /^\s*\[?([^\s\]]+?)\]?:(\d{1,5})\s*$/.exec(item);
      const port = Number(m?.[2]);
      if (!m || port < 1 || port > 65_535) throw new Error(`${name} must be a comma-separated list of host:port, got "${item.trim()}"`);
      return { host: m[1]!, port };
    });
  };

/** What of a redis:// or rediss:// URL still applies when the hosts come from a cluster node list. */
export function redisAuthOf(url: string): { username?: string; password?: string; tls?: object } {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
  };
}

type Spec = Record<string, Reader<unknown>>;
type Parsed<S extends Spec> = { [K in keyof S]: ReturnType<S[K]> };

/** Reads every variable of the spec, collecting all problems before failing. */
export function parseEnv<S extends Spec>(spec: S, source: Source = process.env): Parsed<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, read] of Object.entries(spec)) {
    try {
      out[name] = read(name, source[name]);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return out as Parsed<S>;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const NODE_ENVS = ["development", "production", "test"] as const;
export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ingest";
export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";
