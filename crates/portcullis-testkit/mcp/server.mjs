// A small MCP server (the official SDK, streamable HTTP, stateless) for Portcullis tests.
// Usage: node server.mjs <port> [json|sse]. Prints {"ready": port} when listening. Tools:
// lookup_customer {id} -> {id, email}; delete_customer {id}; list_orders {}. GET /seen (no MCP) returns
// the tool calls that reached it and the Authorization headers it saw.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const port = Number(process.argv[2]);
const json = process.argv[3] === 'json';
const seen = { calls: [], authorization: [] };

function build() {
  const server = new McpServer({ name: 'crm', version: '1.0.0' });
  server.registerTool('lookup_customer', {
    description: 'A customer by id',
    inputSchema: { id: z.string() },
  }, async ({ id }) => {
    seen.calls.push({ tool: 'lookup_customer', id });
    return { content: [{ type: 'text', text: JSON.stringify({ id, email: `customer${id}@example.com` }) }] };
  });
  server.registerTool('delete_customer', {
    description: 'Deletes a customer',
    inputSchema: { id: z.string() },
  }, async ({ id }) => {
    seen.calls.push({ tool: 'delete_customer', id });
    return { content: [{ type: 'text', text: `deleted ${id}` }] };
  });
  server.registerTool('list_orders', { description: 'Orders' }, async () => {
    seen.calls.push({ tool: 'list_orders' });
    return { content: [{ type: 'text', text: '[]' }] };
  });
  return server;
}

http.createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/seen') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(seen));
    return;
  }
  seen.authorization.push(req.headers.authorization ?? null);
  let body = '';
  for await (const chunk of req) body += chunk;
  let parsed;
  try { parsed = body ? JSON.parse(body) : undefined; } catch { parsed = undefined; }
  const server = build();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: json });
  res.on('close', () => { transport.close(); server.close(); });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, parsed);
  } catch (e) {
    if (!res.headersSent) { res.writeHead(500); res.end(String(e)); }
  }
}).listen(port, '127.0.0.1', () => console.log(JSON.stringify({ ready: port })));
