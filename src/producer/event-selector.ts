import { ValidationError } from '../shared/errors.js';

/** Which entries of the events stream a reader wants (SPEC §9): filters combine (AND). */
export interface EventSelector {
  /** Entries whose `data.batchId` is this. */
  batch?: string;
  /** Entries whose `data.jobId` is this. */
  job?: string;
  /** Entries of these types only. */
  types?: readonly string[];
}

interface Entry {
  type: string;
  data: Record<string, unknown>;
}

const TYPE_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/** `t1,t2` → the list; blanks ignored; a name that cannot be an event type is a ValidationError naming `field`. */
export function parseEventTypes(list: string | undefined, field = 'types'): string[] | undefined {
  if (list === undefined) return undefined;
  const types = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = types.filter((s) => !TYPE_NAME.test(s));
  if (bad.length > 0) throw new ValidationError([{ path: field, message: `"${bad.join('", "')}" is not an event type (e.g. job.completed)` }]);
  return types.length > 0 ? types : undefined;
}

/** The predicate of a selector; an empty selector lets everything through. */
export function selectEvents(sel: EventSelector): (e: Entry) => boolean {
  const types = sel.types ? new Set(sel.types) : undefined;
  return (e) =>
    (types === undefined || types.has(e.type)) &&
    (sel.batch === undefined || e.data.batchId === sel.batch) &&
    (sel.job === undefined || e.data.jobId === sel.job);
}
