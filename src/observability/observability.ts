// Everything a serving process observes, assembled: the Prometheus registry
// and metrics, the services' Telemetry, the logger, request lines and counts,
// and the /metrics handler. `larder serve` makes one per serving process.

import type { IncomingMessage, Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { ServerConfig } from '../config/config.ts';
import type { CacheIndex } from '../index/cache-index.ts';
import type { Telemetry } from '../services/telemetry.ts';
import type { Tokens } from '../services/tokens.ts';
import { CacheStatsReader, registerCacheStats } from './cache-stats.ts';
import { createLogger, type Logger } from './logger.ts';
import { metricsEndpoint, type MetricsHandler } from './metrics-endpoint.ts';
import { clusterMetrics, localMetrics, serveClusterMetrics, type MetricsSource } from './metrics-source.ts';
import { LarderMetrics } from './metrics.ts';
import { PrometheusTelemetry } from './prometheus-telemetry.ts';
import { logRequest, onEveryRequest, RequestCounter } from './request-observer.ts';

/** `alone`: the only serving process; `worker`: one of --workers N, whose primary sums the metrics. */
export type ServingRole = 'alone' | 'worker';

export class Observability {
  readonly registry = new Registry();
  readonly metrics: LarderMetrics;
  readonly telemetry: Telemetry;
  readonly logger: Logger;
  readonly #config: ServerConfig;
  readonly #source: MetricsSource;

  constructor(config: ServerConfig, role: ServingRole, logger: Logger = createLogger(config.log)) {
    this.#config = config;
    // Memory, CPU, event loop delay, GC pauses: per process, summed or averaged across workers.
    collectDefaultMetrics({ register: this.registry });
    this.metrics = new LarderMetrics(this.registry);
    this.telemetry = new PrometheusTelemetry(this.metrics);
    this.logger = logger;
    this.#source = role === 'worker' ? clusterMetrics(this.registry) : localMetrics(this.registry);
  }

  /** For a process serving alone: what the caches hold, read from `index` at scrape time. */
  countCacheContents(index: Pick<CacheIndex, 'cacheStats'>): void {
    registerCacheStats(this.registry, new CacheStatsReader(index));
  }

  /** Counts and logs every request `server` answers. */
  observe(server: Server): void {
    const counter = new RequestCounter(this.metrics);
    onEveryRequest(server, (observed) => {
      counter.count(observed);
      logRequest(this.logger, observed);
    });
  }

  metricsHandler(tokens: Tokens): MetricsHandler {
    return metricsEndpoint(tokens, this.#config.metrics.access, this.#source);
  }

  /** A bug of larder's met by a request: logged with its stack (the client only hears "internal error"). */
  readonly internalError = (req: IncomingMessage, error: unknown): void => {
    this.logger.error({ err: error, method: req.method, url: req.url }, `internal error on ${req.method} ${req.url}`);
  };
}

/** In the primary of --workers N: sums the workers' metrics for /metrics, with what the caches hold, read once here. */
export function serveWorkersMetrics(index: Pick<CacheIndex, 'cacheStats'>): void {
  const own = new Registry();
  registerCacheStats(own, new CacheStatsReader(index));
  serveClusterMetrics(own);
}
