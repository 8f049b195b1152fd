/** A minimal SSE client over node:http for tests: frames as they arrive, comments too. */
import { request, type IncomingMessage } from 'node:http';

export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

export interface SseClient {
  status: number;
  headers: IncomingMessage['headers'];
  events: SseEvent[];
  comments: string[];
  /** Resolves when the server ends the stream (or the socket closes). */
  ended: Promise<void>;
  isEnded(): boolean;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let ended = false;
      let buf = '';
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        comments: [],
        ended: new Promise((r) => {
          const done = () => {
            ended = true;
            r();
          };
          res.on('end', done);
          res.on('close', done);
          res.on('error', done);
        }),
        isEnded: () => ended,
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let cut;
        while ((cut = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev: SseEvent = { id: undefined, event: undefined, data: '' };
          let isEvent = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) client.comments.push(line.slice(1).trim());
            else {
              const at = line.indexOf(':');
              const field = at === -1 ? line : line.slice(0, at);
              const value = at === -1 ? '' : line.slice(at + 1).replace(/^ /, '');
              isEvent = true;
              if (field === 'id') ev.id = value;
              else if (field === 'event') ev.event = value;
              else if (field === 'data') ev.data = ev.data ? `${ev.data}\n${value}` : value;
            }
          }
          if (isEvent) client.events.push(ev);
        }
      });
      resolve(client);
    });
    req.on('error', reject);
    req.end();
  });
}
