// One line per command module: each exports `register(program)`.
import type { Command } from 'commander';

type Register = (program: Command) => void;
const modules: Register[] = [];

export function registerCommands(program: Command): void {
  for (const register of modules) register(program);
}
