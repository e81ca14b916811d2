/**
 * Node's child_process IPC channel with `serialization: 'advanced'` (V8 structured clone):
 * the producer forks the consumer and calls `child.send(value)` per message — objects as
 * they are (no msgpack: the serializer is the codec), raw payloads as Buffers. Flow
 * control the documented way: the send callback says when a message was written.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { config, control, produce, quote, rawMessage, receiver } from '../lib.mjs';

const role = process.argv[2];
const cfg = config();

if (role === 'consumer') {
  const ctl = control();
  const r = receiver(ctl, cfg.latencyCount, cfg.latencySkip);
  process.on('message', (v) => {
    if (r.take(v)) process.exit(0);
  });
  r.start();
  ctl.send({ event: 'ready' });
} else {
  const ctl = control();
  // The consumer's control socket is our fd 4; it becomes its fd 3.
  const child = fork(fileURLToPath(import.meta.url), ['consumer'], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 4, 'ipc'],
    env: { ...process.env, BENCH_CTRL_FD: '3' },
  });
  const template = rawMessage(cfg.bytes || 16, 0, 0);
  const make =
    cfg.kind === 'raw'
      ? (seq, ts) => {
          template.writeDoubleLE(seq, 0);
          template.writeDoubleLE(ts, 8);
          return template; // serialized (copied) by send() before it returns
        }
      : quote;
  let inflight = 0;
  let wake;
  const onSent = () => {
    inflight--;
    if (wake !== undefined && inflight <= 256) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  const send = (seq, ts) => {
    inflight++;
    if (child.send(make(seq, ts), onSent) && inflight < 4096) return undefined;
    return new Promise((r) => {
      wake = r;
    });
  };
  await produce(ctl, cfg, send, async () => {
    while (inflight > 0) await new Promise((r) => setImmediate(r));
  });
  await new Promise((r) => child.once('exit', r));
  process.exit(0);
}
