// The rows a file skipped, counted by reason with the first few lines of each.
export type RejectExample = { line: number; detail: string };
export type RejectGroup = { reason: string; count: number; examples: RejectExample[] };

/** Skipped rows of one file, counted by reason, with the first few lines of each. */
export class RejectLog {
  private readonly groups = new Map<string, RejectGroup>();

  constructor(private readonly keep: number) {}

  add(reason: string, line: number, detail: string): void {
    let group = this.groups.get(reason);
    if (!group) this.groups.set(reason, (group = { reason, count: 0, examples: [] }));
    group.count++;
    if (group.examples.length < this.keep) group.examples.push({ line, detail });
  }

  /** A group counted elsewhere (in SQL), with its examples. */
  merge(reason: string, count: number, examples: RejectExample[]): void {
    const group = this.groups.get(reason) ?? { reason, count: 0, examples: [] };
    group.count += count;
    group.examples = [...group.examples, ...examples].sort((a, b) => a.line - b.line).slice(0, this.keep);
    this.groups.set(reason, group);
  }

  get total(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.count;
    return n;
  }

  list(): RejectGroup[] {
    return [...this.groups.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  }
}
