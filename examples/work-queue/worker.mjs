/**
 * A worker: `node worker.mjs <jobs queue> <results topic> <worker id> <job ms>`. Takes one
 * job at a time from the queue, does it (a SHA-256 of the job's input, then `job ms` of
 * simulated I/O), and publishes `{ id, attempt, worker, value }` on the results topic.
 * Stops at a `{ stop: true }` job and prints one JSON line with how many jobs it did.
 *
 * It receives with `receiveSync`, which blocks this process's thread while it waits: a
 * worker process has nothing else to do, and `receiveSync` takes exactly one message per
 * call, so a worker never hoards jobs that an idle one could do. (A `for await` loop or
 * `messages()` drains a batch per native call: right for streams, wrong for a job queue.)
 */
import { createHash } from 'node:crypto';
import { open } from 'shmring';

const [jobsName, resultsName, workerArg, jobMsArg] = process.argv.slice(2);
if (jobsName === undefined || resultsName === undefined) {
  throw new Error('usage: worker.mjs <jobs queue> <results topic> <worker id> <job ms>');
}
const worker = Number(workerArg ?? 0);
const jobMs = Number(jobMsArg ?? 2);
const pause = new Int32Array(new SharedArrayBuffer(4));

const jobs = open(jobsName);
const results = open(resultsName);
jobs.receiveSync(0); // join the queue now (takes a consumer slot), without waiting
console.log('ready');

let done = 0;
for (;;) {
  const m = jobs.receiveSync(1000);
  if (m === undefined) continue;
  const job = m.value;
  if (job.stop) break;
  const value = createHash('sha256').update(`job-${job.n}`).digest('hex').slice(0, 16);
  if (jobMs > 0) Atomics.wait(pause, 0, 0, jobMs); // the job's "I/O"
  await results.send({ id: job.id, attempt: job.attempt, worker, value });
  done++;
}
jobs.close();
results.close();
console.log(JSON.stringify({ role: 'worker', worker, done }));
