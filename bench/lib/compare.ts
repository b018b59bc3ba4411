// larder against a peer server in one run: rounds alternate which of the
// two goes first (larder, nginx; then nginx, larder; …) so that drift and
// other processes' noise hit both alike, every figure keeps all its samples,
// and the summary states both medians, the ratio larder/peer and the goal.

import { machineBusySeconds, median, treeCpuSeconds } from './measure.ts';

export type Peer = 'larder' | 'nginx';

/** Round 1: larder then nginx; round 2: nginx then larder; and so on. */
export function roundOrder(round: number): Peer[] {
  return round % 2 === 1 ? ['larder', 'nginx'] : ['nginx', 'larder'];
}

export interface FigureSpec {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  /** Whether a lower value (latency, time) or a higher one (throughput) is better. */
  readonly better: 'lower' | 'higher';
  /** The goal on larder/nginx: at most this (lower is better) or at least this (higher). */
  readonly goalRatio: number;
}

export interface Sample {
  readonly round: number;
  readonly value: number;
  /** CPU seconds the server (all its processes) used during the sample. */
  readonly serverCpuSeconds: number;
  /** CPU seconds every other process on the machine used meanwhile (load generator excluded when known): noise. */
  readonly otherCpuSeconds: number;
  readonly [detail: string]: unknown;
}

export interface FigureResult {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly better: 'lower' | 'higher';
  readonly nginx: { readonly median: number; readonly samples: readonly number[] };
  readonly larder: { readonly median: number; readonly samples: readonly number[] };
  /** larder's median over nginx's. */
  readonly ratio: number;
  readonly goal: { readonly text: string; readonly target: number; readonly met: boolean };
  readonly details: { readonly larder: readonly Sample[]; readonly nginx: readonly Sample[] };
}

const round3 = (n: number) => Number(n.toPrecision(4));

export class Comparison {
  private readonly specs: FigureSpec[] = [];
  private readonly samples = new Map<string, Record<Peer, Sample[]>>();

  figure(spec: FigureSpec): FigureSpec {
    this.specs.push(spec);
    this.samples.set(spec.id, { larder: [], nginx: [] });
    return spec;
  }

  add(spec: FigureSpec, peer: Peer, sample: Sample): void {
    this.samples.get(spec.id)![peer].push(sample);
  }

  results(): FigureResult[] {
    return this.specs.map((spec) => {
      const { larder, nginx } = this.samples.get(spec.id)!;
      const larderMedian = round3(median(larder.map((s) => s.value)));
      const nginxMedian = round3(median(nginx.map((s) => s.value)));
      const ratio = Number((larderMedian / nginxMedian).toFixed(3));
      const met = spec.better === 'lower' ? ratio <= spec.goalRatio : ratio >= spec.goalRatio;
      const text = `larder/nginx ${spec.better === 'lower' ? '<=' : '>='} ${spec.goalRatio}`;
      return {
        id: spec.id,
        title: spec.title,
        unit: spec.unit,
        better: spec.better,
        nginx: { median: nginxMedian, samples: nginx.map((s) => round3(s.value)) },
        larder: { median: larderMedian, samples: larder.map((s) => round3(s.value)) },
        ratio,
        goal: { text, target: spec.goalRatio, met },
        details: { larder, nginx },
      };
    });
  }
}

/** A Markdown table of the figures: both medians, the ratio, the goal. */
export function figureTable(results: readonly FigureResult[]): string {
  const rows = results.map(
    (r) =>
      `| ${r.title} | ${r.nginx.median} ${r.unit} | ${r.larder.median} ${r.unit} | ${r.ratio.toFixed(2)} | ${r.goal.text} | ${r.goal.met ? 'met' : 'NOT met'} |`,
  );
  return ['| figure | nginx median | larder median | larder/nginx | goal | |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/**
 * Runs `work` and says how much CPU the server's process tree used meanwhile,
 * and how much the rest of the machine did (minus `clientCpuSeconds` of the
 * result when the load generator's own CPU time is known).
 */
export async function withCpu<T extends { clientCpuSeconds?: number | null }>(
  serverPid: number,
  work: () => Promise<T>,
): Promise<{ result: T; serverCpuSeconds: number; otherCpuSeconds: number }> {
  const serverBefore = treeCpuSeconds(serverPid);
  const busyBefore = machineBusySeconds();
  const result = await work();
  const serverCpuSeconds = treeCpuSeconds(serverPid) - serverBefore;
  const busy = machineBusySeconds() - busyBefore;
  const otherCpuSeconds = Math.max(0, busy - serverCpuSeconds - (result.clientCpuSeconds ?? 0));
  return { result, serverCpuSeconds: Number(serverCpuSeconds.toFixed(2)), otherCpuSeconds: Number(otherCpuSeconds.toFixed(2)) };
}
