// supabase-js 2.119.0 reads against segbase's /rest/v1. Input: one JSON argument
// {url, anonKey, serviceKey, accessToken, tables: {name: {id, orderBy}}}; output: one JSON object of results.
import { createClient } from '@supabase/supabase-js';

const cfg = JSON.parse(process.argv[2]);
const options = (token) => ({
  auth: { persistSession: false, autoRefreshToken: false },
  global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
});
const user = createClient(cfg.url, cfg.anonKey, options(cfg.accessToken));
const anon = createClient(cfg.url, cfg.anonKey, options(null));
const service = createClient(cfg.url, cfg.serviceKey, options(null));

const pick = ({ data, error, count, status }) => ({ data, error, count, status });
const out = {};
for (const [table, spec] of Object.entries(cfg.tables)) {
  out[table] = {
    list: pick(await user.from(table).select('*')),
    filtered: pick(await user.from(table).select('id').eq('id', spec.id)),
    notIn: pick(await user.from(table).select('id').not('id', 'in', `(${spec.id})`)),
    ordered: pick(await user.from(table).select('id').order(spec.orderBy, { ascending: false, nullsFirst: false })),
    page: pick(await user.from(table).select('id', { count: 'exact' }).order('id').range(0, 0)),
    single: pick(await user.from(table).select('*').eq('id', spec.id).single()),
    singleMissing: pick(await user.from(table).select('*').eq('id', '00000000-0000-0000-0000-000000000000').single()),
    maybeNone: pick(await user.from(table).select('*').eq('id', '00000000-0000-0000-0000-000000000000').maybeSingle()),
    maybeOne: pick(await user.from(table).select('id').eq('id', spec.id).maybeSingle()),
    head: pick(await user.from(table).select('*', { count: 'exact', head: true })),
    anon: pick(await anon.from(table).select('id')),
    service: pick(await service.from(table).select('id', { count: 'exact' }).eq('id', spec.id)),
  };
}
out.orFilter = pick(await user.from('segmentation_results').select('id')
  .or('status.eq.done,text_prompt.is.null'));
out.ilike = pick(await user.from('segmentation_results').select('id').ilike('text_prompt', 'CAT%'));
out.inList = pick(await user.from('segmentation_results').select('id').in('status', ['done', 'error']));
out.badColumn = pick(await user.from('segmentation_results').select('nope'));
console.log(JSON.stringify(out));
