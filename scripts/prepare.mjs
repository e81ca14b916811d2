#!/usr/bin/env node
// `prepare` (npm runs it after `npm install`/`npm ci` in this folder, and in `npm pack` and
// `npm publish` after `prepack`): a tarball gets the portable addon (`npm run build:portable`,
// glibc 2.17 floor, README "Install"), and so does CI (`CI=true`), whose `npm test` builds that
// one anyway; an install in a clone gets the native build (`npm run build`), which needs no
// toolchain download.
import { spawnSync } from 'node:child_process';

const packing = ['pack', 'publish'].includes(process.env.npm_command ?? '');
const script = packing || process.env.CI === 'true' ? 'build:portable' : 'build';
const r = spawnSync('npm', ['run', '--silent', script], { stdio: 'inherit' });
process.exit(r.status ?? 1);
