/**
 * `open(name, { exclusiveProducer: true })`: the handle's producer side is the channel's only
 * producer while it is open (other handles' publishes throw BusyError, a second exclusive
 * open too), its messages arrive in order, and closing it lets the next producer in. Other
 * handles stand for other processes: each has an open file description of its own, which is
 * what the exclusion works across (the Rust tests run it across real processes).
 */
import test from 'ava';
import { firstValueFrom, take, toArray } from 'rxjs';
import { BusyError, InvalidArgumentError, open } from 'shmring';
import { channelName } from './helpers.js';

test('an exclusive producer excludes every other producer until it closes', async (t) => {
  const name = channelName(t, 'excl');
  const ex = open<number>(name, { create: true, exclusiveProducer: true });
  t.teardown(() => ex.close());
  const other = open<number>(name);
  t.teardown(() => other.close());
  const got = firstValueFrom(other.messages().pipe(take(1000), toArray()));
  t.throws(() => other.publish(1), { instanceOf: BusyError, message: /exclusive producer/ });
  t.throws(() => open(name, { exclusiveProducer: true }), { instanceOf: BusyError });
  for (let i = 0; i < 1000; i++) await ex.send(i);
  t.deepEqual(
    await got,
    Array.from({ length: 1000 }, (_, i) => i),
  );
  ex.close();
  t.true(other.publish(7), 'the next producer joins once it closed');
  // A live plain producer (it published, its handle is open) keeps exclusive ones out.
  t.throws(() => open(name, { exclusiveProducer: true }), {
    instanceOf: BusyError,
    message: /another live producer/,
  });
});

test('exclusiveProducer is refused in semaphore mode and must be a boolean', (t) => {
  const name = channelName(t, 'excl-sem');
  t.throws(() => open(name, { create: true, sync: 'semaphore', exclusiveProducer: true }), {
    instanceOf: InvalidArgumentError,
    message: /lockfree/,
  });
  t.throws(() => open(name, { create: true, exclusiveProducer: 'yes' as unknown as boolean }), {
    instanceOf: InvalidArgumentError,
    message: /exclusiveProducer/,
  });
  // Refusing it took nothing: the channel works with a plain producer.
  const ch = open(name, { create: true, sync: 'semaphore' });
  t.teardown(() => ch.close());
  t.true(ch.publish(1));
});
