// The import's progress: a terminal bar, or plain lines for logs and pipes.
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { ImportProgress, ProgressState } from "./import-catalog.js";
import type { FileResult } from "./load-file.js";
import { formatCount, formatDuration } from "./format.js";

type Rates = { percent: number; rate: number; eta: string };

/**
 * Progress counts each file's bytes twice, once when read and once when its merge is
 * over, so the bar reaches the end with the last commit; speed is rows read per second.
 */
class Meter {
  private started = performance.now();
  total = 0;

  done(state: ProgressState): number {
    return Math.min(state.bytes + state.mergedBytes, this.total);
  }

  measure(state: ProgressState): Rates {
    const seconds = Math.max((performance.now() - this.started) / 1000, 0.001);
    const fraction = this.total ? this.done(state) / this.total : 0;
    const eta = fraction > 0.01 && fraction < 1 ? formatDuration(((1 - fraction) * seconds * 1000) / fraction) : "…";
    return { percent: fraction * 100, rate: state.rows / seconds, eta };
  }

  restart(totalBytes: number) {
    this.started = performance.now();
    this.total = 2 * totalBytes;
  }
}

function phase(state: ProgressState): string {
  const parts: string[] = [];
  if (state.reading) parts.push(`reading ${state.reading}`);
  if (state.merging.length) parts.push(`merging ${state.merging.join(", ")}`);
  return parts.join("; ") || "finishing";
}

function fileLine(r: FileResult): string {
  if (r.status === "absent") return `${r.file}: not found, skipped`;
  if (r.status === "failed") return `${r.file}: FAILED, nothing loaded: ${r.error}`;
  return (
    `${r.file}: ${formatCount(r.loaded)} rows loaded (${formatCount(r.inserted)} new, ${formatCount(r.updated)} updated, ` +
    `${formatCount(r.unchanged)} unchanged), ${formatCount(r.skipped)} skipped; read ${formatDuration(r.readMs)}, merge ${formatDuration(r.mergeMs)}, ` +
    (r.analyzed ? `analyze ${formatDuration(r.analyzeMs)}` : `NOT analyzed: ${r.analyzeError}`)
  );
}

/** A bar with rows/s and ETA, for a terminal. */
export function barProgress(stream: NodeJS.WritableStream = process.stderr): ImportProgress {
  const meter = new Meter();
  const multi = new MultiBar(
    {
      stream,
      format: "import |{bar}| {percentage}% | {rows} rows read | {rate} rows/s | ETA {remaining} | {phase}",
      hideCursor: true,
      fps: 5,
      barsize: 30,
    },
    Presets.shades_classic,
  );
  let bar: SingleBar | undefined;
  return {
    start({ totalBytes }) {
      meter.restart(totalBytes);
      bar = multi.create(Math.max(meter.total, 1), 0, { rows: "0", rate: "0", remaining: "…", phase: "" });
    },
    update(state) {
      const m = meter.measure(state);
      bar?.update(meter.done(state), {
        rows: formatCount(state.rows),
        rate: formatCount(m.rate),
        remaining: m.eta,
        phase: phase(state),
      });
    },
    fileDone(result) {
      multi.log(`${fileLine(result)}\n`);
    },
    stop() {
      multi.stop();
    },
  };
}

/** Plain lines every few seconds, for logs and pipes. */
export function lineProgress(write: (line: string) => void = (l) => process.stderr.write(`${l}\n`), everyMs = 5_000): ImportProgress {
  const meter = new Meter();
  let last = 0;
  return {
    start({ files, totalBytes }) {
      meter.restart(totalBytes);
      last = performance.now();
      write(`import: ${files.length} file(s), ${formatCount(totalBytes)} bytes`);
    },
    update(state) {
      if (performance.now() - last < everyMs) return;
      last = performance.now();
      const m = meter.measure(state);
      write(
        `import: ${m.percent.toFixed(0)}%, ${formatCount(state.rows)} rows read, ${formatCount(m.rate)} rows/s, ` +
          `ETA ${m.eta}; ${phase(state)}`,
      );
    },
    fileDone(result) {
      write(`import: ${fileLine(result)}`);
    },
    stop() {},
  };
}
