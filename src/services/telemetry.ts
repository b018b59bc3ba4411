// What the services tell the outside about events worth counting. The server
// wires this to Prometheus metrics; tests and tools leave it silent. Services
// depend on this interface only, never on a metrics library.

export type UpstreamOutcome = 'hit' | 'miss' | 'unavailable';

export interface Telemetry {
  /** An upload refused by verification; `reason` is a short fixed word (hash, size, grammar, signature…). */
  uploadRejected(cache: string, reason: string): void;
  /** A narinfo miss asked of a mirroring cache's upstreams, and what they answered. */
  upstreamLookup(cache: string, outcome: UpstreamOutcome): void;
  /** Compressed NAR bytes fetched from an upstream by the mirror. */
  upstreamBytesFetched(cache: string, bytes: number): void;
  /** Bytes of a mirrored NAR served from larder's own storage instead of the upstream. */
  upstreamBytesSaved(cache: string, bytes: number): void;
  /** A finished garbage collection of a cache. */
  gcRun(cache: string, deletedPaths: number, freedBytes: number): void;
}

export const SILENT_TELEMETRY: Telemetry = {
  uploadRejected() {},
  upstreamLookup() {},
  upstreamBytesFetched() {},
  upstreamBytesSaved() {},
  gcRun() {},
};
