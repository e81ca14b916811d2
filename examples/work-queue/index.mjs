/**
 * `npm run example:work-queue [-- --count N] [--workers N] [--job-ms N] [--json]`
 *
 * A dispatcher (this process) and a pool of worker processes. Jobs go out on a `queue`
 * channel, where each message is taken by exactly one worker; results come back on a
 * `topic`. A third of the way through, this process SIGKILLs one worker, and the run still
 * ends with every job's result exactly once.
 *
 * How that holds end to end, honestly: the queue hands each job to one consumer, but a
 * consumer killed after it took a job and before it published the result loses that job
 * (shmring's stated limit: a consumer killed holding a queue claim loses at most that one
 * read). So the dispatcher does what any job system on an at-most-once transport does:
 *
 *  - at-least-once delivery: a job whose result has not come back within `--timeout-ms` is
 *    published again (with `attempt + 1`);
 *  - idempotent acceptance: results are keyed by job id, the first result wins, and a
 *    later one (a job that was slow rather than lost) is counted and discarded.
 *
 * So "no job lost, none done twice" is checked on what the dispatcher accepted: exactly the
 * ids 0..N-1, once each, with the right values. At most `--window` jobs are in flight at once,
 * so no job waits in the queue long enough to be redelivered needlessly.
 *
 * Both channels survive the kill whatever the worker was doing: the queue hands out each job
 * with one CAS, and a producer killed mid-publish never wedges a channel (in `semaphore` mode,
 * used for the results topic here, the next process to take the robust mutex repairs the
 * dead one's claim; in `lockfree` mode readers skip a dead producer's claim).
 */
import { createHash } from 'node:crypto';
import { open } from 'shmring';
import { beside, fmt, options, Run } from '../lib/processes.mjs';

const opts = options(
  { count: 2000 },
  {
    workers: { type: 'string' },
    'job-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    window: { type: 'string' },
  },
);
const workerCount = Number(opts.workers ?? 4);
const jobMs = Number(opts['job-ms'] ?? 2);
const timeoutMs = Number(opts['timeout-ms'] ?? 1000);
const window = Number(opts.window ?? 4 * workerCount);
if (workerCount < 2) throw new Error('--workers must be at least 2 (one of them is killed)');

const run = new Run();
const jobsName = run.channel('workq', 'jobs');
const resultsName = run.channel('workq', 'results');
const jobs = open(jobsName, { create: true, kind: 'queue', sync: 'lockfree' });
const results = open(resultsName, { create: true, kind: 'topic', sync: 'semaphore' });

const expectedValue = (n) => createHash('sha256').update(`job-${n}`).digest('hex').slice(0, 16);

/** id → { worker, value } of the first result for each job. */
const accepted = new Map();
/** id → { attempt, sentAt } of jobs sent and not yet accepted. */
const inFlight = new Map();
const perWorker = new Array(workerCount).fill(0);
let duplicates = 0;
let wrong = 0;
let redelivered = 0;
let wake = () => {};

// Subscribe to results before any worker can publish one (a topic delivers what is
// published after a subscriber joined).
const resultsSub = results.messages().subscribe((r) => {
  if (accepted.has(r.id)) {
    duplicates++; // done again after a redelivery: discarded
  } else {
    if (r.value !== expectedValue(r.id)) wrong++;
    accepted.set(r.id, { worker: r.worker, value: r.value });
    perWorker[r.worker]++;
    inFlight.delete(r.id);
  }
  wake();
});

const send = async (id, attempt) => {
  inFlight.set(id, { attempt, sentAt: Date.now() });
  await jobs.send({ id, n: id, attempt });
};

console.log(
  `work-queue: ${fmt(opts.count)} jobs, ${workerCount} worker processes, ` +
    `${jobMs} ms per job, redelivery after ${timeoutMs} ms`,
);
try {
  const workers = Array.from({ length: workerCount }, (_, w) =>
    run.node(beside(import.meta.url, 'worker.mjs'), [jobsName, resultsName, w, jobMs], {
      readyLine: 'ready',
    }),
  );
  await Promise.all(workers.map((w) => w.ready));

  const victim = 1;
  const killAt = Math.floor(opts.count / 3);
  let killed;
  let next = 0;
  while (accepted.size < opts.count) {
    // Keep the window full.
    while (inFlight.size < window && next < opts.count) await send(next++, 1);
    // Redeliver what has been out too long: lost with a killed worker, or just slow.
    const now = Date.now();
    for (const [id, f] of inFlight) {
      if (now - f.sentAt > timeoutMs) {
        redelivered++;
        console.log(`job ${id} had no result after ${timeoutMs} ms: sent again`);
        await send(id, f.attempt + 1);
      }
    }
    if (killed === undefined && accepted.size >= killAt) {
      const child = workers[victim].child;
      killed = { worker: victim, pid: child.pid, doneBefore: perWorker[victim] };
      child.kill('SIGKILL');
      console.log(
        `killed worker ${victim} (pid ${child.pid}) with SIGKILL after ${fmt(accepted.size)} results`,
      );
    }
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 20);
    });
  }

  // Every job is accounted for: stop the live workers, one stop message each.
  const live = workers.filter((_, w) => w !== victim);
  for (let i = 0; i < live.length; i++) await jobs.send({ stop: true });
  const reports = await Promise.all(live.map((w) => w.result));
  const victimExit = await workers[victim].result.then(
    () => 'exited normally',
    () => 'SIGKILL',
  );

  const ids = [...accepted.keys()].sort((a, b) => a - b);
  const allIds = ids.length === opts.count && ids.every((id, i) => id === i);
  const ok = allIds && wrong === 0 && victimExit === 'SIGKILL';
  console.log('');
  console.log(`results accepted: ${fmt(accepted.size)} of ${fmt(opts.count)} jobs`);
  console.log(`job ids:          ${allIds ? `exactly 0..${opts.count - 1}` : 'INCOMPLETE'}`);
  console.log(`wrong values:     ${wrong}`);
  console.log(`redelivered:      ${redelivered} (no result within ${timeoutMs} ms)`);
  console.log(`duplicates:       ${duplicates} (a job done twice; the second result discarded)`);
  for (const [w, n] of perWorker.entries()) {
    const report = reports.find((r) => r.worker === w);
    const note = w === victim ? `  <- killed (${victimExit}) mid-run` : '';
    console.log(
      `worker ${w}: ${fmt(n).padStart(6)} results accepted${report ? `, ${report.done} done` : ''}${note}`,
    );
  }
  console.log(ok ? 'ok: no job lost, none accepted twice' : 'FAILED');
  if (!ok) process.exitCode = 1;
  if (opts.json) {
    console.log(
      JSON.stringify({
        example: 'work-queue',
        ok,
        jobs: opts.count,
        accepted: accepted.size,
        allIds,
        wrong,
        redelivered,
        duplicates,
        killed: { ...killed, exit: victimExit },
        perWorker,
      }),
    );
  }
} catch (e) {
  console.error(`work-queue: ${e.message}`);
  process.exitCode = 1;
} finally {
  resultsSub.unsubscribe();
  jobs.close();
  results.close();
  run.cleanup();
}
