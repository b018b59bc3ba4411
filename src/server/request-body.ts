// Request bodies: small ones (narinfo, JSON) read into memory up to a limit,
// and any body decoded from the Content-Encoding Nix may put on uploads.

import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { createDecompressor } from '../compression/decompress.ts';
import { compressionOfContentEncoding } from '../nix/compression.ts';
import { HttpError } from './http-error.ts';

/** The body with its Content-Encoding undone. */
export function decodedBody(req: IncomingMessage): Readable {
  const encoding = req.headers['content-encoding'];
  if (encoding === undefined) return req;
  const compression = compressionOfContentEncoding(encoding);
  if (!compression) throw new HttpError(415, `Content-Encoding '${encoding}' is not supported`);
  if (compression === 'none') return req;
  return req.pipe(createDecompressor(compression));
}

export function checkDeclaredLength(req: IncomingMessage, limit: number): void {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `body of ${declared} bytes is over this server's limit of ${limit}`);
}

export async function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  checkDeclaredLength(req, limit);
  const chunks: Buffer[] = [];
  let size = 0;
  let body: Readable;
  body = decodedBody(req);
  try {
    // Not destroyed when we stop early, so that the server can still answer 413.
    for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, `body is over this server's limit of ${limit} bytes`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    if (body !== req) throw new HttpError(400, `body is not valid ${req.headers['content-encoding']} data`);
    throw error;
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const text = (await readSmallBody(req, limit)).toString('utf8');
  if (text.trim() === '') return {};
  // PostgreSQL cannot store U+0000 in text: refused here as the client's mistake, not a 500 later.
  // In valid JSON a NUL can only be written \u0000, so only such bodies are walked.
  let nul = false;
  const reviver = (key: string, value: unknown) => {
    if (key.includes('\0') || (typeof value === 'string' && value.includes('\0'))) nul = true;
    return value;
  };
  let value: unknown;
  try {
    value = text.includes('\\u0000') ? JSON.parse(text, reviver) : JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
  if (nul) throw new HttpError(400, 'body: strings must not contain U+0000 (NUL)');
  return value;
}
