// supabase-js 2.119.0 over tests/rest/library.sql: embedding and the read grammar. Input: one JSON argument
// {url, anonKey}; output: one JSON object of {data, error, count, status} per case.
import { createClient } from '@supabase/supabase-js';

const cfg = JSON.parse(process.argv[2]);
const db = createClient(cfg.url, cfg.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
const pick = ({ data, error, count, status, statusText }) => ({ data, error, count, status, statusText });
const books = () => db.from('books');
const ids = (q) => q.order('id');

const out = {
  manyToOne: await books().select('title, author:authors!author_id(name), editor:authors!editor_id(name)').order('id'),
  oneToMany: await db.from('authors').select('name, books!author_id(id)').order('id'),
  oneToOne: await db.from('authors').select('name, author_profiles(bio)').eq('id', 1).single(),
  manyToMany: await books().select('id, genres(name)').eq('id', 2).single(),
  selfRef: await db.from('authors').select('name, mentor:mentor_id(name)').eq('id', 2).single(),
  inner: await db.from('authors').select('name, books!author_id!inner(title)').eq('books.title', 'Kindred'),
  referenced: await db.from('authors').select('name, books!author_id(id)').eq('id', 1)
    .order('id', { referencedTable: 'books', ascending: false }).limit(1, { referencedTable: 'books' }).single(),
  notNullEmbed: await db.from('authors').select('name, author_profiles()').not('author_profiles', 'is', null).order('id'),
  spread: await books().select('title, ...authors!author_id(author:name)').eq('id', 3).single(),
  ambiguous: await books().select('id, authors(name)'),
  noRelation: await books().select('id, nothing(*)'),
  jsonPath: await books().select('id, rating:meta->rating, meta->shelf->>row').eq('id', 1).single(),
  jsonFilter: await ids(books().select('id').eq('meta->>rating', '5')),
  cast: await books().select('id::text').eq('id', 4).single(),
  computed: await books().select('id, shout').eq('shout', 'KINDRED'),
  fts: await ids(books().select('id').textSearch('summary', 'wizard', { config: 'english' })),
  plfts: await ids(books().select('id').textSearch('summary', 'true names', { type: 'plain' })),
  phfts: await ids(books().select('id').textSearch('summary', 'back in time', { type: 'phrase', config: 'english' })),
  wfts: await ids(books().select('id').textSearch('summary', 'physicist -wizard', { type: 'websearch' })),
  likeAny: await ids(books().select('id').likeAnyOf('title', ['%Earth%', '%Kind%'])),
  ilikeAll: await ids(books().select('id').ilikeAllOf('title', ['%the%', '%dis%'])),
  match: await ids(books().select('id').regexMatch('title', '^The')),
  imatch: await ids(books().select('id').regexIMatch('title', 'phlebas$')),
  rangeLt: await ids(books().select('id').rangeLt('pages', '[300,400)')),
  rangeAdjacent: await ids(books().select('id').rangeAdjacent('pages', '[200,250)')),
  overlaps: await ids(books().select('id').overlaps('pages', '[350,600)')),
  isDistinct: await ids(books().select('id').isDistinct('editor_id', 1)),
  orArray: await ids(books().select('id').or('tags.cs.{fantasy,classic},id.eq.4')),
  csv: await books().select('id, title').lte('id', 2).order('id').csv(),
  stripNulls: await books().select('id, editor_id').eq('id', 4).stripNulls(),
  rollback: await db.from('loans').insert({ book_id: 1, borrower: 'js rollback' }).select('borrower').rollback(),
  afterRollback: await db.from('loans').select('id').eq('borrower', 'js rollback'),
  otherSchema: await db.schema('extra').from('notes').select('body'),
  rpcTable: await db.rpc('book_counts'),
  rpcShaped: await db.rpc('books_of', { author: 1 }).select('title, editor:authors!editor_id(name)').eq('id', 2).single(),
  rpcMaxAffected: await db.rpc('add_loan', { book: 2, who: 'js strict' }).maxAffected(0),
  rpcComposite: await db.rpc('title_of', { book: { id: 9, title: 'Composite', author_id: 1 } }),
  rpcCount: await db.rpc('books_of', { author: 1 }, { count: 'exact' }).select('id'),
  insertEmbed: await db.from('loans').insert({ book_id: 3, borrower: 'js' }).select('borrower, books(title)').single(),
};
for (const key of Object.keys(out)) out[key] = pick(out[key]);
console.log(JSON.stringify(out));
