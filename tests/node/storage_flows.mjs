// supabase-js 2.119.0 (storage-js) against segbase's /storage/v1. Input: one JSON argument
// {url, anonKey, serviceKey, userToken, otherToken, userId, otherId, pngBase64}; output: one JSON object of results.
import { createClient } from '@supabase/supabase-js';
import { createHash } from 'node:crypto';

const cfg = JSON.parse(process.argv[2]);
const client = (key, token) => createClient(cfg.url, key, {
  auth: { persistSession: false, autoRefreshToken: false },
  global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
});
const user = client(cfg.anonKey, cfg.userToken).storage;
const other = client(cfg.anonKey, cfg.otherToken).storage;
const service = client(cfg.serviceKey, null).storage;
const png = Buffer.from(cfg.pngBase64, 'base64');
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
const err = (error) => error && { name: error.name, message: error.message, status: error.status,
  statusCode: error.statusCode, code: error.code };
const pick = ({ data, error }) => ({ data, error: err(error) });
const blob = async ({ data, error }) => ({ sha: data ? sha(Buffer.from(await data.arrayBuffer())) : null,
  type: data ? data.type : null, error: err(error) });
const out = { pngSha: sha(png) };
const base = `${cfg.userId}/js-${Date.now()}`;
const images = user.from('images');

// uploads: a Blob (multipart, part named ""), a Buffer (raw body), upsert, metadata
out.uploadBlob = pick(await images.upload(`${base}/blob.png`, new Blob([png], { type: 'image/png' })));
out.uploadBuffer = pick(await images.upload(`${base}/buffer.png`, png, { contentType: 'image/png', cacheControl: '60',
  metadata: { job: '42' } }));
out.duplicate = pick(await images.upload(`${base}/buffer.png`, png, { contentType: 'image/png' }));
out.upsert = pick(await images.upload(`${base}/buffer.png`, png, { contentType: 'image/png', upsert: true,
  cacheControl: '60', metadata: { job: '43' } }));
out.update = pick(await images.update(`${base}/blob.png`, new Blob([png], { type: 'image/png' })));
out.wrongType = pick(await images.upload(`${base}/page.html`, '<script>alert(1)</script>', { contentType: 'text/html' }));
out.download = await blob(await images.download(`${base}/buffer.png`));
out.info = pick(await images.info(`${base}/buffer.png`));
out.exists = pick(await images.exists(`${base}/buffer.png`));
out.missing = pick(await images.exists(`${base}/nothing.png`));
out.missingDownload = await blob(await images.download(`${base}/nothing.png`));
out.list = pick(await images.list(base));
out.listSearch = pick(await images.list(base, { search: 'blo' }));
out.move = pick(await images.move(`${base}/blob.png`, `${base}/moved.png`));
out.copy = pick(await images.copy(`${base}/moved.png`, `${base}/copied.png`));
out.copyDownload = await blob(await images.download(`${base}/copied.png`));

// signed URLs
const signed = pick(await images.createSignedUrl(`${base}/buffer.png`, 60));
out.signed = signed;
out.signedFetch = signed.data ? sha(Buffer.from(await (await fetch(signed.data.signedUrl)).arrayBuffer())) : null;
const signedMany = pick(await images.createSignedUrls([`${base}/buffer.png`, `${base}/nope.png`], 60));
out.signedMany = signedMany;
const signedUpload = pick(await images.createSignedUploadUrl(`${base}/signed-upload.png`));
out.signedUpload = signedUpload;
out.uploadToSigned = signedUpload.data ? pick(await images.uploadToSignedUrl(`${base}/signed-upload.png`,
  signedUpload.data.token, new Blob([png], { type: 'image/png' }))) : null;
out.signedUploadDownload = await blob(await images.download(`${base}/signed-upload.png`));
out.transformed = await blob(await images.download(`${base}/buffer.png`, { transform: { width: 16, height: 16 } }));

// isolation: the other user
const theirs = other.from('images');
out.otherDownload = await blob(await theirs.download(`${base}/buffer.png`));
out.otherList = pick(await theirs.list(base));
out.otherSign = pick(await theirs.createSignedUrl(`${base}/buffer.png`, 60));
out.otherUpsert = pick(await theirs.upload(`${base}/buffer.png`, png, { contentType: 'image/png', upsert: true }));
out.otherRemove = pick(await theirs.remove([`${base}/buffer.png`]));
out.otherMove = pick(await theirs.move(`${base}/buffer.png`, `${cfg.otherId}/stolen.png`));
out.afterOther = await blob(await images.download(`${base}/buffer.png`));

// public bucket and buckets, as service_role
const bucket = `js-public-${Date.now()}`;
out.createBucket = pick(await service.createBucket(bucket, { public: true, fileSizeLimit: '1MB',
  allowedMimeTypes: ['image/png'] }));
out.getBucket = pick(await service.getBucket(bucket));
await service.from(bucket).upload('logo.png', png, { contentType: 'image/png' });
const publicUrl = service.from(bucket).getPublicUrl('logo.png').data.publicUrl;
out.publicFetch = sha(Buffer.from(await (await fetch(publicUrl)).arrayBuffer()));
out.tooLarge = pick(await service.from(bucket).upload('big.png', Buffer.alloc(2_000_000), { contentType: 'image/png' }));
out.userCreateBucket = pick(await user.createBucket(`js-mine-${Date.now()}`));
out.deleteNonEmpty = pick(await service.deleteBucket(bucket));
out.emptyBucket = pick(await service.emptyBucket(bucket));
out.deleteBucket = pick(await service.deleteBucket(bucket));

out.remove = pick(await images.remove([`${base}/buffer.png`, `${base}/moved.png`, `${base}/copied.png`,
  `${base}/signed-upload.png`]));
out.listAfter = pick(await images.list(base));
console.log(JSON.stringify(out));
