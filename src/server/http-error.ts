import type { RejectionKind } from '../services/rejection.ts';

/** An HTTP answer other than success, with a reason for the client. */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    // An answer, not a bug: its stack is never shown, and capturing one through the request's
    // async frames costs about 12 µs, a tenth of a narinfo 404's whole cost (bench/narinfo.ts).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
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
