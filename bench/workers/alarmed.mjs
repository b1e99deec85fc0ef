// The object of the alarm bench: `load()` has it loaded with its database open, `arm(t)` sets its alarm; its alarm()
// counts itself in the HITS binding, which the child that runs it (alarms.mjs) watches.
import { DurableObject } from "cloudflare:workers";

export class Alarmed extends DurableObject {
  async load() {
    return this.ctx.storage.getAlarm();
  }

  async arm(time) {
    await this.ctx.storage.setAlarm(time);
    return (await this.ctx.storage.getAlarm()) === time;
  }

  alarm() {
    this.env.HITS.hit();
  }
}
