/** `node dist/train.js …` = `rdpp train …`. */
import { runCli } from './main.js';

runCli(['train', ...process.argv.slice(2)]);
