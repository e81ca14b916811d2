/**
 * `npm run example:work-queue [-- --count N] [--workers N] [--job-ms N] [--busy-ms N] [--json]`
 *
 * A dispatcher (this process) and a pool of worker processes. Jobs go out on an
 * at-least-once `queue` channel (`delivery: 'at-least-once'`), where each job is taken by one
 * worker and stays that worker's until it acknowledges it; results come back on a `topic`.
 * When a third of the results are in, this process SIGKILLs one worker, and the run still
 * ends with every job's result. The kill is made by the results handler, at the result that
 * makes a third, not by the publishing loop: results come in batches, and a dispatcher short
 * of CPU may get all the rest in one batch, between two turns of the loop. The stop jobs go
 * out only once the victim is dead (a stop job goes to whichever worker takes it).
 * `--busy-ms N` keeps this process busy for N ms once the jobs are out, as a dispatcher
 * starved of CPU would be: the results then wait, and come in one batch.
 *
 * Nothing here re-sends or times out: the queue does it. A worker acknowledges a job after
 * it published the job's result; the job a killed worker held (taken, maybe done, not
 * acknowledged) goes back to the queue when its death is noticed (within about 100 ms) and
 * another worker receives it, marked `redelivered`. So a job's result can come twice only if
 * the worker that did it first died before acknowledging it: the dispatcher keys results by
 * job id, keeps the first, and checks that every second one is for a redelivered job.
 *
 * Both channels survive the kill whatever the worker was doing: a consumer killed mid-take
 * leaves a record of the take that the others complete, and a producer killed mid-publish
 * never wedges a channel (in `semaphore` mode, used for the results topic here, the next
 * process to take the robust mutex repairs the dead one's claim).
 */
import { createHash } from 'node:crypto';
import { open } from 'shmring';
import { beside, fmt, options, Run } from '../lib/processes.mjs';

const opts = options(
  { count: 2000 },
  {
    workers: { type: 'string' },
    'job-ms': { type: 'string' },
    'busy-ms': { type: 'string' },
  },
);
const workerCount = Number(opts.workers ?? 4);
const jobMs = Number(opts['job-ms'] ?? 2);
const busyMs = Number(opts['busy-ms'] ?? 0);
if (workerCount < 2) throw new Error('--workers must be at least 2 (one of them is killed)');

const run = new Run();
const jobsName = run.channel('workq', 'jobs');
const resultsName = run.channel('workq', 'results');
const jobs = open(jobsName, {
  create: true,
  kind: 'queue',
  sync: 'lockfree',
  delivery: 'at-least-once',
});
const results = open(resultsName, { create: true, kind: 'topic', sync: 'semaphore' });

const expectedValue = (n) => createHash('sha256').update(`job-${n}`).digest('hex').slice(0, 16);

/** id → { worker, value } of the first result for each job. */
const accepted = new Map();
const perWorker = new Array(workerCount).fill(0);
/** Results for a job whose result had come already. */
let duplicates = 0;
/** Of those, results of a job that was not redelivered (none may be). */
let unexplained = 0;
/** Results of jobs that had been delivered before (to the killed worker). */
let redelivered = 0;
let wrong = 0;
let wake = () => {};
/** The worker processes (set once they are started). */
let workers = [];
const victim = 1;
const killAt = Math.floor(opts.count / 3);
/** `{ worker, pid, doneBefore }` once the victim was sent its SIGKILL. */
let killed;
/** SIGKILLs the victim, once: called from the results handler, at the result it waits for. */
const killVictim = () => {
  const child = workers[victim].child;
  killed = { worker: victim, pid: child.pid, doneBefore: perWorker[victim] };
  child.kill('SIGKILL');
  console.log(
    `killed worker ${victim} (pid ${child.pid}) with SIGKILL after ${fmt(accepted.size)} results`,
  );
};

// Subscribe to results before any worker can publish one (a topic delivers what is
// published after a subscriber joined).
const resultsSub = results.messages().subscribe((r) => {
  if (r.redelivered) redelivered++;
  if (accepted.has(r.id)) {
    duplicates++; // done again after its first worker died: discarded
    if (!r.redelivered) unexplained++;
  } else {
    if (r.value !== expectedValue(r.id)) wrong++;
    accepted.set(r.id, { worker: r.worker, value: r.value });
    perWorker[r.worker]++;
    // Here, not in the loop below: the loop looks only between batches of results.
    if (killed === undefined && accepted.size >= killAt) killVictim();
  }
  wake();
});

console.log(
  `work-queue: ${fmt(opts.count)} jobs on an at-least-once queue, ${workerCount} worker processes, ` +
    `${jobMs} ms per job`,
);
try {
  workers = Array.from({ length: workerCount }, (_, w) =>
    run.node(beside(import.meta.url, 'worker.mjs'), [jobsName, resultsName, w, jobMs], {
      readyLine: 'ready',
    }),
  );
  await Promise.all(workers.map((w) => w.ready));

  let next = 0;
  let busy = busyMs > 0;
  while (accepted.size < opts.count) {
    // Jobs go out as fast as the queue takes them (a full ring makes `send` wait).
    while (next < opts.count && jobs.publish({ id: next, n: next })) next++;
    if (busy && next === opts.count) {
      busy = false;
      const until = Date.now() + busyMs;
      while (Date.now() < until); // --busy-ms: the workers go on, the results wait for us
    }
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 20);
    });
  }

  // Every job is accounted for (so the victim was sent its SIGKILL: at a third of them).
  // Once it is dead, stop the others, one stop message each: any worker alive may take any
  // stop job, so a victim still alive could take one and leave a live worker without one.
  const victimExit = await workers[victim].result.then(
    () => 'exited normally',
    () => 'SIGKILL',
  );
  const live = workers.filter((_, w) => w !== victim);
  for (let i = 0; i < live.length; i++) await jobs.send({ stop: true });
  const reports = await Promise.all(live.map((w) => w.result));

  const ids = [...accepted.keys()].sort((a, b) => a - b);
  const allIds = ids.length === opts.count && ids.every((id, i) => id === i);
  const ok = allIds && wrong === 0 && unexplained === 0 && victimExit === 'SIGKILL';
  console.log('');
  console.log(`results accepted: ${fmt(accepted.size)} of ${fmt(opts.count)} jobs`);
  console.log(`job ids:          ${allIds ? `exactly 0..${opts.count - 1}` : 'INCOMPLETE'}`);
  console.log(`wrong values:     ${wrong}`);
  console.log(`redelivered:      ${redelivered} (results of jobs the killed worker held)`);
  console.log(
    `duplicates:       ${duplicates} (a job done twice, its first worker killed before it acknowledged; the second result discarded)`,
  );
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
        unexplained,
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
