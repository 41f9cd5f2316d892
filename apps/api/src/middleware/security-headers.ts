import type { RequestHandler } from "express";
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

export function securityHeaders(): RequestHandler {
  return (req, res, next) => (req.path.startsWith("/admin/") || req.path.startsWith("/docs") ? relaxed : strict)(req, res, next);
}
