// Finds nginx for the proxy tests, installing it when missing and possible.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const CANDIDATES = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx", "/usr/local/bin/nginx"];

/**
 * Finds nginx, installing Debian's `nginx-light` with apt-get when the test runs as
 * root and it is missing (as CI does here); an install that fails there throws.
 * Returns undefined only where nothing can be installed (not root, or no apt-get), so
 * the caller can skip with the reason.
 */
export function findNginx(): string | undefined {
  const configured = process.env.NGINX_PATH;
  if (configured && existsSync(configured)) return configured;
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get")) return undefined;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 300_000 });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "nginx-light"], { stdio: "pipe", env, timeout: 300_000 });
  const installed = CANDIDATES.find((p) => existsSync(p));
  if (!installed) throw new Error("apt-get installed nginx-light, but no nginx binary was found");
  return installed;
}
