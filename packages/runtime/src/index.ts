// Process helpers shared by the apps and packages: stopping, timeouts, throttled logging, settled promises.
export { CLOSE_GRACE_MS, exitOnStopSignals, listenFailure } from "./shutdown.js";
export { settle, type Settled } from "./settle.js";
export { throttled, withTimeout } from "./timeout.js";
