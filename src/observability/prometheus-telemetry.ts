// The services' Telemetry, counted in Prometheus metrics.

import type { Telemetry, UploadRejectionReason, UpstreamOutcome } from '../services/telemetry.ts';
import type { LarderMetrics } from './metrics.ts';

export class PrometheusTelemetry implements Telemetry {
  readonly #metrics: LarderMetrics;

  constructor(metrics: LarderMetrics) {
    this.#metrics = metrics;
  }

  uploadRejected(cache: string, reason: UploadRejectionReason): void {
    this.#metrics.uploadRejections.inc({ cache, reason });
  }

  upstreamLookup(cache: string, outcome: UpstreamOutcome): void {
    this.#metrics.upstreamLookups.inc({ cache, outcome });
  }

  upstreamBytesFetched(cache: string, bytes: number): void {
    if (bytes > 0) this.#metrics.upstreamFetchedBytes.inc({ cache }, bytes);
  }

  upstreamFetchFailed(cache: string): void {
    this.#metrics.upstreamFetchFailures.inc({ cache });
  }

  upstreamBytesSaved(cache: string, bytes: number): void {
    if (bytes > 0) this.#metrics.upstreamSavedBytes.inc({ cache }, bytes);
  }

  gcRun(cache: string, deletedPaths: number, freedBytes: number): void {
    this.#metrics.gcRuns.inc({ cache });
    // Created at zero too, so that a run that freed nothing still shows the series.
    this.#metrics.gcDeletedPaths.inc({ cache }, deletedPaths);
    this.#metrics.gcFreedBytes.inc({ cache }, freedBytes);
  }
}
