// What every benchmark in bench/ exports, and what bench/run.ts does with it.

export interface BenchOptions {
  /** A fast smoke run: smaller inputs, one repetition. */
  readonly quick: boolean;
  /** Progress lines (to stderr). */
  readonly log: (line: string) => void;
}

export interface BenchOutcome {
  /** Written as JSON to bench/results/<name>-<date>.json (with the machine's description). */
  readonly result: Record<string, unknown>;
  /** A human-readable table printed at the end. */
  readonly table: string;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(options: BenchOptions): Promise<BenchOutcome>;
}
