/**
 * Typed loader of the native addon built by `napi build` into `native/`.
 * @internal
 */
import { createRequire } from 'node:module';
import type * as Binding from '../native/binding.js';

export type {
  NativeChannel,
  NativeChannelInfo,
  NativeListing,
  NativeOpenOptions,
  NativeParticipant,
  NativeSubscription,
  NativeSummary,
  NativeSyncSubscription,
} from '../native/binding.js';

const require = createRequire(import.meta.url);

function load(): typeof Binding {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `shmring runs on Linux x86_64 only (this is ${process.platform} ${process.arch})`,
    );
  }
  try {
    return require('../native/shmring.linux-x64-gnu.node') as typeof Binding;
  } catch (e) {
    throw new Error(
      `shmring's native addon is missing or broken (${(e as Error).message}); run \`npm run build\``,
      { cause: e },
    );
  }
}

/** The native addon. */
export const native: typeof Binding = load();
