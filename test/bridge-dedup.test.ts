/**
 * The JetStream importer's duplicate check without a server: redeliveries are recognised by
 * stream sequence however long ago the first delivery was (an ack the server never got comes
 * back after the consumer's ack wait, by then any number of newer messages went in), holes in
 * the sequence are filled in any order, and nothing is remembered before the importer says
 * the message went in (a failed local publish is delivered again, not dropped).
 */
import test from 'ava';

type From = object | 'duplicate' | undefined;
interface Dedup {
  check(h: { source: string | undefined; position: number }, seq: number, again: boolean): From;
  done(seq: number, from: From): void;
}
interface Seqs {
  add(seq: number): void;
  has(seq: number): boolean;
  readonly ranges: number;
}
// Internal to the bridge (not exported by the package): loaded from the build.
const { DoneSeqs, JetStreamDedup } = (await import(
  new URL('../../dist/bridge/recover.js', import.meta.url).href
)) as { DoneSeqs: new () => Seqs; JetStreamDedup: new () => Dedup };

const SRC = 'ch@1700000000000';

test('a redelivery after 200,000 newer messages is a duplicate', (t) => {
  const d = new JetStreamDedup();
  let published = 0;
  for (let seq = 1; seq <= 200_001; seq++) {
    const from = d.check({ source: SRC, position: seq * 88 }, seq, false);
    t.not(from, 'duplicate');
    d.done(seq, from);
    published += 1;
  }
  t.is(published, 200_001);
  // Stream sequence 7's ack was lost: it comes again, flagged redelivered.
  t.is(d.check({ source: SRC, position: 7 * 88 }, 7, true), 'duplicate');
  // A message without the bridge's headers is known by its sequence too.
  const plain = new JetStreamDedup();
  plain.done(3, plain.check({ source: undefined, position: Number.NaN }, 3, false));
  t.is(plain.check({ source: undefined, position: Number.NaN }, 3, true), 'duplicate');
});

test('nothing is remembered until done: a failed publish comes again and goes in', (t) => {
  const d = new JetStreamDedup();
  const first = d.check({ source: SRC, position: 100 }, 1, false);
  t.not(first, 'duplicate');
  // The local publish failed: no done(); the server redelivers it.
  const again = d.check({ source: SRC, position: 100 }, 1, true);
  t.deepEqual(again, first);
  d.done(1, again);
  t.is(d.check({ source: SRC, position: 100 }, 1, true), 'duplicate');
});

test('a second copy in the stream (a new sequence) is a duplicate by position', (t) => {
  const d = new JetStreamDedup();
  for (const [seq, pos] of [
    [1, 0],
    [2, 88],
    [3, 176],
  ] as const) {
    d.done(seq, d.check({ source: SRC, position: pos }, seq, false));
  }
  t.is(d.check({ source: SRC, position: 88 }, 4, false), 'duplicate');
  t.not(d.check({ source: SRC, position: 264 }, 5, false), 'duplicate');
});

test('DoneSeqs: holes filled in any order merge into one range', (t) => {
  const s = new DoneSeqs();
  for (const q of [1, 2, 3, 10, 11, 6, 5, 20, 4, 7, 9, 8, 12, 13, 14, 15, 16, 17, 18, 19]) {
    s.add(q);
  }
  t.is(s.ranges, 1);
  for (let q = 1; q <= 20; q++) t.true(s.has(q), `has ${q}`);
  t.false(s.has(0));
  t.false(s.has(21));
  s.add(30);
  s.add(28);
  t.is(s.ranges, 3);
  t.false(s.has(29));
  s.add(29);
  t.is(s.ranges, 2);
  s.add(25); // inside nothing, between ranges
  t.is(s.ranges, 3);
  s.add(5); // already in
  t.is(s.ranges, 3);
  t.true(s.has(25) && s.has(28) && s.has(30) && !s.has(26) && !s.has(31));
});
