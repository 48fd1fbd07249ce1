/**
 * Slack's Block Kit limits, as its reference gives them (api.slack.com/reference/block-kit), for
 * the blocks of one message: what Slack would refuse with `invalid_blocks`. The fake Slack checks
 * every chat.postMessage and chat.update with it, and renderer tests call it directly.
 */
type Node = Record<string, unknown>;

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

function textObject(where: string, value: unknown, max: number, problems: string[], plainOnly = false) {
  if (value === undefined) return;
  const o = value as Node;
  const text = str(o?.text);
  if (!o || typeof o !== 'object' || text === undefined) {
    problems.push(`${where}: not a text object`);
    return;
  }
  if (o.type !== 'plain_text' && (plainOnly || o.type !== 'mrkdwn'))
    problems.push(`${where}: type ${String(o.type)}${plainOnly ? ', must be plain_text' : ''}`);
  if (text.length === 0) problems.push(`${where}: empty text`);
  if (text.length > max) problems.push(`${where}: ${text.length} characters, over ${max}`);
}

function confirmObject(where: string, value: unknown, problems: string[]) {
  if (value === undefined) return;
  const o = value as Node;
  textObject(`${where}.title`, o.title, 100, problems, true);
  textObject(`${where}.text`, o.text, 300, problems);
  textObject(`${where}.confirm`, o.confirm, 30, problems, true);
  textObject(`${where}.deny`, o.deny, 30, problems, true);
  if (o.style !== undefined && o.style !== 'primary' && o.style !== 'danger')
    problems.push(`${where}.style: ${String(o.style)}`);
}

function element(where: string, e: Node, problems: string[]) {
  if (e.type === 'button') {
    textObject(`${where}.text`, e.text, 75, problems, true);
    if ((str(e.action_id) ?? '').length > 255) problems.push(`${where}.action_id over 255`);
    if ((str(e.value) ?? '').length > 2000) problems.push(`${where}.value over 2000`);
    const url = str(e.url);
    if (url !== undefined && (url.length > 3000 || !/^https?:\/\//.test(url)))
      problems.push(`${where}.url: not an http(s) URL of at most 3000 characters`);
    if (e.style !== undefined && e.style !== 'primary' && e.style !== 'danger')
      problems.push(`${where}.style: ${String(e.style)}`);
    confirmObject(`${where}.confirm`, e.confirm, problems);
  }
}

export function blockKitProblems(blocks: readonly unknown[]): string[] {
  const problems: string[] = [];
  if (blocks.length > 50) problems.push(`${blocks.length} blocks, over 50`);
  const ids = new Set<string>();
  blocks.forEach((raw, i) => {
    const b = raw as Node;
    const at = `blocks[${i}] (${String(b?.type)})`;
    const id = str(b.block_id);
    if (id !== undefined) {
      if (id.length > 255) problems.push(`${at}.block_id over 255`);
      if (ids.has(id)) problems.push(`${at}.block_id ${id} repeated`);
      ids.add(id);
    }
    switch (b.type) {
      case 'section': {
        textObject(`${at}.text`, b.text, 3000, problems);
        const fields = (b.fields as unknown[] | undefined) ?? [];
        if (fields.length > 10) problems.push(`${at}: ${fields.length} fields, over 10`);
        for (const [j, f] of fields.entries()) textObject(`${at}.fields[${j}]`, f, 2000, problems);
        if (b.text === undefined && fields.length === 0) problems.push(`${at}: neither text nor fields`);
        if (b.accessory) element(`${at}.accessory`, b.accessory as Node, problems);
        break;
      }
      case 'header':
        textObject(`${at}.text`, b.text, 150, problems, true);
        break;
      case 'context': {
        const elements = (b.elements as Node[] | undefined) ?? [];
        if (elements.length === 0 || elements.length > 10)
          problems.push(`${at}: ${elements.length} elements, 1 to 10`);
        elements.forEach((e, j) => {
          if (e.type === 'mrkdwn' || e.type === 'plain_text')
            textObject(`${at}.elements[${j}]`, e, 3000, problems);
        });
        break;
      }
      case 'actions': {
        const elements = (b.elements as Node[] | undefined) ?? [];
        if (elements.length === 0 || elements.length > 25)
          problems.push(`${at}: ${elements.length} elements, 1 to 25`);
        const actionIds = new Set<string>();
        elements.forEach((e, j) => {
          element(`${at}.elements[${j}]`, e, problems);
          const action = str(e.action_id);
          if (action !== undefined) {
            if (actionIds.has(action)) problems.push(`${at}: action_id ${action} repeated`);
            actionIds.add(action);
          }
        });
        break;
      }
      case 'divider':
      case 'rich_text':
      case 'image':
      case 'file':
      case 'input':
      case 'video':
        break;
      default:
        problems.push(`${at}: unknown block type`);
    }
  });
  return problems;
}
