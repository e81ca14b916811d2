/**
 * The benchmark's outputs from one run: the markdown table (with the issue's targets as
 * ratios of that same run), the SVG chart, drawn by hand (no plotting dependency), and the
 * smoke check of the JSON's shape.
 */

/** Transports that count as "peers" for the ratios (what users run today). */
const PEERS = ['pipe', 'pipe-many', 'uds', 'ipc', 'zeromq', 'nats', 'redis'];

const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const fmt = (n, d = 1) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
    : '–';
const mb = (n) =>
  !Number.isFinite(n) ? '–' : n >= 1000 ? `${fmt(n / 1000, 2)} GB/s` : `${fmt(n, 1)} MB/s`;

/** The best peer cell of a payload (by msg/s). */
function bestPeer(results, payloadId) {
  let best;
  for (const r of results) {
    if (r.payloadId !== payloadId || r.error || !PEERS.includes(r.transportId)) continue;
    if (!best || r.msgPerSec > best.msgPerSec) best = r;
  }
  return best;
}

const cell = (results, t, p) =>
  results.find((r) => r.transportId === t && r.payloadId === p && !r.error);

/** The fastest shmring lock-free cell of a payload (any API variant). */
function bestShm(results, payloadId) {
  let best;
  for (const r of results) {
    if (r.payloadId !== payloadId || r.error || !r.transportId.startsWith('shmring')) continue;
    if (r.transportId === 'shmring-sem') continue;
    if (!best || r.msgPerSec > best.msgPerSec) best = r;
  }
  return best;
}

const lat = (r, d = 1) => `p50 ${fmt(r.p50us, d)} µs, p99 ${fmt(r.p99us, d)} µs (${r.transport})`;

