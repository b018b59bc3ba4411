/** The bytes are not valid data of their compression (corrupt, truncated, or another format). */
export class DecompressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecompressionError';
  }
}
