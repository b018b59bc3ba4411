// GET /metrics: the Prometheus exposition, to whoever `metrics.access` allows.
//
// The default is open, like the port itself: Prometheus scrapes without
// credentials unless configured otherwise, and the numbers hold no contents,
// tokens or store paths; cache names are already observable (a private cache
// answers 401, an absent one 404). Where even traffic volumes are private,
// `metrics.access = "admin"` asks for a server-admin token (Prometheus:
// `authorization: { credentials_file: … }`), and "off" answers 404.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MetricsConfig } from '../config/config.ts';
import { isServerAdmin, type Tokens } from '../services/tokens.ts';
import { principalOf, unauthorized } from '../server/access.ts';
import { HttpError } from '../server/http-error.ts';
import type { MetricsSource } from './metrics-source.ts';

export type MetricsHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function metricsEndpoint(tokens: Tokens, access: MetricsConfig['access'], source: MetricsSource): MetricsHandler {
  return async (req, res) => {
    if (access === 'off') throw new HttpError(404, 'metrics are switched off on this server (metrics.access = "off")');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${req.method} is not supported here`, { Allow: 'GET, HEAD' });
    if (access === 'admin') {
      const principal = await principalOf(tokens, req);
      if (!principal) throw unauthorized('/metrics needs a server-admin token');
      if (!isServerAdmin(principal)) throw new HttpError(403, '/metrics needs a server-admin token; this token is not one');
    }
    let text: string;
    try {
      text = await source.text();
    } catch (error) {
      throw new HttpError(503, `metrics unavailable: ${(error as Error).message}`, { 'Retry-After': '5' });
    }
    res.writeHead(200, { 'Content-Type': source.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
}
