/**
 * `shmring bridge export|import`: the CLI of `bridge(...)` (src/bridge/). Runs until SIGINT
 * or SIGTERM; the counters go to stderr every `--report-ms` (text, or JSON lines with
 * `--json`).
 */
import { type Command, Option } from 'commander';
import { type BridgeOptions, bridge } from '../index.js';

type Action = <A extends unknown[]>(
  command: string,
  body: (...args: A) => Promise<void> | void,
) => (...args: A) => Promise<void>;

interface Flags {
  nats: string;
  subject?: string;
  jetstream?: boolean;
  stream?: string;
  durable?: string;
  create?: boolean;
  noCreate?: boolean;
  dir?: string;
  origin?: string;
  maxInFlight?: string;
  oversize?: 'count' | 'error';
  codec?: string;
  reportMs?: string;
  json?: boolean;
}

/** Runs one bridge until a signal; the exit status is 1 if it failed. */
async function runBridge(o: BridgeOptions): Promise<void> {
  const b = await bridge(o);
  // Connected and set up (stream, consumer, subscription): scripts may go on.
  process.stdout.write('ready\n');
  const stop = () => void b.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await b.done;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function common(f: Flags): Omit<BridgeOptions, 'direction' | 'channel' | 'subject'> {
  // bridge() names a bad value.
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  return {
    nats: f.nats,
    jetstream: f.jetstream,
    stream: f.stream,
    durable: f.durable,
    dir: f.dir,
    origin: f.origin,
    maxInFlight: num(f.maxInFlight),
    oversize: f.oversize,
    codec: f.codec,
    reportMs: num(f.reportMs),
    json: f.json,
  };
}

function options(c: Command, dirOption: () => Option): Command {
  return c
    .requiredOption('--nats <url>', 'the NATS server, e.g. nats://127.0.0.1:4222')
    .option('--jetstream', 'through JetStream: at-least-once, duplicates removed')
    .option('--stream <name>', 'the JetStream stream (default: from the subject)')
    .option('--durable <name>', 'the named subscriber (export) or durable consumer (import)')
    .option('--origin <id>', 'this host in the Shmring-Origin header (default hostname:dir)')
    .option('--report-ms <ms>', 'milliseconds between counter reports on stderr, 0 none', '5000')
    .option('--json', 'counter reports as JSON lines')
    .addOption(dirOption());
}

/** Adds `bridge export` and `bridge import` to `program`. */
export function addBridge(program: Command, action: Action, dirOption: () => Option): void {
  const b = program
    .command('bridge')
    .description(
      'carry a channel to and from NATS (core or JetStream); see README "Bridging to NATS"',
    );
  options(
    b
      .command('export')
      .description('publish every message of a local channel to a NATS subject')
      .argument('<channel>', 'the local channel')
      .requiredOption('--subject <subject>', 'the NATS subject to publish to'),
    dirOption,
  )
    .option('--no-create', 'JetStream: a missing stream is an error instead of being created')
    .option('--max-in-flight <n>', 'publishes not yet flushed at once (core)', '1024')
    .addOption(
      new Option('--oversize <what>', 'a message over max_payload').choices(['count', 'error']),
    )
    .option('--codec <label>', 'the channel codec, carried in the Shmring-Codec header')
    .action(
      action('bridge export', (channel: string, f: Flags & { create: boolean }) =>
        runBridge({
          ...common(f),
          // commander's --no-create sets create=false; an exporter never creates the channel.
          create: false,
          noCreate: f.create === false,
          direction: 'export',
          channel,
          subject: f.subject as string,
        }),
      ),
    );
  options(
    b
      .command('import')
      .description('publish every NATS message of a subject into a local channel')
      .argument('<subject>', 'the NATS subject (wildcards allowed)')
      .argument('<channel>', 'the local channel')
      .option('--create', 'create the local channel if missing'),
    dirOption,
  )
    .addOption(
      new Option('--oversize <what>', "a message over the channel's maxMessageSize").choices([
        'count',
        'error',
      ]),
    )
    .action(
      action('bridge import', (subject: string, channel: string, f: Flags) =>
        runBridge({
          ...common(f),
          create: f.create === true,
          direction: 'import',
          channel,
          subject,
        }),
      ),
    );
}