/** The issue's targets, each with this run's figure and whether it is met. */
export function targets(report) {
  const { results, rust } = report;
  const out = [];
  const want = (target, r, figure, met) =>
    out.push({ target, figure: r ? figure(r) : 'not measured', met: r ? met(r) : undefined });
  const obj = bestShm(results, 'obj');
  const peer = bestPeer(results, 'obj');
  want(
    '40-byte objects JS→JS ≥ 3,000,000 msg/s',
    obj,
    (r) => `${fmtInt(r.msgPerSec)} msg/s (${r.transport})`,
    (r) => r.msgPerSec >= 3e6,
  );
  want(
    '40-byte objects ≥ 8× the best peer (pipe, batched pipe, UDS, ZeroMQ, IPC, NATS, Redis)',
    obj && peer ? obj : undefined,
    (r) =>
      `${fmt(r.msgPerSec / peer.msgPerSec, 2)}× (best peer: ${peer.transport}, ${fmtInt(peer.msgPerSec)} msg/s)`,
    (r) => r.msgPerSec >= 8 * peer.msgPerSec,
  );
  // Per-message publish into messages(), against what the codec allows (issue target).
  const ceiling = codecCeiling(report);
  const perMessage = cell(results, 'shmring', 'obj');
  want(
    "40-byte objects, publish → messages() ≥ 85% of the codec's ceiling",
    ceiling ? perMessage : undefined,
    (r) =>
      `${fmtInt(r.msgPerSec)} ÷ ${fmtInt(ceiling.msgPerSec)} = ${fmt((100 * r.msgPerSec) / ceiling.msgPerSec, 1)}%`,
    (r) => r.msgPerSec >= 0.85 * ceiling.msgPerSec,
  );
  want(
    'raw 64 B Buffers ≥ 5,000,000 msg/s',
    bestShm(results, '64B'),
    (r) => `${fmtInt(r.msgPerSec)} msg/s (${r.transport})`,
    (r) => r.msgPerSec >= 5e6,
  );
  want(
    'raw 64 KiB Buffers ≥ 5 GB/s',
    bestShm(results, '64KiB'),
    (r) => `${mb(r.mbPerSec)} (${r.transport})`,
    (r) => r.mbPerSec >= 5000,
  );
  const spsc = rust
    .filter((r) => r.transportId === 'rust-shmring' && r.case === 'SPSC' && r.payloadId === '64B')
    .sort((a, b) => b.msgPerSec - a.msgPerSec)[0];
  want(
    'Rust SPSC 64 B across processes ≥ 50,000,000 msg/s',
    spsc,
    (r) => `${fmtInt(r.msgPerSec)} msg/s (${r.transport})`,
    (r) => r.msgPerSec >= 5e7,
  );
  // The same figure one `try_publish` per message (no batch): the harder form of the target.
  const oneByOne = rust.find(
    (r) =>
      r.transportId === 'rust-shmring' &&
      r.case === 'SPSC' &&
      r.payloadId === '64B' &&
      r.batch === 1,
  );
  want(
    'Rust SPSC 64 B across processes, `try_publish` one by one, ≥ 50,000,000 msg/s',
    oneByOne,
    (r) => `${fmtInt(r.msgPerSec)} msg/s (${r.transport})`,
    (r) => r.msgPerSec >= 5e7,
  );
  const spin = rust.find((r) => r.transportId === 'rust-shmring' && r.latency === 'spin');
  want(
    'one-way latency p50 ≤ 5 µs, Rust consumer spinning on `try_recv`',
    spin,
    (r) => lat(r, 2),
    (r) => r.p50us <= 5,
  );
  // Node latencies come from the wake-up benchmark where it ran (a waiting subscriber, each
  // strategy), else from the paced phase of the 40-byte object cells.
  const wake = (receive, wait, payload = 'quote') => {
    const w = (report.wakeup ?? []).find(
      (x) =>
        x.receive === receive && x.wait === wait && (x.payload ?? 'quote') === payload && !x.error,
    );
    const what = payload === 'quote' ? '' : `, ${payload} 64 B`;
    return w && { ...w, transport: `wake-up, ${receive} · wait '${wait}'${what}` };
  };
  const recv = wake('receiveSync', 'spin') ?? cell(results, 'shmring-recv', 'obj');
  want(
    "one-way latency p50 ≤ 5 µs, Node `receiveSync` (`wait: 'spin'`)",
    recv,
    (r) => lat(r),
    (r) => r.p50us <= 5,
  );
  const recvRaw = wake('receiveSync', 'spin', 'raw');
  want(
    "one-way latency p50 ≤ 5 µs, Node `receiveSync` (`wait: 'spin'`), raw 64 B: no msgpack",
    recvRaw,
    (r) => lat(r),
    (r) => r.p50us <= 5,
  );
  const blockRust = rust.find((r) => r.transportId === 'rust-shmring' && r.latency === 'blocking');
  want(
    'one-way latency p50 ≤ 50 µs, Rust blocking `recv_timeout`',
    blockRust,
    (r) => lat(r, 2),
    (r) => r.p50us <= 50,
  );
  const blockJs = wake('messages', 'block') ?? cell(results, 'shmring', 'obj');
  want(
    "one-way latency p50 ≤ 50 µs, Node `messages()` (`wait: 'block'`)",
    blockJs,
    (r) => lat(r),
    (r) => r.p50us <= 50,
  );
  const blockSync = wake('receiveSync', 'block');
  want(
    "one-way latency p50 ≤ 50 µs, Node `receiveSync` (`wait: 'block'`)",
    blockSync,
    (r) => lat(r),
    (r) => r.p50us <= 50,
  );
  const all = [spin, recv, recvRaw, blockRust, blockJs, blockSync].filter(Boolean);
  out.push({
    target: 'p99 ≤ 4× p50 (each latency above)',
    figure: all.map((r) => `${fmt(r.p99us / r.p50us, 1)}×`).join(', ') || 'not measured',
    met: all.length ? all.every((r) => r.p99us <= 4 * r.p50us) : undefined,
  });
  return out;
}

/**
 * The msg/s no transport can beat with the default msgpack codec: one message per
 * max(pack, decode) ns, from this run's micro-benchmarks. Undefined without them.
 */
export function codecCeiling(report) {
  const ns = (group, task) =>
    (report.micro ?? []).find((r) => r.group === group && r.task === task)?.nsPerMessage;
  // The codec's fastest way to pack when measured (its flat-object path, as `publish`
  // does; msgpackr into a reused buffer in runs before it): the ceiling is what the codec
  // itself allows, not a slower use of it.
  const packs = [
    ns('codec', 'msgpackr pack'),
    ns('codec', 'msgpackr pack, reused buffer, no view (what publish did)'),
    ns('codec', 'msgpackr pack, reused buffer, no view (what publish does)'),
    ns('codec', 'the msgpack codec, flat object (what publish does)'),
  ].filter((x) => x > 0);
  const packNs = packs.length ? Math.min(...packs) : undefined;
  const decodeNs = ns(
    'decode 1024 drained',
    'walk frames + the msgpack codec (what messages() does)',
  );
  if (!(packNs > 0 && decodeNs > 0)) return undefined;
  const msgPerSec = 1e9 / Math.max(packNs, decodeNs);
  return { packNs, decodeNs, msgPerSec, peer: bestPeer(report.results, 'obj') };
}

