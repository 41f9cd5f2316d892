import type { RequestHandler } from "express";
import helmet from "helmet";

const strict = helmet();
// Bull Board and the API docs page ship their own scripts and inline styles.
const relaxed = helmet({
  contentSecurityPolicy: {
    directives: {
      "script-src": ["'self'", "'unsafe-inline'"],
      "style-src": ["'self'", "'unsafe-inline'", "https:"],
      "img-src": ["'self'", "data:"],
    },
  },
});

export function securityHeaders(): RequestHandler {
  return (req, res, next) => (req.path.startsWith("/admin/") || req.path.startsWith("/docs") ? relaxed : strict)(req, res, next);
}
