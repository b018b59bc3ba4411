// Who is asking, and may they. 401 asks for credentials (with the Basic
// challenge curl answers from netrc); 403 says the credentials are not enough.

import type { IncomingMessage } from 'node:http';
import type { CacheRecord, Permission, TokenRecord } from '../index/cache-index.ts';
import { notePrincipal } from '../observability/request-facts.ts';
import type { Tokens } from '../services/tokens.ts';
import { grants } from '../services/tokens.ts';
import { presentedToken } from './credentials.ts';
import { HttpError } from './http-error.ts';

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="larder"' };

export function unauthorized(message: string): HttpError {
  return new HttpError(401, message, CHALLENGE);
}

/** The request's valid token, undefined when none was presented; 401 for a bad one. */
export async function principalOf(tokens: Tokens, req: IncomingMessage): Promise<TokenRecord | undefined> {
  const token = presentedToken(req.headers.authorization);
  if (token === undefined) return undefined;
  const record = await tokens.authenticate(token);
  if (!record) throw unauthorized('the token is unknown, revoked or expired');
  // For the request's log line: who asked, by the token's id and label.
  notePrincipal(req, record);
  return record;
}

export function requirePermission(principal: TokenRecord | undefined, cache: CacheRecord, permission: Permission): void {
  if (permission === 'read' && cache.public) return;
  if (!principal) throw unauthorized(`cache '${cache.name}' needs a token with ${permission} permission`);
  if (!grants(principal, cache.name, permission)) {
    throw new HttpError(403, `this token lacks ${permission} permission on cache '${cache.name}'`);
  }
}
