// The workshop site's service worker: keeps the site (pages, scripts, wasm) so it opens
// without a network. build.sh writes the file list and a version that changes with any
// file; the model itself is not here but in the engine's OPFS cache.
const VERSION = "dev" /*VERSION*/;
const FILES = [
  /*FILES*/
];
const CACHE = `ouvert-site-${VERSION}`;
const SITE = new Set(["./", ...FILES].map((f) => new URL(f, location.href).href));

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll([...SITE]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys())
        if (key.startsWith("ouvert-site-") && key !== CACHE) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

// Site files come from the cache (they change only with a new version of this worker);
// anything else, the model included, goes to the network untouched.
self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  url.search = "";
  if (request.method !== "GET" || !SITE.has(url.href)) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => (await cache.match(url.href)) ?? fetch(request)),
  );
});
