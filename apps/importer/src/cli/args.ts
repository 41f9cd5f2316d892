// Command-line parsing for the importer's commands: usage errors exit 2, --help exits 0.
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Bad usage: the message and the usage on stderr, exit 2. */
export function usageFailure(usage: string, message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

/** Parses the command line; bad options exit 2 with the usage, `--help` prints it and exits 0. */
export function parseCli<T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  let args: ReturnType<typeof parseArgs<T>>;
  try {
    args = parseArgs(config);
  } catch (err) {
    return usageFailure(usage, (err as Error).message);
  }
  if ((args.values as { help?: boolean }).help) {
    console.log(usage);
    process.exit(0);
  }
  return args;
}
