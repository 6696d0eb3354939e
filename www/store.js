// The model cache: whole, verified GGUF files in the origin-private file system (OPFS),
// and an index (URL → file, SHA-256, size) that is written only after a file is complete
// and verified, so a half-written or rejected download is never used. Next to a file, its
// tokenizer's merge order (`<file>.merges`), which the engine checks before using.

const DIR = "ouvert-models";
const INDEX = "index.json";
const LOCK = "ouvert-models-index";

async function directory() {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIR, { create: true });
}

async function readIndex(dir) {
  try {
    const file = await (await dir.getFileHandle(INDEX)).getFile();
    return JSON.parse(await file.text());
  } catch {
    return {};
  }
}

async function writeIndex(dir, index) {
  const w = await (await dir.getFileHandle(INDEX, { create: true })).createWritable();
  await w.write(JSON.stringify(index));
  await w.close();
}

/** Runs `fn(dir, index)` holding the index lock; saves the index when `fn` returns true. */
async function withIndex(fn) {
  const run = async () => {
    const dir = await directory();
    const index = await readIndex(dir);
    const result = await fn(dir, index);
    if (result?.save) await writeIndex(dir, index);
    return result?.value;
  };
  return navigator.locks ? navigator.locks.request(LOCK, run) : run();
}

async function removeFile(dir, name) {
  try {
    await dir.removeEntry(name);
  } catch {
    /* already gone */
  }
}

/** Removes a cached model file and what is kept next to it. */
async function removeModel(dir, name) {
  await removeFile(dir, name);
  await removeFile(dir, `${name}.merges`);
}

/** Cached models: `[{ url, sha256, bytes, storedAt }]`. */
export async function listCachedModels() {
  if (!navigator.storage?.getDirectory) return [];
  return withIndex((_, index) => ({
    value: Object.entries(index).map(([url, e]) => ({
      url,
      sha256: e.sha256,
      bytes: e.bytes,
      storedAt: e.storedAt,
    })),
  }));
}

/** Deletes the cached copy of a model, named by its URL or SHA-256. True if one was there. */
export async function deleteCachedModel(urlOrSha256) {
  if (!navigator.storage?.getDirectory) return false;
  const key =
    typeof urlOrSha256 === "string" && !/^[0-9a-f]{64}$/i.test(urlOrSha256)
      ? new URL(urlOrSha256, globalThis.location?.href).href
      : urlOrSha256;
  return withIndex(async (dir, index) => {
    const hits = Object.keys(index).filter(
      (url) => url === key || index[url].sha256 === String(key).toLowerCase(),
    );
    for (const url of hits) {
      await removeModel(dir, index[url].file);
      delete index[url];
    }
    return { save: hits.length > 0, value: hits.length > 0 };
  });
}

/** The browser's storage estimate: `{ usage, quota }` in bytes (either may be undefined). */
export async function storageEstimate() {
  const { usage, quota } = (await navigator.storage?.estimate?.()) ?? {};
  return { usage, quota };
}

/**
 * The cached file for `url` (and `sha256`, when given), or null. A file whose size or
 * modification time changed since it was verified is dropped, so it gets fetched again.
 */
export async function lookup(url, sha256) {
  if (!navigator.storage?.getDirectory) return null;
  return withIndex(async (dir, index) => {
    const entry = index[url];
    if (!entry || (sha256 && entry.sha256 !== sha256.toLowerCase())) return null;
    try {
      const handle = await dir.getFileHandle(entry.file);
      const file = await handle.getFile();
      if (file.size === entry.bytes && file.lastModified === entry.lastModified)
        return { value: { file, handle, name: entry.file, sha256: entry.sha256 } };
    } catch {
      /* missing: forget it below */
    }
    await removeModel(dir, entry.file);
    delete index[url];
    return { save: true };
  });
}

/**
 * Starts caching a download of `bytes` bytes (worker only: it writes through a synchronous
 * access handle, chunk by chunk, without holding the file in memory). Resolves to
 * `{ writer }` or `{ skipped: reason }` where reason is "quota" or "unavailable".
 */
export async function beginWrite(url, bytes) {
  if (
    !navigator.storage?.getDirectory ||
    typeof FileSystemFileHandle === "undefined" ||
    !("createSyncAccessHandle" in FileSystemFileHandle.prototype)
  ) {
    return { skipped: "unavailable" };
  }
  try {
    const { usage = 0, quota = Infinity } = await navigator.storage.estimate();
    if (bytes && quota - usage < bytes) return { skipped: "quota" };
    const dir = await directory();
    const name = `${crypto.randomUUID()}.gguf`;
    const handle = await (await dir.getFileHandle(name, { create: true })).createSyncAccessHandle();
    let at = 0;
    return {
      writer: {
        name,
        write(chunk) {
          handle.write(chunk, { at });
          at += chunk.byteLength;
        },
        async commit(sha256) {
          handle.flush();
          handle.close();
          const file = await (await dir.getFileHandle(name)).getFile();
          await withIndex(async (_, index) => {
            const old = index[url];
            if (old && old.file !== name) await removeModel(dir, old.file);
            index[url] = {
              file: name,
              sha256,
              bytes: at,
              lastModified: file.lastModified,
              storedAt: Date.now(),
            };
            return { save: true };
          });
        },
        async abort() {
          try {
            handle.close();
          } catch {
            /* closed */
          }
          await removeFile(dir, name);
        },
      },
    };
  } catch (e) {
    return { skipped: skipReason(e) };
  }
}

/** The merge order kept next to the cached model file `name`, or null. */
export async function readMergeOrder(name) {
  try {
    const file = await (await (await directory()).getFileHandle(`${name}.merges`)).getFile();
    return new Uint8Array(await file.arrayBuffer());
  } catch {
    return null;
  }
}

/** Keeps `bytes` (a merge order) next to the cached model file `name`, while it is cached. */
export async function writeMergeOrder(name, bytes) {
  try {
    await withIndex(async (dir, index) => {
      if (!Object.values(index).some((e) => e.file === name)) return;
      const w = await (
        await dir.getFileHandle(`${name}.merges`, { create: true })
      ).createWritable();
      await w.write(bytes);
      await w.close();
    });
  } catch {
    /* storage full or gone: the next load derives the order again */
  }
}

/** Why a storage error stops caching: "quota" (storage full) or "unavailable". */
export function skipReason(e) {
  return e?.name === "QuotaExceededError" ? "quota" : "unavailable";
}
