/** `publisher.mjs <dir> <channel> <count>`: "host A" publishes `{ n, at }` (JSON codec). */
import { open } from 'shmring';

const [dir, name, count] = process.argv.slice(2);
const ch = open(name, { create: true, codec: 'json', dir });
for (let n = 0; n < Number(count); n++) {
  const m = { n, at: Date.now() };
  if (!ch.publish(m)) await ch.send(m);
}
ch.close();
console.log(JSON.stringify({ published: Number(count) }));
