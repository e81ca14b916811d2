/**
 * `npm run bench:durable`: the publish rate into a channel whose file is on a disk
 * filesystem, with each `flush` setting, beside the same channel in /dev/shm, in one run.
 *
 * One process publishes 64-byte raw messages into a topic with no subscriber (so the ring
 * never fills and the cost measured is the publish call's own, flush included) for a fixed
 * time per cell. The cells run in rounds, in a rotated order each round so that none always
 * runs first or last, and the table shows the median round of each.
 *
 * ```sh
 * npm run bench:durable                    # 5 rounds of 1 s per cell, in os.tmpdir()
 * npm run bench:durable -- --dir /var/tmp --rounds 3 --ms 500 --json
 * ```
 */
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, unlink } from '../dist/index.js';

const args = process.argv.slice(2);
const arg = (flag, dflt) => {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const rounds = Number(arg('--rounds', '5'));
const cellMs = Number(arg('--ms', '1000'));
const base = arg('--dir', tmpdir());
const json = args.includes('--json');
const PAYLOAD = 64;
const BATCH = 64;

const TMPFS_MAGIC = 0x01021994;
const disk = mkdtempSync(join(base, 'shmring-bench-durable-'));
const fsType = (dir) => {
  const t = statfsSync(dir).type;
  // statfs(2)'s f_type of the usual ones (linux/magic.h).
  const known = { [TMPFS_MAGIC]: 'tmpfs', 61267: 'ext4', 1481003842: 'xfs', 2435016766: 'btrfs' };
  return known[t] ?? `0x${t.toString(16)}`;
};

/** The cells: where the channel lives, its flush setting, and single or batched publishes. */
const cells = [
  { id: 'shm-os', label: '/dev/shm, flush os', dir: '/dev/shm', flush: 'os', batch: 1 },
  { id: 'disk-os', label: 'disk, flush os', dir: disk, flush: 'os', batch: 1 },
  { id: 'disk-10ms', label: 'disk, flush 10 ms', dir: disk, flush: 10, batch: 1 },
  { id: 'disk-publish', label: 'disk, flush publish', dir: disk, flush: 'publish', batch: 1 },
  {
    id: 'disk-publish-batch',
    label: `disk, flush publish, publishMany of ${BATCH}`,
    dir: disk,
    flush: 'publish',
    batch: BATCH,
  },
  {
    id: 'shm-publish',
    label: '/dev/shm, flush publish',
    dir: '/dev/shm',
    flush: 'publish',
    batch: 1,
  },
];

/** Publishes for `cellMs` into a fresh channel of `cell`; returns messages per second. */
function runCell(cell, round) {
  const name = `bench-durable-${process.pid}-${cell.id}-${round}`;
  const ch = open(name, {
    create: true,
    capacity: 1 << 22,
    codec: 'raw',
    dir: cell.dir,
    flush: cell.flush,
  });
  const msg = Buffer.alloc(PAYLOAD, 0x5a);
  const batch = Array.from({ length: cell.batch }, () => msg);
  let sent = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(cellMs) * 1_000_000n;
  let now = start;
  try {
    while (now < end) {
      // 32 calls between clock reads.
      for (let i = 0; i < 32; i++) {
        if (cell.batch === 1) sent += ch.publish(msg) ? 1 : 0;
        else sent += ch.publishMany(batch);
      }
      now = process.hrtime.bigint();
    }
  } finally {
    ch.close();
    unlink(name, { dir: cell.dir });
  }
  return sent / (Number(now - start) / 1e9);
}

const results = new Map(cells.map((c) => [c.id, []]));
try {
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < cells.length; k++) {
      const cell = cells[(k + r) % cells.length];
      results.get(cell.id).push(runCell(cell, r));
    }
  }
} finally {
  rmSync(disk, { recursive: true, force: true });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const rows = cells.map((c) => {
  const rate = median(results.get(c.id));
  return {
    cell: c.label,
    msgPerSec: Math.round(rate),
    mbPerSec: Number(((rate * PAYLOAD) / 1e6).toFixed(2)),
    usPerMsg: Number((1e6 / rate).toFixed(3)),
    rounds: results.get(c.id).map(Math.round),
  };
});
if (json) {
  console.log(JSON.stringify({ payload: PAYLOAD, cellMs, rounds, diskFs: fsType(base), rows }));
} else {
  console.log(
    `publish rate, ${PAYLOAD}-byte raw messages, no subscriber; median of ${rounds} rounds of ${cellMs} ms per cell`,
  );
  console.log(
    `disk directory: ${base} (filesystem ${fsType(base)}); /dev/shm: ${fsType('/dev/shm')}`,
  );
  const head = ['cell', 'msg/s', 'MB/s', 'us/msg'];
  const body = rows.map((r) => [
    r.cell,
    r.msgPerSec.toLocaleString('en-US'),
    String(r.mbPerSec),
    String(r.usPerMsg),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cols) =>
    cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}
