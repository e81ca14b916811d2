/**
 * `subscriber.mjs <dir> <channel> <count>`: "host B" reads `count` messages (JSON codec, the
 * bytes the bridge carried untouched), checks their order, prints `ready` once subscribed and
 * a JSON line at the end.
 */
import { open } from 'shmring';

const [dir, name, count] = process.argv.slice(2);
const ch = open(name, { create: true, codec: 'json', dir });
let received = 0;
let outOfOrder = 0;
const sub = ch.messages().subscribe((m) => {
  if (m.n !== received) outOfOrder++;
  received++;
  if (received === Number(count)) {
    sub.unsubscribe();
    ch.close();
    console.log(JSON.stringify({ received, outOfOrder }));
  }
});
console.log('ready');
