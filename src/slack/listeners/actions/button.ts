import type { AllMiddlewareArgs, BlockButtonAction, SlackActionMiddlewareArgs } from '@slack/bolt';

export type ButtonArgs = SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs;

/** Tells the clicker alone, leaving the message with the button as it is. */
export type Say = (text: string) => Promise<unknown>;

/**
 * A button's listener: acked first (Slack shows the clicker an error after 3 s without one); the
 * handler answers the clicker alone through `say`, and a failure is logged and answered with
 * `onFailure` rather than left silent.
 */
export function buttonListener(onFailure: string, handle: (args: ButtonArgs, say: Say) => Promise<void>) {
  return async (args: ButtonArgs) => {
    await args.ack();
    const say: Say = (text) => args.respond({ response_type: 'ephemeral', replace_original: false, text });
    try {
      await handle(args, say);
    } catch (error) {
      args.logger.error(error);
      await say(onFailure);
    }
  };
}
