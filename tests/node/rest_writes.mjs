// supabase-js 2.119.0: the original specification's write flows against segbase's /rest/v1. Input: one JSON argument
// {url, anonKey, serviceKey, userToken, otherToken, userId, doneResultId}; output: one JSON object of results.
import { createClient } from '@supabase/supabase-js';

const cfg = JSON.parse(process.argv[2]);
const client = (key, token) => createClient(cfg.url, key, {
  auth: { persistSession: false, autoRefreshToken: false },
  global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
});
const user = client(cfg.anonKey, cfg.userToken);
const other = client(cfg.anonKey, cfg.otherToken);
const anon = client(cfg.anonKey, null);
const service = client(cfg.serviceKey, null);
const pick = ({ data, error, count, status }) => ({ data, error, count, status });
const out = {};

out.project = pick(await user.from('projects').insert({ name: 'js project' }).select().single());
const projectId = out.project.data.id;
out.plainInsert = pick(await user.from('projects').insert({ name: 'js plain' }));
out.bulk = pick(await user.from('projects').insert([{ name: 'js bulk 1' }, { name: 'js bulk 2', description: 'd' }]).select('name,description'));
out.result = pick(await user.from('segmentation_results')
  .insert({ project_id: projectId, source_image_url: 'https://img.example/js.png', text_prompt: 'a cat' })
  .select().single());
out.displayName = pick(await user.from('users_profile').update({ display_name: 'JS Name' }).eq('id', cfg.userId).select());
out.rename = pick(await user.from('projects').update({ name: 'js renamed' }).eq('id', projectId).select('name'));
out.otherRename = pick(await other.from('projects').update({ name: 'hijack' }).eq('id', projectId).select());
out.otherDelete = pick(await other.from('projects').delete().eq('id', projectId));
out.anonInsert = pick(await anon.from('projects').insert({ name: 'anon' }));
out.credits = pick(await user.from('users_profile').update({ credits: 1000 }).eq('id', cfg.userId));
out.tier = pick(await user.from('users_profile').update({ tier: 'pro' }).eq('id', cfg.userId));
out.status = pick(await user.from('segmentation_results').update({ status: 'done' }).eq('id', out.result.data.id));
out.deleteProject = pick(await user.from('projects').delete().eq('id', projectId));
out.resultAfter = pick(await user.from('segmentation_results').select('id,project_id').eq('id', out.result.data.id).single());
out.deleteDone = pick(await user.from('segmentation_results').delete().eq('id', cfg.doneResultId).select('id'));
out.upload = pick(await service.from('usage_logs')
  .insert({ user_id: cfg.userId, action: 'upload', credits_used: 0, metadata: { path: 'u/x.png' } }).select().single());
out.serviceUpdate = pick(await service.from('segmentation_results')
  .update({ status: 'processing' }).eq('id', out.result.data.id).select('status'));
out.upsert = pick(await user.from('projects')
  .upsert({ id: projectId.replace(/^.{8}/, '00000000'), user_id: cfg.userId, name: 'js upsert v1' }, { onConflict: 'id' })
  .select('id,name'));
out.upsertAgain = pick(await user.from('projects')
  .upsert({ id: projectId.replace(/^.{8}/, '00000000'), user_id: cfg.userId, name: 'js upsert v2' }, { onConflict: 'id' })
  .select('id,name'));
out.rpc = pick(await user.rpc('my_credit_summary'));
out.rpcGet = pick(await user.rpc('count_my_results', { status: 'processing' }, { get: true }));
out.rpcAnon = pick(await anon.rpc('my_credit_summary'));
out.unfiltered = pick(await user.from('projects').delete());
console.log(JSON.stringify(out));
