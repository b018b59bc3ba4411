import type { RejectionKind } from '../services/rejection.ts';

/** An HTTP answer other than success, with a reason for the client. */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.headers = headers;
  }
}

/** The status code of each kind of refusal. */
export const REJECTION_STATUS: Readonly<Record<RejectionKind, number>> = {
  invalid: 400,
  conflict: 409,
  mismatch: 422,
  unsupported: 415,
  'too-large': 413,
  'not-found': 404,
};
