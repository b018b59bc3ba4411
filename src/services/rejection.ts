// Why an upload or request is refused, in words for the client. The server
// maps the kind to a status code; nothing of a rejected upload is kept.

/** invalid: malformed (400); conflict: disagrees with what the cache holds (409);
 *  mismatch: the data contradicts its description (422); unsupported (415); too-large (413);
 *  not-found: what the request names is not there (404). */
export type RejectionKind = 'invalid' | 'conflict' | 'mismatch' | 'unsupported' | 'too-large' | 'not-found';

export class Rejection extends Error {
  readonly kind: RejectionKind;
  constructor(kind: RejectionKind, message: string) {
    super(message);
    this.name = 'Rejection';
    this.kind = kind;
  }
}
