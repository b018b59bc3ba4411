// What the services tell the outside about events worth counting. The server
// wires this to Prometheus metrics (src/observability/); tests and tools leave
// it silent. Services depend on this interface only, never on a metrics library.

export type UpstreamOutcome = 'hit' | 'miss' | 'unavailable';

/**
 * Why verification refused an upload, as a small fixed set (a metric label):
 * - malformed: the narinfo or the NAR's URL does not parse, or names another path;
 * - compression: unsupported, not valid data of its kind, or not what the NAR was uploaded as;
 * - grammar: the decompressed body is not a valid NAR;
 * - too-large: beyond the server's NAR size limit;
 * - hash: FileHash or NarHash differs from the data;
 * - size: FileSize or NarSize differs from the data;
 * - nar-missing: a narinfo whose NAR was not uploaded (or was collected meanwhile);
 * - reference-missing: a reference neither in the cache nor in one of its upstreams;
 * - conflict: the path is in the cache already with other contents.
 */
export type UploadRejectionReason =
  | 'malformed'
  | 'compression'
  | 'grammar'
  | 'too-large'
  | 'hash'
  | 'size'
  | 'nar-missing'
  | 'reference-missing'
  | 'conflict';

export const UPLOAD_REJECTION_REASONS: readonly UploadRejectionReason[] = [
  'malformed',
  'compression',
  'grammar',
  'too-large',
  'hash',
  'size',
  'nar-missing',
  'reference-missing',
  'conflict',
];

export interface Telemetry {
  /** An upload refused by verification, and why. */
  uploadRejected(cache: string, reason: UploadRejectionReason): void;
  /** A narinfo miss asked of a mirroring cache's upstreams, and what they answered. */
  upstreamLookup(cache: string, outcome: UpstreamOutcome): void;
  /** Compressed NAR bytes fetched from an upstream by the mirror. */
  upstreamBytesFetched(cache: string, bytes: number): void;
  /** Bytes of a mirrored NAR served from larder's own storage instead of the upstream. */
  upstreamBytesSaved(cache: string, bytes: number): void;
  /** A NAR fetch from an upstream that failed (unreachable, refused, or failed verification): nothing kept. */
  upstreamFetchFailed(cache: string): void;
  /** A finished garbage collection of a cache (not a dry run); freed bytes are NAR files deleted, orphans included. */
  gcRun(cache: string, deletedPaths: number, freedBytes: number): void;
}

export const SILENT_TELEMETRY: Telemetry = {
  uploadRejected() {},
  upstreamLookup() {},
  upstreamBytesFetched() {},
  upstreamBytesSaved() {},
  upstreamFetchFailed() {},
  gcRun() {},
};
