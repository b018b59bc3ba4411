// The body of a dashboard form: application/x-www-form-urlencoded (what a
// browser sends without JavaScript), small, read into memory up to a limit.

import type { IncomingMessage } from 'node:http';
import { HttpError } from '../server/http-error.ts';
import { readSmallBody } from '../server/request-body.ts';

const FORM_LIMIT = 64 * 1024;

export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new HttpError(415, `expected a form (application/x-www-form-urlencoded), got '${type || 'no Content-Type'}'`);
  }
  return new URLSearchParams((await readSmallBody(req, FORM_LIMIT)).toString('utf8'));
}
