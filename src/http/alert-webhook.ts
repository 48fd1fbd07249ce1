import type { Logger } from 'pino';
import { type IncidentTouch, recordDelivery } from '../alerts/intake.ts';
import type { AlertSource, RejectedAlert } from '../alerts/parse.ts';
import type { Metrics } from '../metrics.ts';
import type { Db } from '../store/db.ts';
import { verifyBearer, verifyHmac } from './auth.ts';
import { BodyTooLarge, type Route, readBody, sendJson } from './routes.ts';

/**
 * POST /alerts/<source>. The answer follows what senders do with it: Alertmanager retries 5xx and
 * never 4xx, so a payload we cannot use gets 400 with the reason (after it is recorded), and only
 * a failure of the store itself gets 503, so the sender tries again later: a retry of a payload
 * the bot cannot use would fail the same way forever. A delivery some of whose alerts are usable
 * gets 202 with the others listed under `rejected`: a 4xx would tell the sender that nothing
 * arrived, and re-sending would not make the rejected alerts any better.
 */

export const MAX_ALERT_BODY = 1024 * 1024;

export interface AlertWebhookDeps {
  db: Db;
  token: string | undefined;
  channel: string;
  log: Logger;
  metrics: Metrics;
  /** Called after a delivery queued Slack messages (the outbox pump posts them). */
  onAccepted?: () => void;
  /** Called for each incident a delivery opened (a disk incident starts collection). */
  onIncidentOpened?: (touch: IncidentTouch) => void;
}

function authorized(
  source: AlertSource,
  headers: Record<string, string | string[] | undefined>,
  body: Buffer,
  token: string,
): boolean {
  const header = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  if (verifyBearer(header('authorization'), token)) return true;
  if (verifyHmac(body, header('x-nightshift-signature'), token)) return true;
  if (source === 'grafana') {
    // Grafana's optional HMAC: hex of HMAC-SHA256 over "timestamp:body" when it sends a timestamp.
    const signature = header('x-grafana-alert-signature') ?? header('x-grafana-alerting-signature');
    const timestamp = header('x-grafana-alerting-timestamp') ?? header('x-grafana-alert-timestamp');
    if (verifyHmac(body, signature, token, timestamp)) return true;
  }
  return false;
}

/** Rejected alerts listed in an answer; a delivery of thousands of bad alerts gets a short answer. */
const REJECTED_ANSWERED = 100;

function rejectedAnswer(rejected: readonly RejectedAlert[]) {
  return { rejected: rejected.slice(0, REJECTED_ANSWERED), rejectedCount: rejected.length };
}

export function alertWebhookRoute(source: AlertSource, deps: AlertWebhookDeps): Route {
  return {
    path: `/alerts/${source}`,
    method: ['POST'],
    async handler(req, res) {
      let body: Buffer;
      try {
        body = await readBody(req, MAX_ALERT_BODY);
      } catch (error) {
        // The rest of the body is not read: the connection must not carry another request.
        res.setHeader('connection', 'close');
        if (error instanceof BodyTooLarge)
          return sendJson(res, 413, { error: `payload over ${MAX_ALERT_BODY} bytes` });
        return sendJson(res, 400, { error: 'could not read the request body' });
      }
      if (!deps.token) {
        deps.log.warn({ source }, 'alert webhook refused: ALERT_WEBHOOK_TOKEN is not set');
        return sendJson(res, 401, { error: 'alert webhooks are off: the bot has no ALERT_WEBHOOK_TOKEN' });
      }
      if (!authorized(source, req.headers, body, deps.token)) {
        deps.metrics.inc('nightshift_alerts_received_total', { source, result: 'unauthorized' });
        return sendJson(res, 401, { error: 'missing or wrong bearer token or signature' });
      }
      try {
        const result = await recordDelivery(deps.db, source, body, { channel: deps.channel });
        if (result.status === 'invalid') {
          deps.metrics.inc('nightshift_alerts_received_total', { source, result: 'invalid' });
          deps.log.info(
            { source, delivery: result.delivery, alertId: result.alertId, reason: result.error },
            'invalid alert payload recorded',
          );
          return sendJson(res, 400, {
            error: result.error,
            recorded: result.alertId,
            delivery: result.delivery,
            ...rejectedAnswer(result.rejected),
          });
        }
        if (result.rejected.length > 0) {
          deps.metrics.inc(
            'nightshift_alerts_received_total',
            { source, result: 'rejected' },
            result.rejected.length,
          );
          deps.log.warn(
            {
              source,
              delivery: result.delivery,
              rejected: result.rejected.length,
              first: result.rejected[0],
            },
            'alerts of a delivery rejected; the others were stored',
          );
        }
        deps.metrics.inc('nightshift_alerts_received_total', { source, result: 'accepted' }, result.alerts);
        if (result.alerts > 0) deps.onAccepted?.();
        for (const touch of result.incidents) if (touch.opened) deps.onIncidentOpened?.(touch);
        if (result.duplicates > 0)
          deps.metrics.inc(
            'nightshift_alerts_received_total',
            { source, result: 'duplicate' },
            result.duplicates,
          );
        return sendJson(res, 202, { ...result, ...rejectedAnswer(result.rejected) });
      } catch (error) {
        deps.metrics.inc('nightshift_alerts_received_total', { source, result: 'error' });
        deps.log.error({ err: error, source }, 'could not store an alert delivery');
        return sendJson(res, 503, { error: 'could not store the alert; try again' });
      }
    },
  };
}
