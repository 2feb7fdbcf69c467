#!/usr/bin/env node
// Runs the compiled CLI (npm run build, done by `npm install`).
import '../dist/cli/run.js';
