// A small MCP client (the official SDK, streamable HTTP) for Portcullis tests.
// Usage: node client.mjs <url> <token> '<calls as JSON: [{"name": ..., "arguments": {...}}]>'
// Prints one JSON object: {tools: [names], calls: [{name, result} | {name, error: {code, message, data}}]}.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, token, callsJson] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: 'portcullis-test-agent', version: '1.0.0' });
const out = { tools: null, calls: [] };
try {
  await client.connect(transport);
  out.tools = (await client.listTools()).tools.map((t) => t.name);
  for (const call of JSON.parse(callsJson ?? '[]')) {
    try {
      const result = await client.callTool(call);
      out.calls.push({ name: call.name, result });
    } catch (e) {
      out.calls.push({ name: call.name, error: { code: e.code ?? null, message: e.message, data: e.data ?? null } });
    }
  }
} catch (e) {
  out.error = String(e?.message ?? e);
}
console.log(JSON.stringify(out));
await client.close().catch(() => {});
