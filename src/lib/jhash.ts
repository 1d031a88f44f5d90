// Bob Jenkins' lookup3 ("jhash" in the kernel), the mirror of bpf/hash.h. All arithmetic is
// unsigned 32-bit; results are plain numbers in [0, 2^32).

const JHASH_INITVAL = 0xdeadbeef;

function rol32(word: number, shift: number): number {
  return ((word << shift) | (word >>> (32 - shift))) >>> 0;
}

function final(a: number, b: number, c: number): number {
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 14)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol32(c, 11)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol32(a, 25)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 16)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol32(c, 4)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol32(a, 14)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol32(b, 24)) >>> 0;
  return c;
}

/** lookup3 of three words, as the kernel's jhash_3words. */
export function jhash3Words(a: number, b: number, c: number, initval: number): number {
  const init = (initval + JHASH_INITVAL + (3 << 2)) >>> 0;
  return final((a + init) >>> 0, (b + init) >>> 0, (c + init) >>> 0);
}

/** lookup3 over an array of 32-bit words, as the kernel's jhash2. */
export function jhash2(words: ArrayLike<number>, initval: number): number {
  let length = words.length;
  let a = (JHASH_INITVAL + (length << 2) + initval) >>> 0;
  let b = a;
  let c = a;
  let i = 0;
  const at = (k: number): number => words[k] ?? 0;
  while (length > 3) {
    a = (a + at(i)) >>> 0;
    b = (b + at(i + 1)) >>> 0;
    c = (c + at(i + 2)) >>> 0;
    // mix(a, b, c)
    a = (a - c) >>> 0;
    a = (a ^ rol32(c, 4)) >>> 0;
    c = (c + b) >>> 0;
    b = (b - a) >>> 0;
    b = (b ^ rol32(a, 6)) >>> 0;
    a = (a + c) >>> 0;
    c = (c - b) >>> 0;
    c = (c ^ rol32(b, 8)) >>> 0;
    b = (b + a) >>> 0;
    a = (a - c) >>> 0;
    a = (a ^ rol32(c, 16)) >>> 0;
    c = (c + b) >>> 0;
    b = (b - a) >>> 0;
    b = (b ^ rol32(a, 19)) >>> 0;
    a = (a + c) >>> 0;
    c = (c - b) >>> 0;
    c = (c ^ rol32(b, 4)) >>> 0;
    b = (b + a) >>> 0;
    length -= 3;
    i += 3;
  }
  // The tail: up to three words left, added from the last one down (lookup3's switch).
  if (length === 0) return c;
  if (length === 3) c = (c + at(i + 2)) >>> 0;
  if (length >= 2) b = (b + at(i + 1)) >>> 0;
  a = (a + at(i)) >>> 0;
  return final(a, b, c);
}
