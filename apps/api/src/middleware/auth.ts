// Bearer JWT auth for writes (HS256 secret or JWKS), with a scope per route.
import type { RequestHandler } from "express";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { AppError } from "../errors.js";

type Principal = { sub: string; scopes: Set<string> };

declare module "express-serve-static-core" {
  interface Request {
    auth?: Principal;
  }
}

type AuthConfig = { secret?: string; jwksUrl?: string; issuer?: string; audience?: string };
export type Auth = { enabled: boolean; require: (scope: string) => RequestHandler };

const CHALLENGE = 'Bearer realm="ingest"';

/** Scopes come as a space-separated `scope` (RFC 8693) or an array in `scp`/`scopes`. */
function scopesOf(payload: JWTPayload): Set<string> {
  const raw = payload.scope ?? payload.scp ?? payload.scopes;
  if (typeof raw === "string") return new Set(raw.split(" ").filter(Boolean));
  if (Array.isArray(raw)) return new Set(raw.filter((s): s is string => typeof s === "string"));
  return new Set();
}

/**
 * Writes need a bearer JWT when JWT_SECRET (HS256) or JWKS_URL is set: 401 when it is
 * missing or does not verify, 403 when it lacks the route's scope. Without either,
 * writes are open and every client shares one identity.
 */
export function createAuth(config: AuthConfig): Auth {
  let key: Uint8Array | JWTVerifyGetKey | undefined;
  if (config.secret) key = new TextEncoder().encode(config.secret);
  else if (config.jwksUrl) key = createRemoteJWKSet(new URL(config.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 3_000 });
  if (!key) return { enabled: false, require: () => (_req, _res, next) => next() };
  const verifyKey = key;
  const algorithms = config.secret ? ["HS256"] : ["RS256", "PS256", "ES256", "EdDSA"];

  const verify = async (token: string): Promise<Principal> => {
    const opts = { algorithms, issuer: config.issuer, audience: config.audience };
    const { payload } =
      verifyKey instanceof Uint8Array ? await jwtVerify(token, verifyKey, opts) : await jwtVerify(token, verifyKey, opts);
    if (typeof payload.sub !== "string" || payload.sub === "") throw new joseErrors.JWTClaimValidationFailed("missing sub", payload, "sub");
    return { sub: payload.sub, scopes: scopesOf(payload) };
  };

  const require = (scope: string): RequestHandler => async (req, _res, next) => {
    const header = req.get("authorization") ?? "";
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header);
    if (!match) {
      throw new AppError("unauthorized", "A bearer token is required for writes.", { headers: { "WWW-Authenticate": CHALLENGE } });
    }
    try {
      req.auth = await verify(match[1]!);
    } catch (err) {
      if (!(err instanceof joseErrors.JOSEError)) throw err;
      // JWKS endpoint unreachable: not the client's fault.
      if (err instanceof joseErrors.JWKSTimeout || err.code === "ERR_JOSE_GENERIC") {
        throw new AppError("unavailable", "Tokens cannot be verified right now.", { retryAfterS: 5 });
      }
      throw new AppError("unauthorized", "The bearer token is invalid or expired.", {
        headers: { "WWW-Authenticate": `${CHALLENGE}, error="invalid_token"` },
      });
    }
    if (!req.auth.scopes.has(scope)) {
      throw new AppError("forbidden", `The token lacks the "${scope}" scope.`, {
        headers: { "WWW-Authenticate": `${CHALLENGE}, error="insufficient_scope", scope="${scope}"` },
      });
    }
    next();
  };
  return { enabled: true, require };
}
