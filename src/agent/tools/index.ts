import { lastCollection } from './last-collection.ts';
import { listFindings } from './list-findings.ts';
import { proposeScript } from './propose-script.ts';
import { proposeSql } from './propose-sql.ts';
import { searchEvidence } from './search-evidence.ts';
import { stringsAround } from './strings-around.ts';
import type { AgentTool } from './tool.ts';

/** Every tool the agent has: four that read (run at once), two that only propose. */
export const AGENT_TOOLS: readonly AgentTool[] = [
  listFindings,
  searchEvidence,
  stringsAround,
  lastCollection,
  proposeScript,
  proposeSql,
];
