import fs from 'node:fs';

/** The bytes of a file at [start, start + length). */
export function readRange(file: string, start: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, start);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** Flips every bit of the byte at `at` (a disk error in one place). */
export function flipByte(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, at);
    fs.writeSync(fd, Buffer.from([ byte[0] ^ 0xff ]), 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}
