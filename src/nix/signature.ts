// A narinfo `Sig` value: `<keyname>:<base64 of a 64-byte ed25519 signature>`.

export const SIGNATURE_BYTES = 64;

export interface Signature {
  readonly keyName: string;
  readonly bytes: Buffer;
}

/** Splits `name:base64` at the first colon and decodes the base64 strictly. */
export function splitNamedValue(text: string, what: string): { name: string; bytes: Buffer } {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new Error(`${what} '${text}' must look like '<name>:<base64>'`);
  const encoded = text.slice(colon + 1);
  const bytes = Buffer.from(encoded, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || bytes.toString('base64') !== encoded) {
    throw new Error(`${what} '${text}' is not valid base64 after the name`);
  }
  return { name: text.slice(0, colon), bytes };
}

export function parseSignature(text: string): Signature {
  const { name, bytes } = splitNamedValue(text, 'signature');
  if (bytes.length !== SIGNATURE_BYTES) {
    throw new Error(`signature '${text}' holds ${bytes.length} bytes; expected ${SIGNATURE_BYTES}`);
  }
  return { keyName: name, bytes };
}

export function formatSignature(signature: Signature): string {
  return `${signature.keyName}:${signature.bytes.toString('base64')}`;
}