/** The whole report as markdown. */
export function markdown(report) {
  const { machine: m, results, rust, micro, skipped } = report;
  const L = [];
  L.push(`# shmring benchmark (${m.mode} run, ${m.date.slice(0, 16).replace('T', ' ')} UTC)`);
  L.push('');
  L.push(
    `${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}` +
      (m.commit ? `, commit ${m.commit}` : '') +
      `; 1-minute load average ${m.loadavg1} when the run started` +
      (m.loadavgEnd
        ? `, ${m.loadavgEnd[0]} when it ended (5 and 15 minutes: ${m.loadavgEnd[1]}, ${m.loadavgEnd[2]}).`
        : '.'),
  );
  const load = Math.max(m.loadavg1, m.loadavgEnd?.[0] ?? 0, m.loadavgEnd?.[1] ?? 0);
  if (load > 0.5) {
    L.push('');
    L.push(
      `> Other work was running (load up to ${load} on ${m.cores} cores): figures, above all ` +
        'tail latencies and spinning cases, are lower than on a quiet machine.',
    );
  }
  L.push('');
  L.push('## Node.js producer process → Node.js consumer process');
  L.push('');
  L.push(
    'Throughput: the producer sends as fast as the transport takes messages for a fixed time, ' +
      'then an end marker; msg/s = messages received ÷ (time the consumer saw the end marker − ' +
      'time the producer started), both from `process.hrtime.bigint()` (CLOCK_MONOTONIC, one ' +
      'clock for all processes). MB = 10⁶ bytes of payload. CPU s = user + system time of ' +
      'both processes during that phase. Latency: one-way, a second phase of paced messages ' +
      '(one every `gap` µs, stamped just before the send call, the consumer subtracting on ' +
      'delivery to its handler): p50 / p99 / p99.9 in µs. "× best peer" = shmring ÷ the ' +
      'fastest of pipe, Unix socket, child_process IPC and ZeroMQ for that payload.',
  );
  L.push('');
  L.push(
    '| payload | transport | msg/s | MB/s | p50 µs | p99 µs | p99.9 µs | CPU s | × best peer |',
  );
  L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|');
  const payloads = [...new Set(results.map((r) => r.payloadId))];
  for (const pid of payloads) {
    const best = bestPeer(results, pid);
    for (const r of results.filter((x) => x.payloadId === pid)) {
      if (r.error) {
        L.push(
          `| ${r.payload} | ${r.transport} | failed: ${r.error.replaceAll('|', '/')} ||||||| |`,
        );
        continue;
      }
      const ratio =
        r.transportId.startsWith('shmring') && best
          ? `${fmt(r.msgPerSec / best.msgPerSec, 2)}×`
          : '';
      L.push(
        `| ${r.payload} | ${r.transport} | ${fmtInt(r.msgPerSec)} | ${fmt(r.mbPerSec, 1)} | ` +
          `${fmt(r.p50us)} | ${fmt(r.p99us)} | ${fmt(r.p999us)} | ${fmt(r.cpuSec, 2)} | ${ratio} |`,
      );
    }
  }
  const bad = results.filter((r) => !r.error && (r.lost || r.outOfOrder || r.received !== r.sent));
  for (const r of bad) {
    L.push('');
    L.push(
      `**${r.transport} · ${r.payload}: sent ${r.sent}, received ${r.received}, lost ${r.lost}, out of order ${r.outOfOrder}.**`,
    );
  }
  const wakeup = report.wakeup ?? [];
  if (wakeup.length) {
    L.push('');
    L.push('## Wake-up latency by wait strategy, Node.js → Node.js across processes');
    L.push('');
    L.push(
      `\`bench/wakeup.mjs\`: a producer process publishes a ~40-byte msgpack quote every ` +
        `${fmtInt(wakeup.find((w) => w.gapUs)?.gapUs)} µs (sleeping until 80 µs before each, ` +
        'then spinning, like the Rust paced producer), stamped with ' +
        'CLOCK_MONOTONIC just before `publish`; the consumer process, waiting for it, ' +
        "subtracts in its handler. `messages()`: the subscription's native waiter thread " +
        'waits with the strategy and wakes the event loop; `receiveSync`: the JS thread itself ' +
        'waits in the call. `adaptive` polls ~50 µs then sleeps on the futex, `spin` never ' +
        'sleeps, `block` sleeps at once. Consumer cores: its CPU time ÷ wall time while ' +
        "measuring (1.00 = one core busy). Publish p50: how long the producer's `publish` call took " +
        '(stamp to return; with a sleeping consumer it includes the futex wake). The last row sends ' +
        'a raw 64-byte Buffer instead of the quote: the latency without msgpack. The first tenth ' +
        'of the samples is not counted.',
    );
    L.push('');
    L.push(
      '| receive path | wait | payload | p50 µs | p99 µs | p99.9 µs | consumer cores | publish p50 µs | samples |',
    );
    L.push('|---|---|---|--:|--:|--:|--:|--:|--:|');
    for (const w of wakeup) {
      if (w.error) {
        L.push(
          `| \`${w.receive}\` | \`${w.wait}\` | ${w.payload ?? 'quote'} | failed: ${w.error.replaceAll('|', '/')} ||||| |`,
        );
        continue;
      }
      L.push(
        `| \`${w.receive}\` | \`${w.wait}\` | ${w.payload === 'raw' ? 'raw 64 B' : 'quote'} | ` +
          `${fmt(w.p50us)} | ${fmt(w.p99us)} | ${fmt(w.p999us)} | ${fmt(w.consumerCores, 2)} | ` +
          `${fmt(w.publishP50us)} | ${fmtInt(w.n)} |`,
      );
    }
  }
  if (rust.length) {
    L.push('');
    L.push('## Rust crate across processes (`crates/shmring/examples/bench_xproc.rs`)');
    L.push('');
    L.push(
      'The binary re-spawns itself for each role. shmring: producers call `try_publish` per ' +
        'message (or `try_publish_many` where it says batch), spinning briefly then ' +
        '`wait_for_space` when full; the consumer `drain_into`s a 1 MiB buffer, spinning ' +
        'briefly then sleeping on the futex when empty. pipe: `pipe(2)` between the two ' +
        'children, `[len u32][payload]` frames through a 64 KiB `BufWriter`/`BufReader`. Latency rows: one-way, ' +
        'CLOCK_MONOTONIC stamped in the payload, paced sends, consumer spinning (`spin`) or sleeping (`blocking`). ' +
        'Cases with one producer (shmring and pipe alike) pin the consumer and the producer to a CPU each ' +
        '(`sched_setaffinity`; "pinned" in the JSON), so that the scheduler cannot run both on one CPU; ' +
        'the 4-producer cases are left to the scheduler.',
    );
    L.push('');
    L.push('| case | payload | msg/s | MB/s | p50 µs | p99 µs | p99.9 µs | CPU s |');
    L.push('|---|---|--:|--:|--:|--:|--:|--:|');
    for (const r of rust) {
      if (r.error) {
        L.push(`| ${r.transport ?? r.case} | | failed: ${r.error} ||||| |`);
        continue;
      }
      L.push(
        `| ${r.transport} | ${r.payload} | ${fmtInt(r.msgPerSec)} | ${fmt(r.mbPerSec, 1)} | ` +
          `${fmt(r.p50us, 2)} | ${fmt(r.p99us, 2)} | ${fmt(r.p999us, 2)} | ${fmt(r.cpuSec, 2)} |`,
      );
    }
  }
  if (micro.length) {
    L.push('');
    L.push('## Micro-benchmarks (tinybench, one process)');
    L.push('');
    L.push(
      'Each iteration handles 1,024 messages of ~40 B (~300 B where the group says so); ns per ' +
        'message = iteration time ÷ 1,024. The decode choices run in a bench of their own, after the rest. ' +
        'The native publish goes to a channel with no subscriber, so it never waits for room.',
    );
    L.push('');
    L.push('| group | task | messages/s | ns per message | ± % |');
    L.push('|---|---|--:|--:|--:|');
    for (const r of micro) {
      if (r.error) {
        L.push(`| ${r.group} | ${r.task} | failed: ${r.error} | | |`);
        continue;
      }
      L.push(
        `| ${r.group} | ${r.task} | ${fmtInt(r.messagesPerSec)} | ${fmt(r.nsPerMessage, 1)} | ${fmt(r.rme, 1)} |`,
      );
    }
  }
  const { replay, durable, acks } = report.channels ?? {};
  if (acks?.summary) {
    const a = acks.summary;
    L.push('');
    L.push('## Queues with and without acknowledgements');
    L.push('');
    L.push(
      `One producer process publishes ${fmtInt(acks.count)} 40-byte msgpack objects into a queue that two ` +
        "consumer processes read with `messages()`, `delivery: 'at-most-once'` and `'at-least-once'` " +
        `alternately (which goes first alternates too); median of ${acks.rounds} rounds. Redelivery: a ` +
        'consumer process holds one unacknowledged delivery and is SIGKILLed; the time from the kill ' +
        `until another consumer (a \`records()\` stream) receives it again, over ${acks.kills} kills.`,
    );
    L.push('');
    L.push('| queue | msg/s | ÷ at-most-once |');
    L.push('|---|--:|--:|');
    L.push(`| at-most-once | ${fmtInt(a.atMostOnceMsgPerS)} | 1.00 |`);
    L.push(`| at-least-once | ${fmtInt(a.atLeastOnceMsgPerS)} | ${fmt(a.ratio, 2)} |`);
    L.push('');
    L.push(
      `Redelivery after a consumer's death: p50 ${fmt(a.redeliveryP50Ms, 1)} ms, max ${fmt(a.redeliveryMaxMs, 1)} ms.`,
    );
  }
  if (replay?.summary?.length) {
    L.push('');
    L.push('## Replay from `earliest`');
    L.push('');
    L.push(
      `A 64 MiB topic holds ${fmtInt(replay.count)} messages; then either \`messages({ from: 'earliest' })\` ` +
        '(joined after the publishes: every record below the tail it joined at is validated after ' +
        'its copy, and skipped messages are counted) or a `messages()` subscription that joined ' +
        `before them reads all of them, alternating which runs first; median of ${replay.rounds} rounds. ` +
        'GB/s counts bytes of payload (raw) or of records (msgpack).',
    );
    L.push('');
    L.push(
      '| payload | replay msg/s | replay GB/s | joined before, msg/s | replay ÷ joined before |',
    );
    L.push('|---|--:|--:|--:|--:|');
    for (const s of replay.summary) {
      L.push(
        `| ${s.payload} | ${fmtInt(s.replayMsgPerS)} | ${fmt(s.replayGbPerS, 3)} | ${fmtInt(s.liveMsgPerS)} | ${fmt(s.ratio, 2)} |`,
      );
    }
  }
  if (durable?.rows?.length) {
    L.push('');
    L.push('## Channels on disk, by `flush`');
    L.push('');
    L.push(
      `One process publishes ${durable.payload}-byte raw messages into a topic with no subscriber for ` +
        `${durable.cellMs} ms per cell, cells in a rotated order each round, median of ${durable.rounds} rounds; ` +
        `the disk directory is on ${durable.diskFs}.`,
    );
    L.push('');
    L.push('| cell | msg/s | MB/s | µs per message |');
    L.push('|---|--:|--:|--:|');
    for (const r of durable.rows) {
      L.push(
        `| ${r.cell} | ${fmtInt(r.msgPerSec)} | ${fmt(r.mbPerSec, 1)} | ${fmt(r.usPerMsg, 3)} |`,
      );
    }
  }
  L.push('');
  L.push('## Targets (issue 6), as figures of this run');
  L.push('');
  L.push('| target | this run | met |');
  L.push('|---|---|---|');
  for (const t of targets(report)) {
    L.push(
      `| ${t.target} | ${t.figure} | ${t.met === undefined ? '–' : t.met ? 'yes' : '**no**'} |`,
    );
  }
  const ceiling = codecCeiling(report);
  if (ceiling) {
    L.push('');
    L.push(
      `The codec's own ceiling for 40-byte objects, from the micro-benchmarks of this run: ` +
        `the msgpack codec packs one in ${fmt(ceiling.packNs, 0)} ns (its fastest way measured: msgpackr into a fresh or a reused buffer, or its own flat-object path) and messages() decodes one from a ` +
        `drained batch in ${fmt(ceiling.decodeNs, 0)} ns, so no transport can carry more than ` +
        `${fmtInt(ceiling.msgPerSec)} msg/s with producer and consumer each on a core of their own` +
        (ceiling.peer
          ? ` (${fmt(ceiling.msgPerSec / ceiling.peer.msgPerSec, 1)}× the best peer, ${ceiling.peer.transport}).`
          : '.'),
    );
  }
  if (skipped.length) {
    L.push('');
    L.push('Skipped:');
    for (const s of skipped) L.push(`- ${s.transport}: ${s.reason}`);
  }
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------
// SVG

export const COLORS = {
  shmring: '#d62728',
  'shmring-many': '#e377c2',
  'shmring-recv': '#bcbd22',
  'shmring-iter': '#dbdb8d',
  'shmring-view': '#8b0000',
  'shmring-many-view': '#f7b6d2',
  'shmring-sem': '#ff7f0e',
  pipe: '#1f77b4',
  uds: '#2ca02c',
  ipc: '#9467bd',
  zeromq: '#8c564b',
  nats: '#17becf',
  redis: '#7f7f7f',
};

export const esc = (s) =>
  String(s).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** Powers of ten covering [lo, hi]. */
function decades(lo, hi) {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const out = [];
  for (let e = a; e <= b; e++) out.push(10 ** e);
  return out;
}

const sizeLabel = (b) =>
  b >= 1 << 20 ? `${b / (1 << 20)} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`;
export const unit = (v, u) =>
  v >= 1e9
    ? `${v / 1e9} G${u}`
    : v >= 1e6
      ? `${v / 1e6} M${u}`
      : v >= 1e3
        ? `${v / 1e3} k${u}`
        : `${v} ${u}`;

/**
 * Two log–log panels from one run: msg/s and MB/s against raw payload size, one line per
 * transport, and the 40-byte-object cell as a labelled point on the left of the first.
 */
export function svg(report) {
  const results = report.results.filter((r) => !r.error);
  const W = 960;
  const H = 470;
  const panels = [
    { key: 'msgPerSec', title: 'messages per second', u: 'msg/s', x0: 70 },
    {
      key: 'mbPerSec',
      title: 'payload throughput (MB/s, 10⁶ B)',
      u: 'B/s',
      scale: 1e6,
      x0: 70 + W / 2,
    },
  ];
  const pw = W / 2 - 110;
  const top = 60;
  const ph = H - top - 130;
  const raw = results.filter((r) => r.payloadId !== 'obj');
  const sizes = [...new Set(raw.map((r) => r.bytes))].sort((a, b) => a - b);
  const transports = [...new Map(results.map((r) => [r.transportId, r.transport])).entries()];
  const o = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
  );
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  const m = report.machine;
  o.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc('One producer process → one consumer process, Node.js, by payload size (log–log)')}</text>`,
  );
  o.push(
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.mode} run ${m.date.slice(0, 10)}`)}</text>`,
  );
  if (sizes.length === 0) {
    o.push('</svg>');
    return o.join('\n');
  }
  const xLo = sizes[0] / 1.6;
  const xHi = sizes[sizes.length - 1] * 1.6;
  for (const P of panels) {
    const vals = raw.map((r) => r[P.key]).filter((v) => v > 0);
    const obj = results.filter((r) => r.payloadId === 'obj').map((r) => r[P.key]);
    const all = [...vals, ...obj].filter((v) => v > 0);
    const ticks = decades(Math.min(...all), Math.max(...all));
    const yLo = ticks[0];
    const yHi = ticks[ticks.length - 1];
    const X = (b) => P.x0 + ((Math.log(b) - Math.log(xLo)) / (Math.log(xHi) - Math.log(xLo))) * pw;
    const Y = (v) =>
      top + ph - ((Math.log(v) - Math.log(yLo)) / (Math.log(yHi) - Math.log(yLo))) * ph;
    o.push(
      `<text x="${P.x0 + pw / 2}" y="${top - 6}" text-anchor="middle" font-weight="600">${esc(P.title)}</text>`,
    );
    o.push(`<rect x="${P.x0}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    for (const t of ticks) {
      const y = Y(t);
      o.push(`<line x1="${P.x0}" x2="${P.x0 + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`);
      o.push(
        `<text x="${P.x0 - 6}" y="${y + 4}" text-anchor="end" fill="#444">${esc(unit(P.scale ? t * P.scale : t, P.u))}</text>`,
      );
    }
    for (const s of sizes) {
      const x = X(s);
      o.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + ph}" stroke="#f3f3f3"/>`);
      o.push(
        `<text x="${x}" y="${top + ph + 16}" text-anchor="middle" fill="#444">${esc(sizeLabel(s))}</text>`,
      );
    }
    o.push(
      `<text x="${P.x0 + pw / 2}" y="${top + ph + 34}" text-anchor="middle" fill="#444">raw Buffer payload size</text>`,
    );
    for (const [id] of transports) {
      const pts = raw
        .filter((r) => r.transportId === id && r[P.key] > 0)
        .sort((a, b) => a.bytes - b.bytes)
        .map((r) => [X(r.bytes), Y(r[P.key])]);
      const color = COLORS[id] ?? '#000';
      const width = id.startsWith('shmring') ? 3 : 1.8;
      if (pts.length > 1) {
        o.push(
          `<polyline fill="none" stroke="${color}" stroke-width="${width}" points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`,
        );
      }
      for (const [x, y] of pts)
        o.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`);
      const ob = results.find((r) => r.transportId === id && r.payloadId === 'obj');
      if (ob && ob[P.key] > 0) {
        const x = X(ob.bytes);
        const y = Y(ob[P.key]);
        o.push(
          `<rect x="${(x - 4).toFixed(1)}" y="${(y - 4).toFixed(1)}" width="8" height="8" fill="#fff" stroke="${color}" stroke-width="2"><title>${esc(`${ob.transport}, ${ob.payload}: ${Math.round(ob[P.key]).toLocaleString('en-US')} ${P.key === 'msgPerSec' ? 'msg/s' : 'MB/s'}`)}</title></rect>`,
        );
      }
    }
  }
  // Legend, under both panels, wrapped into rows.
  let lx = 70;
  let ly = H - 62;
  for (const [id, label] of transports) {
    const w = 44 + label.length * 6.6;
    if (lx + w > W - 20) {
      lx = 70;
      ly += 18;
    }
    const color = COLORS[id] ?? '#000';
    o.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
    );
    o.push(`<text x="${lx + 28}" y="${ly + 4}">${esc(label)}</text>`);
    lx += w;
  }
  o.push(
    `<text x="70" y="${H - 12}" fill="#555">${esc('Lines: raw Buffers. Hollow squares: the ~40-byte msgpack object (5 fields), encoded and decoded on both sides.')}</text>`,
  );
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// The smoke check

/** Fields every cell of latest.json has, as finite numbers. */
const CELL_NUMBERS = ['msgPerSec', 'mbPerSec', 'p50us', 'p99us', 'p999us', 'cpuSec', 'bytes'];

/**
 * The smoke check of a parsed latest.json: every cell has the issue's fields, as finite
 * numbers, and no error, and nothing was lost or reordered; the wake-up benchmark has a row
 * per receive path and wait strategy (7) with its percentiles. Returns the problems found.
 */
export function checkShape(data) {
  const problems = [];
  const cells = data.cells;
  if (!Array.isArray(cells) || cells.length === 0) return ['latest.json has no cells'];
  if (typeof data.machine?.cpu !== 'string') problems.push('machine info missing');
  const wakeup = data.wakeup ?? [];
  if (wakeup.length !== 7) problems.push(`${wakeup.length} wake-up rows, not 7`);
  for (const w of wakeup) {
    if (w.error) problems.push(`wake-up ${w.receive} · ${w.wait}: ${w.error}`);
    else if (![w.p50us, w.p99us, w.consumerCores].every(Number.isFinite) || !(w.n > 0))
      problems.push(`wake-up ${w.receive} · ${w.wait}: ${JSON.stringify(w)}`);
  }
  for (const c of cells) {
    if (c.error) {
      problems.push(`${c.transport} · ${c.payload}: ${c.error}`);
      continue;
    }
    for (const k of CELL_NUMBERS) {
      if (typeof c[k] !== 'number' || !Number.isFinite(c[k]))
        problems.push(`${c.transport} · ${c.payload}: ${k} = ${c[k]}`);
    }
    for (const k of ['transport', 'payload']) {
      if (typeof c[k] !== 'string') problems.push(`cell without ${k}`);
    }
    if (c.lost !== 0 || c.outOfOrder !== 0 || c.received !== c.sent) {
      problems.push(
        `${c.transport} · ${c.payload}: sent ${c.sent}, received ${c.received}, lost ${c.lost}, out of order ${c.outOfOrder}`,
      );
    }
  }
  return problems;
}
