// The engine's worker on a cross-origin isolated page whose browser has relaxed SIMD: the
// threaded build compiled with it (the same bits as the others, faster byte dot products).
import * as wasm from "./wasm-mt-relaxed/ouvert.js";
import { serve } from "./worker-core.js";

serve(wasm);
