// Types for prepare.mjs, which stays plain JavaScript because it runs before `npm install`.

export class PrepareError extends Error {}

/** Installs from the lockfile when it changed (dev dependencies included), builds the apps, then stamps. */
export function prepare(options: { root: string; env?: Record<string, string | undefined>; log?: (line: string) => void }): void;
