/**
 * The batch gallery's own script (SPEC §9): follows `/v1/batches/:id/events` with an
 * EventSource from the position the page was rendered at (`data-after`), and swaps in
 * the server-rendered card of a job that finished and the batch summary. No reload; the
 * browser resumes with Last-Event-ID by itself after a drop.
 */
export const GALLERY_LIVE_SCRIPT = `(() => {
  if (!window.EventSource) return;
  const batch = document.body.dataset.batch;
  const base = '/batches/' + encodeURIComponent(batch);
  const es = new EventSource('/v1/batches/' + encodeURIComponent(batch) + '/events?after=' + encodeURIComponent(document.body.dataset.after));
  window.fluxqEvents = es;
  const live = (on) => { const el = document.querySelector('.live'); if (el) el.hidden = !on; };
  let summaryDue = false;
  const refreshSummary = () => {
    if (summaryDue) return;
    summaryDue = true;
    setTimeout(async () => {
      summaryDue = false;
      const r = await fetch(base + '/summary', { cache: 'no-store' });
      const el = document.getElementById('summary');
      if (r.ok && el) { el.outerHTML = await r.text(); live(es.readyState === 1); }
    }, 250);
  };
  const refreshCard = async (job) => {
    const sel = 'figure.card[data-job="' + CSS.escape(job) + '"]';
    if (!document.querySelector(sel)) return; // on another page of the gallery
    const r = await fetch(base + '/cards/' + encodeURIComponent(job), { cache: 'no-store' });
    const el = document.querySelector(sel);
    if (!r.ok || !el) return;
    const t = document.createElement('template');
    t.innerHTML = (await r.text()).trim();
    if (t.content.firstElementChild) el.replaceWith(t.content.firstElementChild);
  };
  const onJob = (ev) => {
    const d = JSON.parse(ev.data);
    if (typeof d.jobId === 'string') refreshCard(d.jobId);
    refreshSummary();
  };
  for (const type of ['job.completed', 'job.failed', 'job.expired']) es.addEventListener(type, onJob);
  es.addEventListener('batch.completed', refreshSummary);
  es.onopen = () => live(true);
  es.onerror = () => live(false);
})();`;
