// helmet's security headers, captured once at start as fixed lists to set on each response.
import helmet from "helmet";

// The API is often reached over plain HTTP (behind a TLS proxy, or on a private
// network): "upgrade-insecure-requests" would make browsers fetch the board's and the
// docs' assets over https and break them there.
const strict = helmet({ contentSecurityPolicy: { directives: { "upgrade-insecure-requests": null } } });
// Bull Board and the API docs page ship their own scripts and inline styles.
const relaxed = helmet({
  contentSecurityPolicy: {
    directives: {
      "upgrade-insecure-requests": null,
      "script-src": ["'self'", "'unsafe-inline'"],
      "style-src": ["'self'", "'unsafe-inline'", "https:"],
      "img-src": ["'self'", "data:"],
    },
  },
});

type HeaderSet = readonly (readonly [name: string, value: string])[];

/**
 * The headers helmet sets, read once at start: with this configuration (no nonces, no
 * per-request directives) they are the same on every response, so a request pays a
 * loop of setHeader instead of a dozen middleware calls. Throws if helmet ever does
 * something per request that a fixed list cannot repeat.
 */
function captured(middleware: typeof strict): HeaderSet {
  const headers: [string, string][] = [];
  let called = false;
  const res = {
    setHeader(name: string, value: unknown) {
      headers.push([name, String(value)]);
    },
    removeHeader() {},
  };
  middleware({} as never, res as never, (err?: unknown) => {
    if (err) throw err;
    called = true;
  });
  if (!called) throw new Error("helmet did not finish synchronously; its headers cannot be fixed at start");
  return headers;
}

/** strict for the API's own answers, relaxed for Bull Board and the docs page. */
export function securityHeaderSets(): { strict: HeaderSet; relaxed: HeaderSet } {
  return { strict: captured(strict), relaxed: captured(relaxed) };
}
