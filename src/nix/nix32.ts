// Nix's base-32: a little-endian bignum written as 5-bit digits, most
// significant first, over an alphabet without e, o, u and t.
// (src/libutil/base-nix-32.cc)

export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

const digitValue = new Int8Array(128).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) digitValue[NIX32_ALPHABET.charCodeAt(i)] = i;

/** Length of the nix32 text for `byteLength` bytes: 32 chars for 20 bytes, 52 for 32. */
export function nix32Length(byteLength: number): number {
  return Math.floor((byteLength * 8 - 1) / 5) + 1;
}

export function encodeNix32(bytes: Uint8Array): string {
  const length = nix32Length(bytes.length);
  let out = '';
  for (let n = length - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    out += NIX32_ALPHABET[c & 31];
  }
  return out;
}

export function isNix32(text: string): boolean {
  for (let k = 0; k < text.length; k++) {
    const code = text.charCodeAt(k);
    if (code >= 128 || digitValue[code] === -1) return false;
  }
  return true;
}

/**
 * Decodes nix32 text into `byteLength` bytes (default: the longest that fits).
 * Throws on characters outside the alphabet and on bits that overflow the
 * byte length, as Nix does, so every byte string has exactly one spelling.
 */
export function decodeNix32(text: string, byteLength = Math.floor((text.length * 5) / 8)): Buffer {
  if (text.length !== nix32Length(byteLength)) {
    throw new Error(`nix32 text of ${text.length} characters cannot hold ${byteLength} bytes`);
  }
  const bytes = Buffer.alloc(byteLength);
  for (let k = 0; k < text.length; k++) {
    const code = text.charCodeAt(k);
    const digit = code < 128 ? digitValue[code]! : -1;
    if (digit < 0) throw new Error(`invalid nix32 character ${JSON.stringify(text[k])} at position ${k}`);
    const n = text.length - 1 - k;
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    bytes[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) bytes[i + 1]! |= carry;
    else if (carry !== 0) throw new Error(`nix32 text ${JSON.stringify(text)} has bits beyond ${byteLength} bytes`);
  }
  return bytes;
}
