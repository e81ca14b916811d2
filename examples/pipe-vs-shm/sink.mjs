/**
 * The receiving process: `node sink.mjs pipe <count>` reads length-framed messages
 * (`[u32 LE length][msgpack]`) from its stdin, a pipe; `node sink.mjs shm <channel> <count>`
 * subscribes to a channel. Either way it decodes each message with msgpack, checks that the
 * sequence numbers run 0..count-1, and prints one JSON line with the time from the first
 * message to the last.
 */
import { msgpack, open } from 'shmring';

const [mode, ...rest] = process.argv.slice(2);
const codec = msgpack();
let received = 0;
let outOfOrder = 0;
let first = 0n;

function onMessage(q, count, finish) {
  if (received === 0) first = process.hrtime.bigint();
  if (q.seq !== received) outOfOrder++;
  received++;
  if (received === count) {
    const seconds = Number(process.hrtime.bigint() - first) / 1e9;
    console.log(JSON.stringify({ role: `sink-${mode}`, received, outOfOrder, seconds }));
    finish();
  }
}

if (mode === 'pipe') {
  const count = Number(rest[0]);
  let pending = Buffer.alloc(0);
  process.stdin.on('data', (chunk) => {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (at + 4 <= buf.length) {
      const len = buf.readUInt32LE(at);
      if (at + 4 + len > buf.length) break;
      onMessage(codec.decode(buf.subarray(at + 4, at + 4 + len)), count, () =>
        process.stdin.destroy(),
      );
      at += 4 + len;
    }
    pending = buf.subarray(at);
  });
  console.log('ready');
} else if (mode === 'shm') {
  const [name, countArg] = rest;
  const count = Number(countArg);
  // The channel's bytes are msgpack, so this side decodes them with the msgpack codec
  // (straight from the drained batch, no extra copy).
  const ch = open(name, { codec });
  const sub = ch.messages().subscribe((q) =>
    onMessage(q, count, () => {
      sub.unsubscribe();
      ch.close();
    }),
  );
  console.log('ready');
} else {
  throw new Error('usage: sink.mjs pipe <count> | sink.mjs shm <channel> <count>');
}
