// The token a request presents: the Basic-auth password (what Nix sends from
// netrc, with any user name) or a Bearer token (the push client, the API).

export function presentedToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const space = authorization.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = authorization.slice(0, space).toLowerCase();
  const value = authorization.slice(space + 1).trim();
  if (scheme === 'bearer') return value || undefined;
  if (scheme !== 'basic') return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return decoded || undefined;
  // A netrc entry with the token as login and no password is a common slip: accept it too.
  return decoded.slice(colon + 1) || decoded.slice(0, colon) || undefined;
}
