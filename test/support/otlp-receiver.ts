// A small OTLP/HTTP trace receiver: takes what the SDK exports to /v1/traces, in either
// encoding the specification defines (http/protobuf and http/json), as spans to look at.
import { createServer, type Server } from "node:http";
import protobuf from "protobufjs";

export type ReceivedSpan = {
  service: string;
  /** The exporting process's resource attributes. */
  resource: Record<string, unknown>;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
  status: number;
};

// The fields of opentelemetry/proto/collector/trace/v1 that the tests read.
const root = protobuf.Root.fromJSON({
  nested: {
    AnyValue: {
      oneofs: { value: { oneof: ["stringValue", "boolValue", "intValue", "doubleValue"] } },
      fields: { stringValue: { type: "string", id: 1 }, boolValue: { type: "bool", id: 2 }, intValue: { type: "int64", id: 3 }, doubleValue: { type: "double", id: 4 } },
    },
    KeyValue: { fields: { key: { type: "string", id: 1 }, value: { type: "AnyValue", id: 2 } } },
    Resource: { fields: { attributes: { rule: "repeated", type: "KeyValue", id: 1 } } },
    Link: { fields: { traceId: { type: "bytes", id: 1 }, spanId: { type: "bytes", id: 2 }, attributes: { rule: "repeated", type: "KeyValue", id: 4 } } },
    Status: { fields: { code: { type: "int32", id: 3 } } },
    Span: {
      fields: {
        traceId: { type: "bytes", id: 1 },
        spanId: { type: "bytes", id: 2 },
        parentSpanId: { type: "bytes", id: 4 },
        name: { type: "string", id: 5 },
        kind: { type: "int32", id: 6 },
        attributes: { rule: "repeated", type: "KeyValue", id: 9 },
        links: { rule: "repeated", type: "Link", id: 13 },
        status: { type: "Status", id: 15 },
      },
    },
    ScopeSpans: { fields: { spans: { rule: "repeated", type: "Span", id: 2 } } },
    ResourceSpans: { fields: { resource: { type: "Resource", id: 1 }, scopeSpans: { rule: "repeated", type: "ScopeSpans", id: 2 } } },
    ExportTraceServiceRequest: { fields: { resourceSpans: { rule: "repeated", type: "ResourceSpans", id: 1 } } },
  },
});
const Request = root.lookupType("ExportTraceServiceRequest");

type KV = { key: string; value?: { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number } };
type RawSpan = { traceId?: string; spanId?: string; parentSpanId?: string; name: string; kind?: number | string; attributes?: KV[]; links?: { traceId: string; spanId: string; attributes?: KV[] }[]; status?: { code?: number | string } };
type RawRequest = { resourceSpans?: { resource?: { attributes?: KV[] }; scopeSpans?: { spans?: RawSpan[] }[] }[] };

const attrs = (kvs: KV[] = []) => Object.fromEntries(kvs.map((kv) => [kv.key, kv.value?.stringValue ?? kv.value?.boolValue ?? (kv.value?.intValue !== undefined ? Number(kv.value.intValue) : kv.value?.doubleValue)]));
// protobufjs' toObject gives bytes as base64; OTLP/JSON gives ids as hex.
const hexOf = (id: string | undefined, base64: boolean) => (!id ? "" : base64 ? Buffer.from(id, "base64").toString("hex") : id.toLowerCase());
const SPAN_KINDS = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"];
const kindOf = (k: number | string | undefined) => (typeof k === "string" ? Math.max(0, SPAN_KINDS.indexOf(k)) : (k ?? 0));

function spansOf(req: RawRequest, base64: boolean): ReceivedSpan[] {
  return (req.resourceSpans ?? []).flatMap((rs) => {
    const resource = attrs(rs.resource?.attributes);
    const service = String(resource["service.name"] ?? "");
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        service,
        resource,
        traceId: hexOf(s.traceId, base64),
        spanId: hexOf(s.spanId, base64),
        parentSpanId: hexOf(s.parentSpanId, base64),
        name: s.name,
        kind: kindOf(s.kind),
        attributes: attrs(s.attributes),
        links: (s.links ?? []).map((l) => ({ traceId: hexOf(l.traceId, base64), spanId: hexOf(l.spanId, base64), attributes: attrs(l.attributes) })),
        status: Number(s.status?.code ?? 0),
      })),
    );
  });
}

export type OtlpReceiver = {
  url: string;
  spans: ReceivedSpan[];
  /** Content types of the exports received, one per request. */
  encodings: string[];
  close: () => Promise<void>;
};

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const encodings: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const type = String(req.headers["content-type"] ?? "").split(";")[0]!.trim();
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      try {
        if (type === "application/x-protobuf") {
          const decoded = Request.toObject(Request.decode(body), { bytes: String, longs: String }) as RawRequest;
          spans.push(...spansOf(decoded, true));
          res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
        } else if (type === "application/json") {
          spans.push(...spansOf(JSON.parse(body.toString("utf8")) as RawRequest, false));
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
        } else {
          res.writeHead(415).end();
          return;
        }
        encodings.push(type);
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    encodings,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
