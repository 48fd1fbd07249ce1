import type { ConversationMessage, ToolUseBlock } from './client.ts';

/**
 * The agent's conversation as the model is sent it: the messages are stored one by one
 * (store/agent.ts), and consecutive messages of one role are sent to the model as one.
 */

/** The messages as the API takes them: consecutive messages of one role merged into one. */
export function forModel(messages: readonly ConversationMessage[]): ConversationMessage[] {
  const out: ConversationMessage[] = [];
  for (const m of messages) {
    const last = out.at(-1);
    if (last && last.role === m.role) last.content = [...last.content, ...m.content];
    else out.push({ role: m.role, content: [...m.content] });
  }
  return out;
}

/** tool_use blocks of the last assistant message that no tool_result answers (a crash mid-turn). */
export function unansweredToolUses(messages: readonly ConversationMessage[]): ToolUseBlock[] {
  const last = messages.at(-1);
  if (last?.role !== 'assistant') return [];
  return last.content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
}
