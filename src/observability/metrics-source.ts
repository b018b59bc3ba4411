// Where a /metrics answer comes from. One process: its own registry. With
// --workers N, each worker counts what it serves, so the answer must cover them
// all: the primary gathers every worker's registry (prom-client's
// AggregatorRegistry, over the cluster's IPC channel), adds its own (what the
// caches hold, read once rather than per worker), and a worker that receives
// /metrics asks the primary for that sum.

import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';

export interface MetricsSource {
  /** The exposition text. */
  text(): Promise<string>;
  readonly contentType: string;
}

/** The metrics of this process alone. */
export function localMetrics(registry: Registry): MetricsSource {
  return { text: () => registry.metrics(), contentType: registry.contentType };
}

const REQUEST = 'larder:metrics-request';
const ANSWER = 'larder:metrics-answer';

interface MetricsRequest {
  readonly type: typeof REQUEST;
  readonly id: string;
}

type MetricsAnswer = { readonly type: typeof ANSWER; readonly id: string } & ({ readonly text: string } | { readonly error: string });

const isRequest = (message: unknown): message is MetricsRequest => (message as MetricsRequest | null)?.type === REQUEST;
const isAnswer = (message: unknown): message is MetricsAnswer => (message as MetricsAnswer | null)?.type === ANSWER;

/** In the primary: answers workers' requests with every worker's metrics summed, followed by `own`. */
export function serveClusterMetrics(own: Registry): void {
  const aggregator = new AggregatorRegistry();
  const render = async () => (await aggregator.clusterMetrics()) + (await own.metrics());
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isRequest(message)) return;
    const reply = (answer: MetricsAnswer) => {
      if (worker.isConnected()) worker.send(answer);
    };
    render().then(
      (text) => reply({ type: ANSWER, id: message.id, text }),
      (error: unknown) => reply({ type: ANSWER, id: message.id, error: (error as Error).message }),
    );
  });
}

/** How long a worker waits for the primary's sum (prom-client gives workers 5 s to answer it). */
const WORKER_WAIT_MS = 10_000;

/** In a worker: offers `registry` to the primary's aggregation, and answers /metrics with the primary's sum. */
export function clusterMetrics(registry: Registry): MetricsSource {
  AggregatorRegistry.setRegistries([registry]);
  // Constructed for its side effect: in a worker, it answers the primary's requests for local metrics.
  new AggregatorRegistry();
  const pending = new Map<string, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  process.on('message', (message: unknown) => {
    if (!isAnswer(message)) return;
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if ('text' in message) waiter.resolve(message.text);
    else waiter.reject(new Error(`the primary could not gather the workers' metrics: ${message.error}`));
  });
  return {
    contentType: registry.contentType,
    text: () =>
      new Promise<string>((resolve, reject) => {
        const id = randomUUID();
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`the primary did not send the workers' metrics within ${WORKER_WAIT_MS / 1000} s`));
        }, WORKER_WAIT_MS);
        pending.set(id, {
          resolve: (text) => (clearTimeout(timer), resolve(text)),
          reject: (error) => (clearTimeout(timer), reject(error)),
        });
        const request: MetricsRequest = { type: REQUEST, id };
        process.send!(request, undefined, {}, (error) => {
          if (!error) return;
          pending.get(id)?.reject(new Error(`cannot ask the primary for metrics: ${error.message}`));
          pending.delete(id);
        });
      }),
  };
}
