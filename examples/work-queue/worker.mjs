/**
 * A worker: `node worker.mjs <jobs queue> <results topic> <worker id> <job ms>`. Takes one
 * job at a time from the at-least-once queue, does it (a SHA-256 of the job's input, then
 * `job ms` of simulated I/O), publishes `{ id, worker, value, redelivered }` on the results
 * topic, and only then acknowledges the job. Stops at a `{ stop: true }` job and prints one
 * JSON line with how many jobs it did.
 *
 * It receives with `receiveSync`, which blocks this process's thread while it waits: a
 * worker process has nothing else to do, and `receiveSync` takes exactly one message per
 * call, so a worker never holds jobs that an idle one could do. (A `for await` loop or
 * `messages()` takes a batch per native call: right for streams, wrong for a job queue.)
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
let done = 0;
let stop = false;
/** Does the job of delivery `d` (if any), publishes its result, then acknowledges it. */
const work = async (d) => {
  if (d === undefined) return;
  const job = d.value;
  if (job.stop) {
    d.ack();
    stop = true;
    return;
  }
  const value = createHash('sha256').update(`job-${job.n}`).digest('hex').slice(0, 16);
  if (jobMs > 0) Atomics.wait(pause, 0, 0, jobMs); // the job's "I/O"
  await results.send({ id: job.id, worker, value, redelivered: d.redelivered });
  d.ack(); // after the result is out: a worker killed before this leaves the job to another
  done++;
};
// Join the queue now (a consumer slot), without waiting; a job may already be there.
await work(jobs.receiveSync(0));
console.log('ready');
while (!stop) await work(jobs.receiveSync(1000));
jobs.close();
results.close();
console.log(JSON.stringify({ role: 'worker', worker, done }));
