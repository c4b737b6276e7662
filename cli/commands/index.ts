// One line per command module: each exports `register(program)`.
import type { Command } from 'commander';
import { register as agent } from './agent';
import { register as coordinator } from './coordinator';
import { register as demo } from './demo';
import { register as evaluate } from './evaluate';
import { register as inferSchema } from './infer-schema';
import { register as fetchModel } from './fetch-model';
import { register as keygen } from './keygen';
import { register as privacy } from './privacy';
import { register as sample } from './sample';
import { register as simulateBanks } from './simulate-banks';
import { register as status } from './status';

const modules: ((program: Command) => void)[] = [simulateBanks, inferSchema, keygen, coordinator, agent, sample, fetchModel, evaluate, status, privacy, demo];

export function registerCommands(program: Command): void {
  for (const register of modules) register(program);
}
