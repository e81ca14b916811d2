/**
 * The demo behind `npm start`: spawns a subscriber and a publisher as two separate `node`
 * processes that share nothing but a channel name, moves a million quotes between them,
 * and prints what moved.
 *
 * `node dist/demo/index.js [count]`
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { unlink } from '../index.js';

const count = Number(process.argv[2] ?? 1_000_000);
const name = `demo-${process.pid}`;
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const children: ChildProcess[] = [];

interface Line {
  role: string;
  [k: string]: unknown;
}

/** Spawns a demo role; resolves its JSON result line, after `until` is seen if given. */
function start(script: string, until?: string): { ready: Promise<void>; result: Promise<Line> } {
  const child = spawn(process.execPath, [here(script), name, String(count)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  if (until === undefined) onReady();
  let last: Line | undefined;
  if (child.stdout === null) throw new Error('spawned without a stdout pipe');
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === until) onReady();
    else if (line.startsWith('{')) last = JSON.parse(line) as Line;
  });
  const result = once(child, 'exit').then(([code, signal]) => {
    if (code !== 0 || last === undefined) {
      throw new Error(`${script} exited with ${signal ?? code} and no result`);
    }
    return last;
  });
  // A child that dies before it is ready must not leave us waiting forever.
  result.catch(() => onReady());
  return { ready, result };
}

const fmt = (n: number): string => n.toLocaleString('en-US');
const guard = setTimeout(() => {
  console.error('demo: no result within 300 s, giving up');
  process.exitCode = 1;
  for (const c of children) c.kill('SIGKILL');
}, 300_000);

try {
  console.log(`shmring demo: 1 publisher process -> 1 subscriber process, channel "${name}"`);
  const sub = start('./subscriber.js', 'ready');
  await sub.ready;
  const pub = start('./publisher.js');
  const [p, s] = await Promise.all([pub.result, sub.result]);
  const secs = s.seconds as number;
  console.log(`published ${fmt(p.published as number)} in ${(p.seconds as number).toFixed(3)} s`);
  console.log(
    `received  ${fmt(s.received as number)} in ${secs.toFixed(3)} s: ` +
      `${fmt(Math.round((s.received as number) / secs))} msg/s`,
  );
  console.log(`${fmt(s.lost as number)} lost, ${fmt(s.outOfOrder as number)} out of order`);
  if (s.received !== count || s.lost !== 0 || s.outOfOrder !== 0) process.exitCode = 1;
} catch (e) {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  clearTimeout(guard);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  try {
    unlink(name);
  } catch {
    // already gone
  }
}
