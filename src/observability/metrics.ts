// larder's Prometheus metrics, defined once: the HTTP front's, those the
// services report through Telemetry, and what the index says each cache holds.
// docs/metrics.md lists them; labels are small fixed sets or existing caches.

import { Counter, Histogram, type Registry } from 'prom-client';

/** Seconds: narinfos answer in about a millisecond, large NARs stream for minutes. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class LarderMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'method' | 'route' | 'cache' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route' | 'cache'>;
  readonly sentBytes: Counter<'route' | 'cache'>;
  readonly receivedBytes: Counter<'route' | 'cache'>;
  readonly abortedRequests: Counter<'route' | 'cache'>;
  readonly narinfoLookups: Counter<'cache' | 'result'>;
  readonly uploadRejections: Counter<'cache' | 'reason'>;
  readonly upstreamLookups: Counter<'cache' | 'outcome'>;
  readonly upstreamFetchedBytes: Counter<'cache'>;
  readonly upstreamSavedBytes: Counter<'cache'>;
  readonly upstreamFetchFailures: Counter<'cache'>;
  readonly gcRuns: Counter<'cache'>;
  readonly gcDeletedPaths: Counter<'cache'>;
  readonly gcFreedBytes: Counter<'cache'>;

  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    this.requests = new Counter({
      name: 'larder_http_requests_total',
      help: "HTTP requests answered, by method, route, cache and status ('aborted': the client left before an answer)",
      labelNames: ['method', 'route', 'cache', 'status'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'larder_http_request_duration_seconds',
      help: 'Time from the request to the last byte of its answer (or the client leaving)',
      labelNames: ['method', 'route', 'cache'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.sentBytes = new Counter({
      name: 'larder_http_sent_bytes_total',
      help: 'Bytes written to clients, headers included; an aborted download counts what was sent',
      labelNames: ['route', 'cache'],
      registers,
    });
    this.receivedBytes = new Counter({
      name: 'larder_http_received_bytes_total',
      help: 'Bytes read from clients, headers included',
      labelNames: ['route', 'cache'],
      registers,
    });
    this.abortedRequests = new Counter({
      name: 'larder_http_aborted_requests_total',
      help: 'Requests whose connection closed before their answer was complete',
      labelNames: ['route', 'cache'],
      registers,
    });
    this.narinfoLookups = new Counter({
      name: 'larder_narinfo_lookups_total',
      help: 'narinfo GETs and HEADs of existing caches: hit (200) or miss (404)',
      labelNames: ['cache', 'result'],
      registers,
    });
    this.uploadRejections = new Counter({
      name: 'larder_upload_rejections_total',
      help: 'Uploads refused by verification, by reason',
      labelNames: ['cache', 'reason'],
      registers,
    });
    this.upstreamLookups = new Counter({
      name: 'larder_upstream_lookups_total',
      help: "A mirroring cache's narinfo misses asked of its upstreams, by outcome",
      labelNames: ['cache', 'outcome'],
      registers,
    });
    this.upstreamFetchedBytes = new Counter({
      name: 'larder_upstream_fetched_bytes_total',
      help: 'Compressed NAR bytes the mirror fetched from upstreams',
      labelNames: ['cache'],
      registers,
    });
    this.upstreamSavedBytes = new Counter({
      name: 'larder_upstream_saved_bytes_total',
      help: "Bytes of mirrored NARs served from larder's storage instead of the upstream",
      labelNames: ['cache'],
      registers,
    });
    this.upstreamFetchFailures = new Counter({
      name: 'larder_upstream_fetch_failures_total',
      help: 'NAR fetches from upstreams that failed (unreachable, refused, or failed verification); nothing was kept',
      labelNames: ['cache'],
      registers,
    });
    this.gcRuns = new Counter({
      name: 'larder_gc_runs_total',
      help: 'Finished garbage collections (not dry runs)',
      labelNames: ['cache'],
      registers,
    });
    this.gcDeletedPaths = new Counter({
      name: 'larder_gc_deleted_paths_total',
      help: 'Store paths garbage collection deleted',
      labelNames: ['cache'],
      registers,
    });
    this.gcFreedBytes = new Counter({
      name: 'larder_gc_freed_bytes_total',
      help: 'Bytes of NAR files garbage collection deleted, orphans included',
      labelNames: ['cache'],
      registers,
    });
  }
}
