// WuKongIM's JavaScript SDK (npm wukongimjssdk 1.0.4, unchanged) as a test drives it: one user per
// process (the SDK is a singleton), commands as JSON lines on stdin, what the SDK reports as JSON lines
// on stdout. Node has no WebSocket of its own in version 20: the `ws` package stands in, as in a browser.
//
// Commands: {"op":"connect","addr","uid","token","deviceFlag"?,"heartbeatMs"?}, {"op":"send","channel",
// "type","text"}, {"op":"disconnect"}, {"op":"exit"}.
// Events: {"event":"ready"}, {"event":"status","status","reason"}, {"event":"sendack",...},
// {"event":"message",...}.

import WebSocket from "ws";
import { createInterface } from "node:readline";

globalThis.WebSocket = WebSocket;
// The SDK logs with console.log; stdout carries only events.
console.log = (...args) => process.stderr.write(args.join(" ") + "\n");
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const { default: WKSDK } = await import("wukongimjssdk");
const sdk = WKSDK.shared();

sdk.connectManager.addConnectStatusListener((status, reason) => emit({ event: "status", status, reason: reason ?? null }));
sdk.chatManager.addMessageStatusListener((ack) =>
  emit({ event: "sendack", clientSeq: ack.clientSeq, messageID: String(ack.messageID), messageSeq: ack.messageSeq, reasonCode: ack.reasonCode }),
);
sdk.chatManager.addMessageListener((m) =>
  emit({
    event: "message",
    messageID: String(m.messageID),
    messageSeq: m.messageSeq,
    clientMsgNo: m.clientMsgNo,
    fromUID: m.fromUID,
    channelID: m.channel?.channelID,
    channelType: m.channel?.channelType,
    contentType: m.contentType,
    text: m.content?.text ?? null,
    send: !!m.send,
  }),
);

createInterface({ input: process.stdin }).on("line", (line) => {
  const c = JSON.parse(line);
  switch (c.op) {
    case "connect":
      sdk.config.addr = c.addr;
      sdk.config.uid = c.uid;
      sdk.config.token = c.token;
      if (c.deviceFlag !== undefined) sdk.config.deviceFlag = c.deviceFlag;
      if (c.heartbeatMs) sdk.config.heartbeatInterval = c.heartbeatMs;
      sdk.connect();
      break;
    case "send":
      sdk.chatManager.send(sdk.newMessageText(c.text), sdk.newChannel(c.channel, c.type));
      break;
    case "disconnect":
      sdk.disconnect();
      break;
    case "exit":
      process.exit(0);
  }
});
emit({ event: "ready" });
