/**
 * JetStream set-up shared by both directions: make sure the stream exists (or say it is
 * missing with `noCreate`), and the importer's durable consumer.
 */
import { AckPolicy, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { makeError } from '../errors.js';
import { oneLine } from './connect.js';
import type { Resolved } from './options.js';

/** Whether `e` is JetStream's "stream not found" (API error 10059). */
function notFound(e: unknown, code: number): boolean {
  const c = (e as { code?: unknown; api_error?: { err_code?: unknown } })?.api_error?.err_code;
  return c === code || (e instanceof Error && /not found/i.test(e.message));
}

/** Makes sure stream `o.stream` exists and takes `subject`; creates it unless `noCreate`. */
export async function ensureStream(
  jsm: JetStreamManager,
  o: Resolved,
  subject: string,
): Promise<void> {
  try {
    await jsm.streams.info(o.stream);
    return;
  } catch (e) {
    if (!notFound(e, 10059)) {
      throw makeError(
        'Io',
        `JetStream stream ${o.stream}: ${oneLine(e)} (is the server running with -js?)`,
        e,
      );
    }
  }
  if (o.noCreate) {
    throw makeError('NotFound', `JetStream stream ${o.stream} does not exist (--no-create)`);
  }
  try {
    await jsm.streams.add({ name: o.stream, subjects: [subject] });
  } catch (e) {
    // Another bridge may have created it meanwhile.
    try {
      await jsm.streams.info(o.stream);
    } catch {
      throw makeError(
        'Io',
        `cannot create JetStream stream ${o.stream} for ${subject}: ${oneLine(e)}`,
        e,
      );
    }
  }
}

/** Makes sure the durable pull consumer `o.durable` of `o.stream` exists (explicit acks). */
export async function ensureConsumer(jsm: JetStreamManager, o: Resolved): Promise<void> {
  try {
    await jsm.consumers.info(o.stream, o.durable);
    return;
  } catch (e) {
    if (!notFound(e, 10014))
      throw makeError('Io', `JetStream consumer ${o.durable}: ${oneLine(e)}`, e);
  }
  await jsm.consumers.add(o.stream, {
    durable_name: o.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: o.subject,
    ack_wait: 30_000_000_000,
    max_ack_pending: 4096,
  });
}
