import type { FastifyInstance } from 'fastify';
import type { JobRecord } from '../../shared/job-record.js';
import type { JobResult } from '../../shared/result.js';
import type { BatchStatus } from '../batch-status.js';
import type { ApiDeps } from './api-deps.js';
import { escapeHtml as e } from './html.js';
import { presignGet } from './presign.js';
import { visibleTo } from './tenant-scope.js';

/**
 * `/batches/:id`: the batch gallery, rendered on the server. One card per job with its
 * image(s) (`<img src="presigned URL">`), prompt, seed, size and state; failures with
 * their reasons; the batch's progress, megapixels and cost. 120 cards a page; the page
 * refreshes itself while the batch runs.
 */
export const GALLERY_PAGE_SIZE = 120;

interface Card {
  id: string;
  record: JobRecord | undefined;
  images: { url: string; key: string; contentType: string }[];
}

function card(c: Card): string {
  const r = c.record;
  const state = r?.state ?? 'pending';
  const imgs = c.images.length
    ? c.images.map((img) => `<a href="${e(img.url)}"><img src="${e(img.url)}" alt="${e(r?.prompt ?? c.id)}" loading="lazy" data-key="${e(img.key)}"></a>`).join('')
    : `<div class="placeholder ${e(state)}">${e(state)}</div>`;
  return `<figure class="card ${e(state)}" data-job="${e(c.id)}">${imgs}<figcaption>
<p class="prompt">${e(r?.prompt ?? '')}</p>
<dl><dt>job</dt><dd>${e(c.id)}</dd><dt>tenant</dt><dd class="tenant">${e(r?.tenant ?? 'default')}</dd><dt>state</dt><dd class="state">${e(state)}</dd>${r?.seed !== undefined ? `<dt>seed</dt><dd>${e(r.seed)}</dd>` : ''}${r?.size ? `<dt>size</dt><dd>${e(r.size.replace('x', '×'))}</dd>` : ''}</dl>
${r?.error ? `<p class="error">${e(r.error)}</p>` : ''}</figcaption></figure>`;
}

function page(b: BatchStatus, cards: Card[], pageNo: number, pages: number): string {
  const c = b.counts;
  const done = c.completed + c.failed + c.cancelled + c.expired;
  const pct = b.total ? Math.round((done / b.total) * 100) : 0;
  const nav = pages > 1
    ? `<nav>${Array.from({ length: pages }, (_, i) => (i + 1 === pageNo ? `<strong>${i + 1}</strong>` : `<a href="?page=${i + 1}">${i + 1}</a>`)).join(' ')}</nav>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>batch ${e(b.batchId)} — fluxq</title>
${b.state === 'running' ? '<meta http-equiv="refresh" content="5">' : ''}
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;background:#fafaf9;color:#1c1917}
header{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:baseline}h1{font-size:1.3rem;margin:0}
.progress{width:24rem;height:.6rem;background:#e7e5e4;border-radius:4px;overflow:hidden}.progress span{display:block;height:100%;background:#16a34a}
.stats span{margin-right:1rem}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1rem;margin-top:1rem}
.card{margin:0;background:#fff;border-radius:6px;box-shadow:0 1px 3px #0002;overflow:hidden}.card img{width:100%;aspect-ratio:1;object-fit:cover;display:block;background:#eee}
.placeholder{aspect-ratio:1;display:grid;place-items:center;background:#f5f5f4;color:#78716c;text-transform:uppercase;letter-spacing:.1em}
figcaption{padding:.5rem .7rem}.prompt{margin:0 0 .3rem;font-weight:500}dl{display:grid;grid-template-columns:auto 1fr;gap:0 .5rem;margin:0;color:#57534e}dd{margin:0}
.error{color:#b91c1c;margin:.3rem 0 0;font-size:.9em}.failed .placeholder,.expired .placeholder{background:#fef2f2;color:#b91c1c}nav{margin-top:1rem}
</style></head><body>
<header><h1>batch ${e(b.batchId)}</h1><span class="tenant">tenant ${e(b.tenant)}</span><span class="batch-state">${e(b.state)}${b.paused ? ' (queue paused)' : ''}</span>
<div class="progress" title="${done} of ${b.total} finished"><span style="width:${pct}%"></span></div><span>${done} / ${b.total} (${pct}%)</span></header>
<p class="stats"><span>completed ${c.completed}</span><span>failed ${c.failed}</span><span>cancelled ${c.cancelled}</span><span>expired ${c.expired}</span><span>active ${c.active}</span><span>waiting ${c.waiting}</span><span>delayed ${c.delayed}</span></p>
<p class="stats"><span>output ${e(b.output_mp)} MP</span><span>input ${e(b.input_mp)} MP</span><span>possibly billed ${e(b.possibly_billed)}</span><span>estimated cost $${e(b.cost_usd.toFixed(4))}</span>${b.max_megapixels !== undefined ? `<span>budget ${e(b.max_megapixels)} MP</span>` : ''}</p>
<main class="grid">${cards.map(card).join('\n')}</main>${nav}</body></html>`;
}

export function galleryRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { producer } = deps;
  app.get<{ Params: { id: string }; Querystring: { page?: string } }>('/batches/:id', async (req, reply) => {
    const b = await producer.getBatch(req.params.id);
    if (!b || !visibleTo(req, b.tenant)) {
      return reply.code(404).type('text/html; charset=utf-8').send(`<!doctype html><title>not found</title><p>No batch with id “${e(req.params.id)}”.</p>`);
    }
    const ids = (await producer.batches.members(b.batchId)).sort();
    const pages = Math.max(1, Math.ceil(ids.length / GALLERY_PAGE_SIZE));
    const pageNo = Math.min(pages, Math.max(1, Number(req.query.page) || 1));
    const slice = ids.slice((pageNo - 1) * GALLERY_PAGE_SIZE, pageNo * GALLERY_PAGE_SIZE);
    const records = await producer.records.getMany(slice);
    const cards: Card[] = await Promise.all(
      slice.map(async (id, i) => {
        const record = records[i];
        const result = record?.state === 'completed' && record.result ? (JSON.parse(record.result) as JobResult) : undefined;
        const images = await Promise.all((result?.images ?? []).map(async (img) => ({ url: await presignGet(deps.s3, img, deps.config.api.presignTtlS), key: img.key, contentType: img.contentType })));
        return { id, record, images };
      }),
    );
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page(b, cards, pageNo, pages));
  });
}
