// HTTP Basic auth for the admin pages, comparing credentials in constant time.
import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import { AppError } from "../errors.js";

// Hashing first gives equal-length buffers, so the comparison time says nothing about
// either the length or the content of the secret.
const digest = (s: string) => createHash("sha256").update(s).digest();

export function basicAuth(user: string, password: string, realm: string): RequestHandler {
  const expectedUser = digest(user);
  const expectedPassword = digest(password);
  return (req, _res, next) => {
    const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(req.get("authorization") ?? "");
    const decoded = match ? Buffer.from(match[1]!, "base64").toString("utf8") : "";
    const sep = decoded.indexOf(":");
    const userOk = timingSafeEqual(digest(sep < 0 ? "" : decoded.slice(0, sep)), expectedUser);
    const passwordOk = timingSafeEqual(digest(sep < 0 ? "" : decoded.slice(sep + 1)), expectedPassword);
    if (sep >= 0 && userOk && passwordOk) return next();
    next(new AppError("unauthorized", "Operator credentials are required.", { headers: { "WWW-Authenticate": `Basic realm="${realm}", charset="UTF-8"` } }));
  };
}
