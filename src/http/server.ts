import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { type Route, sendJson } from './routes.ts';

/**
 * The HTTP server when Slack is off (no tokens): the same routes Bolt serves as customRoutes, so
 * alerts are recorded and health answered with or without a Slack workspace.
 */
export function startHttpServer(routes: readonly Route[], port: number, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = routes.find((r) => r.path === path);
    if (!route) return sendJson(res, 404, { error: 'not found' });
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.includes(req.method ?? 'GET'))
      return sendJson(res, 405, { error: `use ${methods.join(' or ')}` });
    Promise.resolve(route.handler(req, res)).catch((error: unknown) => {
      log.error({ err: error, path }, 'route failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}
