// The format of job data, so that two releases can run side by side during a rolling
// deploy. Every job this release adds carries `v`; a worker leaves a job whose `v` is
// newer than the formats it reads to a worker that reads it (see the version gate in
// the worker), and reads every older format. Data without `v` is version 1: what the
// releases before versions wrote, read as this release reads it.

/** The newest format this release writes and reads. Raise it with any change an older worker would misread. */
export const RELEASE_PAYLOAD_VERSION = 1;

let current = RELEASE_PAYLOAD_VERSION;

/**
 * Makes this process write and read as a release of another format version would
 * (PAYLOAD_VERSION): for rehearsing a rolling deploy, never needed in production.
 */
export function usePayloadVersion(version: number): void {
  if (!Number.isInteger(version) || version < 1) throw new RangeError(`payload version must be a positive integer, got ${version}`);
  current = version;
}

/** The format version this process writes, and the newest it reads. */
export const payloadVersion = (): number => current;

/** The format version of a job's data. */
export function versionOf(data: unknown): number {
  const v = (data as { v?: unknown } | null)?.v;
  return typeof v === "number" && Number.isInteger(v) && v >= 1 ? v : 1;
}

/** The data stamped with the format this process writes. */
export function versioned<D>(data: D): D {
  return data !== null && typeof data === "object" && !Array.isArray(data) ? ({ ...data, v: current } as D) : data;
}
